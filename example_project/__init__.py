"""Example Dagster code location: Inverse Watch queries as partitioned Parquet assets."""
