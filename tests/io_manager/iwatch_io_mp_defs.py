"""Definitions the multiprocess executor test rebuilds in its step processes (hence a module of its own)."""

import dagster as dg
import pandas as pd
import pyarrow as pa

from dagster_iwatch.io_manager import IWatchParquetIOManager


@dg.asset
def mp_source() -> pa.Table:
    schema = pa.schema([("n", pa.int64())], metadata={"iwatch.query_id": "1"})
    return pa.table({"n": [1, 2, None]}, schema=schema)


@dg.asset
def mp_frame(mp_source: pd.DataFrame) -> pd.DataFrame:
    return mp_source.assign(n=mp_source["n"] * 2, kind=str(mp_source["n"].dtype))


defs = dg.Definitions(
    assets=[mp_source, mp_frame],
    jobs=[dg.define_asset_job("mp_job")],
    resources={"io_manager": IWatchParquetIOManager.configure_at_launch()},
    executor=dg.multiprocess_executor.configured(
        {
            "max_concurrent": 2,
            "start_method": {"forkserver": {"preload_modules": ["dagster_iwatch.io_manager", "pandas"]}},
        }
    ),
)


def mp_job() -> dg.JobDefinition:
    return defs.resolve_job_def("mp_job")
