"""The polling sensor records results refreshed outside Dagster, once, across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_iwatch import (
    IWatchClient,
    IWatchParquetIOManager,
    IWatchResource,
    build_iwatch_polling_sensor,
    build_iwatch_query_asset,
)
from dagster_iwatch.errors import ConfigError
from dagster_iwatch.local import LocalServer


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("sensor-local"), workers=1) as srv:
        yield srv


def tick(
    sensor: dg.SensorDefinition,
    srv: LocalServer,
    instance: dg.DagsterInstance,
    cursor: str | None,
    definitions: dg.Definitions | None = None,
) -> Any:
    """One evaluation, the way the daemon runs it."""
    resource = IWatchResource(base_url=srv.url, api_key=srv.user_api_key)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"iwatch": resource}, definitions=definitions
    ) as context:
        return sensor.evaluate_tick(context)


def observed(result: Any) -> list[tuple[str, int]]:
    return [(e.asset_key.to_user_string(), e.metadata["iwatch/query_result_id"].value) for e in result.asset_events]


def test_each_external_refresh_is_recorded_once_across_restarts(own_server: LocalServer, tmp_path: Path) -> None:
    transfers = build_iwatch_query_asset(1, key=["onchain", "transfers"])
    tokens = build_iwatch_query_asset(12, key=["onchain", "tokens"])
    watched = [transfers, tokens]
    with dg.DagsterInstance.ephemeral() as instance, IWatchClient(own_server.url, own_server.user_api_key) as client:
        # Dagster materializes the transfers: that result is its own, never recorded as external.
        dg.materialize(
            [transfers],
            instance=instance,
            resources={
                "iwatch": IWatchResource(base_url=own_server.url, api_key=own_server.user_api_key),
                "io_manager": IWatchParquetIOManager(base_path=str(tmp_path)),
            },
        )
        ours = client.get_query(1).latest_query_data_id
        assert ours is not None
        external = client.execute(12).id  # Inverse Watch's own refresh of the token list

        sensor = build_iwatch_polling_sensor(watched)
        first = tick(sensor, own_server, instance, None)
        assert observed(first) == [("onchain/tokens", external)]
        assert tick(sensor, own_server, instance, first.cursor).asset_events == []

        client.execute(1)  # refreshed outside Dagster now
        newer = client.get_query(1).latest_query_data_id
        restarted = build_iwatch_polling_sensor(watched)  # a new process: only the cursor survives
        second = tick(restarted, own_server, instance, first.cursor)
        assert observed(second) == [("onchain/transfers", newer)]
        assert tick(restarted, own_server, instance, second.cursor).asset_events == []


def test_a_tick_reads_at_most_its_budget_and_the_next_carries_on(own_server: LocalServer) -> None:
    watched = {q: ["iwatch", f"query_{q}"] for q in (1, 12, 13, 14, 15)}
    sensor = build_iwatch_polling_sensor(watched, max_requests_per_tick=2)
    with dg.DagsterInstance.ephemeral() as instance:
        own_server.clear_requests_seen()
        result = tick(sensor, own_server, instance, None)
        assert own_server.requests_seen == [("GET", "/api/queries/1"), ("GET", "/api/queries/12")]
        own_server.clear_requests_seen()
        result = tick(sensor, own_server, instance, result.cursor)
        assert own_server.requests_seen == [("GET", "/api/queries/13"), ("GET", "/api/queries/14")]
        own_server.clear_requests_seen()
        tick(sensor, own_server, instance, result.cursor)
        assert own_server.requests_seen == [("GET", "/api/queries/15"), ("GET", "/api/queries/1")]


def test_materialize_mode_requests_one_run_per_external_result(own_server: LocalServer) -> None:
    with dg.DagsterInstance.ephemeral() as instance, IWatchClient(own_server.url, own_server.user_api_key) as client:
        result_id = client.execute(15).id
        prices = build_iwatch_query_asset(15, key="prices", mode="cached")
        sensor = build_iwatch_polling_sensor([prices], on_refresh="materialize")
        resource = IWatchResource(base_url=own_server.url, api_key=own_server.user_api_key)
        definitions = dg.Definitions(assets=[prices], sensors=[sensor], resources={"iwatch": resource})
        result = tick(sensor, own_server, instance, None, definitions)
    (run,) = result.run_requests
    assert run.run_key == f"iwatch-15-{result_id}"
    assert run.asset_selection == [dg.AssetKey("prices")]
    assert not result.asset_events


def test_bad_sensor_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least one query asset"):
        build_iwatch_polling_sensor({})
    with pytest.raises(ConfigError, match="on_refresh"):
        build_iwatch_polling_sensor({1: "a"}, on_refresh="sync")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_requests_per_tick"):
        build_iwatch_polling_sensor({1: "a"}, max_requests_per_tick=0)
