from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_iwatch import (
    IWatchClient,
    IWatchQuerySpec,
    IWatchResource,
    IWatchTranslator,
    build_iwatch_query_asset,
    build_iwatch_query_assets,
)
from dagster_iwatch.errors import ConfigError
from dagster_iwatch.metadata import UNAVAILABLE

from .conftest import Runner


def materializations(result: dg.ExecuteInProcessResult) -> list[dg.AssetMaterialization]:
    return [e.materialization for e in result.get_asset_materialization_events()]


def only_materialization(result: dg.ExecuteInProcessResult) -> dg.AssetMaterialization:
    (materialization,) = materializations(result)
    return materialization


def parquet_of(materialization: dg.AssetMaterialization) -> tuple[Path, pa.Table]:
    path = Path(str(materialization.metadata["dagster/uri"].value))
    return path, pq.read_table(path)


def server_rows(server: Any, result_id: int) -> tuple[list[Any], list[dict[str, Any]]]:
    """The result as the server sends it, with dates and datetimes parsed by their declared column type."""
    with IWatchClient(server.url, server.user_api_key) as client:
        result = client.get_query_result(result_id)
    kinds = {c.name: c.type for c in result.columns}
    rows = []
    for row in result.rows:
        parsed = {}
        for name, value in row.items():
            if value is not None and kinds[name] == "datetime":
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            elif value is not None and kinds[name] == "date":
                value = date.fromisoformat(value)
            parsed[name] = value
        rows.append(parsed)
    return list(result.columns), rows


ARROW_TYPES = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


def assert_same_as_server(server: Any, materialization: dg.AssetMaterialization) -> pa.Table:
    """The materialized Parquet file holds the server's result: same columns, values, and typed by column type."""
    _, table = parquet_of(materialization)
    columns, rows = server_rows(server, int(materialization.metadata["iwatch/query_result_id"].value))
    assert table.column_names == [c.name for c in columns]
    assert [table.schema.field(c.name).type for c in columns] == [ARROW_TYPES[c.type or "string"] for c in columns]
    assert table.to_pylist() == rows
    return table


