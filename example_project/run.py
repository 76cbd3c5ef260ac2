"""The main job: materialize the example project and print where each Parquet file is.

Without ``IWATCH_URL`` it starts the local Inverse Watch server (data in ``IWATCH_LOCAL_DATA``, by default
``.iwatch/local``), runs against it and stops it at the end. Run history goes to the Dagster instance in
``DAGSTER_HOME`` (default ``.iwatch/dagster_home``), which ``make dev`` shows too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from example_project import LOCAL_API_KEY

ROOT = Path(__file__).resolve().parent.parent
LAST_PARTITIONS = 3


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


def main() -> int:
    """Materialize the plain assets and the last partitions of the daily one; print each file's path and rows."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(ROOT / ".iwatch" / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with inverse_watch() as where:
        print(f"Inverse Watch: {where}")
        from example_project import definitions

        defs = definitions.defs
        resources = defs.resources or {}
        assets = [definitions.transfers, definitions.prices, definitions.token_totals, definitions.chain_overview]
        partition_keys = definitions.daily.get_partition_keys()[-LAST_PARTITIONS:]
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        with dg.DagsterInstance.get() as instance:
            run = functools.partial(dg.materialize, resources=resources, instance=instance, run_config=quiet)
            print(f"Materializing daily_volume for {', '.join(partition_keys)}, then {len(assets)} more assets")
            results = [run([definitions.daily_volume], partition_key=key) for key in partition_keys]
            results.append(run(assets))
    ok = all(r.success for r in results)
    print("\nParquet files:")
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            uri = materialization.metadata.get("dagster/uri")
            if uri is None:
                continue
            rows = materialization.metadata["dagster/row_count"].value
            partition = f" [{materialization.partition}]" if materialization.partition else ""
            cached = materialization.metadata.get("iwatch/from_cache")
            origin = ", cached result" if cached is not None and cached.value else ""
            print(f"  {materialization.asset_key.to_user_string()}{partition}: {uri.value} ({rows} rows{origin})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
