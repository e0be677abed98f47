"""Capture add-on: write sampled request/response pairs (redacted JSONL, with the side that
answered) for `chariot-migrate replay` — shadow testing in CI without live traffic."""

from __future__ import annotations

import random

from ..rollout.state import ServiceState
from ..routes.matcher import Route
from ..shadow.capture import CaptureWriter
from .addons import Exchange


class CaptureAddon:
    def __init__(self, path: str, sample: float = 1.0, rng: random.Random | None = None) -> None:
        self.writer = CaptureWriter(path, sample=1.0)  # sampling is decided here, before buffering
        self.sample = sample
        self._rng = rng or random.Random()

    def _sampled(self, ex: Exchange) -> bool:
        s = ex.notes.get("capture")
        if s is None:
            s = ex.notes["capture"] = self._rng.random() < self.sample
        return bool(s)

    def applies(self, route: Route | None, state: ServiceState | None) -> bool:
        return True

    async def before(self, ex: Exchange) -> None:
        return None

    def needs_body(self, ex: Exchange) -> bool:
        return self._sampled(ex)

    async def response(self, ex: Exchange) -> None:
        return None

    def done(self, ex: Exchange) -> None:
        if ex.response is None or ex.response.stream is not None or not self._sampled(ex):
            return
        self.writer.write(service=ex.service or "-", route=ex.route.id if ex.route else "unmatched", side=ex.side,
                          request=ex.request, response=ex.response, latency_s=ex.latency_s)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        self.writer.close()
