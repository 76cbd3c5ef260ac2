from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_iwatch import IWatchParquetIOManager, IWatchResource


class Runner:
    """Materializes assets against the local server into one Parquet folder and one Dagster instance."""

    def __init__(self, server: Any, base_path: Path, instance: dg.DagsterInstance) -> None:
        self.server = server
        self.base_path = base_path
        self.instance = instance

    def resources(self, **resource_fields: Any) -> dict[str, Any]:
        return {
            "iwatch": IWatchResource(base_url=self.server.url, api_key=self.server.user_api_key, **resource_fields),
            "io_manager": IWatchParquetIOManager(base_path=str(self.base_path)),
        }

    def materialize(
        self, assets: Sequence[dg.AssetsDefinition], raise_on_error: bool = True, **kwargs: Any
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets, resources=self.resources(), instance=self.instance, raise_on_error=raise_on_error, **kwargs
        )


@pytest.fixture
def runner(server: Any, tmp_path: Path) -> Iterator[Runner]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield Runner(server, tmp_path / "parquet", instance)
