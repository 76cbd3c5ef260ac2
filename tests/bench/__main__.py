"""``python -m tests.bench [--sections ...] [--sizes N ...] [--rounds K] ...``: the sections, then one BENCH line.

Sections are functions returning a :class:`tests.bench.runner.Section`; each adds its table and its
fields of the BENCH line, printed in the issue's order (:data:`FIELDS`) whatever the order of the sections. Only
fields measured in this run are printed. ``--quick`` shrinks every section (fewer rows, shorter jobs, fewer
queries and days, fewer rounds) to check that it runs; its figures are not the benchmark's.

To stay under 15 minutes on 2 cores, the batch and backfill sections run their slow variant (one step per query,
one run per partition) on a sample each round and scale it to the whole (``--batch-sample``,
``--backfill-sample``); ``--batch-full`` and ``--backfill-full`` run all of it instead (many minutes more), and
the job waits of 1 s or more run a round's variants at the same time, and ingest runs 3 rounds (``--rounds``).
Each section prints how long it took.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from tests.bench import backfill, batch, defs, e2e, ingest, waits
from tests.bench.runner import Section

SECTIONS = ("ingest", "waits", "e2e", "batch", "backfill", "defs")
FIELDS = (
    "ingest_speedup",
    "ingest_vs_pyarrow_json",
    "ingest_rss_over_body",
    "wait_small_ms",
    "wait_10s_ms",
    "polls_10s_job",
    "e2e_client_speedup",
    "e2e_rss_over_body",
    "batch_speedup",
    "backfill_speedup",
    "defs_10k_vs_plain",
)
"""The BENCH line's fields, in this order whatever order the sections ran in."""


def main(argv: list[str] | None = None) -> None:
    """Run the sections and print their tables and the BENCH line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--quick", action="store_true", help="a short run of each section, to check it works")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="ingest sizes, in rows")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the ingest section (at least 3)")
    parser.add_argument(
        "--jobs", type=float, nargs="+", default=[0.05, 3.5, 10.5, 30.5], help="job lengths of the waits, seconds"
    )
    parser.add_argument("--wait-rounds", type=int, default=3, help="rounds of each job wait under 20 s")
    parser.add_argument("--long-wait-rounds", type=int, default=2, help="rounds of each job wait of 20 s or more")
    parser.add_argument("--other-rounds", type=int, default=3, help="rounds of the end-to-end and definitions sections")
    parser.add_argument("--e2e-rows", type=int, default=1_000_000, help="rows of the end-to-end result")
    parser.add_argument(
        "--defs-queries", type=int, nargs="+", default=[1_000, 10_000], help="queries of the definitions section"
    )
    parser.add_argument("--batch-queries", type=int, default=50, help="small query assets of the batch section")
    parser.add_argument(
        "--batch-sample", type=int, default=10, help="queries run as one step each per round (scaled to all)"
    )
    parser.add_argument("--batch-full", action="store_true", help="run one step each for every query, no scaling")
    parser.add_argument("--backfill-days", type=int, default=91, help="daily partitions of the backfill section")
    parser.add_argument(
        "--backfill-sample", type=int, default=3, help="partitions run as one run each per round (scaled to all)"
    )
    parser.add_argument("--backfill-full", action="store_true", help="run one run per partition for every partition")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds, args.jobs, args.wait_rounds, args.long_wait_rounds = [20_000], 1, [0.05, 1.5], 1, 1
        args.e2e_rows, args.defs_queries = 50_000, [500]
        args.batch_queries, args.batch_sample, args.backfill_days, args.backfill_sample = 6, 2, 7, 2
    rounds = args.rounds if args.quick else max(args.rounds, 3)
    other_rounds = 1 if args.quick else max(args.other_rounds, 3)
    runs: dict[str, Callable[[], Section]] = {
        "ingest": lambda: ingest.run(sorted(args.sizes), rounds),
        "defs": lambda: defs.run(sorted(args.defs_queries), other_rounds),
        "e2e": lambda: e2e.run(args.e2e_rows, other_rounds),
        "waits": lambda: waits.run(sorted(args.jobs), args.wait_rounds, args.long_wait_rounds),
        "batch": lambda: batch.run(
            args.batch_queries, args.batch_queries if args.batch_full else args.batch_sample, other_rounds
        ),
        "backfill": lambda: backfill.run(args.backfill_days, args.backfill_sample, other_rounds, args.backfill_full),
    }
    started = time.perf_counter()
    fields: dict[str, str] = {}
    for name in args.sections:
        section_started = time.perf_counter()
        section = runs[name]()
        print(f"## {section.title}", flush=True)
        print("\n".join(section.lines), flush=True)
        print(f"({name} took {time.perf_counter() - section_started:.0f} s)\n", flush=True)
        fields |= section.fields
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    ordered = [key for key in FIELDS if key in fields] + [key for key in fields if key not in FIELDS]
    print("BENCH " + " ".join(f"{key}={fields[key]}" for key in ordered))


if __name__ == "__main__":
    main()
