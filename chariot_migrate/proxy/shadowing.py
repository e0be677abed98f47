"""Shadow add-on: after the primary answered, copy safe requests of the shadow cohort to the
other side and compare (the engine in ``chariot_migrate.shadow`` does the work off the hot path).

Who is shadowed is decided like routing: ``bucket(salt + ":shadow", account) < shadow %``, so
the same accounts are always shadowed at a given percentage. Writes are never sent twice: their
comparison comes from the dual-write replay.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from prometheus_client import Counter

from ..rollout.bucketing import in_cohort, salt_for
from ..rollout.state import ServiceState
from ..routes.matcher import Route
from ..routes.models import SAFE_METHODS, RoutesFile
from ..shadow.config import ShadowConfig
from ..shadow.engine import SHADOW_HEADER, ShadowEngine, ShadowJob
from ..shadow.store import open_diff_store
from .addons import Exchange

SHADOW_JOBS = Counter("shadow_requests_total", "Shadow copies by outcome of the hand-off",
                      ["service", "result"])  # result: submitted | dropped


def shadow_salt(cfg: RoutesFile, service: str) -> str:
    svc = cfg.services.get(service)
    return salt_for(service, svc.salt if svc else None, "shadow")


class ShadowAddon:
    def __init__(self, get_config: Callable[[], RoutesFile], *, store_url: str | None = None,
                 rng: random.Random | None = None) -> None:
        self._get_config = get_config
        cfg = get_config()
        self._shadow_cfg_for = cfg
        self.shadow_cfg = ShadowConfig.from_section(cfg.shadow)
        self.engine = ShadowEngine(open_diff_store(store_url or self.shadow_cfg.store),
                                   concurrency=self.shadow_cfg.concurrency, queue_size=self.shadow_cfg.queue_size,
                                   flush_interval_s=self.shadow_cfg.flush_interval_s)
        self._rng = rng or random.Random()
        self._counters: dict[tuple[str, str], Counter] = {}

    def _config(self) -> ShadowConfig:
        cfg = self._get_config()
        if cfg is not self._shadow_cfg_for:  # routes.yaml reloaded
            self._shadow_cfg_for, self.shadow_cfg = cfg, ShadowConfig.from_section(cfg.shadow)
        return self.shadow_cfg

    def applies(self, route: Route | None, state: ServiceState | None) -> bool:
        return route is not None and state is not None and state.shadow_bp > 0

    async def before(self, ex: Exchange) -> None:
        return None

    def wanted(self, ex: Exchange) -> bool:
        decided = ex.notes.get("shadow")
        if decided is None:
            decided = ex.notes["shadow"] = self._decide(ex)
        return bool(decided)

    def _decide(self, ex: Exchange) -> bool:
        if ex.service is None or ex.other is None or ex.state is None or ex.state.shadow_bp <= 0:
            return False
        if ex.route is None or not (ex.request.method in SAFE_METHODS or ex.route.shadow):
            return False
        if ex.request.header(SHADOW_HEADER):  # never shadow a shadow copy
            return False
        if ex.account is None:
            return self._rng.randrange(10_000) < ex.state.shadow_bp
        return in_cohort(shadow_salt(self._get_config(), ex.service), ex.account, ex.state.shadow_bp)

    def needs_body(self, ex: Exchange) -> bool:
        return self.wanted(ex)

    async def response(self, ex: Exchange) -> None:
        return None

    def done(self, ex: Exchange) -> None:
        if ex.response is None or ex.response.stream is not None or ex.other is None or not self.wanted(ex):
            return
        sc = self._config()
        job = ShadowJob(
            service=ex.service or "-", route_id=ex.route.id if ex.route else "unmatched", request=ex.request,
            primary_side=ex.side, primary=ex.response, primary_latency_s=ex.latency_s, primary_transport=ex.primary,
            shadow_transport=ex.other, timeout_s=ex.timeout_s,
            noise_sample=self._rng.random() < sc.noise_sample_rate, rules=sc.rules_for(ex.route.id if ex.route else ""),
        )
        result = "submitted" if self.engine.submit(job) else "dropped"
        key = (ex.service or "-", result)
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = SHADOW_JOBS.labels(*key)
        c.inc()

    async def start(self) -> None:
        await self.engine.start()

    async def aclose(self) -> None:
        await self.engine.aclose()
