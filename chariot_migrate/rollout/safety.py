"""The rule every traffic step obeys (pure): serve an account from a side only if that side's
store holds the account's data and keeps receiving its writes.

Toward **new** (a higher percentage, a pin to new, retiring) the service must be *prepared*: dual
write on for every account (so writes keep reaching both stores), a backfill that started after
dual write was turned on (so nothing written before or in between is missing), a clean data
verify since that backfill and less than a day old (Vitess' vdiff goes "stale" the same way), and
no dead letters toward new. Toward **legacy** (rollback, a lower percentage, a pin to legacy,
unpinning a new pin) the writes made on the new side must be on their way to legacy: dual write on
and no dead letters toward legacy. Writes still in the outbox are not a refusal in either
direction: the proxy keeps such an account on the side that has its data until they arrive.

``check_change(before, after, evidence)`` says what a change would break; the operations refuse
it with that sentence and the fixing command unless forced (``--force --reason``, audited).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .state import ServiceState

VERIFY_STALE_S = 24 * 3600  # a verify older than this no longer proves the stores agree


@dataclass(frozen=True)
class DataEvidence:
    """What the edges know about a service's data on both sides (see ``evidence.DataEvidenceSource``)."""

    now: float
    has_data: bool = True  # the service declares a data mapping, so backfill and verify apply
    backfill_started_at: float | None = None  # of the last backfill that ran to the end
    backfill_finished_at: float | None = None
    verify_at: float | None = None
    verify_ok: bool | None = None
    pending: Mapping[str, int] = field(default_factory=dict)  # target side → writes still on their way
    dead: Mapping[str, int] = field(default_factory=dict)  # target side → dead letters
    outbox_error: str | None = None  # the outbox could not be read: nothing above is known about it
    proxies_problem: str | None = None  # why the running proxies would not dual write, if they would not
    peers_unprepared: tuple[str, ...] = ()  # services sharing its data that are not prepared themselves


@dataclass(frozen=True)
class Verdict:
    missing: tuple[str, ...] = ()  # what is missing, each a short clause
    fixes: tuple[str, ...] = ()  # the commands that fix it, in order
    notes: tuple[str, ...] = ()  # true and worth saying, but no reason to refuse

    @property
    def ok(self) -> bool:
        return not self.missing

    def __add__(self, other: Verdict) -> Verdict:
        return Verdict(_uniq(self.missing + other.missing), _uniq(self.fixes + other.fixes),
                       _uniq(self.notes + other.notes))

    def sentence(self, subject: str) -> str:
        """"asset-discovery is not prepared: dual write is off and no backfill has run; run `…`"."""
        if self.ok:
            return f"{subject}: ready"
        what = _join(self.missing)
        fix = " then ".join(f"`{f}`" for f in self.fixes)
        return f"{subject}: {what}; run {fix} (or pass --force with a --reason)" if fix else f"{subject}: {what}"


@dataclass(frozen=True)
class Movement:
    to_new: bool  # some accounts start being served by the new side
    to_legacy: bool  # some accounts that the new side served go back to legacy
    less_dual_write: bool  # dual write stops covering accounts


