"""Workspace query assets run over HTTP: grouped in one subsettable step, or one step per query."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from dagster_iwatch import (
    IWatchParquetIOManager,
    IWatchQueryOptions,
    IWatchQuerySelector,
    IWatchResource,
    build_iwatch_workspace_definitions,
)
from dagster_iwatch.errors import ConfigError
from dagster_iwatch.local import LocalServer
from dagster_iwatch.state import InstanceSnapshot

KEYS = {
    q: dg.AssetKey(["iwatch", name]) for q, name in ((10, "broken_query"), (12, "token_list"), (15, "daily_prices"))
}


def definitions(snapshot: InstanceSnapshot, seeded: LocalServer, tmp_path: Path, **kwargs: object) -> dg.Definitions:
    workspace = build_iwatch_workspace_definitions(
        snapshot,
        selector=IWatchQuerySelector(ids=list(KEYS)),
        query_options=[
            IWatchQueryOptions(query_id=12, checks=["not_empty"]),
            IWatchQueryOptions(query_id=15, checks=["schema_unchanged"]),
        ],
        dashboards=False,
        **kwargs,  # type: ignore[arg-type]
    )
    resources = {
        "iwatch": IWatchResource(base_url=seeded.url, api_key=seeded.user_api_key),
        "io_manager": IWatchParquetIOManager(base_path=str(tmp_path)),
    }
    return dg.Definitions.merge(workspace, dg.Definitions(resources=resources))


def test_a_grouped_step_runs_the_selected_queries_and_a_failure_spares_the_others(
    snapshot: InstanceSnapshot, seeded: LocalServer, tmp_path: Path
) -> None:
    defs = definitions(snapshot, seeded, tmp_path)
    (group,) = {defs.resolve_assets_def(k) for k in KEYS.values()}
    assert group.can_subset
    job = defs.resolve_implicit_global_asset_job_def()

    seeded.clear_requests_seen()
    subset = job.execute_in_process(asset_selection=[KEYS[12]], raise_on_error=True)
    materialized = {e.asset_key for e in subset.get_asset_materialization_events()}
    assert materialized == {KEYS[12]}
    assert [c.check_name for c in subset.get_asset_check_evaluations()] == ["not_empty"]
    assert not any("/api/queries/15" in path for _, path in seeded.requests_seen)

    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(2):  # the second run compares the schema with the first's
            everything = job.execute_in_process(
                asset_selection=list(KEYS.values()), instance=instance, raise_on_error=False
            )
            assert not everything.success
            materialized = {e.asset_key for e in everything.get_asset_materialization_events()}
            assert materialized == {KEYS[12], KEYS[15]}
            (failure,) = [e for e in everything.all_events if e.is_step_failure]
            assert "iwatch/broken_query" in str(failure.step_failure_data.error)
            failed = failure.step_failure_data.user_failure_data.metadata["failed_assets"]  # type: ignore[union-attr]
            assert failed.value == ["iwatch/broken_query"]
        checks = {c.check_name: c for c in everything.get_asset_check_evaluations()}
        assert checks["schema_unchanged"].passed
        assert checks["schema_unchanged"].metadata["first_materialization"].value is False
        assert checks["not_empty"].passed


def test_per_query_layout_gives_one_step_per_query(
    snapshot: InstanceSnapshot, seeded: LocalServer, tmp_path: Path
) -> None:
    defs = definitions(snapshot, seeded, tmp_path, layout="per_query")
    assets = {defs.resolve_assets_def(k) for k in KEYS.values()}
    assert len(assets) == 3
    result = dg.materialize([defs.resolve_assets_def(KEYS[15])])
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [KEYS[15]]
    with pytest.raises(ConfigError, match="max_concurrency must be a positive integer"):
        build_iwatch_workspace_definitions(snapshot, step_concurrency=0)
    with pytest.raises(ConfigError, match="layout must be"):
        build_iwatch_workspace_definitions(snapshot, layout="flat")  # type: ignore[arg-type]
