"""Query assets stream their result into the Parquet IO manager's file; other IO managers get the same table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_iwatch import IWatchParquetIOManager, IWatchResource, build_iwatch_query_asset
from dagster_iwatch.local import LocalServer
from tests.ingest.helpers import assert_same_table


class _InMemory(dg.IOManager):
    """An IO manager other than ours: it is handed the table itself."""

    def __init__(self) -> None:
        self.stored: dict[str, pa.Table] = {}

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        assert isinstance(obj, pa.Table)
        self.stored[context.asset_key.to_user_string()] = obj

    def load_input(self, context: dg.InputContext) -> Any:
        return self.stored[context.asset_key.to_user_string()]


def _materialize(server: LocalServer, asset: dg.AssetsDefinition, io_manager: Any) -> dg.AssetMaterialization:
    resources = {
        "iwatch": IWatchResource(base_url=server.url, api_key=dg.EnvVar("IWATCH_TEST_KEY")),
        "io_manager": io_manager,
    }
    result = dg.materialize([asset], resources=resources)
    (materialization,) = result.asset_materializations_for_node(asset.node_def.name)
    return materialization


def _provenance_free(table: pa.Table) -> pa.Table:
    # The result id and retrieval time differ from one run to the next; the rest of the metadata may not.
    kept = {
        k: v
        for k, v in (table.schema.metadata or {}).items()
        if k not in (b"iwatch.query_result_id", b"iwatch.retrieved_at")
    }
    return table.replace_schema_metadata(kept)


@pytest.mark.parametrize("query_id", [1, 13, 14, 99])
def test_the_streamed_file_holds_what_other_io_managers_are_handed(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query_id: int
) -> None:
    monkeypatch.setenv("IWATCH_TEST_KEY", server.user_api_key)
    if query_id == 99:  # a result of many pieces: query 1's results replaced by a large generated one
        server.inject_fault(kind="large", rows=40_000, method="GET", path_prefix="/api/queries/1/results/", times=2)
        query_id = 1
    asset = build_iwatch_query_asset(query_id, key="streamed")
    memory = _InMemory()
    in_memory = _materialize(server, asset, dg.IOManagerDefinition.hardcoded_io_manager(memory))
    streamed = _materialize(server, asset, IWatchParquetIOManager(base_path=str(tmp_path)))

    path = Path(str(streamed.metadata["dagster/uri"].value))
    expected = _provenance_free(memory.stored["streamed"])
    assert_same_table(expected, _provenance_free(pq.read_table(path)))
    assert streamed.tags["dagster/data_version"] == in_memory.tags["dagster/data_version"]
    for name in ("dagster/row_count", "dagster/column_schema", "iwatch/preview"):
        assert streamed.metadata[name] == in_memory.metadata[name], name
    assert list((tmp_path / ".iwatch-staging").iterdir()) == []