def _uniq(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _join(parts: tuple[str, ...]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def on_new(state: ServiceState) -> bool:
    """Does the new side serve (or has it served, while still holding writes) any account?"""
    return state.percent_bp > 0 or state.stage == "retired" or any(v == "new" for v in state.pins.values())


def movement(before: ServiceState, after: ServiceState) -> Movement:
    to_new = after.percent_bp > before.percent_bp or (after.stage == "retired" and before.stage != "retired")
    to_legacy = after.percent_bp < before.percent_bp or (before.stage == "retired" and after.stage != "retired")
    for account in set(before.pins) | set(after.pins):
        b, a = before.pins.get(account), after.pins.get(account)
        if a == b:
            continue
        # Where the account was and is now served: a pin, else the percentage (unknown bucket:
        # an unpinned account may land on either side when the split is partial).
        was = {b} if b else _sides(before)
        now = {a} if a else _sides(after)
        to_new = to_new or ("new" in now and "legacy" in was)
        to_legacy = to_legacy or ("legacy" in now and "new" in was)
    less = before.dual_write == "on" and (after.dual_write == "off" or after.dual_write_bp < before.dual_write_bp)
    return Movement(to_new, to_legacy, less)


def _sides(state: ServiceState) -> set[str]:
    if state.stage == "retired" or state.percent_bp >= 10_000:
        return {"new"}
    if state.percent_bp <= 0:
        return {"legacy"}
    return {"legacy", "new"}


def readiness(service: str, state: ServiceState, ev: DataEvidence) -> Verdict:
    """May the new side serve this service's accounts? (What `status` calls "prepared".)"""
    missing: list[str] = []
    prepare = f"chariot-migrate prepare {service}"
    fixes: list[str] = []
    if state.dual_write != "on":
        missing.append("dual write is off")
    elif state.dual_write_bp < 10_000:
        missing.append(f"dual write covers only {state.dual_write_bp / 100:g}% of accounts")
    if ev.proxies_problem:
        missing.append(ev.proxies_problem)
    if ev.has_data:
        if ev.backfill_finished_at is None:
            missing.append("no backfill has run")
        elif state.dual_write == "on" and (ev.backfill_started_at or 0) < state.dual_write_since:
            missing.append("the last backfill started before dual write was turned on (writes in between may be "
                           "missing)")
        if ev.verify_at is None or (ev.backfill_finished_at is not None and ev.verify_at < ev.backfill_finished_at):
            missing.append("no data verify since the backfill")
        elif not ev.verify_ok:
            missing.append("the last data verify found drift")
        elif ev.now - ev.verify_at > VERIFY_STALE_S:
            missing.append(f"the last data verify is {(ev.now - ev.verify_at) / 3600:.0f} h old (stale after "
                           f"{VERIFY_STALE_S // 3600} h)")
    if missing:
        fixes.append(prepare)
    if ev.peers_unprepared:
        peers = ev.peers_unprepared
        missing.append(f"it shares data with {_join(peers)}, which {'is' if len(peers) == 1 else 'are'} not prepared")
        fixes.extend(f"chariot-migrate prepare {p}" for p in peers)
    notes: list[str] = []
    if ev.outbox_error:
        missing.append(f"the dual-write outbox cannot be read ({ev.outbox_error})")
    dead = ev.dead.get("new", 0)
    if dead:
        missing.append(f"{dead} write(s) toward new are dead letters")
        fixes.insert(0, f"chariot-migrate dual-write retry --all --service {service}")
    if ev.pending.get("new", 0):
        notes.append(f"{ev.pending['new']} write(s) are still on their way to new; those accounts stay on legacy "
                     "until they arrive")
    return Verdict(tuple(missing), tuple(fixes), tuple(notes))


def rollback_safety(service: str, before: ServiceState, ev: DataEvidence) -> Verdict:
    """May accounts the new side served go back to legacy without losing their writes?"""
    if not on_new(before):
        return Verdict()
    missing: list[str] = []
    fixes: list[str] = []
    if before.dual_write != "on":
        missing.append("dual write is off, so writes made on the new side have not reached legacy")
        fixes.append(f"chariot-migrate data repair {service} --source new")
    if ev.outbox_error:
        missing.append(f"the dual-write outbox cannot be read ({ev.outbox_error})")
    dead = ev.dead.get("legacy", 0)
    if dead:
        missing.append(f"{dead} write(s) made on the new side failed to reach legacy (dead letters)")
        fixes.append(f"chariot-migrate dual-write retry --all --service {service}")
    notes: tuple[str, ...] = ()
    if ev.pending.get("legacy", 0):
        notes = (f"{ev.pending['legacy']} write(s) are still on their way to legacy; those accounts stay on new "
                 "until they arrive",)
    return Verdict(tuple(missing), tuple(fixes), notes)


def check_change(service: str, before: ServiceState, after: ServiceState, ev: DataEvidence) -> Verdict:
    """Everything ``before → after`` would break (empty when it is safe)."""
    m = movement(before, after)
    verdict = Verdict()
    if m.to_new:
        r = readiness(service, after, ev)
        verdict += Verdict(tuple(f"{x}" for x in r.missing), r.fixes, r.notes)
    if m.to_legacy:
        verdict += rollback_safety(service, before, ev)
    if m.less_dual_write and on_new(after) and after.stage != "retired":
        verdict += Verdict(("accounts are on the new side, and their writes would stop reaching legacy",),
                           (f"chariot-migrate rollback {service}",))
    return verdict


def needs_evidence(before: ServiceState, after: ServiceState) -> bool:
    """Whether a change moves data-bearing traffic at all (cheap, no evidence needed)."""
    m = movement(before, after)
    return m.to_new or m.to_legacy or m.less_dual_write


def refusal(service: str, before: ServiceState, after: ServiceState, verdict: Verdict) -> str:
    """One sentence: what is missing and the command that fixes it."""
    m = movement(before, after)
    if m.to_new:
        subject = f"{service} is not prepared"
    elif m.to_legacy:
        subject = f"moving {service}'s accounts back to legacy now would lose writes"
    else:
        subject = f"turning dual write down for {service} now would lose writes"
    return verdict.sentence(subject)
