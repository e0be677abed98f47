"""Edge dual-write add-on: every acknowledged write also reaches the other side's store.

For a write (non-safe method, not a read-via-POST route) of a service whose dual write is on,
after the primary answered 2xx the add-on appends a replay record to the durable outbox
*before the client gets the answer* — so a write the client saw succeed survives even a SIGKILL
right after. The replay worker (one per proxy worker; leases keep deliveries single) delivers it
to the other side in order per account, and the primary's and the replay's answers are compared
in the shadow diff store. Both directions: accounts served by new replay to legacy.

Read-your-writes across a shift (either direction) and across services: see ``before``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from ..dual_write.config import DualWriteConfig
from ..dual_write.outbox import Outbox, open_outbox
from ..dual_write.records import ReplayRecord, Side
from ..dual_write.worker import ReplayWorker
from ..redact import redact_path
from ..rollout.bucketing import in_cohort, salt_for
from ..rollout.state import ServiceState
from ..routes.matcher import Route
from ..routes.models import SAFE_METHODS, RoutesFile
from ..shadow.normalise import NormaliseRules
from ..transport import HttpRequest, HttpResponse, Transport
from .addons import Exchange

log = logging.getLogger("chariot_migrate.proxy")
HOLD_BACK_REFRESH_S = 0.25  # how stale "this account still has writes on their way to new" may be

DUAL_WRITES = Counter("dual_write_records_total", "Replay records by outcome at the edge", ["service", "result"])
HELD_BACK = Counter("dual_write_held_back_total",
                    "Requests served by the other side because the account's writes toward the chosen side are "
                    "still pending", ["service"])
BARRIER = Counter("dual_write_barrier_total",
                  "Requests that waited for another service's writes toward their side", ["service", "result"])


class _Answered:
    """A transport that 'answers' with a response we already have (the replay's), so the shadow
    engine can compare primary vs replay without calling anything."""

    def __init__(self, response: HttpResponse) -> None:
        self.response = response

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        return self.response

    async def aclose(self) -> None:
        return None


def _resolve(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


class DualWriteAddon:
    def __init__(self, get_config: Callable[[], RoutesFile], transports: Callable[[str, str], Transport | None], *,
                 outbox: Outbox | None = None, shadow_engine=None, shadow_rules=None) -> None:
        self._get_config = get_config
        self.cfg = DualWriteConfig.from_section(get_config().dual_write)
        self.outbox = outbox or open_outbox(self.cfg.outbox)
        self._transports = transports
        self._shadow = shadow_engine
        self._rules = shadow_rules
        token_fn = _resolve(self.cfg.replay_token) if self.cfg.replay_token else None
        self._primary_filter = _resolve(self.cfg.primary_filter) if self.cfg.primary_filter else None
        self.worker = ReplayWorker(
            self.outbox, self._transport_for, max_attempts=self.cfg.max_attempts, base_delay_s=self.cfg.base_delay_s,
            max_delay_s=self.cfg.max_delay_s, concurrency=self.cfg.concurrency, timeout_s=self.cfg.timeout_s,
            lease_s=max(self.cfg.lease_s, self.cfg.timeout_s + 1),
            replay_token_provider=token_fn, on_result=self._on_result if self.cfg.compare else None,
        )
        # SQLite outboxes answer "which lanes toward a side have undelivered writes" in one query.
        self._snapshot = getattr(self.outbox, "undelivered_lanes", None)
        # target → ({account: services with writes on their way}, valid until)
        self._pending: dict[str, tuple[dict[str, set[str]], float]] = {}
        self._refreshing: dict[str, asyncio.Future[frozenset[tuple[str, str]]]] = {}
        self._pending_cache: dict[tuple[str, str], tuple[set[str], float]] = {}

    def _transport_for(self, service: str, side: str) -> Transport:
        t = self._transports(service, side)
        if t is None:
            raise LookupError(f"no transport for {service} on the {side} side")
        return t

    # ---- decisions ----------------------------------------------------------------------------

    def _is_write(self, ex: Exchange) -> bool:
        return ex.request.method not in SAFE_METHODS and not (ex.route is not None and ex.route.shadow)

    def wanted(self, ex: Exchange) -> bool:
        decided = ex.notes.get("dual_write")
        if decided is None:
            decided = ex.notes["dual_write"] = self._decide(ex)
        return bool(decided)

    def _decide(self, ex: Exchange) -> bool:
        s = ex.state
        if ex.service is None or s is None or s.dual_write != "on" or ex.other is None or not self._is_write(ex):
            return False
        if ex.request.header("x-migrate-replay"):  # a replay is never replayed again
            return False
        if s.dual_write_bp >= 10_000 or ex.account is None:
            return True
        svc = self._get_config().services.get(ex.service)
        return in_cohort(salt_for(ex.service, svc.salt if svc else None, "dual"), ex.account, s.dual_write_bp)

    # ---- hooks --------------------------------------------------------------------------------

    def applies(self, route: Route | None, state: ServiceState | None) -> bool:
        # Not only while this service dual writes: its reads wait for other services' writes too.
        return route is not None and state is not None

    async def before(self, ex: Exchange) -> None:
        """Read-your-writes across services. The side decision (``proxy/decide.py``) already
        moved an account whose writes toward the chosen side are still in the outbox to the
        other side of the same service (``draining``: just after a shift or a rollback); here,
        writes of *other* services still on their way to the chosen side are waited for, up to
        ``barrier_s`` (a mixed split: asset-discovery on new, risk-assessment on legacy — the
        risk must see the asset just created)."""
        if ex.account is None or ex.service is None or ex.state is None or ex.request.header("x-migrate-replay"):
            return
        if ex.decision == "draining":
            HELD_BACK.labels(ex.service).inc()
        waiting = await self._pending_services(ex.account, ex.side)
        if waiting - {ex.service}:
            await self._wait_for_other_services(ex)

    async def pending_toward(self, account: str, service: str, target: str) -> bool:
        """Are writes of ``account`` for ``service`` still on their way to ``target``?"""
        return service in await self._pending_services(account, target)

    async def _wait_for_other_services(self, ex: Exchange) -> None:
        account, target = ex.account or "", ex.side
        deadline = time.monotonic() + self.cfg.barrier_s
        while True:
            left = [svc for svc in self._get_config().services if svc != ex.service
                    and await self.outbox.pending_for(svc, account, target) > 0]
            if not left:
                BARRIER.labels(ex.service or "-", "delivered").inc()
                self._pending.get(target, ({}, 0.0))[0].pop(account, None)
                return
            if time.monotonic() >= deadline:
                BARRIER.labels(ex.service or "-", "timeout").inc()
                log.warning("dual write: writes of %s toward %s still pending after %.1fs; serving anyway",
                            ",".join(left), target, self.cfg.barrier_s)
                return
            self.worker.notify()
            await asyncio.sleep(0.005)

    async def _pending_services(self, account: str, target: str) -> set[str]:
        """The services with writes of ``account`` toward ``target`` still in the outbox. At most
        ``HOLD_BACK_REFRESH_S`` old, plus this process's own appends, seen at once."""
        if self._snapshot is None:
            return await self._pending_services_per_account(account, target)
        now = time.monotonic()
        entry = self._pending.get(target)
        if entry is None or entry[1] < now:
            refresh = self._refreshing.get(target) or self._start_refresh(target)
            try:
                lanes = await asyncio.shield(refresh)
            finally:
                if self._refreshing.get(target) is refresh and refresh.done():
                    del self._refreshing[target]
            by_account: dict[str, set[str]] = {}
            for svc, acct in lanes:
                by_account.setdefault(acct, set()).add(svc)
            entry = self._pending[target] = (by_account, now + HOLD_BACK_REFRESH_S)
        return entry[0].get(account, set())

    def _start_refresh(self, target: str) -> asyncio.Future[frozenset[tuple[str, str]]]:
        """One snapshot query per refresh, however many requests wait for it."""
        assert self._snapshot is not None  # only called when the outbox can snapshot
        refresh = self._refreshing[target] = asyncio.ensure_future(self._snapshot(target))
        return refresh

    async def _pending_services_per_account(self, account: str, target: str) -> set[str]:
        """Outboxes without a whole-outbox view (Redis): ask per service for this account, cached as long."""
        now = time.monotonic()
        key = (account, target)
        cached = self._pending_cache.get(key)
        if cached is None or cached[1] < now:
            services = {svc for svc in self._get_config().services
                        if await self.outbox.pending_for(svc, account, target) > 0}  # type: ignore[arg-type]  # target is 'new' or 'legacy'
            self._pending_cache[key] = cached = (services, now + HOLD_BACK_REFRESH_S)
            if len(self._pending_cache) > 50_000:
                self._pending_cache.clear()
        return cached[0]

    def needs_body(self, ex: Exchange) -> bool:
        return self.wanted(ex)

    async def response(self, ex: Exchange) -> None:
        if not self.wanted(ex) or ex.response is None or ex.error is not None or not 200 <= ex.response.status < 300:
            return
        target: Side = "legacy" if ex.side == "new" else "new"
        request = ex.request
        header = self._account_header()
        if header and ex.account and request.header(header) is None:
            # The replay identity acts *for* the account: name it the way the API expects.
            request = HttpRequest(**{**{f: getattr(request, f) for f in request.__slots__},
                                     "headers": [*request.headers, (header, ex.account)]})
        primary = ex.response
        if self._primary_filter is not None:  # e.g. a minted API-key secret never reaches the outbox
            primary = HttpResponse(primary.status, primary.headers, self._primary_filter(primary.body))
        rec = ReplayRecord.from_exchange(
            service=ex.service or "", account=ex.account or "-", target=target, request=request,
            response=primary, route_id=ex.route.id if ex.route else "",
            idempotency_key=ex.request.header("idempotency-key") or "", function=ex.request.function,
        )
        try:
            await self.outbox.append(rec)
        except Exception as e:  # noqa: BLE001 — never claim success for a write we cannot replay
            DUAL_WRITES.labels(ex.service or "-", "append_failed").inc()
            log.error("dual write: outbox append failed for %s %s: %s", ex.request.method,
                      redact_path(ex.request.path, ex.request.path_params), e)
            ex.response = HttpResponse(503, [("content-type", "application/json"), ("retry-after", "1")],
                                       b'{"error": "the write was applied but could not be recorded for the other '
                                       b'side; retry it (it is idempotent on the primary)", "side": "' +
                                       ex.side.encode() + b'"}')
            return
        DUAL_WRITES.labels(ex.service or "-", "appended").inc()
        if (entry := self._pending.get(target)) is not None:  # this process's own write: seen at once
            entry[0].setdefault(rec.account, set()).add(rec.service)
        elif (cached := self._pending_cache.get((rec.account, target))) is not None:
            cached[0].add(rec.service)
        self.worker.notify()
        # Dual-written writes are replay-compared; if the caller did not send one, tell it the key we used.
        ex.extra_headers.append(("x-migrate-replay-id", rec.id))

    def done(self, ex: Exchange) -> None:
        return None

    def _account_header(self) -> str | None:
        for source in self._get_config().bucket_by:
            kind, _, name = source.partition(":")
            if kind == "header":
                return name.lower()
        return None

    async def _on_result(self, record: ReplayRecord, response: HttpResponse) -> None:
        if self._shadow is None:
            return
        from ..shadow.engine import ShadowJob

        req = HttpRequest(method=record.request.method, path=record.request.path, query=record.request.query,
                          headers=list(record.request.headers), body=record.request.body,
                          route_template=record.request.route_template, path_params=dict(record.request.path_params),
                          function=record.request.function, stage=record.request.stage)
        primary = HttpResponse(record.primary.status, list(record.primary.headers), record.primary.body)
        other = _Answered(response)
        primary_side = "legacy" if record.target == "new" else "new"
        rules = self._rules(record.route_id) if self._rules else NormaliseRules()
        self._shadow.submit(ShadowJob(
            service=record.service, route_id=record.route_id, request=req, primary_side=primary_side,
            primary=primary, primary_latency_s=0.0, primary_transport=other, shadow_transport=other,
            timeout_s=1.0, noise_sample=False, rules=rules,
        ))

    async def start(self) -> None:
        if self.cfg.worker:
            self.worker.start()

    async def aclose(self) -> None:
        if self.cfg.worker:
            await self.worker.stop()
        await self.outbox.aclose()
