"""The ``dual_write:`` section of routes.yaml (kept as raw data by the core file model).

```yaml
dual_write:
  outbox: sqlite:///path/outbox.db   # default: outbox.db in the state directory; or redis://127.0.0.1:6379/0?prefix=…
  worker: true              # each proxy worker also replays (leases keep deliveries single)
  max_attempts: 8           # then the record becomes a dead letter (visible, retryable)
  base_delay_s: 0.2         # exponential backoff with full jitter …
  max_delay_s: 30           # … capped here
  concurrency: 8
  timeout_s: 10
  lease_s: 30               # must exceed timeout_s; a crashed worker's lanes wait this long
  replay_token: "pkg.module:fn"   # returns the bearer token of the trusted replay identity
  primary_filter: "pkg.module:fn" # fn(body: bytes) -> bytes: the primary's answer as the outbox keeps it
  compare: true             # compare primary vs replay answers in the shadow diff store
  barrier_s: 2              # wait this long for another service's writes toward a request's side
```

``primary_filter`` exists for answers that show a one-time secret (a minted API key): the outbox
is durable storage and must not hold it, so the filter replaces it with what the other side
needs to adopt it (e.g. its salted hash). The filtered answer is also what the replay carries in
``X-Migrate-Primary-Result`` and what the write comparison sees.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


class DualWriteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outbox: str | None = None  # None: the embedded default, outbox.db in the state directory
    worker: bool = True
    max_attempts: int = Field(8, ge=1, le=100)
    base_delay_s: float = Field(0.2, gt=0)
    max_delay_s: float = Field(30, gt=0)
    concurrency: int = Field(8, ge=1, le=256)
    timeout_s: float = Field(10, gt=0)
    # A delivery lease; a worker that dies holding one delays that account's lane this long.
    lease_s: float = Field(30, gt=0)
    replay_token: str | None = None
    primary_filter: str | None = None
    compare: bool = True
    # A request waits at most this long for another service's writes toward its side (a mixed
    # split); then it is served anyway and counted (dual_write_barrier_total{result="timeout"}).
    barrier_s: float = Field(2.0, ge=0, le=30)

    @classmethod
    def from_section(cls, section: dict | None) -> DualWriteConfig:
        return cls.model_validate(section or {})


def outbox_url(section: dict | None = None, explicit: str | None = None, state_url: str | None = None) -> str:
    """The one rule every part uses to find the outbox (proxy, worker, CLI, gates):
    ``--outbox`` > ``CHARIOT_MIGRATE_OUTBOX`` > ``dual_write.outbox`` > ``outbox.db`` in the state directory."""
    from .outbox import default_outbox_url

    return (explicit or os.environ.get("CHARIOT_MIGRATE_OUTBOX") or DualWriteConfig.from_section(section).outbox
            or default_outbox_url(state_url))
