"""Assets of a whole instance from its snapshot: selection, translation, lineage, options and cadence."""

from __future__ import annotations

from datetime import date

import dagster as dg
import msgspec
import pytest

from dagster_iwatch import (
    IWatchQueryOptions,
    IWatchQuerySelector,
    IWatchQuerySpec,
    IWatchResource,
    IWatchTranslator,
    build_iwatch_workspace_definitions,
    load_iwatch_asset_specs,
)
from dagster_iwatch.cadence import Cadence, cadence
from dagster_iwatch.errors import ConfigError
from dagster_iwatch.local.seed import SEED_QUERIES
from dagster_iwatch.state import InstanceSnapshot, QueryRecord, ScheduleRecord
from dagster_iwatch.workspace import plan_workspace


def resolvable(defs: dg.Definitions) -> dg.Definitions:
    """The definitions with the resource the assets need (never called here)."""
    resource = IWatchResource(base_url="http://127.0.0.1:9", api_key="unused")
    return dg.Definitions.merge(defs, dg.Definitions(resources={"iwatch": resource}))


def keys(specs: list[dg.AssetSpec]) -> set[str]:
    return {s.key.to_user_string() for s in specs}


def query_ids(snapshot: InstanceSnapshot, selector: IWatchQuerySelector) -> list[int]:
    return [spec.query_id for spec, _ in plan_workspace(snapshot, selector=selector, dashboards=False).queries]


def test_selection_by_ids_tags_name_pattern_and_exclusions(snapshot: InstanceSnapshot) -> None:
    assert query_ids(snapshot, IWatchQuerySelector(ids=[3, 1, 99])) == [1, 3]
    assert query_ids(snapshot, IWatchQuerySelector(tags=["prices", "tokens"])) == [4, 12, 15]
    assert query_ids(snapshot, IWatchQuerySelector(name_pattern=r"^transfers (by|for)")) == [3, 7, 9]
    assert query_ids(snapshot, IWatchQuerySelector(tags=["raw"], exclude_tags=["empty"], exclude_ids=[1])) == [12, 15]
    assert len(query_ids(snapshot, IWatchQuerySelector())) == len(SEED_QUERIES)


def test_archived_and_draft_queries_are_skipped_unless_asked_for(snapshot: InstanceSnapshot) -> None:
    edited = msgspec.structs.replace(
        snapshot,
        queries=tuple(msgspec.structs.replace(q, is_draft=q.id == 2, is_archived=q.id == 3) for q in snapshot.queries),
    )
    assert {2, 3}.isdisjoint(query_ids(edited, IWatchQuerySelector()))
    assert 2 in query_ids(edited, IWatchQuerySelector(include_drafts=True))
    assert 3 in query_ids(edited, IWatchQuerySelector(include_archived=True))


def test_bad_selectors_are_refused_before_anything_is_built() -> None:
    with pytest.raises(ConfigError, match="not a regular expression"):
        IWatchQuerySelector(name_pattern="(")
    with pytest.raises(ConfigError, match="list of tags"):
        IWatchQuerySelector(tags="raw")
    with pytest.raises(ConfigError, match="exactly one of query_id and tag"):
        IWatchQueryOptions(parameters={"n": 1})


def test_assets_carry_what_the_snapshot_knows(snapshot: InstanceSnapshot) -> None:
    specs = {s.key.to_user_string(): s for s in load_iwatch_asset_specs(snapshot)}
    volume = specs["iwatch/daily_volume_in_period"]
    assert volume.description is not None
    assert "**Daily volume in period** (Inverse Watch query 5)" in volume.description
    assert "```sql\nselect block_date, token" in volume.description
    assert {"param", "transfers", "daily"} <= set(volume.tags)
    assert volume.kinds == {"iwatch", "parquet"}
    assert volume.metadata["iwatch/query_id"] == 5
    assert volume.metadata["iwatch/query_url"].value == f"{snapshot.base_url}/queries/5"
    assert volume.metadata["iwatch/parameters"].value == [
        {"name": "period", "type": "date-range", "default": {"end": "2024-01-31", "start": "2024-01-01"}}
    ]
    assert volume.metadata["iwatch/owner_email"] == "admin@localhost"
    assert volume.code_version == snapshot.query(5).code_version  # type: ignore[union-attr]
    # admin@localhost is no owner Dagster accepts; a real address is.
    assert volume.owners == []
    record = msgspec.structs.replace(snapshot.queries[0], owner_email="ana@example.com")
    assert IWatchTranslator().get_asset_spec(IWatchQuerySpec(query_id=1, record=record)).owners == ["ana@example.com"]


