"""Definitions that run in other processes (a multiprocess run, a run worker that gets terminated).

They read the server and the Parquet folder from the environment, as a deployed code location would.
"""

from __future__ import annotations

import os
import sys

import dagster as dg

from dagster_iwatch import IWatchParquetIOManager, IWatchResource, build_iwatch_query_asset

daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")

ASSETS = [
    build_iwatch_query_asset(1, key=["mp", "transfers"]),
    build_iwatch_query_asset(12, key=["mp", "tokens"]),
    build_iwatch_query_asset(15, key=["mp", "prices"]),
]
SLOW = build_iwatch_query_asset(11, key=["slow"], parameters={"seconds": 60})


def resources() -> dict[str, object]:
    return {
        "iwatch": IWatchResource(
            base_url=dg.EnvVar("IWATCH_URL"), api_key=dg.EnvVar("IWATCH_API_KEY"), max_poll_interval=0.2
        ),
        "io_manager": IWatchParquetIOManager(base_path=os.environ["IWATCH_PARQUET_PATH"]),
    }


def multiprocess_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=ASSETS,
        resources=resources(),
        jobs=[
            dg.define_asset_job("all_queries", executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}))
        ],
    )
    return defs.resolve_job_def("all_queries")


def slow_job() -> dg.JobDefinition:
    """The slow query under the multiprocess executor (Dagster's default): the step runs in a child process."""
    job = dg.define_asset_job("slow_job", executor_def=dg.multiprocess_executor)
    defs = dg.Definitions(assets=[SLOW], resources=resources(), jobs=[job])
    return defs.resolve_job_def("slow_job")


def run_slow_query() -> None:
    """Run the slow query's job here, with the signal handling of a Dagster run worker."""
    from dagster._utils.interrupts import setup_interrupt_handlers

    setup_interrupt_handlers()
    print("starting", flush=True)
    with dg.DagsterInstance.local_temp() as instance:
        result = dg.execute_job(dg.reconstructable(slow_job), instance=instance, raise_on_error=False)
        for event in result.get_step_failure_events():
            print("step error:", event.step_failure_data.error.to_string(), flush=True)
    print("success" if result.success else "failed", flush=True)


if __name__ == "__main__":
    run_slow_query()
    sys.exit(0)