def test_plain_query_asset_writes_typed_parquet_equal_to_the_server_result(runner: Runner) -> None:
    asset = build_iwatch_query_asset(1)
    assert asset.key == dg.AssetKey(["iwatch", "query_1"])

    materialization = only_materialization(runner.materialize([asset]))
    path, table = parquet_of(materialization)

    assert path.is_relative_to(runner.base_path)
    result_id = int(materialization.metadata["iwatch/query_result_id"].value)
    columns, rows = server_rows(runner.server, result_id)
    assert table.column_names == [c.name for c in columns]
    assert table.to_pylist() == rows
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("block_time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("block_date").type == pa.date32()
    assert table.schema.field("amount").type == pa.float64()
    assert table.schema.field("is_contract").type == pa.bool_()
    assert table.schema.field("token").type == pa.string()

    kv = {k.decode(): v.decode() for k, v in pq.read_schema(path).metadata.items()}
    assert kv["iwatch.query_id"] == "1"
    assert kv["iwatch.query_result_id"] == str(result_id)
    assert datetime.fromisoformat(kv["iwatch.retrieved_at"]).tzinfo is not None
    assert json.loads(kv["iwatch.parameters"]) == {}
    assert json.loads(kv["iwatch.column_types"]) == {c.name: c.type for c in columns}


def test_materialization_metadata(runner: Runner) -> None:
    materialization = only_materialization(runner.materialize([build_iwatch_query_asset(2)]))
    metadata = materialization.metadata
    _, table = parquet_of(materialization)

    assert metadata["dagster/row_count"].value == table.num_rows > 0
    schema = metadata["dagster/column_schema"].value
    columns, _ = server_rows(runner.server, int(metadata["iwatch/query_result_id"].value))
    assert [(c.name, c.type) for c in schema.columns] == [(c.name, c.type or "string") for c in columns]
    assert ("amount", "float") in [(c.name, c.type) for c in schema.columns]
    assert metadata["iwatch/query_url"].value == f"{runner.server.url}/queries/2"
    assert metadata["iwatch/query_id"].value == 2
    assert metadata["iwatch/from_cache"].value is False
    assert metadata["iwatch/mode"].value == "execute"
    assert metadata["iwatch/parameters"].value == {"min_amount": 100}
    assert metadata["iwatch/job_id"].value
    assert isinstance(metadata["iwatch/runtime_seconds"].value, float)
    retrieved = datetime.fromtimestamp(metadata["iwatch/retrieved_at"].value, tz=UTC)
    assert abs(datetime.now(UTC) - retrieved) < timedelta(minutes=5)
    assert len(metadata["iwatch/sql_hash"].value) == 16
    assert metadata["iwatch/query_name"].value == "Transfers above min amount"
    preview = metadata["iwatch/preview"].value
    assert preview.splitlines()[0] == "| " + " | ".join(c.name for c in columns) + " |"
    assert f"5 of {table.num_rows} rows" in preview


def test_static_parameters_reach_the_query(runner: Runner) -> None:
    asset = build_iwatch_query_asset(2, key="big_transfers", parameters={"min_amount": 2500})
    materialization = only_materialization(runner.materialize([asset]))
    table = assert_same_as_server(runner.server, materialization)

    assert table.num_rows > 0
    assert min(table.column("amount").to_pylist()) >= 2500
    assert materialization.metadata["iwatch/parameters"].value == {"min_amount": 2500}


def test_daily_partitions_fill_a_date_range_over_a_backfill(runner: Runner) -> None:
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")
    asset = build_iwatch_query_asset(5, partitions_def=daily, partition_parameter="period")
    days = ["2024-03-05", "2024-03-06", "2024-03-07"]

    paths = set()
    for day in days:
        materialization = only_materialization(runner.materialize([asset], partition_key=day))
        path, _ = parquet_of(materialization)
        table = assert_same_as_server(runner.server, materialization)
        paths.add(path)
        assert materialization.partition == day
        assert path.name == f"{day}.parquet"
        assert table.num_rows > 0
        assert set(table.column("block_date").to_pylist()) == {date.fromisoformat(day)}
        assert materialization.metadata["iwatch/parameters"].value == {"period": {"start": day, "end": day}}
        kv = pq.read_schema(path).metadata
        assert json.loads(kv[b"iwatch.parameters"]) == {"period": {"start": day, "end": day}}
    assert len(paths) == len(days)
    assert all(p.exists() for p in paths)


def test_exclusive_range_end_is_switchable(runner: Runner) -> None:
    monthly = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")
    inclusive = build_iwatch_query_asset(5, key="inclusive", partitions_def=monthly, partition_parameter="period")
    exclusive = build_iwatch_query_asset(
        5, key="exclusive", partitions_def=monthly, partition_parameter="period", range_end="exclusive"
    )
    result = runner.materialize([inclusive, exclusive], partition_key="2024-02-01")
    by_key = {m.asset_key.to_user_string(): m for m in materializations(result)}

    assert by_key["inclusive"].metadata["iwatch/parameters"].value == {
        "period": {"start": "2024-02-01", "end": "2024-02-29"}
    }
    assert by_key["exclusive"].metadata["iwatch/parameters"].value == {
        "period": {"start": "2024-02-01", "end": "2024-03-01"}
    }
    _, table = parquet_of(by_key["inclusive"])
    assert max(table.column("block_date").to_pylist()) == date(2024, 2, 29)


def test_static_partitions_fill_an_enum_parameter(runner: Runner) -> None:
    tokens = dg.StaticPartitionsDefinition(["ETH", "WBTC"])
    asset = build_iwatch_query_asset(7, partitions_def=tokens, partition_parameter="token")
    for token in ("ETH", "WBTC"):
        materialization = only_materialization(runner.materialize([asset], partition_key=token))
        path, _ = parquet_of(materialization)
        table = assert_same_as_server(runner.server, materialization)
        assert path.name == {"ETH": "!e!t!h.parquet", "WBTC": "!w!b!t!c.parquet"}[token]
        assert table.num_rows > 0
        assert set(table.column("token").to_pylist()) == {token}


def test_multi_partitions_fill_a_date_and_an_enum(runner: Runner) -> None:
    with IWatchClient(runner.server.url, runner.server.user_api_key) as client:
        query = client.create_query(
            name="Token transfers on day",
            query="select id, token, block_date from transfers "
            "where block_date = '{{ day }}' and token = '{{ token }}' order by id",
            data_source_id=1,
            parameters=[
                {"name": "day", "title": "Day", "type": "date", "value": "2024-01-01"},
                {
                    "name": "token",
                    "title": "Token",
                    "type": "enum",
                    "enumOptions": "ETH\nUSDC\nWBTC\nDAI\nLINK",
                    "value": "ETH",
                },
            ],
        )
    partitions = dg.MultiPartitionsDefinition(
        {
            "day": dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01"),
            "token": dg.StaticPartitionsDefinition(["DAI", "LINK"]),
        }
    )
    asset = build_iwatch_query_asset(
        query.id, partitions_def=partitions, partition_parameter={"day": "day", "token": "token"}
    )
    key = dg.MultiPartitionKey({"day": "2024-02-10", "token": "LINK"})
    materialization = only_materialization(runner.materialize([asset], partition_key=key))
    _, table = parquet_of(materialization)

    assert table.num_rows > 0
    assert set(table.column("token").to_pylist()) == {"LINK"}
    assert set(table.column("block_date").to_pylist()) == {date(2024, 2, 10)}


def test_callable_partition_parameter(runner: Runner) -> None:
    weekly = dg.WeeklyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")

    def last_day_price(context: dg.AssetExecutionContext) -> dict[str, Any]:
        return {"day": context.partition_time_window.end.date() - timedelta(days=1)}

    asset = build_iwatch_query_asset(4, partitions_def=weekly, partition_parameter=last_day_price)
    materialization = only_materialization(runner.materialize([asset], partition_key="2024-01-07"))
    assert materialization.metadata["iwatch/parameters"].value == {"day": "2024-01-13"}


def test_data_version_follows_the_content(runner: Runner) -> None:
    plain = build_iwatch_query_asset(2, key="versioned", parameters={"min_amount": 2000})

    def version(result: dg.ExecuteInProcessResult) -> str:
        return only_materialization(result).tags["dagster/data_version"]

    first = version(runner.materialize([plain]))
    second = version(runner.materialize([plain]))
    other = build_iwatch_query_asset(2, key="versioned", parameters={"min_amount": 3000})
    third = version(runner.materialize([other]))

    assert first == second
    assert third != first


def test_cached_mode_reads_the_latest_result_without_running_the_query(runner: Runner) -> None:
    runner.materialize([build_iwatch_query_asset(12, key="tokens_executed")])
    before = len(runner.server.requests_seen)

    cached = build_iwatch_query_asset(12, key="tokens_cached", mode="cached")
    materialization = only_materialization(runner.materialize([cached]))
    _, table = parquet_of(materialization)

    posts = [r for r in runner.server.requests_seen[before:] if r[0] == "POST"]
    assert posts == []
    assert materialization.metadata["iwatch/mode"].value == "cached"
    assert materialization.metadata["iwatch/from_cache"].value is True
    assert table.column("token").to_pylist() == ["DAI", "ETH", "LINK", "USDC", "WBTC"]


def test_max_age_reuses_a_cached_result(runner: Runner) -> None:
    fresh = build_iwatch_query_asset(12, key="tokens_fresh")
    reuse = build_iwatch_query_asset(12, key="tokens_reuse", max_age=3600)
    first = only_materialization(runner.materialize([fresh]))
    second = only_materialization(runner.materialize([reuse]))

    assert second.metadata["iwatch/from_cache"].value is True
    assert second.metadata["iwatch/query_result_id"].value == first.metadata["iwatch/query_result_id"].value


def test_checks_pass_and_fail(runner: Runner) -> None:
    spec = dict(checks=["not_empty", "schema_unchanged", "fresh"], max_result_age=timedelta(hours=1))
    full = build_iwatch_query_asset(12, key="checked", **spec)
    empty = build_iwatch_query_asset(14, key="checked_empty", **spec)

    first = runner.materialize([full, empty], raise_on_error=False)
    results = {(e.asset_key.to_user_string(), e.check_name): e for e in first.get_asset_check_evaluations()}
    assert results[("checked", "not_empty")].passed
    assert not results[("checked_empty", "not_empty")].passed
    assert results[("checked", "schema_unchanged")].passed
    assert results[("checked", "fresh")].passed

    changed = build_iwatch_query_asset(15, key="checked", **spec)
    second = runner.materialize([changed], raise_on_error=False)
    schema_check = next(e for e in second.get_asset_check_evaluations() if e.check_name == "schema_unchanged")
    assert not schema_check.passed
    assert "added price (float)" in schema_check.metadata["changes"].value


def test_failed_query_keeps_the_previous_file(runner: Runner) -> None:
    good = build_iwatch_query_asset(12, key="kept")
    path, _ = parquet_of(only_materialization(runner.materialize([good])))
    content = path.read_bytes()

    broken = build_iwatch_query_asset(10, key="kept")
    result = runner.materialize([broken], raise_on_error=False)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "QueryExecutionError" in failure.message
    assert path.read_bytes() == content
    assert [p.name for p in path.parent.iterdir() if p.name != ".iwatch-staging"] == [path.name]
    # The run streamed into the base path's staging folder (a rename away from the file), and left nothing there.
    assert list((path.parent / ".iwatch-staging").iterdir()) == []


def test_unknown_partition_parameter_fails_before_running_anything(runner: Runner) -> None:
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")
    asset = build_iwatch_query_asset(5, partitions_def=daily, partition_parameter="no_such_parameter")
    before = len(runner.server.requests_seen)

    result = runner.materialize([asset], partition_key="2024-01-02", raise_on_error=False)

    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "no_such_parameter" in message
    assert "period" in message
    assert [r for r in runner.server.requests_seen[before:] if r[0] == "POST"] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partitions_def": dg.DailyPartitionsDefinition(start_date="2024-01-01")}, "partition_parameter"),
        ({"partition_parameter": "day"}, "no partitions_def"),
        ({"mode": "cached", "parameters": {"day": "2024-01-01"}}, "mode='cached'"),
        ({"checks": ["not_empty", "bogus"]}, "unknown asset checks"),
        ({"checks": "not_empty"}, r"a list of check names, e.g. \['not_empty'\]"),
        ({"checks": ["fresh"]}, "max_result_age"),
        ({"max_age": -1}, "max_age"),
        ({"mode": "sometimes"}, "mode"),
        (
            {
                "partitions_def": dg.DailyPartitionsDefinition(start_date="2024-01-01"),
                "partition_parameter": "period",
                "parameters": {"period": {"start": "2024-01-01", "end": "2024-01-02"}},
            },
            r"\['period'\] are both static and filled by the partition",
        ),
        (
            {
                "partitions_def": dg.MultiPartitionsDefinition(
                    {
                        "day": dg.DailyPartitionsDefinition(start_date="2024-01-01"),
                        "token": dg.StaticPartitionsDefinition(["ETH"]),
                    }
                ),
                "partition_parameter": {"day": "day", "token": "token"},
                "parameters": {"token": "DAI"},
            },
            r"\['token'\] are both static and filled by the partition",
        ),
    ],
)
def test_inconsistent_specs_are_refused_at_definition_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_iwatch_query_asset(4, **kwargs)


