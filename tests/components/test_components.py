"""Both components loaded from YAML in a dg project sandbox, against the local server over HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml
from dagster.components.testing import DefsFolderSandbox, create_defs_folder_sandbox

from dagster_iwatch import (
    IWatchDashboardSpec,
    IWatchQueryComponent,
    IWatchQuerySpec,
    IWatchWorkspaceComponent,
)
from dagster_iwatch.components.models import IWatchConnectionArgs
from dagster_iwatch.local import LocalServer
from dagster_iwatch.local.seed import SEED_QUERIES
from dagster_iwatch.state import InstanceSnapshot, save_snapshot

RESOURCES = """
import os

import dagster as dg

from dagster_iwatch import IWatchParquetIOManager, IWatchResource
from dagster_iwatch.local.seed import SEED_QUERIES


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "iwatch": IWatchResource(base_url=os.environ["IWATCH_URL"], api_key=dg.EnvVar("IWATCH_API_KEY")),
            "io_manager": IWatchParquetIOManager(base_path=os.environ["IWATCH_PARQUET_PATH"]),
        }
    )
"""


@pytest.fixture
def sandbox(seeded: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DefsFolderSandbox]:
    monkeypatch.setenv("IWATCH_URL", seeded.url)
    monkeypatch.setenv("IWATCH_API_KEY", seeded.user_api_key)
    monkeypatch.setenv("IWATCH_PARQUET_PATH", str(tmp_path / "parquet"))
    with create_defs_folder_sandbox() as box:
        (box.defs_folder_path / "resources.py").write_text(RESOURCES)
        yield box


def write_yaml(path: Path, body: dict[str, Any]) -> None:
    (path / "defs.yaml").write_text(yaml.safe_dump(body, sort_keys=False))


def refresh(box: DefsFolderSandbox, path: Path) -> None:
    """What `dg utils refresh-defs-state` does for one component."""
    with box.build_component_tree() as tree:
        component = tree.load_component(path)
        assert isinstance(component, IWatchWorkspaceComponent)
        asyncio.run(component.refresh_state(box.project_root))


def asset_specs(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {n.key.to_user_string(): n.to_asset_spec() for n in defs.resolve_asset_graph().asset_nodes}


def test_workspace_component_from_yaml_with_selection_translation_and_sensor(
    sandbox: DefsFolderSandbox, seeded: LocalServer
) -> None:
    path = sandbox.scaffold_component(IWatchWorkspaceComponent, "instance")
    scaffolded = yaml.safe_load((path / "defs.yaml").read_text())
    assert scaffolded["attributes"]["connection"] == {
        "url": "{{ env.IWATCH_URL }}",
        "api_key": "{{ env.IWATCH_API_KEY }}",
    }
    write_yaml(
        path,
        {
            "type": scaffolded["type"],
            "attributes": {
                **scaffolded["attributes"],
                "selection": {"tags": ["prices", "tokens", "daily"], "exclude_ids": [4]},
                "queries": [
                    {
                        "query_id": 5,
                        "partitions_def": {"type": "daily", "start_date": "2024-01-01", "end_date": "2024-04-01"},
                        "partition_parameter": "period",
                    }
                ],
                "translation": {
                    "key_prefix": "{{ kind }}",
                    "group_name": "onchain",
                    "tags": {"source": "iwatch-{{ data.id }}"},
                },
                "polling_sensor": True,
                "defs_state": {"management_type": "LOCAL_FILESYSTEM", "refresh_if_dev": False},
            },
        },
    )
    with sandbox.build_all_defs() as before_refresh:
        assert asset_specs(before_refresh) == {}  # no snapshot yet: nothing, and no request
    seeded.clear_requests_seen()
    refresh(sandbox, path)
    assert ("GET", "/api/queries") in seeded.requests_seen
    seeded.clear_requests_seen()
    with sandbox.build_all_defs() as defs:
        specs = asset_specs(defs)
        assert seeded.requests_seen == []
        assert set(specs) == {
            "query/iwatch/token_list",
            "query/iwatch/daily_prices",
            "query/iwatch/daily_volume_in_period",
            "dashboard/iwatch/dashboard_chain_overview",
        }
        volume = specs["query/iwatch/daily_volume_in_period"]
        assert volume.group_name == "onchain"
        assert volume.tags["source"] == "iwatch-5"
        assert "daily" in volume.tags  # the translation merges tags with the query's own
        assert isinstance(volume.partitions_def, dg.DailyPartitionsDefinition)
        board = specs["dashboard/iwatch/dashboard_chain_overview"]
        assert {d.asset_key.to_user_string() for d in board.deps} == {
            "query/iwatch/daily_prices",
            "query/iwatch/daily_volume_in_period",
        }
        assert [s.name for s in defs.sensors or []] == ["iwatch_polling_sensor"]
        # A workspace asset runs its query over HTTP and stores the table.
        result = dg.materialize(
            [defs.resolve_assets_def(dg.AssetKey.from_user_string("query/iwatch/daily_volume_in_period"))],
            partition_key="2024-01-15",
        )
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["iwatch/parameters"].value == {"period": {"start": "2024-01-15", "end": "2024-01-15"}}
    assert pq.read_metadata(metadata["dagster/uri"].value).num_rows == metadata["dagster/row_count"].value > 0


def test_query_component_from_yaml(sandbox: DefsFolderSandbox) -> None:
    path = sandbox.scaffold_component(IWatchQueryComponent, "eth", scaffold_params={"query_id": 7})
    scaffolded = yaml.safe_load((path / "defs.yaml").read_text())
    assert scaffolded["attributes"] == {"query_id": 7, "parameters": {}}
    write_yaml(
        path,
        {
            "type": scaffolded["type"],
            "attributes": {
                "query_id": 7,
                "key": "onchain/eth_transfers",
                "parameters": {"token": "ETH"},
                "checks": ["not_empty"],
                "owners": ["team:data"],
                "translation": {"description": "ETH transfers (query {{ query_id }})"},
            },
        },
    )
    with sandbox.build_all_defs() as defs:
        spec = asset_specs(defs)["onchain/eth_transfers"]
        assert spec.description == "ETH transfers (query 7)"
        assert spec.owners == ["team:data"]
        asset = defs.resolve_assets_def(dg.AssetKey(["onchain", "eth_transfers"]))
        assert [c.name for c in asset.check_specs] == ["not_empty"]
        result = dg.materialize([asset])
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["iwatch/parameters"].value == {"token": "ETH"}
    assert result.get_asset_check_evaluations()[0].passed


def test_a_component_subclass_translates_in_python(snapshot: InstanceSnapshot, tmp_path: Path) -> None:
    class Teams(IWatchWorkspaceComponent):
        def translate(self, spec: IWatchQuerySpec | IWatchDashboardSpec, asset_spec: dg.AssetSpec) -> dg.AssetSpec:
            kind = "dashboards" if isinstance(spec, IWatchDashboardSpec) else "queries"
            return super().translate(spec, asset_spec).replace_attributes(group_name=kind)

    state = save_snapshot(snapshot, tmp_path / "state")
    component = Teams(connection=IWatchConnectionArgs(url="https://iwatch.example.com"))
    assert component.defs_state_config.key == "Teams[iwatch.example.com]"
    defs = component.build_defs_from_state(None, state)  # type: ignore[arg-type]  # the context is not used
    groups = {s.key.path[-1]: s.group_name for a in defs.assets or [] for s in a.specs}  # type: ignore[union-attr]
    assert groups["dashboard_chain_overview"] == "dashboards"
    assert groups["daily_prices"] == "queries"
    assert len(groups) == len(SEED_QUERIES) + 1


def test_the_readme_yaml_reference_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    match = re.search(r"```yaml\n(type: dagster_iwatch.IWatchWorkspaceComponent\n.*?)```", readme, re.DOTALL)
    assert match is not None
    monkeypatch.setenv("IWATCH_URL", "https://app.inverse.watch")
    monkeypatch.setenv("IWATCH_API_KEY", "unused")
    with create_defs_folder_sandbox() as box:
        path = box.defs_folder_path / "instance"
        path.mkdir()
        (path / "defs.yaml").write_text(match.group(1))
        with box.build_component_tree() as tree:
            component = tree.load_component(path)
    assert isinstance(component, IWatchWorkspaceComponent)
    assert component.selection.to_selector().name_pattern == "^daily"
    assert isinstance(component.queries[0].to_options().partitions_def, dg.DailyPartitionsDefinition)
    assert component.defs_state_config.key == "IWatchWorkspaceComponent[app.inverse.watch]"
