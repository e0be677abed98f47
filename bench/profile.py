"""Summaries of a py-spy ``--format raw`` profile (collapsed stacks): where the worker's samples go."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# "func (path/to/file.py:123)" → "func (path/to/file.py)": merge lines of one function.
_LINE = re.compile(r":\d+\)$")

# Buckets a leaf frame falls into, first match wins (by file path fragment).
AREAS: tuple[tuple[str, str], ...] = (
    ("chariot_migrate/proxy/", "proxy hot path (chariot_migrate.proxy)"),
    ("chariot_migrate/routes/", "route matching (chariot_migrate.routes)"),
    ("chariot_migrate/rollout/", "bucketing/state (chariot_migrate.rollout)"),
    ("chariot_migrate/jsonlog", "JSON access log (chariot_migrate.jsonlog)"),
    ("prometheus_client/", "metrics (prometheus_client)"),
    ("logging/", "logging (stdlib)"),
    ("json/", "json (stdlib)"),
    ("aiohttp/", "upstream client (aiohttp)"),
    ("uvicorn/", "server (uvicorn/httptools)"),
    ("asyncio/", "event loop (asyncio/uvloop)"),
    # The services (services-sla profile): AWS calls to moto, Redis, the web framework, the service code.
    ("botocore/", "AWS SDK (botocore)"),
    ("boto3/", "AWS SDK (boto3)"),
    ("urllib3/", "HTTP to moto (urllib3)"),
    ("http/client", "HTTP to moto (http.client)"),
    ("redis/", "Redis client (redis-py)"),
    ("starlette/", "web framework (starlette)"),
    ("fastapi/", "web framework (fastapi)"),
    ("pydantic", "validation (pydantic)"),
    ("anyio/", "thread hand-off (anyio)"),
    ("concurrent/", "thread hand-off (concurrent.futures)"),
    ("threading", "threads (stdlib)"),
    ("chariot_migrate/services/", "service code (chariot_migrate.services)"),
    ("chariot_migrate/legacy/", "legacy helpers (chariot_migrate.legacy)"),
    ("jwt/", "token check (pyjwt)"),
    ("cryptography/", "token check (cryptography)"),
)


def _frame(raw: str) -> str:
    return _LINE.sub(")", raw.strip())


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    out = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out.append(([_frame(f) for f in stack.split(";") if f], int(count)))
    return out


def area_of(frame: str) -> str | None:
    for fragment, name in AREAS:
        if fragment in frame:
            return name
    return None


# Leaf frames that mean "the event loop is waiting" (uvloop runs in C, so the loop's Python frame is the leaf).
_IDLE_LEAVES = ("Runner.run (", "run_until_complete (", "run_forever (", "select (", "poll (")


def summarise_collapsed(lines: Iterable[str], top: int = 15, handler: str = "ProxyApp._handle (") -> dict[str, object]:
    """Where a worker's samples go.

    * ``top_self``: leaf frames (where the CPU actually was; native code such as socket writes is
      billed to the Python frame that called it);
    * ``areas``: the same self samples grouped by library / package;
    * ``under_handler``: inclusive samples of each direct callee of ``handler`` — the cost of each
      step of the hot path (upstream call, response write, access log, metrics, matching, …);
    * ``top_inclusive``: inclusive samples, without the common trunk (frames in ≥ 80 % of samples).
    """
    stacks = parse_collapsed(lines)
    total = sum(n for _, n in stacks) or 1
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    area_counts: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    idle = 0
    for frames, n in stacks:
        if not frames:
            continue
        leaf = frames[-1]
        self_counts[leaf] += n
        area_counts[area_of(leaf) or _top_dir(leaf)] += n
        for f in set(frames):
            incl_counts[f] += n
        for i, f in enumerate(frames):
            if f.startswith(handler):
                steps[frames[i + 1] if i + 1 < len(frames) else "(its own code)"] += n
                break
        if leaf.startswith(_IDLE_LEAVES):
            idle += n

    def rows(c: Counter[str], limit: int = top, *, below: float = 101.0) -> list[dict[str, object]]:
        picked = [(f, k) for f, k in c.most_common() if 100 * k / total < below][:limit]
        return [{"frame": f, "samples": k, "pct": round(100 * k / total, 1)} for f, k in picked]

    return {
        "samples": total,
        "idle_pct": round(100 * idle / total, 1),
        "top_self": rows(self_counts),
        "areas": [{"area": a, "pct": round(100 * k / total, 1)} for a, k in area_counts.most_common(12)],
        "under_handler": rows(steps),
        "top_inclusive": rows(incl_counts, below=80.0),
    }


def _top_dir(frame: str) -> str:
    """``func (pkg/mod.py)`` → ``pkg``: a coarse bucket for frames outside the named areas."""
    m = re.search(r"\(([^()]*)\)$", frame)
    return (m.group(1).split("/")[0] if m else frame) or "?"