def test_build_many_assets_with_translator_rules(runner: Runner) -> None:
    class Onchain(IWatchTranslator):
        def get_asset_spec(self, spec: IWatchQuerySpec) -> dg.AssetSpec:
            return super().get_asset_spec(spec).replace_attributes(group_name="onchain")

    assets = build_iwatch_query_assets(
        [12, IWatchQuerySpec(query_id=15, name="Daily prices", owners=["team:data"], tags={"tier": "gold"})],
        translator=Onchain(),
    )
    specs = {s.key: s for a in assets for s in a.specs}
    prices = specs[dg.AssetKey(["iwatch", "daily_prices"])]
    assert set(specs) == {dg.AssetKey(["iwatch", "query_12"]), dg.AssetKey(["iwatch", "daily_prices"])}
    assert all(s.group_name == "onchain" for s in specs.values())
    assert prices.owners == ["team:data"]
    assert prices.tags["tier"] == "gold"
    assert prices.kinds == {"iwatch", "parquet"}
    assert len(materializations(runner.materialize(assets))) == 2

    def by_tag(spec: IWatchQuerySpec, default: dg.AssetSpec) -> dg.AssetSpec:
        return default.replace_attributes(key=["prices", *default.key.path[1:]], group_name="by_function")

    (renamed,) = build_iwatch_query_assets([15], translator=by_tag)
    assert renamed.key == dg.AssetKey(["prices", "query_15"])
    assert renamed.specs_by_key[renamed.key].group_name == "by_function"

    with pytest.raises(ConfigError, match="distinct keys"):
        build_iwatch_query_assets([12, IWatchQuerySpec(query_id=13, key=["iwatch", "query_12"])])


