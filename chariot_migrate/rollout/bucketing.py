"""Deterministic, sticky, monotonic percentage bucketing (pure).

``bucket(salt, key)`` maps an account to one of 10 000 buckets; an account is on the new side iff
its bucket is below ``percent × 100``. Consequences the tests prove: the same account always
lands on the same side; raising the percentage only adds accounts (monotonic); every route of a
service shares the service's salt, so an account moves all its routes together; different salts
(services, shadow, dual write) give independent cohorts. 0.01 % granularity.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

BUCKETS = 10_000
Side = Literal["legacy", "new"]


@lru_cache(maxsize=65536)
def bucket(salt: str, key: str) -> int:
    # blake2b is fast, well distributed and stable across processes (unlike hash()).
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def to_basis_points(percent: float) -> int:
    """0–100 % in 0.01 steps → 0–10 000 basis points (exact, no float drift)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be between 0 and 100, got {percent}")
    bp = round(percent * 100)
    if abs(bp - percent * 100) > 1e-6:
        raise ValueError(f"percent moves in 0.01 steps, got {percent}")
    return bp


def salt_for(service: str, salt: str | None, purpose: str = "") -> str:
    """The one salt rule: the service's ``salt`` (else its name), plus ``:purpose`` for cohorts
    other than routing (``shadow``, ``dual``), so those are independent of the split."""
    base = salt or service
    return f"{base}:{purpose}" if purpose else base


def in_cohort(salt: str, key: str, basis_points: int) -> bool:
    return bucket(salt, key) < basis_points


@dataclass(frozen=True, slots=True)
class SideDecision:
    side: Side
    reason: Literal["pinned", "override", "bucket", "random", "retired", "draining", "failover"]


def choose_side(
    *,
    salt: str,
    key: str | None,
    percent_bp: int,
    pins: dict[str, Side],
    override: Side | None = None,
    retired: bool = False,
    rng: random.Random | None = None,
    random_bucket: int | None = None,
) -> SideDecision:
    """Which side serves this request. Precedence: operator override, pin, retired, bucket.

    A request with no bucket key gets a random bucket (``random_bucket``, else drawn from
    ``rng``; counted by the caller): it cannot be sticky, but the split stays right in aggregate.
    The proxy's full decision (draining, failover, no new instance) is ``proxy.decide.decide_side``.
    """
    if override is not None:
        return SideDecision(override, "override")
    if key is not None and key in pins:
        return SideDecision(pins[key], "pinned")
    if retired:
        return SideDecision("new", "retired")
    if key is None:
        b = random_bucket if random_bucket is not None else (rng or random).randrange(BUCKETS)
        return SideDecision("new" if b < percent_bp else "legacy", "random")
    return SideDecision("new" if bucket(salt, key) < percent_bp else "legacy", "bucket")
