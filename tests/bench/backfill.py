"""A 91-day backfill of a daily-partitioned query asset: one single-run step against one run per partition.

The section's process serves a local server (4 query workers); the asset runs the seeded "Daily volume in period"
(query 5, a date-range ``period`` parameter, one row per token active that day) with daily partitions over the
seeded quarter (2024-01-01 to 2024-03-31), stored by ``IWatchParquetIOManager``, one file per partition. Every run
is a fresh process, as a launched run worker is, executing the job under Dagster's multiprocess executor against a
``DagsterInstance`` on a temporary folder (:mod:`tests.bench.dagster_runs`, jobs in :mod:`tests.bench.jobs`):

- ``single``: the asset with ``backfill_policy=dg.BackfillPolicy.single_run()``, one run tagged with the whole
  partition range (as the backfill daemon tags it): one step process queries the 91 partitions 4 at a time (the
  default ``max_concurrency``) and writes each to its own file.
- ``partition``: the asset with the default policy, one run per partition tagged with its key, as the backfill
  daemon launches them: a run worker start and a step process each.

Ninety-one runs a round would take many minutes on 2 cores, so by default each round runs ``sample`` partitions
(spread over the quarter, the same each round) one run after the other, and the per-partition total is the median
of that round's run walls times 91 (runs launched one at a time; a daemon may run several at once).
``--backfill-full`` runs all 91 each round instead.

Checks: the single run must write 91 files, and each partition's rows (single run, and each partition run) must
equal the count the data source itself gives for that day, read with ``sqlite3``, or the section fails. Field of
the BENCH line: ``backfill_speedup`` = per-partition runs' total for all partitions / single run wall, the median
of per-round ratios.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from dagster_iwatch.local import LocalServer
from tests.bench import jobs
from tests.bench.dagster_runs import execute, parquet_rows, prepare_instance
from tests.bench.runner import Section, median, run_child

SERVER_WORKERS = 4
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _days(count: int) -> list[str]:
    return [(jobs.FIRST_DAY + timedelta(days=i)).isoformat() for i in range(count)]


def _rows(out: Path) -> dict[str, int]:
    """Rows of each partition file, by partition key."""
    return {Path(name).stem: rows for name, rows in parquet_rows(out).items()}


def _single(url: str, key: str, instance_dir: str, out_root: str, days: str) -> dict[str, float]:
    os.environ[jobs.DAYS_VAR] = days
    keys = _days(int(days))
    out = Path(tempfile.mkdtemp(prefix="single-", dir=out_root))
    try:
        figures = execute(
            jobs.single_run_job, url, key, instance_dir, out, tags={RANGE_START: keys[0], RANGE_END: keys[-1]}
        )
        rows = _rows(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return figures | {f"rows:{day}": float(n) for day, n in rows.items()}


def _partition(url: str, key: str, instance_dir: str, out_root: str, days: str, day: str) -> dict[str, float]:
    os.environ[jobs.DAYS_VAR] = days
    out = Path(tempfile.mkdtemp(prefix="partition-", dir=out_root))
    try:
        figures = execute(jobs.per_partition_job, url, key, instance_dir, out, tags={"dagster/partition": day})
        rows = _rows(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return figures | {f"rows:{day}": float(n) for day, n in rows.items()}


VARIANTS = {"single": _single, "partition": _partition}


def _median(figures: list[dict[str, float]], key: str) -> float:
    return median([f[key] for f in figures])


def _expected(data_dir: Path, keys: list[str]) -> dict[str, int]:
    """Rows of each day's result, from the data source itself: one per token with a transfer that day."""
    with sqlite3.connect(data_dir / "datasource.sqlite") as conn:
        found = dict(
            conn.execute("select block_date, count(distinct token) from transfers group by block_date").fetchall()
        )
    return {day: int(found.get(day, 0)) for day in keys}


def _check(variant: str, figures: dict[str, float], expected: dict[str, int]) -> None:
    written = {k.removeprefix("rows:"): int(v) for k, v in figures.items() if k.startswith("rows:")}
    if written != expected:
        raise RuntimeError(f"backfill.{variant} wrote {written}, expected {expected}")


def _sample(keys: list[str], size: int) -> list[str]:
    """``size`` partition keys spread evenly over ``keys``."""
    size = min(size, len(keys))
    return [keys[(i * (len(keys) - 1)) // max(size - 1, 1)] for i in range(size)]


def run(days: int, sample: int, rounds: int, full: bool = False) -> Section:
    """The backfill section: ``days`` daily partitions, single run against ``sample`` (or all) runs per partition."""
    keys = _days(days)
    picked = keys if full else _sample(keys, sample)
    section = Section(f"Backfill of {days} daily partitions: one single-run step vs one run per partition")
    singles: list[dict[str, float]] = []
    per_round: list[list[dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="iwatch-bench-") as folder:
        instance_dir = str(prepare_instance(Path(folder, "dagster")))
        data = Path(folder, "data")
        with LocalServer(data, workers=SERVER_WORKERS) as server:
            expected = _expected(data, keys)
            args = [server.url, server.user_api_key, instance_dir, folder, str(days)]
            for number in range(rounds):
                print(f"  backfill round {number + 1}/{rounds}: single", file=sys.stderr, flush=True)
                singles.append(run_child("backfill", "single", args))
                _check("single", singles[-1], expected)
                print(f"  backfill round {number + 1}/{rounds}: {len(picked)} partition runs", file=sys.stderr)
                runs = [run_child("backfill", "partition", [*args, day]) for day in picked]
                for day, figures in zip(picked, runs, strict=True):
                    _check("partition", figures, {day: expected[day]})
                per_round.append(runs)
    totals = [median([r["process_wall"] for r in runs]) * days for runs in per_round]
    ratios = [total / single["process_wall"] for total, single in zip(totals, singles, strict=True)]
    how = (
        f"all {days} partitions run each round"
        if full
        else f"{len(picked)} partitions run each round ({', '.join(picked)}); the total for {days} is the round's "
        f"median run x {days}, an estimate (runs one at a time)"
    )
    all_runs = [r for runs in per_round for r in runs]
    section.lines += [
        f'seeded query {jobs.DAILY_VOLUME} ("Daily volume in period", date-range period), {days} days; local server '
        f"with {SERVER_WORKERS} query workers; {rounds} rounds, single run then partition runs, a fresh run worker "
        "process per run (multiprocess executor); medians, and medians of per-round ratios;",
        f"rows of every file checked against the data source ({sum(expected.values())} rows in {days} files); "
        "run = the run worker process from start to exit",
        f"  single run:    1 step, {days} partitions 4 at a time: run {_median(singles, 'process_wall'):.2f} s "
        f"(step span {_median(singles, 'steps_span'):.2f} s)",
        f"  per partition: run {_median(all_runs, 'process_wall'):.2f} s each "
        f"(step span {_median(all_runs, 'steps_span'):.2f} s); {how}: {median(totals):.1f} s",
        f"  per-partition runs / single run for {days} partitions: {median(ratios):.2f}x",
        "",
    ]
    section.fields["backfill_speedup"] = f"{median(ratios):.2f}"
    return section
