"""Job leases and crash recovery.

A job that runs holds a *lease* (an item of the jobs table in the ``#lease`` partition): who runs
it, until when (``expires``, epoch seconds) and how many times it has been started
(``attempts``). The runner renews it every third of ``JOB_LEASE_S`` while the saga runs and
deletes it when the job reaches a final state (JP/JF). A process that dies (SIGKILL, OOM, node
lost) stops renewing, so its leases expire; the recovery pass — at startup and then every half
lease period, in every replica — finds them and decides per job (``decide``, pure):

* lease still valid → ``wait`` (someone is running it);
* the job is gone or already final → ``release`` (drop the stale lease);
* started fewer than ``JOB_MAX_ATTEMPTS`` times → ``resume``: the job goes back to JQ and runs
  again from the start (capabilities are deterministic and their results are upserts keyed by
  what they describe, so a second run writes the same items);
* otherwise → ``fail``: the results its runs wrote (listed in the lease as they are written) are
  undone through their owners, the job ends JF with the reason and ``job.completed`` is published.

Claiming an expired lease is a conditional write on its version, so of several replicas exactly
one resumes (or fails) a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from chariot_migrate.model.status import job_code

LEASE_PARTITION = "#lease"
Action = Literal["wait", "release", "resume", "fail"]
RUNNABLE = frozenset({"JQ", "JR", "JQA", "JRA"})


def lease_key(account: str, job_key: str) -> str:
    """One lease per (account, job); the account comes first so keys never collide."""
    return f"{account}\x1f{job_key}"


def lease_item(account: str, job_key: str, owner: str, now: float, lease_s: float, attempts: int) -> dict[str, Any]:
    return {"username": LEASE_PARTITION, "key": lease_key(account, job_key), "account": account,
            "job_key": job_key, "owner": owner, "expires": round(now + lease_s, 3), "attempts": attempts}


def expired(lease: Mapping[str, Any], now: float) -> bool:
    return float(lease.get("expires", 0)) <= now


def decide(job: Mapping[str, Any] | None, lease: Mapping[str, Any], now: float, max_attempts: int) -> Action:
    """What the recovery pass does with one lease (and the job it names)."""
    if not expired(lease, now):
        return "wait"
    if not job or job_code(str(job.get("status", ""))) not in RUNNABLE:
        return "release"
    if int(lease.get("attempts", 0)) >= max_attempts:
        return "fail"
    return "resume"


def give_up_reason(attempts: int, undone: int = 0, failed: int = 0) -> str:
    out = (f"job interrupted {attempts} time{'s' if attempts != 1 else ''} (the capabilities process "
           "stopped while it ran); giving up")
    if undone or failed:
        out += f", {undone} result{'s' if undone != 1 else ''} it had written undone"
        if failed:
            out += f" ({failed} could not be undone)"
    return out + " — queue it again with POST /job"


def is_bookkeeping(item: Mapping[str, Any]) -> bool:
    """The service's own items in the jobs table (saga logs, leases): never a customer's entity."""
    return str(item.get("username", "")).startswith("#")