def test_definitions_load_without_any_request(runner: Runner) -> None:
    before = len(runner.server.requests_seen)
    defs = dg.Definitions(assets=build_iwatch_query_assets([1, 2, 3]), resources=runner.resources())
    specs = defs.resolve_all_asset_specs()
    assert {s.key for s in specs} == {dg.AssetKey(["iwatch", f"query_{i}"]) for i in (1, 2, 3)}
    defs.resolve_implicit_global_asset_job_def()
    assert runner.server.requests_seen[before:] == []


def test_a_spec_and_spec_fields_together_are_refused() -> None:
    spec = IWatchQuerySpec(query_id=12, key="from_spec")
    assert build_iwatch_query_asset(spec).key == dg.AssetKey("from_spec")
    with pytest.raises(ConfigError, match=r"\['group_name', 'key'\]"):
        build_iwatch_query_asset(spec, key="ignored", group_name="ignored")
    with pytest.raises(ConfigError, match=r"\['max_age'\]"):
        build_iwatch_query_asset(spec, max_age=60)


def test_translator_attributes_reach_the_asset(runner: Runner) -> None:
    freshness = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))

    def versioned(spec: IWatchQuerySpec, default: dg.AssetSpec) -> dg.AssetSpec:
        return default.replace_attributes(code_version="sql-v2", description="Token list", freshness_policy=freshness)

    asset = build_iwatch_query_asset(12, key="tokens_versioned", translator=versioned, io_manager_key="parquet")
    assert asset.code_versions_by_key[asset.key] == "sql-v2"
    assert asset.specs_by_key[asset.key].description == "Token list"
    assert asset.specs_by_key[asset.key].freshness_policy == freshness

    resources = runner.resources()
    resources["parquet"] = resources.pop("io_manager")
    result = dg.materialize([asset], resources=resources, instance=runner.instance)
    path, table = parquet_of(only_materialization(result))
    assert path == runner.base_path / "tokens_versioned.parquet"
    assert table.num_rows == 5


