"""What the benchmark measures: scenario definitions, run modes, and the targets from the issue.

A scenario is plain data. Adding one (e.g. shadow 100 % once the shadow add-on is wired) is a
few lines: a ``ProxyProfile`` saying how the proxy is set up, and a ``Scenario`` using it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Target = Literal["direct", "bare", "proxy"]


@dataclass(frozen=True)
class ProxyProfile:
    """How one proxy instance is configured before it is loaded (live state set via the CLI)."""

    name: str = "routing"
    percent_new: float = 50.0  # 50 % so bucketing really splits traffic between the sides
    shadow_percent: float = 0.0
    dual_write: bool = False
    http_client: str = "aiohttp"  # the proxy's upstream client (`chariot-migrate proxy --http-client`)
    server: str = "uvicorn"  # the proxy's ASGI server (`chariot-migrate proxy --server`)
    # False for features the proxy does not have yet: such scenarios are listed as skipped, never faked.
    wired: bool = True
    not_wired_reason: str = ""


ROUTING = ProxyProfile()


@dataclass(frozen=True)
class Scenario:
    name: str
    target: Target
    connections: int
    workers: int = 1  # bare forwarder / proxy workers (direct: the upstream's own)
    profile: ProxyProfile = ROUTING  # proxy scenarios only
    write_share: float = 0.0  # fraction of requests sent as POST
    purpose: Literal["throughput", "latency"] = "throughput"
    in_quick: bool = True  # part of `make bench-quick` (the ~30-second run keeps only the core comparison)
    client: str = "aiohttp"  # bare forwarder's upstream client (proxy: set by the profile)
    server: str = "uvicorn"  # bare forwarder's server (uvicorn, granian, or granian-rsgi: granian's RSGI interface)

    @property
    def wired(self) -> bool:
        return self.target != "proxy" or self.profile.wired


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("direct-c50", "direct", 50),
    Scenario("bare-w1-c50", "bare", 50, workers=1),
    Scenario("proxy-w1-c50", "proxy", 50, workers=1),
    Scenario("bare-w2-c50", "bare", 50, workers=2),
    Scenario("proxy-w2-c50", "proxy", 50, workers=2),
    Scenario("direct-c10", "direct", 10, purpose="latency"),
    Scenario("bare-w1-c10", "bare", 10, workers=1, purpose="latency"),
    Scenario("proxy-w1-c10", "proxy", 10, workers=1, purpose="latency"),
    # One connection: the per-hop cost without queueing (at 10 connections a saturated worker queues).
    Scenario("direct-c1", "direct", 1, purpose="latency", in_quick=False),
    Scenario("proxy-w1-c1", "proxy", 1, workers=1, purpose="latency", in_quick=False),
)

# Client choice (issue: aiohttp vs pyreqwest behind the Transport interface). The baseline stays the
# aiohttp bare forwarder; the pyreqwest bare forwarder shows what the client alone buys, the pyreqwest
# proxy what it buys the proxy (not adopted: it did not win there).
REQWEST = ProxyProfile("routing-reqwest", http_client="pyreqwest")
CLIENT_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("bare-reqwest-w1-c50", "bare", 50, workers=1, client="pyreqwest"),
    Scenario("proxy-reqwest-w1-c50", "proxy", 50, workers=1, profile=REQWEST),
    Scenario("bare-reqwest-w2-c50", "bare", 50, workers=2, client="pyreqwest", in_quick=False),
    Scenario("proxy-reqwest-w2-c50", "proxy", 50, workers=2, profile=REQWEST, in_quick=False),
    # The server's share: the same pyreqwest forwarder under granian (Rust HTTP server) instead of uvicorn.
    Scenario("bare-granian-reqwest-w1-c50", "bare", 50, workers=1, client="pyreqwest", server="granian",
             in_quick=False),
)

# Server choice (issue 17): the same proxy (aiohttp client) under granian, against the same baseline
# (the aiohttp bare forwarder under uvicorn) as proxy-w1/w2-c50, so the ratios compare directly.
GRANIAN = ProxyProfile("routing-granian", server="granian")
SERVER_SCENARIOS: tuple[Scenario, ...] = (
    # The server's share without the proxy's work: the aiohttp bare forwarder under granian.
    Scenario("bare-granian-w1-c50", "bare", 50, workers=1, server="granian", in_quick=False),
    # The same forwarder on granian's RSGI interface: what RSGI would save over the ASGI bridge.
    Scenario("bare-granian-rsgi-w1-c50", "bare", 50, workers=1, server="granian-rsgi", in_quick=False),
    Scenario("proxy-granian-w1-c50", "proxy", 50, workers=1, profile=GRANIAN, in_quick=False),
    Scenario("proxy-granian-w2-c50", "proxy", 50, workers=2, profile=GRANIAN, in_quick=False),
)

# Feature-cost scenarios. A profile with ``wired=False`` is listed in the results as skipped with its
# reason (never faked); flip it (and set the state in run.setup_proxy_state) once the proxy serves it.
SHADOW_ALL = ProxyProfile("shadow100", shadow_percent=100.0)
DUAL_WRITE = ProxyProfile("dualwrite", dual_write=True)
FEATURE_SCENARIOS: tuple[Scenario, ...] = (
    # Every GET is also copied to the other side and compared (off the hot path, bounded queue).
    Scenario("proxy-shadow100-w1-c50", "proxy", 50, workers=1, profile=SHADOW_ALL, in_quick=False),
    # 20 % of requests are POSTs: each is appended to the durable outbox before the answer, then replayed.
    Scenario("proxy-dualwrite-20pct-writes-w1-c50", "proxy", 50, workers=1, profile=DUAL_WRITE, write_share=0.2,
             in_quick=False),
)


def all_scenarios() -> tuple[Scenario, ...]:
    """Every scenario in table order (read at call time, so tests can swap a group)."""
    return (*SCENARIOS, *CLIENT_SCENARIOS, *SERVER_SCENARIOS, *FEATURE_SCENARIOS)


def select_scenarios(mode: str, only: list[str] | None = None) -> tuple[list[Scenario], list[tuple[str, str]]]:
    """(scenarios to run, [(name, why skipped)]): not-wired ones are always skipped; quick keeps the core
    comparison; ``only`` picks by name (unknown names are simply not run)."""
    every = list(all_scenarios())
    skipped = [(s.name, s.profile.not_wired_reason) for s in every if not s.wired]
    if only:
        return [s for s in every if s.wired and s.name in only], skipped
    if mode == "quick":
        skipped += [(s.name, "not part of the quick run (make bench runs it)") for s in every
                    if s.wired and not s.in_quick]
        return [s for s in every if s.wired and s.in_quick], skipped
    return [s for s in every if s.wired], skipped


@dataclass(frozen=True)
class Mode:
    name: str
    duration_s: float
    warmup_s: float
    rounds: int  # the whole scenario list is run this many times, interleaved; the median round counts


MODES = {
    # wrk takes whole seconds. Warm-up runs once per target process (0: none).
    "full": Mode("full", duration_s=4.0, warmup_s=1.0, rounds=3),
    "quick": Mode("quick", duration_s=2.0, warmup_s=1.0, rounds=1),
    "smoke": Mode("smoke", duration_s=1.0, warmup_s=0.0, rounds=1),
}


@dataclass(frozen=True)
class Goal:
    """One target from the issue, computed from the results of the same run."""

    name: str
    description: str
    threshold: float
    higher_is_better: bool
    unit: str
    binding: bool = True  # False: reported, but the issue says it may not hold on this machine
    notes: list[str] = field(default_factory=list)

    def met(self, value: float) -> bool:
        return value >= self.threshold if self.higher_is_better else value <= self.threshold


GOALS: tuple[Goal, ...] = (
    Goal("proxy_vs_bare_w1", "proxy throughput / bare forwarder, 1 worker each", 0.85, True, "ratio"),
    Goal("proxy_vs_bare_w2", "proxy throughput / bare forwarder, 2 workers each", 0.85, True, "ratio"),
    Goal("proxy_added_p50_ms_c10", "proxy p50 − direct p50 at 10 connections (1 worker)", 1.5, False, "ms"),
    Goal("proxy_vs_bare_cpu_w1", "bare CPU/request ÷ proxy CPU/request, 1 worker (noise-robust view of the "
         "throughput ratio)", 0.85, True, "ratio", binding=False,
         notes=["server CPU per request; equals the throughput ratio when CPU-bound on an idle machine"]),
    Goal("proxy_scaling_w2_vs_w1", "proxy throughput 2 workers / 1 worker", 1.6, True, "ratio", binding=False,
         notes=["2 cores shared by load generator, upstream and proxy: scaling is capped by the machine"]),
)