def test_lineage_from_dashboard_widgets_and_query_parameters(snapshot: InstanceSnapshot) -> None:
    specs = {s.key.to_user_string(): s for s in load_iwatch_asset_specs(snapshot)}
    board = specs["iwatch/dashboard_chain_overview"]
    assert {d.asset_key.to_user_string() for d in board.deps} == {
        "iwatch/daily_prices",
        "iwatch/daily_volume_in_period",
    }
    assert board.metadata["iwatch/dashboard_url"].value == f"{snapshot.base_url}/dashboards/chain-overview"
    listed = specs["iwatch/transfers_for_listed_token"]
    assert [d.asset_key.to_user_string() for d in listed.deps] == ["iwatch/token_list"]
    # A dashboard only depends on the selected queries.
    only_prices = load_iwatch_asset_specs(snapshot, selector=IWatchQuerySelector(ids=[15]))
    (board_spec,) = [s for s in only_prices if s.key.path[-1].startswith("dashboard_")]
    assert [d.asset_key.to_user_string() for d in board_spec.deps] == ["iwatch/daily_prices"]


def test_a_query_asset_and_the_deps_naming_it_share_one_key_object(snapshot: InstanceSnapshot) -> None:
    # Dagster's dependency resolution then matches keys by identity, not by AssetKey.__eq__: at 10,000 queries
    # that is most of the gap to hand-written specs.
    defs = build_iwatch_workspace_definitions(snapshot)
    (grouped,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and len(a.keys) > 1]
    specs = {s.key.to_user_string(): s for s in grouped.specs}
    token_list = specs["iwatch/token_list"]
    (dep,) = specs["iwatch/transfers_for_listed_token"].deps
    assert dep.asset_key is token_list.key


def test_lineage_deps_keep_the_spec_as_it_was_validated() -> None:
    spec = IWatchQuerySpec(query_id=3, name="Transfers", parameters={"n": 1}, tags={"team": "x"})
    key = spec.default_key
    linked = spec.with_deps([dg.AssetKey(["iwatch", "token_list"])])
    assert linked == IWatchQuerySpec(
        query_id=3,
        name="Transfers",
        parameters={"n": 1},
        tags={"team": "x"},
        deps=[dg.AssetKey(["iwatch", "token_list"])],
    )
    assert spec.deps == ()
    assert linked.default_key is key
    assert IWatchTranslator().get_asset_spec(linked).deps == [dg.AssetDep(dg.AssetKey(["iwatch", "token_list"]))]


def test_translator_function_and_subclass_override_the_defaults(snapshot: InstanceSnapshot) -> None:
    def by_id(spec: IWatchQuerySpec, default: dg.AssetSpec) -> dg.AssetSpec:
        return default.replace_attributes(key=["warehouse", f"q{spec.query_id}"], group_name="warehouse")

    specs = load_iwatch_asset_specs(snapshot, translator=by_id, dashboards=False)
    assert keys(specs) == {f"warehouse/q{i}" for i in range(1, len(SEED_QUERIES) + 1)}
    assert {s.group_name for s in specs} == {"warehouse"}
    # A key changed in get_asset_spec moves the deps on it too: none is left on the key it would have had.
    token_list = snapshot.query(12)
    assert token_list is not None
    assert token_list.name == "Token list"
    listed = {s.key.to_user_string(): s for s in specs}["warehouse/q9"]
    assert [d.asset_key.to_user_string() for d in listed.deps] == ["warehouse/q12"]

    class Prefixed(IWatchTranslator):
        def get_asset_key(self, spec: IWatchQuerySpec) -> dg.AssetKey:
            return super().get_asset_key(spec).with_prefix("onchain")

    specs = load_iwatch_asset_specs(snapshot, translator=Prefixed())
    listed = {s.key.to_user_string(): s for s in specs}["onchain/iwatch/transfers_for_listed_token"]
    # Lineage follows the translated keys.
    assert [d.asset_key.to_user_string() for d in listed.deps] == ["onchain/iwatch/token_list"]


def test_two_queries_with_one_name_keep_distinct_keys(snapshot: InstanceSnapshot) -> None:
    twin = msgspec.structs.replace(snapshot.queries[0], id=40)
    specs = load_iwatch_asset_specs(msgspec.structs.replace(snapshot, queries=(*snapshot.queries, twin)))
    assert {"iwatch/all_transfers", "iwatch/all_transfers_40"} <= keys(specs)
    with pytest.raises(ConfigError, match="several queries and dashboards give the asset keys"):
        load_iwatch_asset_specs(snapshot, translator=lambda spec, default: default.replace_attributes(key="same"))


