"""Result ingest benchmark: a Redash JSON result body to a Parquet file, naive pandas vs dagster-iwatch.

Run with ``python -m tests.bench.ingest [--rows N] [--runs K]``. Each variant runs in a fresh process
(so peak memory is its own), several times; the table shows the best time, the peak resident memory
above the process's baseline, and the ratios against the naive path.

- naive: ``json.loads`` -> ``pd.DataFrame(rows)`` -> ``pd.to_datetime`` on time columns -> ``to_parquet``
  (what a typical client user writes).
- iwatch: the client's JSON parsing (msgspec when installed, else ``json.loads``) -> its result parsing
  -> ``result_to_arrow`` -> ``pq.write_table``
  (what a materialization does).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dagster_iwatch.arrow import result_to_arrow
from dagster_iwatch.client import _loads, _parse_result

COLUMNS = [
    ("id", "integer"),
    ("block_number", "integer"),
    ("amount", "float"),
    ("amount_usd", "float"),
    ("is_contract", "boolean"),
    ("token", "string"),
    ("from_address", "string"),
    ("note", None),
    ("block_time", "datetime"),
    ("block_date", "date"),
]
NULL_RATE = 0.018


def make_body(rows: int, seed: int = 7) -> bytes:
    """A Redash-shaped result body with typed columns and a few nulls."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    tokens = ["ETH", "USDC", "WBTC", "DAI", "LINK"]
    data_rows: list[dict[str, Any]] = []
    for n in range(rows):
        moment = start + timedelta(seconds=n * 7)
        row: dict[str, Any] = {
            "id": n + 1,
            "block_number": 19_000_000 + n,
            "amount": rng.random() * 1000,
            "amount_usd": round(rng.random() * 5000, 2),
            "is_contract": rng.random() < 0.3,
            "token": tokens[n % 5],
            "from_address": f"0x{rng.getrandbits(160):040x}",
            "note": f"note #{n}" if n % 7 == 0 else None,
            "block_time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "block_date": moment.strftime("%Y-%m-%d"),
        }
        for name, _ in COLUMNS[1:]:
            if rng.random() < NULL_RATE:
                row[name] = None
        data_rows.append(row)
    result = {
        "query_result": {
            "id": 1,
            "query_hash": "bench",
            "query": "select ...",
            "data": {
                "columns": [{"name": n, "friendly_name": n, "type": t} for n, t in COLUMNS],
                "rows": data_rows,
            },
            "data_source_id": 1,
            "runtime": 1.0,
            "retrieved_at": "2024-04-01T00:00:00Z",
        }
    }
    return json.dumps(result).encode()


def _naive(body: bytes, out: Path) -> int:
    data = json.loads(body)["query_result"]["data"]
    frame = pd.DataFrame(data["rows"], columns=[c["name"] for c in data["columns"]])
    for column in data["columns"]:
        if column["type"] in ("datetime", "date"):
            frame[column["name"]] = pd.to_datetime(frame[column["name"]], utc=True)
    frame.to_parquet(out)
    return len(frame)


def _iwatch(body: bytes, out: Path) -> int:
    table = result_to_arrow(_parse_result(_loads(body)))
    pq.write_table(table, out)
    return int(table.num_rows)


VARIANTS = {"naive": _naive, "iwatch": _iwatch}


def _current_rss_kb() -> int:
    """Resident memory now (the peak counter only ever grows, so it cannot give the baseline)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(variant: str, body_path: Path) -> None:
    """Run one variant once in this process and print its time and memory as JSON."""
    # Imports and pyarrow's lazy first-conversion setup are one-off costs: both paths pay them before the timer.
    pa.array([1])
    body = body_path.read_bytes()
    before = _current_rss_kb()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        rows = VARIANTS[variant](body, Path(tmp) / "out.parquet")
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mb": (peak - before) / 1024, "rows": rows}))


def main(argv: list[str] | None = None) -> None:
    """Build a body, run every variant in fresh processes, and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "BODY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body.json"
        body = make_body(args.rows)
        body_path.write_bytes(body)
        print(f"{args.rows:,} rows, {len(body) / 1e6:.1f} MB of JSON, best of {args.runs} fresh processes")
        best: dict[str, dict[str, float]] = {}
        for variant in VARIANTS:
            runs = []
            for _ in range(args.runs):
                done = subprocess.run(
                    [sys.executable, "-m", "tests.bench.ingest", "--child", variant, str(body_path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            best[variant] = {
                "seconds": min(r["seconds"] for r in runs),
                "peak_mb": min(r["peak_mb"] for r in runs),
            }
    naive = best["naive"]
    print(f"{'variant':<8} {'best s':>8} {'rows/s':>10} {'peak MB':>8} {'speed vs naive':>15} {'memory vs naive':>16}")
    for variant, figures in best.items():
        speed = naive["seconds"] / figures["seconds"]
        memory = figures["peak_mb"] / naive["peak_mb"] if naive["peak_mb"] > 0 else float("nan")
        print(
            f"{variant:<8} {figures['seconds']:>8.3f} {args.rows / figures['seconds']:>10,.0f} "
            f"{figures['peak_mb']:>8.1f} {speed:>14.2f}x {memory:>15.2f}x"
        )


if __name__ == "__main__":
    main()