def test_retry_policy_retries_passing_troubles_only(runner: Runner) -> None:
    policy = dg.RetryPolicy(max_retries=2)
    flaky = build_iwatch_query_asset(12, key="flaky", retry_policy=policy, pool="iwatch")
    assert flaky.op.pool == "iwatch"
    runner.server.inject_fault(status=500, method="POST", path_prefix="/api/queries/12/results", times=1)

    result = runner.materialize([flaky])
    restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert len(restarts) == 1
    assert only_materialization(result).metadata["dagster/row_count"].value == 5

    broken = build_iwatch_query_asset(10, key="broken", retry_policy=policy)
    failed = runner.materialize([broken], raise_on_error=False)
    assert not failed.success
    assert [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED] == []
    runs = [r for r in runner.server.requests_seen if r == ("POST", "/api/queries/10/results")]
    assert len(runs) == 1


def test_a_literal_bad_base_url_is_refused_when_the_resource_is_defined() -> None:
    with pytest.raises(ConfigError, match="base_url must be an http"):
        IWatchResource(base_url="127.0.0.1:5255")


def test_a_misconfigured_resource_fails_once_without_retries(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = build_iwatch_query_asset(12, key="misconfigured", retry_policy=dg.RetryPolicy(max_retries=2))
    resources = runner.resources()
    monkeypatch.setenv("IWATCH_TEST_BAD_URL", "ftp://example.invalid")
    resources["iwatch"] = IWatchResource(base_url=dg.EnvVar("IWATCH_TEST_BAD_URL"), api_key="unused")

    result = dg.materialize([asset], resources=resources, instance=runner.instance, raise_on_error=False)

    assert not result.success
    assert [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED] == []
    # The resolved URL is checked when the resource is set up, before any step runs a query.
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE]
    assert failure.engine_event_data.error.cls_name == "ConfigError"
    assert "base_url must be an http" in failure.engine_event_data.error.message
    assert result.get_step_success_events() == []


