"""The jobs the batch and backfill sections run, rebuilt by every run and step process from these functions.

This module imports only what a code location would (Dagster and dagster-iwatch), so a step process pays no
more than a user's would. Sizes come from environment variables the run worker sets before the run.
"""

import os
from datetime import date, timedelta

import dagster as dg

from dagster_iwatch import IWatchQuerySpec, build_iwatch_query_asset, build_iwatch_query_assets
from tests.bench.dagster_runs import job_of

QUERIES_VAR = "IWATCH_BENCH_QUERIES"
DAYS_VAR = "IWATCH_BENCH_DAYS"
PRICES_ON_DAY = 4
"""The seeded "Prices on day": one row per token (five) for a ``day`` parameter."""
DAILY_VOLUME = 5
"""The seeded "Daily volume in period": rows per day and token for a date-range ``period`` parameter."""
FIRST_DAY = date(2024, 1, 1)


def _price_specs() -> list[IWatchQuerySpec]:
    return [
        IWatchQuerySpec(
            PRICES_ON_DAY,
            key=["bench", f"prices_{i:03d}"],
            parameters={"day": (FIRST_DAY + timedelta(days=i)).isoformat()},
        )
        for i in range(int(os.environ[QUERIES_VAR]))
    ]


def batched_job() -> dg.JobDefinition:
    """The small queries as one grouped multi-asset: one step, 4 queries at a time."""
    return job_of(build_iwatch_query_assets(_price_specs(), layout="grouped"))


def each_job() -> dg.JobDefinition:
    """The small queries as one asset each: one step per query."""
    return job_of([build_iwatch_query_asset(spec) for spec in _price_specs()])


def daily() -> dg.DailyPartitionsDefinition:
    """The days of the backfill: from 2024-01-01, ``IWATCH_BENCH_DAYS`` of them (91: the seeded quarter)."""
    end = FIRST_DAY + timedelta(days=int(os.environ[DAYS_VAR]))
    return dg.DailyPartitionsDefinition(start_date=FIRST_DAY.isoformat(), end_date=end.isoformat())


def _daily_volume(backfill_policy: dg.BackfillPolicy | None) -> dg.AssetsDefinition:
    return build_iwatch_query_asset(
        DAILY_VOLUME,
        key=["bench", "daily_volume"],
        partitions_def=daily(),
        partition_parameter="period",
        backfill_policy=backfill_policy,
    )


def single_run_job() -> dg.JobDefinition:
    """The daily asset with ``BackfillPolicy.single_run()``: a run over a range is one step."""
    return job_of([_daily_volume(dg.BackfillPolicy.single_run())])


def per_partition_job() -> dg.JobDefinition:
    """The daily asset with the default policy: a backfill is one run per partition."""
    return job_of([_daily_volume(None)])
