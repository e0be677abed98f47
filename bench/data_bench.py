"""The ``data`` bench group: backfill and verify items/s and peak RSS at several sizes, on a moto
server of its own (a separate process, so the RSS measured is the data command's alone).

    python -m bench.data_bench --sizes 10000 100000      # what `make bench` runs (minutes on moto)
    python -m bench.data_bench --sizes 2000              # quick
    python -m bench.data_bench --sizes 10000 --write-mode transact --segments 4

Per size: seed N legacy rows (one account, legacy shape) plus N/10 rows of another service, then
run ``backfill`` and ``verify`` each in a fresh Python process that prints its items/s and
``ru_maxrss``. The verdict compares RSS at the largest size with RSS at the smallest (flat memory:
within 20 %).
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


def worker(command: str, endpoint: str, segments: int, write_mode: str, page_size: int) -> dict[str, Any]:
    from chariot_migrate.dual_write import data

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
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_group(sizes: list[int], args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    rows = []
    for n in sizes:
        proc, endpoint = start_moto()
        try:
            t = time.monotonic()
            seed(endpoint, n)
            log(f"data: seeded {n} rows (+{n // 10} of another service) in {time.monotonic() - t:.0f}s")
            row: dict[str, Any] = {"size": n}
            for command in ("backfill", "verify"):
                row[command] = _run_worker(command, endpoint, args)
                log(f"data {n}: {command} {row[command]}")
            rows.append(row)
        finally:
            proc.kill()
            proc.wait()
    verdict: dict[str, Any] = {}
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        for command in ("backfill", "verify"):
            growth = large[command]["rss_mb"] / small[command]["rss_mb"] - 1
            verdict[f"{command}_rss_growth"] = round(growth, 3)
            verdict[f"{command}_rss_flat"] = growth <= 0.20
    verdict["backfill_1000_per_s"] = rows[-1]["backfill"]["items_per_s"] >= 1000
    verdict["verify_2000_per_s"] = rows[-1]["verify"]["items_per_s"] >= 2000
    return {"sizes": rows, "segments": args.segments, "write_mode": args.write_mode, "page_size": args.page_size,
            "verdict": verdict}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.data_bench", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--segments", type=int, default=1)
    p.add_argument("--write-mode", choices=("threads", "transact"), default="threads")
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data.json")
    p.add_argument("--worker", choices=("backfill", "verify"), help=argparse.SUPPRESS)
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
    print(json.dumps(result["verdict"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
