"""The main job: materialize the example project and print where each Parquet file is.

Without ``IWATCH_URL`` it starts the local Inverse Watch server (data in ``IWATCH_LOCAL_DATA``, by default
``.iwatch/local``), runs against it and stops it at the end. Run history goes to the Dagster instance in
``DAGSTER_HOME`` (default ``.iwatch/dagster_home``), which ``make dev`` shows too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg

from example_project import LOCAL_API_KEY

ROOT = Path(__file__).resolve().parent.parent
LAST_DAYS = 2
SAMPLE_COIN = "ETH"


@contextlib.contextmanager
def inverse_watch() -> Iterator[str]:
    """The instance to run against: IWATCH_URL when set, else a local server started for this run."""
    if os.getenv("IWATCH_URL"):
        yield os.environ["IWATCH_URL"]
        return
    from dagster_iwatch.local import LocalServer

    data = Path(os.getenv("IWATCH_LOCAL_DATA", ROOT / ".iwatch" / "local"))
    with LocalServer(data, port=0, user_api_key=LOCAL_API_KEY) as server:
        os.environ["IWATCH_URL"] = server.url
        os.environ["IWATCH_API_KEY"] = LOCAL_API_KEY
        try:
            yield f"{server.url} (local server, stopped at the end)"
        finally:
            del os.environ["IWATCH_URL"], os.environ["IWATCH_API_KEY"]


def plan() -> list[tuple[Sequence[dg.AssetsDefinition], str | None]]:
    """The runs to make: one per partition of the partitioned assets, then one for the other assets."""
    from example_project import definitions as d

    days = d.daily.get_partition_keys()[-LAST_DAYS:]
    runs: list[tuple[Sequence[dg.AssetsDefinition], str | None]] = [([d.daily_volume], day) for day in days]
    runs.append(([d.token_transfers], SAMPLE_COIN))
    runs.append(([d.token_day_volume], str(dg.MultiPartitionKey({"day": days[-1], "token": SAMPLE_COIN}))))
    runs.append(([d.transfers, d.prices, d.token_totals, d.chain_overview], None))
    return runs


def describe(runs: list[tuple[Sequence[dg.AssetsDefinition], str | None]]) -> str:
    """What the runs materialize, e.g. ``daily_volume [2024-03-30], ..., then transfers, prices``."""
    partitioned: dict[str, list[str]] = {}
    rest: list[str] = []
    for assets, partition in runs:
        names = [asset.key.path[-1] for asset in assets]
        if partition is None:
            rest += names
        else:
            partitioned.setdefault(names[0], []).append(partition)
    parts = [f"{name} [{', '.join(keys)}]" for name, keys in partitioned.items()]
    return f"{len(runs)} runs: {', '.join(parts)}, then {', '.join(rest)}"


def main() -> int:
    """Materialize a sample of every asset; print each Parquet file with its rows, and the assets without one."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(ROOT / ".iwatch" / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with inverse_watch() as where:
        print(f"Inverse Watch: {where}")
        from example_project import definitions

        resources = definitions.defs.resources or {}
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        runs = plan()
        print(f"Materializing in {describe(runs)}")
        with dg.DagsterInstance.get() as instance:
            results = [
                dg.materialize(assets, partition_key=key, resources=resources, instance=instance, run_config=quiet)
                for assets, key in runs
            ]
    files: list[str] = []
    without_file: list[str] = []
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            name = materialization.asset_key.to_user_string()
            uri = materialization.metadata.get("dagster/uri")
            if uri is None:
                without_file.append(name)
                continue
            rows = materialization.metadata["dagster/row_count"].value
            partition = f" [{materialization.partition}]" if materialization.partition else ""
            cached = materialization.metadata.get("iwatch/from_cache")
            origin = ", cached result" if cached is not None and cached.value else ""
            files.append(f"  {name}{partition}: {uri.value} ({rows} row{'' if rows == 1 else 's'}{origin})")
    print(f"\nParquet files ({len(files)}):")
    print("\n".join(files))
    if without_file:
        print(f"Materialized without a file (results in the asset's metadata): {', '.join(without_file)}")
    failed = [run.dagster_run.run_id for run in results if not run.success]
    if failed:
        print(f"Failed runs: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
