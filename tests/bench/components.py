"""Definition-load benchmark: a whole instance's assets from a snapshot, for 1,000 and 10,000 queries.

Run with ``python -m tests.bench.components [--sizes 1000 10000] [--runs K] [--layouts grouped per_query]``.
Each measurement runs in a fresh process (imports already warm in that process do not count), the sizes and
layouts interleaved (A B A B...), and the table shows the median of each phase; with two layouts it also shows the
median of the per-pair ratios of their totals:

- read: the snapshot file decoded into records;
- build: ``build_iwatch_workspace_definitions`` (selection, translator, lineage, one asset per query, dashboards);
- resolve: what a code location does with the definitions (the repository and its asset graph);
- total: the three together, the time a code location spends on the instance at load.

Queries carry a 300-character SQL text, two parameters (one a ``query`` parameter on another query) and three
tags; one dashboard of five widgets per 50 queries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dagster_iwatch.state import (
    DashboardRecord,
    InstanceSnapshot,
    ParameterRecord,
    QueryRecord,
    WidgetRecord,
    save_snapshot,
)

PHASES = ("read", "build", "resolve", "total")


def synthetic_snapshot(n: int) -> InstanceSnapshot:
    """An instance of ``n`` queries and ``n // 50`` dashboards."""
    queries = tuple(
        QueryRecord(
            id=i,
            name=f"Query number {i}",
            sql=f"select block_date, token, count(*) as n from transfers_{i % 97} where token = '{{{{ token }}}}' "
            + "and block_date between '{{ period.start }}' and '{{ period.end }}' " * 3
            + "group by block_date, token order by block_date",
            sql_hash=f"{i:016x}",
            description=f"Synthetic query {i}.",
            parameters=(
                ParameterRecord(name="period", type="date-range", value={"start": "2024-01-01", "end": "2024-01-31"}),
                ParameterRecord(name="token", type="query", value="ETH", query_id=1 if i > 1 else None),
            ),
            tags=("synthetic", f"team_{i % 7}", f"source_{i % 13}"),
            owner_email=f"owner{i % 11}@example.com",
        )
        for i in range(1, n + 1)
    )
    dashboards = tuple(
        DashboardRecord(
            id=d,
            slug=f"board-{d}",
            name=f"Board {d}",
            widgets=tuple(WidgetRecord(id=d * 10 + w, query_id=(d * 50 + w * 7) % n + 1) for w in range(5)),
        )
        for d in range(n // 50)
    )
    return InstanceSnapshot(
        base_url="https://iwatch.example.com",
        fetched_at="2026-01-01T00:00:00+00:00",
        queries=queries,
        dashboards=dashboards,
    )


def child(path: str, layout: str) -> None:
    """One measurement in this fresh process; prints the phases as JSON."""
    import dagster as dg

    from dagster_iwatch import IWatchResource, build_iwatch_workspace_definitions
    from dagster_iwatch.state import read_snapshot

    resources = {"iwatch": IWatchResource(base_url="https://iwatch.example.com", api_key="unused")}
    start = time.perf_counter()
    snapshot = read_snapshot(path)
    read = time.perf_counter()
    defs = build_iwatch_workspace_definitions(snapshot, layout=layout)  # type: ignore[arg-type]
    built = time.perf_counter()
    repository = dg.Definitions.merge(defs, dg.Definitions(resources=resources)).get_repository_def()
    assert len(repository.asset_graph.get_all_asset_keys()) == len(snapshot.queries) + len(snapshot.dashboards)
    resolved = time.perf_counter()
    print(
        json.dumps(
            {"read": read - start, "build": built - read, "resolve": resolved - built, "total": resolved - start}
        )
    )


def main() -> int:
    """Write the snapshots, measure them in fresh processes, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layouts", nargs="+", default=["grouped"], choices=["grouped", "per_query"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--layout", default="grouped", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.layout)
        return 0
    results: dict[tuple[int, str], list[dict[str, float]]] = {(n, v): [] for n in args.sizes for v in args.layouts}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: save_snapshot(synthetic_snapshot(n), Path(tmp) / f"snapshot-{n}.json") for n in args.sizes}
        for _ in range(args.runs):
            for n in args.sizes:
                for layout in args.layouts:
                    run = subprocess.run(
                        [sys.executable, "-m", "tests.bench.components", "--child", str(paths[n]), "--layout", layout],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    results[n, layout].append(json.loads(run.stdout.strip().splitlines()[-1]))
        sizes = {n: paths[n].stat().st_size for n in args.sizes}
    print(f"Definitions from a snapshot: median of {args.runs} fresh processes per size and layout (seconds)")
    print(f"{'queries':>8} {'layout':>10} {'file':>9} " + " ".join(f"{p:>8}" for p in PHASES))
    for n in args.sizes:
        for layout in args.layouts:
            medians = [statistics.median(r[p] for r in results[n, layout]) for p in PHASES]
            print(f"{n:>8} {layout:>10} {sizes[n] / 1e6:>7.1f}MB " + " ".join(f"{m:>8.3f}" for m in medians))
        if len(args.layouts) == 2:
            first, second = args.layouts
            ratios = [b["total"] / a["total"] for a, b in zip(results[n, first], results[n, second], strict=True)]
            print(f"{n:>8} total {second} / {first}: median of per-pair ratios {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