def test_query_options_give_parameters_and_partitions_by_id_then_tag(snapshot: InstanceSnapshot) -> None:
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")
    options = [
        IWatchQueryOptions(tag="transfers", max_age=600),
        IWatchQueryOptions(query_id=5, partitions_def=daily, partition_parameter="period", checks=["not_empty"]),
    ]
    plan = plan_workspace(snapshot, query_options=options, dashboards=False)
    by_id = {spec.query_id: (spec, asset_spec) for spec, asset_spec in plan.queries}
    assert by_id[5][0].partition_parameter == "period"
    assert by_id[5][1].partitions_def == daily
    assert by_id[5][0].max_age == 0  # the options by id win over those by tag
    assert by_id[1][0].max_age == 600
    assert by_id[12][0].max_age == 0
    defs = build_iwatch_workspace_definitions(snapshot, query_options=options, dashboards=False)
    volume = defs.get_assets_def(dg.AssetKey(["iwatch", "daily_volume_in_period"]))
    assert [c.name for c in volume.check_specs] == ["not_empty"]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (ScheduleRecord(interval=900), Cadence("*/15 * * * *", "every_15_minutes")),
        (ScheduleRecord(interval=3600), Cadence("0 * * * *", "hourly")),
        (ScheduleRecord(interval=21600), Cadence("0 */6 * * *", "every_6_hours")),
        (ScheduleRecord(interval=86400, time="06:30"), Cadence("30 6 * * *", "daily_at_0630")),
        (ScheduleRecord(interval=172800, time="23:05"), Cadence("5 23 */2 * *", "every_2_days_at_2305")),
        (
            ScheduleRecord(interval=604800, time="08:00", day_of_week="Monday"),
            Cadence("0 8 * * 1", "weekly_monday_at_0800"),
        ),
        (ScheduleRecord(interval=5400), None),
        (ScheduleRecord(interval=3600, until="2024-01-01"), None),
        (ScheduleRecord(interval=3600, until="2999-01-01"), Cadence("0 * * * *", "hourly")),
    ],
)
def test_inverse_watch_schedules_as_crons(schedule: ScheduleRecord, expected: Cadence | None) -> None:
    assert cadence(schedule, today=date(2026, 6, 1)) == expected


def test_cadence_as_automation_condition_or_schedule_is_opt_in(snapshot: InstanceSnapshot) -> None:
    hourly = ScheduleRecord(interval=3600)
    daily = ScheduleRecord(interval=86400, time="06:30")
    queries = tuple(
        msgspec.structs.replace(q, schedule={1: hourly, 12: hourly, 15: daily}.get(q.id)) for q in snapshot.queries
    )
    scheduled = msgspec.structs.replace(snapshot, queries=queries)
    plain = resolvable(build_iwatch_workspace_definitions(scheduled, dashboards=False))
    assert all(a.automation_condition is None for a in plain.resolve_asset_graph().asset_nodes)
    assert not list(plain.schedules or [])

    auto = resolvable(build_iwatch_workspace_definitions(scheduled, dashboards=False, cadence="automation_condition"))
    conditions = {n.key.to_user_string(): n.automation_condition for n in auto.resolve_asset_graph().asset_nodes}
    assert {k for k, c in conditions.items() if c is not None} == {
        "iwatch/all_transfers",
        "iwatch/token_list",
        "iwatch/daily_prices",
    }
    assert conditions["iwatch/daily_prices"] == dg.AutomationCondition.on_cron("30 6 * * *", "UTC")

    with_schedules = resolvable(build_iwatch_workspace_definitions(scheduled, dashboards=False, cadence="schedule"))
    found = {s.name: s for s in with_schedules.schedules or []}
    assert set(found) == {"iwatch_hourly", "iwatch_daily_at_0630"}
    assert found["iwatch_hourly"].cron_schedule == "0 * * * *"
    job = with_schedules.resolve_job_def("iwatch_hourly_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "iwatch/all_transfers",
        "iwatch/token_list",
    }
    with pytest.raises(ConfigError, match="cadence must be"):
        build_iwatch_workspace_definitions(scheduled, cadence="hourly")  # type: ignore[arg-type]


def test_a_record_for_another_query_is_refused() -> None:
    record = QueryRecord(id=2, name="x", sql="select 1", sql_hash="h")
    with pytest.raises(ConfigError, match="record is query 2"):
        IWatchQuerySpec(query_id=1, record=record)
