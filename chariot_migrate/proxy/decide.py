"""Which side serves a request: one pure decision that every override goes through.

``decide_side(DecisionInput) -> Decision`` (side + reason; the access log and the request
metrics record the reason). The base is ``rollout.bucketing.choose_side`` — precedence, first
match wins: ``override`` (the operator's ``X-Migrate-Target`` with a valid token), ``pinned``,
``retired`` (always new), ``random`` (no bucket key: a bucket drawn at the edge), ``bucket``
(``bucket(salt, account) < percent``). Then, in order, the facts that can still move it:

* no new instance configured → legacy (the reason stays: the split is what was asked for);
* ``draining`` — writes of this account toward the chosen side are still in the dual-write
  outbox and the other side has none of them pending: the other side serves it
  (read-your-writes just after a shift or a rollback). A pin is never drained;
* ``failover`` — the chosen side failed this safe request and failover applies: the other side
  answers. Failover to new never lands on a side with this account's writes still pending.

Sticky and monotonic hold for every combination of these inputs (tests/unit/proxy/test_decide.py):
the base side is monotonic in the percent, and every later step maps a side to a side by facts
that do not depend on the percent.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..rollout.bucketing import Side, SideDecision, choose_side

Decision = SideDecision
OTHER: dict[Side, Side] = {"legacy": "new", "new": "legacy"}


@dataclass(slots=True)  # a value (change it with dataclasses.replace); not frozen: built per request
class DecisionInput:
    salt: str  # rollout.bucketing.salt_for(service, its salt)
    account: str | None  # the bucket key, lower-case
    percent_bp: int
    pins: dict[str, Side]
    override: Side | None = None
    retired: bool = False
    random_bucket: int = 0  # drawn by the caller; used only when ``account`` is None
    has_new: bool = True  # a new-side instance is configured for the service
    has_legacy: bool = True  # a legacy transport is configured
    pending: frozenset[Side] = frozenset()  # sides this account's writes are still on their way to
    failed: Side | None = None  # the side that failed this safe request, when failover applies

    def can_serve(self, side: Side) -> bool:
        return self.has_new if side == "new" else self.has_legacy


def decide_side(d: DecisionInput) -> Decision:
    base = choose_side(salt=d.salt, key=d.account, percent_bp=d.percent_bp, pins=d.pins, override=d.override,
                       retired=d.retired, random_bucket=d.random_bucket)
    side, reason = base.side, base.reason
    if side == "new" and not d.has_new:
        side = "legacy"
    other = OTHER[side]
    if side in d.pending and other not in d.pending and reason != "pinned" and d.can_serve(other):
        side, reason, other = other, "draining", side
    if d.failed == side and d.can_serve(other) and not (other == "new" and "new" in d.pending):
        side, reason = other, "failover"
    if side == base.side and reason == base.reason:
        return base
    return Decision(side, reason)
