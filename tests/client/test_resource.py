"""IWatchResource: configuration, pickling, secrets out of repr, and use from a Dagster asset."""

from __future__ import annotations

import pickle
import re

import dagster as dg
import pytest

from dagster_iwatch.errors import ConfigError
from dagster_iwatch.local import LocalServer
from dagster_iwatch.resource import IWatchResource


def test_pickle_round_trip_and_repr_without_keys() -> None:
    resource = IWatchResource(
        base_url="https://example.com/org",
        api_key="user-secret",
        query_api_keys={"15": "query-secret"},
        request_timeout=30,
        max_retries=1,
        max_result_bytes=10_000,
    )
    copy = pickle.loads(pickle.dumps(resource))
    assert copy == resource
    assert copy.api_key == "user-secret"
    assert copy.query_api_keys == {"15": "query-secret"}
    assert copy.max_result_bytes == 10_000
    for text in (repr(resource), str(resource), repr(copy)):
        assert "user-secret" not in text
        assert "query-secret" not in text
        assert "https://example.com/org" in text


def test_env_var_survives_pickling() -> None:
    resource = IWatchResource(api_key=dg.EnvVar("IWATCH_API_KEY"))
    copy = pickle.loads(pickle.dumps(resource))
    assert isinstance(copy.__dict__["api_key"], dg.EnvVar)
    assert copy.__dict__["api_key"].env_var_name == "IWATCH_API_KEY"


def test_every_field_is_described() -> None:
    for name, field in IWatchResource.model_fields.items():
        assert field.description, name


def test_get_client_carries_the_settings(server: LocalServer) -> None:
    resource = IWatchResource(base_url=server.url + "/", api_key=server.user_api_key, job_timeout=30)
    with resource.get_client() as client:
        assert client.base_url == server.url
        assert repr(client) == f"IWatchClient(base_url={server.url!r})"
        assert client.execute(12).row_count == 5


def test_query_keys_by_string_id(server: LocalServer) -> None:
    resource = IWatchResource(base_url=server.url, query_api_keys={"15": server.query_api_key(15)})
    with resource.get_client() as client:
        assert client.execute(15, max_age=3600).row_count == 91 * 5
        with pytest.raises(ConfigError, match="user API key"):
            client.list_queries()


def test_query_key_that_is_not_an_id_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a query id"):
        IWatchResource(base_url="http://127.0.0.1:1", query_api_keys={"prices": "k"}).get_client()


def test_resource_in_an_asset_with_env_var(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IWATCH_TEST_API_KEY", server.user_api_key)

    @dg.asset
    def token_count(iwatch: IWatchResource) -> int:
        with iwatch.get_client() as client:
            return client.execute(12, max_age=3600).row_count

    result = dg.materialize(
        [token_count],
        resources={"iwatch": IWatchResource(base_url=server.url, api_key=dg.EnvVar("IWATCH_TEST_API_KEY"))},
    )
    assert result.success
    assert result.output_for_node("token_count") == 5


def test_progress_reaches_the_dagster_run_log_without_the_key(server: LocalServer) -> None:
    @dg.asset
    def transfers(iwatch: IWatchResource) -> str | None:
        with iwatch.get_client() as client:
            return client.execute(12).job_id

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [transfers],
        resources={"iwatch": IWatchResource(base_url=server.url, api_key=server.user_api_key)},
        instance=instance,
    )
    job_id = result.output_for_node("transfers")
    assert job_id
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    progress = [m for m in messages if job_id in m]
    assert any("queued" in m for m in progress)
    assert any(re.search(r"SUCCESS after \d+\.\ds", m) for m in progress)
    assert not any(server.user_api_key in m for m in messages)


def test_query_key_from_an_env_var(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IWATCH_TEST_QUERY_15_KEY", server.query_api_key(15))

    @dg.asset
    def prices(iwatch: IWatchResource) -> int:
        with iwatch.get_client() as client:
            return client.execute(15, max_age=3600).row_count

    resource = IWatchResource(base_url=server.url, query_api_keys={"15": dg.EnvVar("IWATCH_TEST_QUERY_15_KEY")})
    result = dg.materialize([prices], resources={"iwatch": resource})
    assert result.output_for_node("prices") == 91 * 5
