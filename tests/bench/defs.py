"""Definitions for a whole instance: ours from a snapshot against the same assets written in plain Dagster.

Both variants start from the same snapshot file (``tests.bench.components.synthetic_snapshot``) and end with the
code location's repository resolved (its asset graph), each in a fresh process after its imports:

- ``ours``: ``read_snapshot`` + ``build_iwatch_workspace_definitions(layout="grouped")`` (the default).
- ``plain``: ``json.loads`` of the file, then what a user writes by hand for the same assets: one
  ``dg.AssetSpec`` per query (key, description with the SQL, owner, tags, kinds, the same metadata, code version,
  deps of query-based parameters, IO manager) in one subsettable ``@dg.multi_asset`` in a pool, and one
  ``dg.AssetSpec`` per dashboard depending on its widgets' queries.

Field of the BENCH line: ``defs_10k_vs_plain`` = ours total / plain total at 10,000 queries (median of per-round
ratios).
"""

# No ``from __future__ import annotations`` here: Dagster checks the step's ``context`` annotation as an object.

import json
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_iwatch import IWatchResource, build_iwatch_workspace_definitions
from dagster_iwatch.state import read_snapshot, save_snapshot
from tests.bench.components import synthetic_snapshot
from tests.bench.runner import Section, interleaved, median, paired_ratio

VARIANT_ORDER = ["ours", "plain"]
_NAME = re.compile(r"[^a-z0-9]+")


def _resources() -> dict[str, Any]:
    return {"iwatch": IWatchResource(base_url="https://iwatch.example.com", api_key="unused")}


def _resolve(defs: dg.Definitions, expected: int) -> None:
    repository = dg.Definitions.merge(defs, dg.Definitions(resources=_resources())).get_repository_def()
    found = len(repository.asset_graph.get_all_asset_keys())
    if found != expected:
        raise RuntimeError(f"{found} assets resolved, {expected} expected")


def _ours(path: str) -> dict[str, float]:
    start = time.perf_counter()
    snapshot = read_snapshot(path)
    defs = build_iwatch_workspace_definitions(snapshot, layout="grouped")
    _resolve(defs, len(snapshot.queries) + len(snapshot.dashboards))
    return {"wall": time.perf_counter() - start}


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["iwatch", _NAME.sub("_", name.lower()).strip("_")])


def _run_queries(context: dg.AssetExecutionContext) -> Iterator[Any]:
    """The step of the plain assets (defined, never run here)."""
    yield from ()


def _plain(path: str) -> dict[str, float]:
    start = time.perf_counter()
    instance = json.loads(Path(path).read_bytes())
    keys = {query["id"]: _key(query["name"]) for query in instance["queries"]}
    specs = [
        dg.AssetSpec(
            key=keys[query["id"]],
            description=f"**{query['name']}**\n\n{query['description']}\n\n```sql\n{query['sql']}\n```",
            owners=[query["owner_email"]],
            tags={tag: "" for tag in query["tags"]},
            kinds={"iwatch", "parquet"},
            metadata={
                "iwatch/query_id": query["id"],
                "iwatch/query_name": query["name"],
                "iwatch/sql_hash": query["sql_hash"],
                "iwatch/parameters": dg.MetadataValue.json(query["parameters"]),
                "iwatch/tags": dg.MetadataValue.json(query["tags"]),
                "iwatch/owner_email": query["owner_email"],
                "iwatch/query_url": dg.MetadataValue.url(f"{instance['base_url']}/queries/{query['id']}"),
            },
            code_version=query["sql_hash"],
            deps=[keys[p["query_id"]] for p in query["parameters"] if p.get("query_id") in keys],
        ).with_io_manager_key("io_manager")
        for query in instance["queries"]
    ]

    iwatch_queries = dg.multi_asset(
        name="iwatch_queries", specs=specs, can_subset=True, required_resource_keys={"iwatch"}, pool="iwatch"
    )(_run_queries)

    boards = [
        dg.AssetSpec(
            key=dg.AssetKey(["iwatch", "dashboards", board["slug"].replace("-", "_")]),
            deps=list({keys[w["query_id"]] for w in board["widgets"] if w["query_id"] in keys}),
            metadata={
                "iwatch/dashboard_id": board["id"],
                "iwatch/dashboard_name": board["name"],
                "iwatch/dashboard_url": dg.MetadataValue.url(f"{instance['base_url']}/dashboards/{board['slug']}"),
                "iwatch/query_ids": dg.MetadataValue.json([w["query_id"] for w in board["widgets"]]),
            },
        )
        for board in instance["dashboards"]
    ]
    _resolve(dg.Definitions(assets=[iwatch_queries, *boards]), len(specs) + len(boards))
    return {"wall": time.perf_counter() - start}


VARIANTS = {"ours": _ours, "plain": _plain}


def run(sizes: list[int], rounds: int) -> Section:
    """The definitions section, one comparison per instance size."""
    section = Section("Definitions for a whole instance: ours from a snapshot vs the same assets in plain Dagster")
    section.lines.append(
        f"{rounds} interleaved rounds, a fresh process per run, timed after imports: file -> resolved repository"
    )
    for queries in sizes:
        with tempfile.TemporaryDirectory(prefix="iwatch-bench-") as folder:
            path = save_snapshot(synthetic_snapshot(queries), Path(folder, "snapshot.json"))
            runs = interleaved("defs", VARIANT_ORDER, [str(path)], rounds, progress=f"defs {queries:,} ")
        ratio = paired_ratio(runs["ours"], runs["plain"], "wall")
        ours, plain = (median([r["wall"] for r in runs[variant]]) for variant in VARIANT_ORDER)
        section.lines.append(
            f"{queries:>7,} queries: ours {ours:.2f} s, plain {plain:.2f} s; "
            f"ours / plain, median of per-round ratios: {ratio:.2f}"
        )
        if queries == 10_000:
            section.fields["defs_10k_vs_plain"] = f"{ratio:.2f}"
    section.lines.append("")
    return section
