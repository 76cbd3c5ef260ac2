"""Dashboard assets against the local server, on both flavors, over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from dagster_iwatch import IWatchClient, IWatchParquetIOManager, IWatchResource, build_iwatch_query_asset
from dagster_iwatch.dashboards import build_iwatch_dashboard_asset
from dagster_iwatch.errors import ConfigError
from dagster_iwatch.local import LocalServer

from .conftest import Runner

WEEK = (date(2024, 1, 1), date(2024, 1, 7))
FLAVORS = ["server", "redash_server"]


@pytest.fixture(params=FLAVORS)
def any_runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    """A runner against the inverse-watch server, then against the Redash-flavored one."""
    srv: LocalServer = request.getfixturevalue(request.param)
    with dg.DagsterInstance.ephemeral() as instance:
        yield Runner(srv, tmp_path / "parquet", instance)


def query_assets() -> tuple[dg.AssetsDefinition, dg.AssetsDefinition]:
    """The assets of the two queries the seeded dashboard shows."""
    return build_iwatch_query_asset(15), build_iwatch_query_asset(5, parameters={"period": WEEK})


def server_dashboard(srv: LocalServer, slug: str = "chain-overview") -> dict[str, Any]:
    """The dashboard's JSON as the server sends it, by slug on either flavor (Redash wants ``?legacy`` for that)."""
    response = requests.get(
        f"{srv.url}/api/dashboards/{slug}",
        params={"legacy": ""} if srv.flavor == "redash" else None,
        headers={"Authorization": f"Key {srv.user_api_key}"},
        timeout=10,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def expected_rows(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per widget, read straight from the server's JSON."""
    rows = []
    for widget in dashboard["widgets"]:
        viz = widget.get("visualization")
        rows.append(
            {
                "widget_id": widget["id"],
                "kind": "visualization" if viz else "text",
                "visualization_id": viz["id"] if viz else None,
                "visualization_name": viz["name"] if viz else None,
                "visualization_type": viz["type"] if viz else None,
                "query_id": viz["query"]["id"] if viz else None,
                "query_name": viz["query"]["name"] if viz else None,
                "text": (widget["text"] or None) if viz else widget["text"],
            }
        )
    return rows


def dashboard_materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dg.AssetMaterialization:
    (materialization,) = [e.materialization for e in result.get_asset_materialization_events() if e.asset_key == key]
    return materialization


def check_evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "queries_upstream"]
    return evaluation


def test_building_makes_no_request_and_draws_lineage_from_the_query_assets(server: LocalServer, tmp_path: Path) -> None:
    prices, volume = query_assets()
    by_slug = build_iwatch_dashboard_asset("chain-overview", deps=[prices, volume], checks=["queries_upstream"])
    by_id = build_iwatch_dashboard_asset(
        1, deps=[prices.key, ["other", "asset"]], group_name="boards", owners=["team:data"]
    )
    resources = {
        "iwatch": IWatchResource(base_url=server.url, api_key=server.user_api_key),
        "io_manager": IWatchParquetIOManager(base_path=str(tmp_path)),
    }
    defs = dg.Definitions(assets=[prices, volume, by_slug, by_id], resources=resources)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()

    assert server.requests_seen == []
    assert by_slug.key == dg.AssetKey(["iwatch", "dashboard_chain_overview"])
    assert by_id.key == dg.AssetKey(["iwatch", "dashboard_1"])
    assert graph.get(by_slug.key).parent_keys == {prices.key, volume.key}
    assert by_id.asset_deps[by_id.key] == {prices.key, dg.AssetKey(["other", "asset"])}
    spec = by_slug.specs_by_key[by_slug.key]
    assert spec.kinds == {"iwatch", "parquet"}
    assert spec.metadata["iwatch/dashboard_slug"] == "chain-overview"
    assert by_id.specs_by_key[by_id.key].metadata["iwatch/dashboard_id"] == 1
    assert by_id.specs_by_key[by_id.key].group_name == "boards"
    assert by_id.specs_by_key[by_id.key].owners == ["team:data"]
    assert [c.name for c in by_slug.check_specs] == ["queries_upstream"]
    assert list(by_id.check_specs) == []


def test_dashboard_asset_stores_one_row_per_widget_after_its_query_assets(any_runner: Runner) -> None:
    prices, volume = query_assets()
    dashboard = build_iwatch_dashboard_asset("chain-overview", deps=[prices, volume], checks=["queries_upstream"])

    result = any_runner.materialize([prices, volume, dashboard])

    materialization = dashboard_materialization(result, dashboard.key)
    table = pq.read_table(str(materialization.metadata["dagster/uri"].value))
    served = server_dashboard(any_runner.server)
    assert table.to_pylist() == expected_rows(served)
    assert [w["visualization"]["query"]["id"] for w in served["widgets"] if "visualization" in w] == [15, 5]
    assert table.schema.field("widget_id").type == pa.int64()
    assert table.schema.field("visualization_id").type == pa.int64()
    assert table.schema.field("query_id").type == pa.int64()
    assert table.schema.field("kind").type == pa.string()
    assert table.schema.metadata[b"iwatch.dashboard_slug"] == b"chain-overview"

    metadata = materialization.metadata
    assert metadata["dagster/row_count"].value == len(served["widgets"]) == 3
    schema = metadata["dagster/column_schema"].value
    assert [(c.name, c.type) for c in schema.columns] == [
        ("widget_id", "integer"),
        ("kind", "string"),
        ("visualization_id", "integer"),
        ("visualization_name", "string"),
        ("visualization_type", "string"),
        ("query_id", "integer"),
        ("query_name", "string"),
        ("text", "string"),
    ]
    assert metadata["iwatch/dashboard_id"].value == served["id"] == 1
    assert metadata["iwatch/dashboard_slug"].value == served["slug"]
    assert metadata["iwatch/dashboard_name"].value == served["name"]
    assert metadata["iwatch/query_ids"].value == [15, 5]
    assert metadata["iwatch/tags"].value == served["tags"]
    assert "| widget_id | kind |" in metadata["iwatch/preview"].value
    # Both upstream query assets ran first in the same run, so the dashboard records their versions as inputs.
    assert {f"dagster/input_data_version/{a.key.to_user_string()}" for a in (prices, volume)} <= set(
        materialization.tags
    )

    evaluation = check_evaluation(result)
    assert evaluation.passed
    assert evaluation.metadata["missing_query_ids"].value == []
    assert evaluation.metadata["upstream_query_ids"].value == [5, 15]


@pytest.mark.parametrize("ref", ["chain-overview", 1])
def test_dashboard_by_slug_or_id_on_either_flavor(any_runner: Runner, ref: str | int) -> None:
    dashboard = build_iwatch_dashboard_asset(ref, key="board")

    materialization = dashboard_materialization(any_runner.materialize([dashboard]), dashboard.key)

    table = pq.read_table(str(materialization.metadata["dagster/uri"].value))
    assert table.to_pylist() == expected_rows(server_dashboard(any_runner.server))
    assert materialization.metadata["iwatch/dashboard_id"].value == 1


def test_queries_upstream_check_lists_the_queries_without_an_upstream_asset(runner: Runner) -> None:
    prices, volume = query_assets()

    def evaluate(*deps: Any) -> dg.AssetCheckEvaluation:
        asset = build_iwatch_dashboard_asset("chain-overview", deps=deps, checks=["queries_upstream"])
        return check_evaluation(runner.materialize([asset]))

    only_prices = evaluate(prices)
    assert not only_prices.passed
    assert only_prices.severity == dg.AssetCheckSeverity.WARN
    assert only_prices.metadata["missing_query_ids"].value == [5]
    assert only_prices.metadata["dashboard_query_ids"].value == [15, 5]

    bare_keys = evaluate(prices.key, volume.key)
    assert bare_keys.metadata["missing_query_ids"].value == [15, 5]
    assert bare_keys.metadata["unmatched_deps"].value == ["iwatch/query_15", "iwatch/query_5"]

    volume_spec = dg.AssetSpec(["elsewhere", "volume"], metadata={"iwatch/query_id": 5})
    specs = evaluate(prices.specs_by_key[prices.key], volume_spec)
    assert specs.passed
    assert specs.metadata["unmatched_deps"].value == []


def test_data_version_follows_the_widgets(server: LocalServer, runner: Runner) -> None:
    with IWatchClient(server.url, server.user_api_key) as client:
        board = client.create_dashboard(f"Dashboard asset {uuid.uuid4().hex[:8]}")
    try:
        asset = build_iwatch_dashboard_asset(board.slug)

        def materialize() -> dg.AssetMaterialization:
            return dashboard_materialization(runner.materialize([asset]), asset.key)

        empty = materialize()
        assert empty.metadata["dagster/row_count"].value == 0
        assert pq.read_table(str(empty.metadata["dagster/uri"].value)).column_names[0] == "widget_id"
        assert materialize().tags["dagster/data_version"] == empty.tags["dagster/data_version"]

        requests.post(
            f"{server.url}/api/widgets",
            json={"dashboard_id": board.id, "visualization_id": None, "text": "hello", "options": {}, "width": 1},
            headers={"Authorization": f"Key {server.user_api_key}"},
            timeout=10,
        ).raise_for_status()
        with_text = materialize()
        assert with_text.tags["dagster/data_version"] != empty.tags["dagster/data_version"]
        table = pq.read_table(str(with_text.metadata["dagster/uri"].value))
        assert table.select(["kind", "text", "query_id"]).to_pylist() == [
            {"kind": "text", "text": "hello", "query_id": None}
        ]
        assert with_text.metadata["iwatch/query_ids"].value == []
    finally:
        with IWatchClient(server.url, server.user_api_key) as client:
            client.archive_dashboard(board.id)


@pytest.mark.parametrize("ref", ["no-such-board", 999999])
def test_missing_dashboard_fails_clearly(any_runner: Runner, ref: str | int) -> None:
    asset = build_iwatch_dashboard_asset(ref, checks=["queries_upstream"])

    result = any_runner.materialize([asset], raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data
    assert data.error is not None
    said = f"Failure: Inverse Watch dashboard {ref!r}: NotFoundError: dashboard {ref} does not exist or is not visible"
    assert said in data.error.message
    assert data.user_failure_data is not None
    label = "iwatch/dashboard_id" if isinstance(ref, int) else "iwatch/dashboard_slug"
    assert data.user_failure_data.metadata[label].value == ref
    assert result.get_asset_materialization_events() == []


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("",), {}, "slug_or_id"),
        ((0,), {}, "slug_or_id"),
        ((True,), {}, "slug_or_id"),
        ((1,), {"checks": "queries_upstream"}, "not a string"),
        ((1,), {"checks": ["fresh"]}, "unknown dashboard checks"),
        ((1,), {"deps": "iwatch/query_15"}, "not a string"),
    ],
)
def test_bad_arguments_raise_config_error(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_iwatch_dashboard_asset(*args, **kwargs)


def test_a_dashboard_spec_and_a_translator_spell_the_asset_like_a_query_spec() -> None:
    from dagster_iwatch import IWatchDashboardSpec, IWatchDashboardTranslator, build_iwatch_dashboard_asset
    from dagster_iwatch.errors import ConfigError

    def grouped(spec: IWatchDashboardSpec, default: dg.AssetSpec) -> dg.AssetSpec:
        return default.replace_attributes(group_name=f"boards_{spec.slug_or_id}".replace("-", "_"))

    board = IWatchDashboardSpec("chain-overview", deps=[["onchain", "prices"]])
    asset = build_iwatch_dashboard_asset(board, translator=grouped)
    (spec,) = asset.specs
    assert spec.key == dg.AssetKey(["iwatch", "dashboard_chain_overview"])
    assert spec.group_name == "boards_chain_overview"
    assert [d.asset_key for d in spec.deps] == [dg.AssetKey(["onchain", "prices"])]

    class Prefixed(IWatchDashboardTranslator):
        def get_asset_key(self, spec: IWatchDashboardSpec) -> dg.AssetKey:
            return super().get_asset_key(spec).with_prefix("bi")

    prefixed = build_iwatch_dashboard_asset(IWatchDashboardSpec(3), translator=Prefixed())
    assert prefixed.key == dg.AssetKey(["bi", "iwatch", "dashboard_3"])
    with pytest.raises(ConfigError, match="either an IWatchDashboardSpec or its fields"):
        build_iwatch_dashboard_asset(IWatchDashboardSpec(3), group_name="x")
    with pytest.raises(ConfigError, match="unknown dashboard checks"):
        IWatchDashboardSpec(3, checks=["nope"])
