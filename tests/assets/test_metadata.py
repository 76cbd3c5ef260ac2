from __future__ import annotations

import numpy as np
import pyarrow as pa

from dagster_iwatch.metadata import data_version


def test_data_version_ignores_schema_metadata_and_follows_values() -> None:
    table = pa.table({"n": [1, 2, 3], "s": ["a", None, "c"]})
    tagged = table.replace_schema_metadata({"iwatch.query_result_id": "7"})

    assert data_version(tagged) == data_version(table)
    assert data_version(table.slice(0, 2)) != data_version(table)


def test_data_version_does_not_copy_the_table() -> None:
    table = pa.table({"n": np.arange(4_000_000, dtype=np.int64)})
    pool = pa.default_memory_pool()
    peak_before = max(pool.max_memory(), pool.bytes_allocated())

    data_version(table)

    assert pool.max_memory() < peak_before + table.nbytes // 2
