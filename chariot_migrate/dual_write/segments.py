"""Parallel, resumable scans: a table as N DynamoDB scan segments (``Segment``/``TotalSegments``),
each on its own thread, through the *client* of a boto3 resource (``table.meta.client``: thread-safe,
unlike resources, and it still speaks plain Python values — ``Decimal``, sets — like the resource).

``scan_segments`` calls ``on_page(segment, items, last_key)`` for every page of every segment;
a segment's progress lives in a plain dict the caller checkpoints. The first error stops every
segment and is raised in the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

Item = dict[str, Any]


def prefix_filter(sort_key: str, prefixes: list[str]) -> dict[str, Any]:
    """Scan arguments selecting items whose ``sort_key`` starts with one of ``prefixes``."""
    if not prefixes:
        raise ValueError("no key prefixes: nothing would be selected")
    return {
        "FilterExpression": " OR ".join(f"begins_with(#sk, :p{i})" for i in range(len(prefixes))),
        "ExpressionAttributeNames": {"#sk": sort_key},
        "ExpressionAttributeValues": {f":p{i}": p for i, p in enumerate(prefixes)},
    }


def scan_pages(client: Any, table: str, start_key: Item | None, *, segment: int, total_segments: int,
               page_size: int | None, extra: dict[str, Any] | None = None
               ) -> Iterator[tuple[list[Item], Item | None]]:
    """(items, last_evaluated_key) per page of one segment; the last page has key None."""
    args: dict[str, Any] = {"TableName": table, **(extra or {})}
    if page_size:
        args["Limit"] = page_size
    if total_segments > 1:
        args |= {"Segment": segment, "TotalSegments": total_segments}
    key = start_key
    while True:
        page = client.scan(**args, **({"ExclusiveStartKey": key} if key else {}))
        key = page.get("LastEvaluatedKey")
        yield page.get("Items", []), key
        if key is None:
            return


class Stopped(Exception):
    """Another segment failed; this one stopped between pages."""


def scan_segments(client: Any, table: str, states: dict[str, dict[str, Any]], total_segments: int,
                  on_page: Callable[[int, list[Item], Item | None], None], *, page_size: int | None,
                  extra: dict[str, Any] | None = None) -> None:
    """Scan every not-done segment of ``states`` (``{"0": {"last_key": …, "done": bool}, …}``)."""
    stop = threading.Event()

    def one(seg: int) -> None:
        st = states.setdefault(str(seg), {"last_key": None, "done": False})
        if st.get("done"):
            return
        for items, last_key in scan_pages(client, table, st.get("last_key"), segment=seg,
                                          total_segments=total_segments, page_size=page_size, extra=extra):
            if stop.is_set():
                raise Stopped
            on_page(seg, items, last_key)

    if total_segments == 1:
        one(0)
        return
    with ThreadPoolExecutor(total_segments, thread_name_prefix="scan-seg") as pool:
        futures = [pool.submit(one, s) for s in range(total_segments)]
        wait(futures, return_when=FIRST_EXCEPTION)
        stop.set()  # all done, or one failed: the others stop at their next page
        errors = [e for f in futures if (e := f.exception()) is not None]
        real = [e for e in errors if not isinstance(e, Stopped)]
        if real:
            raise real[0]