def test_hourly_partitions_fill_a_datetime_range_up_to_the_last_unit_inside_the_window(runner: Runner) -> None:
    with IWatchClient(runner.server.url, runner.server.user_api_key) as client:
        minutes = client.get_query(16)
        seconds = client.create_query(
            name="Transfers in window, to the second",
            query=minutes.query,
            data_source_id=1,
            parameters=[
                {
                    "name": "window",
                    "title": "Window",
                    "type": "datetime-range-with-seconds",
                    "value": {"start": "2024-01-01 00:00:00", "end": "2024-01-01 23:59:59"},
                }
            ],
        )
    hourly = dg.HourlyPartitionsDefinition(start_date="2024-01-01-00:00", end_date="2024-04-01-00:00")
    assets = [
        build_iwatch_query_asset(16, key="to_minute", partitions_def=hourly, partition_parameter="window"),
        build_iwatch_query_asset(seconds.id, key="to_second", partitions_def=hourly, partition_parameter="window"),
        build_iwatch_query_asset(
            16, key="to_end", partitions_def=hourly, partition_parameter="window", range_end="exclusive"
        ),
    ]
    result = runner.materialize(assets, partition_key="2024-01-05-10:00")
    by_key = {m.asset_key.to_user_string(): m for m in materializations(result)}

    def window(key: str) -> Any:
        return by_key[key].metadata["iwatch/parameters"].value["window"]

    assert window("to_minute") == {"start": "2024-01-05 10:00", "end": "2024-01-05 10:59"}
    assert window("to_second") == {"start": "2024-01-05 10:00:00", "end": "2024-01-05 10:59:59"}
    assert window("to_end") == {"start": "2024-01-05 10:00", "end": "2024-01-05 11:00"}
    table = assert_same_as_server(runner.server, by_key["to_second"])
    start = datetime(2024, 1, 5, 10, tzinfo=UTC)
    assert table.num_rows > 0
    assert all(start <= t < start + timedelta(hours=1) for t in table.column("block_time").to_pylist())


