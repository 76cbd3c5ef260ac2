"""A Dagster code location built from saved Inverse Watch queries.

With ``IWATCH_URL`` and ``IWATCH_API_KEY`` set it talks to that instance; otherwise to the local server that
``make serve`` (or ``make run``) starts on ``http://127.0.0.1:5055`` with the demo key below. Parquet files go to
``IWATCH_PARQUET_PATH`` (a folder or an object-store URL such as ``s3://bucket/prefix``), by default
``.iwatch/parquet`` in the repository.

Three ways to partition a query asset are shown: by day (a date range parameter), by token (an enum parameter)
and by day and token together (one parameter per dimension).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd

from dagster_iwatch import (
    IWatchParquetIOManager,
    IWatchResource,
    build_iwatch_dashboard_asset,
    build_iwatch_query_asset,
)
from example_project import LOCAL_API_KEY, LOCAL_URL

DEFAULT_PARQUET_PATH = str(Path(__file__).resolve().parent.parent / ".iwatch" / "parquet")
OWNERS = ["team:onchain-data"]
TOKENS = ["ETH", "USDC", "WBTC", "DAI", "LINK"]

# The demo data set covers the first quarter of 2024; drop end_date for a live instance.
daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")
tokens = dg.StaticPartitionsDefinition(TOKENS)
daily_by_token = dg.MultiPartitionsDefinition({"day": daily, "token": tokens})

transfers = build_iwatch_query_asset(
    1,
    key=["onchain", "transfers"],
    group_name="onchain",
    owners=OWNERS,
    checks=["not_empty", "schema_unchanged"],
)

daily_volume = build_iwatch_query_asset(
    5,
    key=["onchain", "daily_volume"],
    partitions_def=daily,
    partition_parameter="period",
    group_name="onchain",
    owners=OWNERS,
    checks=["not_empty", "schema_unchanged"],
)

token_transfers = build_iwatch_query_asset(
    7,
    key=["onchain", "token_transfers"],
    partitions_def=tokens,
    partition_parameter="token",
    group_name="onchain",
    owners=OWNERS,
)

token_day_volume = build_iwatch_query_asset(
    18,
    key=["onchain", "token_day_volume"],
    partitions_def=daily_by_token,
    partition_parameter={"day": "day", "token": "token"},
    group_name="onchain",
    owners=OWNERS,
)

prices = build_iwatch_query_asset(
    15,
    key=["onchain", "prices"],
    max_age=3600,
    group_name="onchain",
    owners=OWNERS,
)

# The dashboard's widgets, downstream of the query assets it shows.
chain_overview = build_iwatch_dashboard_asset(
    "chain-overview",
    key=["onchain", "chain_overview"],
    deps=[prices, daily_volume],
    group_name="onchain",
    owners=OWNERS,
    checks=["queries_upstream"],
)


@dg.asset(key=["onchain", "token_totals"], group_name="onchain", owners=OWNERS, kinds={"pandas"})
def token_totals(transfers: pd.DataFrame) -> dg.MaterializeResult:
    """Transfer count and volume per token, from the transfers table, shown as metadata (no file)."""
    totals = transfers.groupby("token", as_index=False).agg(n=("id", "count"), volume=("amount", "sum"))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(totals),
            "totals": dg.MetadataValue.md(totals.to_markdown(index=False)),
        }
    )


# Jobs take their partitions from the assets they select; each schedule runs its job's latest day
# (for every token, in the multi-partitioned case).
daily_volume_job = dg.define_asset_job("daily_volume_job", selection=[daily_volume])
daily_volume_schedule = dg.build_schedule_from_partitioned_job(daily_volume_job)
token_day_volume_job = dg.define_asset_job("token_day_volume_job", selection=[token_day_volume])
token_day_volume_schedule = dg.build_schedule_from_partitioned_job(token_day_volume_job)


def iwatch_resource() -> IWatchResource:
    """The Inverse Watch instance named by IWATCH_URL, or the local demo server with its demo key."""
    if not os.getenv("IWATCH_URL"):
        os.environ["IWATCH_URL"], os.environ["IWATCH_API_KEY"] = LOCAL_URL, LOCAL_API_KEY
    # Read at run time, never stored in the run's configuration.
    return IWatchResource(base_url=dg.EnvVar("IWATCH_URL"), api_key=dg.EnvVar("IWATCH_API_KEY"))


# The hand-written definitions above, and the component-based ones in defs/ (see defs/instance/defs.yaml).
defs = dg.Definitions.merge(
    dg.Definitions(
        assets=[transfers, daily_volume, token_transfers, token_day_volume, prices, token_totals, chain_overview],
        jobs=[daily_volume_job, token_day_volume_job],
        schedules=[daily_volume_schedule, token_day_volume_schedule],
        resources={
            "iwatch": iwatch_resource(),
            "io_manager": IWatchParquetIOManager(base_path=os.getenv("IWATCH_PARQUET_PATH", DEFAULT_PARQUET_PATH)),
        },
    ),
    dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent),
)
