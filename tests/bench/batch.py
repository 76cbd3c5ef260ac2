"""Many small queries in one run: 50 query assets batched in one step against one step each.

The section's process serves a local server (4 query workers); 50 query assets each run the seeded "Prices on day"
(query 4, five rows) for a day of their own and are stored by ``IWatchParquetIOManager`` in a fresh folder. Each
run is a fresh process, as a launched run worker is, that executes the whole job under Dagster's multiprocess
executor (the default; 2 step processes at a time on 2 cores), against a ``DagsterInstance`` on a temporary
folder (:mod:`tests.bench.dagster_runs`, jobs in :mod:`tests.bench.jobs`):

- ``batched``: ``build_iwatch_query_assets(specs, layout="grouped")``: one subsettable multi-asset, so one step
  process, running the queries 4 at a time (the default ``max_concurrency``).
- ``each``: ``build_iwatch_query_asset`` per query: one asset, one step, one spawned process per query.

Every run must write its files with 5 rows each, or the section fails. Run wall is the run worker process from its
start to its exit (imports and the instance included, as a launched run pays them).

Fifty step processes cost minutes per run on 2 cores, so by default ``each`` runs a sample of the queries (one
run of ``sample`` steps per round, 10 by default) and its time for all is estimated from its steps' span (first
step process launched to last step done), scaled to all queries: ``run wall - span + span * queries / sample``. The
run's own start is counted once. The estimate runs low: on a 2-core machine a run of all 50 took 157 s where
10-step samples just after gave 141 s and 150 s (4-step samples: 127 s and 132 s), as later steps of a long run
cost more (a bigger event log, less than 2 steps busy at a time), so ``batch_speedup`` is understated rather than
overstated. ``--batch-full`` runs ``each`` over all of them instead.

Field of the BENCH line: ``batch_speedup`` = each (for all queries) / batched run wall, the median of per-round
ratios.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dagster_iwatch.local import LocalServer
from tests.bench import jobs
from tests.bench.dagster_runs import execute, parquet_rows, prepare_instance
from tests.bench.runner import Section, interleaved, median, paired_ratio

ROWS_PER_QUERY = 5
VARIANT_ORDER = ["batched", "each"]
SERVER_WORKERS = 4


def _run(name: str, url: str, key: str, instance_dir: str, out_root: str, queries: str) -> dict[str, float]:
    os.environ[jobs.QUERIES_VAR] = queries
    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=out_root))
    try:
        figures = execute(jobs.batched_job if name == "batched" else jobs.each_job, url, key, instance_dir, out)
        rows = parquet_rows(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if len(rows) != int(queries) or any(n != ROWS_PER_QUERY for n in rows.values()):
        raise RuntimeError(f"{name} wrote {rows}, {queries} files of {ROWS_PER_QUERY} rows expected")
    return figures | {"files": float(len(rows)), "rows": float(sum(rows.values()))}


def _batched(url: str, key: str, instance_dir: str, out_root: str, queries: str, sample: str) -> dict[str, float]:
    return _run("batched", url, key, instance_dir, out_root, queries)


def _each(url: str, key: str, instance_dir: str, out_root: str, queries: str, sample: str) -> dict[str, float]:
    return _run("each", url, key, instance_dir, out_root, sample)


VARIANTS = {"batched": _batched, "each": _each}


def _median(figures: list[dict[str, float]], key: str) -> float:
    return median([f[key] for f in figures])


def run(queries: int, sample: int, rounds: int) -> Section:
    """The batch section: ``queries`` small query assets batched, against one step each (over ``sample``)."""
    sample = min(sample, queries)
    section = Section(f"Many small queries: {queries} query assets in one step vs one step each (multiprocess)")
    with tempfile.TemporaryDirectory(prefix="iwatch-bench-") as folder:
        instance_dir = str(prepare_instance(Path(folder, "dagster")))
        with LocalServer(Path(folder, "data"), workers=SERVER_WORKERS) as server:
            runs = interleaved(
                "batch",
                VARIANT_ORDER,
                [server.url, server.user_api_key, instance_dir, folder, str(queries), str(sample)],
                rounds,
                progress="batch ",
            )
    for figure in runs["each"]:
        figure["all_wall"] = figure["process_wall"] + figure["steps_span"] * (queries / sample - 1)
    batched, each = runs["batched"], runs["each"]
    for figure in batched:
        figure["all_wall"] = figure["process_wall"]
    estimated = "" if sample == queries else f", estimated for {queries} from {sample} steps per run"
    span = _median(each, "steps_span")
    speedup = paired_ratio(each, batched, "all_wall")
    section.lines += [
        f'seeded query {jobs.PRICES_ON_DAY} ("Prices on day", 5 rows) with a day each; local server with '
        f"{SERVER_WORKERS} query workers; {rounds} interleaved rounds, a fresh run worker process per run "
        "(multiprocess executor, 2 step processes at a time); medians, and medians of per-round ratios;",
        f"files checked after each run: {queries} (batched) and {sample} (each) Parquet files of 5 rows; "
        "run = the run worker process from start to exit; span = first step process launched to last step done",
        f"  batched: 1 step, run {_median(batched, 'process_wall'):.2f} s "
        f"(span {_median(batched, 'steps_span'):.2f} s)",
        f"  each:    {sample} steps, run {_median(each, 'process_wall'):.2f} s (span {span:.2f} s, "
        f"{span / sample:.2f} s a step, 2 at a time){estimated}: {_median(each, 'all_wall'):.1f} s for {queries}",
        f"  each / batched for {queries} queries: {speedup:.2f}x",
        "",
    ]
    section.fields["batch_speedup"] = f"{speedup:.2f}"
    return section
