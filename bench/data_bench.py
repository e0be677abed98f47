"""The ``data`` bench group: backfill and verify items/s and peak RSS at several sizes, on a local
DynamoDB server of its own (a separate process, so the RSS measured is the data command's alone),
once per engine: moto server and dynalite (same boto3 code; see chariot_migrate/dynalite.py).

    python -m bench.data_bench --sizes 10000 100000      # what `make bench` runs (minutes on moto)
    python -m bench.data_bench --sizes 2000              # quick
    python -m bench.data_bench --sizes 10000 --dynamodb dynalite
    python -m bench.data_bench --sizes 10000 --write-mode transact --segments 4 --dynamodb moto

Per engine and size: seed N legacy rows (one account, legacy shape) plus N/10 rows of another
service with ``batch_writer`` (timed: the insert rate), then run ``backfill``, ``verify`` and
``legacy`` (the legacy search function's store path, in-process: one ``GET /my`` page of 1,000 and
a ``/my/count``-style full partition read) each in a fresh Python process that prints its items/s
and ``ru_maxrss``; the server's RSS is read after each. The verdict compares RSS at the largest
size with RSS at the smallest (flat memory: within 20 %); with both engines, ``ratio`` gives
dynalite ÷ moto per size (items/s: above 1 = dynalite faster; page_ms: below 1 = dynalite faster).
dynalite is skipped, with the reason, when it is not installed (``make .dynalite``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from chariot_migrate.dual_write.migration import TableSpec

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
LEGACY, NEW = "bench-legacy", "bench-assets"


class BenchMigration:
    """One service's rows (``#asset#``) copied as they are into its own table."""

    service = "bench-assets"
    legacy_prefixes = ["#asset#"]
    new_tables = [TableSpec(NEW, "username", "key")]

    def to_new(self, item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return NEW, dict(item)

    def to_legacy(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return dict(item)


def _ddb(endpoint: str) -> Any:
    import boto3

    return boto3.resource("dynamodb", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bench",
                          aws_secret_access_key="bench")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """A DynamoDB server process: its endpoint, its RSS now, stop()."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "dynalite":
            from chariot_migrate.dynalite import Dynalite

            self._dynalite: Any = Dynalite()
            self.proc: Any = self._dynalite.proc
            self.endpoint = self._dynalite.endpoint_url
        else:
            self._dynalite = None
            self.proc, self.endpoint = start_moto()

    def rss_mb(self) -> float:
        from chariot_migrate.dynalite import rss_mb

        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self._dynalite is not None:
            self._dynalite.stop()
        else:
            self.proc.kill()
            self.proc.wait()


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start in 30 s")


def seed(endpoint: str, n: int) -> None:
    ddb = _ddb(endpoint)
    schema = {"KeySchema": [{"AttributeName": "username", "KeyType": "HASH"},
                            {"AttributeName": "key", "KeyType": "RANGE"}],
              "AttributeDefinitions": [{"AttributeName": "username", "AttributeType": "S"},
                                       {"AttributeName": "key", "AttributeType": "S"}],
              "BillingMode": "PAY_PER_REQUEST"}
    for name in (LEGACY, NEW):
        ddb.create_table(TableName=name, **schema)
    with ddb.Table(LEGACY).batch_writer() as bw:
        for i in range(n):
            bw.put_item(Item={"username": "bench@example.com", "key": f"#asset#d{i % 97}.com#h{i:07d}.d.com",
                              "dns": f"d{i % 97}.com", "name": f"h{i:07d}.d.com", "status": "A", "source": "seed",
                              "class": "domain", "created": "2026-01-01T00:00:00Z", "ttl": Decimal(0)})
        for i in range(n // 10):  # another service's rows: scanned past, never copied
            bw.put_item(Item={"username": "bench@example.com", "key": f"#risk#d.com#r{i:07d}", "status": "TH"})


def legacy_reads() -> dict[str, Any]:
    """The legacy search function's store path (``GET /my`` one page, ``/my/count``'s full read),
    in-process; legacy.aws finds the server through AWS_ENDPOINT_URL_DYNAMODB like the Lambdas do."""
    from chariot_migrate.legacy import search, store
    from chariot_migrate.model.search import search_my

    started = time.monotonic()
    page = search_my(store, {"key": "#asset#"}.get, "bench@example.com", page_size=1000, indexed=search.INDEXED)
    page_s = time.monotonic() - started
    started = time.monotonic()
    count = len(store.query_all("bench@example.com", "#asset#"))
    count_s = time.monotonic() - started
    page_items = sum(len(v) for k, v in page.items() if k != "offset")
    return {"page_ms": round(page_s * 1000, 1), "page_items": page_items, "count": count,
            "count_s": round(count_s, 2), "count_items_per_s": round(count / count_s, 1)}


def worker(command: str, endpoint: str, segments: int, write_mode: str, page_size: int) -> dict[str, Any]:
    from chariot_migrate.dual_write import data

    if command == "legacy":
        out = legacy_reads()
        out["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        return out

    ddb = _ddb(endpoint)
    legacy, new = ddb.Table(LEGACY), {NEW: ddb.Table(NEW)}
    m = BenchMigration()
    started = time.monotonic()
    if command == "backfill":
        res = data.backfill(m, legacy, new, None, segments=segments, write_mode=write_mode,  # type: ignore[arg-type]
                            page_size=page_size)
        items, ok = res.scanned, res.written == res.scanned
    else:
        v = data.verify(m, legacy, new, segments=segments, page_size=page_size)
        items, ok = v.legacy_items + sum(v.new_items.values()), v.ok
    elapsed = time.monotonic() - started
    use = resource.getrusage(resource.RUSAGE_SELF)
    # The command's own CPU: the rest of the wall time is the store (moto) and the machine's load.
    return {"items": items, "elapsed_s": round(elapsed, 2), "items_per_s": round(items / elapsed, 1),
            "cpu_s": round(use.ru_utime + use.ru_stime, 2), "rss_mb": round(use.ru_maxrss / 1024, 1), "ok": ok}


def _run_worker(command: str, endpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.data_bench", "--worker", command, "--endpoint", endpoint,
                          "--segments", str(args.segments), "--write-mode", args.write_mode,
                          "--page-size", str(args.page_size)],
                         cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
                              "CHARIOT_TABLE": LEGACY, "AWS_ACCESS_KEY_ID": "bench",
                              "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_engine(engine_name: str, sizes: list[int], args: argparse.Namespace, log: Any) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        engine = Engine(engine_name)
        try:
            t = time.monotonic()
            seed(engine.endpoint, n)
            seconds = time.monotonic() - t
            row: dict[str, Any] = {"size": n, "insert": {"items": n + n // 10, "elapsed_s": round(seconds, 2),
                                                         "items_per_s": round((n + n // 10) / seconds, 1),
                                                         "server_rss_mb": engine.rss_mb()}}
            log(f"data {engine_name}: seeded {n} rows (+{n // 10} of another service) in {seconds:.0f}s")
            for command in ("backfill", "verify", *(("legacy",) if n <= args.legacy_max else ())):
                row[command] = _run_worker(command, engine.endpoint, args)
                row[command]["server_rss_mb"] = engine.rss_mb()
                log(f"data {engine_name} {n}: {command} {row[command]}")
            rows.append(row)
        finally:
            engine.stop()
    return rows


def verdict_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    verdict: dict[str, Any] = {}
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        for command in ("backfill", "verify"):
            growth = large[command]["rss_mb"] / small[command]["rss_mb"] - 1
            verdict[f"{command}_rss_growth"] = round(growth, 3)
            verdict[f"{command}_rss_flat"] = growth <= 0.20
    verdict["backfill_1000_per_s"] = rows[-1]["backfill"]["items_per_s"] >= 1000
    verdict["verify_2000_per_s"] = rows[-1]["verify"]["items_per_s"] >= 2000
    verdict["ok"] = all(r["backfill"]["ok"] and r["verify"]["ok"] for r in rows)
    return verdict


def ratios(moto: list[dict[str, Any]], dynalite: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """dynalite ÷ moto per size, measured in the same run (never against a number from elsewhere)."""
    out = []
    for m, d in zip(moto, dynalite, strict=True):
        out.append({"size": m["size"],
                    **{f"{c}_items_per_s": round(d[c]["items_per_s"] / m[c]["items_per_s"], 2)
                       for c in ("insert", "backfill", "verify")},
                    **({"legacy_count_items_per_s": round(d["legacy"]["count_items_per_s"]
                                                          / m["legacy"]["count_items_per_s"], 2),
                        "legacy_page_ms": round(d["legacy"]["page_ms"] / max(m["legacy"]["page_ms"], 0.1), 3)}
                       if "legacy" in m and "legacy" in d else {}),
                    "server_rss_mb": round(d["verify"]["server_rss_mb"] / max(m["verify"]["server_rss_mb"], 0.1), 2)})
    return out


def run_group(sizes: list[int], args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    from chariot_migrate.dynalite import missing_reason, module_path

    engines: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in args.dynamodb:
        if name == "dynalite" and module_path() is None:
            skipped[name] = missing_reason()
            log(f"data: dynalite skipped: {skipped[name]}")
            continue
        rows = run_engine(name, sizes, args, log)
        engines[name] = {"sizes": rows, "verdict": verdict_of(rows)}
    if not engines:
        raise RuntimeError("no DynamoDB engine could run: " + "; ".join(skipped.values()))
    first = next(iter(engines.values()))
    # "sizes"/"verdict" stay the first engine's (moto by default): what earlier reports held.
    result: dict[str, Any] = {"sizes": first["sizes"], "verdict": first["verdict"], "engines": engines,
                              "skipped": skipped, "segments": args.segments, "write_mode": args.write_mode,
                              "page_size": args.page_size}
    if "moto" in engines and "dynalite" in engines:
        result["ratio_dynalite_over_moto"] = ratios(engines["moto"]["sizes"], engines["dynalite"]["sizes"])
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.data_bench", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--segments", type=int, default=1)
    p.add_argument("--write-mode", choices=("threads", "transact"), default="threads")
    p.add_argument("--page-size", type=int, default=1000)
    # moto sorts and serialises the whole partition per query page: /my/count at 100 k is tens of minutes.
    p.add_argument("--legacy-max", type=int, default=10_000, metavar="N",
                   help="legacy reads (GET /my page, /my/count) only at sizes up to N")
    p.add_argument("--dynamodb", nargs="+", choices=("moto", "dynalite"), default=["moto", "dynalite"],
                   help="DynamoDB engines to measure, in turn (dynalite skips when not installed)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data.json")
    p.add_argument("--worker", choices=("backfill", "verify", "legacy"), help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.endpoint, args.segments, args.write_mode, args.page_size)))
        return 0
    result = run_group(args.sizes, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"verdict": {k: v["verdict"] for k, v in result["engines"].items()},
                      "ratio_dynalite_over_moto": result.get("ratio_dynalite_over_moto"),
                      "skipped": result["skipped"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