def test_cached_mode_works_with_only_the_query_key_and_never_shows_it(runner: Runner) -> None:
    runner.materialize([build_iwatch_query_asset(12, key="tokens_warm")])
    query_key = runner.server.query_api_key(12)
    resources = runner.resources()
    resources["iwatch"] = IWatchResource(base_url=runner.server.url, query_api_keys={"12": query_key})

    cached = build_iwatch_query_asset(12, key="tokens_by_query_key", mode="cached")
    result = dg.materialize([cached], resources=resources, instance=runner.instance)

    materialization = only_materialization(result)
    assert materialization.metadata["iwatch/mode"].value == "cached"
    assert assert_same_as_server(runner.server, materialization).num_rows == 5
    assert all(query_key not in str(event) for event in result.all_events)
    assert query_key not in str(pq.read_schema(parquet_of(materialization)[0]).metadata)


def test_fresh_check_fails_for_a_result_older_than_allowed(runner: Runner) -> None:
    runner.materialize([build_iwatch_query_asset(12, key="tokens_run")])
    stale = build_iwatch_query_asset(
        12, key="tokens_stale", mode="cached", checks=["fresh"], max_result_age=timedelta(microseconds=1)
    )

    result = runner.materialize([stale], raise_on_error=False)

    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "fresh"
    assert not evaluation.passed
    assert evaluation.metadata["result_age_seconds"].value > evaluation.metadata["max_result_age_seconds"].value


def test_provenance_a_query_keys_cached_answer_leaves_out_is_marked_unavailable(runner: Runner) -> None:
    warm = build_iwatch_query_asset(2, key="amounts_warm", parameters={"min_amount": 2650})
    runner.materialize([warm])
    resources = runner.resources()
    resources["iwatch"] = IWatchResource(base_url=runner.server.url, api_key=runner.server.query_api_key(2))
    cached = build_iwatch_query_asset(2, key="amounts_by_query_key", parameters={"min_amount": 2650}, max_age=3600)

    materialization = only_materialization(dg.materialize([cached], resources=resources, instance=runner.instance))

    assert materialization.metadata["iwatch/from_cache"].value is True
    assert materialization.metadata["iwatch/query_result_id"].value == UNAVAILABLE
    assert materialization.metadata["iwatch/query_hash"].value == UNAVAILABLE
    assert materialization.metadata["dagster/row_count"].value > 0


def test_links_point_at_the_public_url_and_runtime_is_rounded(runner: Runner) -> None:
    resources = runner.resources(public_url="https://iwatch.example.com/org")
    asset = build_iwatch_query_asset(12, key="tokens_public_link")

    materialization = only_materialization(dg.materialize([asset], resources=resources, instance=runner.instance))

    assert materialization.metadata["iwatch/query_url"].value == "https://iwatch.example.com/org/queries/12"
    runtime = materialization.metadata["iwatch/runtime_seconds"].value
    assert runtime == round(runtime, 3)


def test_a_partition_parameter_the_query_lacks_is_named_in_plain_words(runner: Runner) -> None:
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-03")
    asset = build_iwatch_query_asset(5, key="wrong_parameter", partitions_def=daily, partition_parameter="perod")

    result = runner.materialize([asset], partition_key="2024-01-01", raise_on_error=False)

    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "Parameter 'perod': the partition would fill a parameter the query does not declare" in message
    assert "['period']" in message
    assert "None" not in message


def test_every_asset_of_an_instance_shares_its_pool_unless_given_another() -> None:
    assert build_iwatch_query_asset(1, key="pooled").op.pool == "iwatch"
    assert build_iwatch_query_asset(1, key="other_instance", resource_key="warehouse").op.pool == "iwatch_warehouse"
    assert build_iwatch_query_asset(1, key="own_pool", pool="slow_queries").op.pool == "slow_queries"
