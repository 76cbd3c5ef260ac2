"""A whole Inverse Watch instance as assets, built from a snapshot without any HTTP call.

Each selected query becomes a query asset (see :mod:`dagster_iwatch.assets`) that knows its name, SQL, owner, tags,
parameters and code version; each dashboard a dashboard asset downstream of the query assets its widgets show; a
query whose parameter takes its values from another query depends on that query's asset.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import dagster as dg

from dagster_iwatch import cadence as cadences
from dagster_iwatch._factory import Member, build_group_step, build_step, unique_keys
from dagster_iwatch.assets import (
    IWatchQuerySpec,
    TranslatorLike,
    as_translator,
    query_member,
    snake_case,
)
from dagster_iwatch.dashboards import (
    DashboardTranslatorLike,
    IWatchDashboardSpec,
    as_dashboard_translator,
    build_dashboard_step,
)
from dagster_iwatch.errors import ConfigError
from dagster_iwatch.partitions import PartitionParameter, RangeEnd
from dagster_iwatch.sensors import build_iwatch_polling_sensor
from dagster_iwatch.state import DashboardRecord, InstanceSnapshot, QueryRecord, read_snapshot

Cadence: TypeAlias = Literal["none", "automation_condition", "schedule"]
Layout: TypeAlias = Literal["grouped", "per_query"]

_LOGGER = logging.getLogger("dagster_iwatch.workspace")


@dataclass(frozen=True)
class IWatchQuerySelector:
    """Which queries of a snapshot become assets.

    A query is selected when it passes every rule given: its id is in ``ids``; it has at least one of ``tags``;
    its name matches the regular expression ``name_pattern`` (searched, case-insensitive); its id is not in
    ``exclude_ids`` and it has none of ``exclude_tags``. Archived and draft queries are left out unless asked for.
    """

    ids: Collection[int] | None = None
    tags: Collection[str] = ()
    name_pattern: str | None = None
    exclude_ids: Collection[int] = ()
    exclude_tags: Collection[str] = ()
    include_archived: bool = False
    include_drafts: bool = False

    def __post_init__(self) -> None:
        for name in ("tags", "exclude_tags"):
            if isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a list of tags, not a string")
        if self.name_pattern is not None:
            try:
                re.compile(self.name_pattern)
            except re.error as error:
                raise ConfigError(f"name_pattern {self.name_pattern!r} is not a regular expression: {error}") from None

    def matches(self, query: QueryRecord) -> bool:
        """Whether the query is selected."""
        if (query.is_archived and not self.include_archived) or (query.is_draft and not self.include_drafts):
            return False
        if self.ids is not None and query.id not in self.ids:
            return False
        if self.tags and not set(self.tags) & set(query.tags):
            return False
        if self.name_pattern is not None and not re.search(self.name_pattern, query.name, re.IGNORECASE):
            return False
        return query.id not in self.exclude_ids and not set(self.exclude_tags) & set(query.tags)

    def matches_dashboard(self, dashboard: DashboardRecord) -> bool:
        """Whether a dashboard becomes an asset: archived and draft ones are left out unless asked for."""
        return (self.include_archived or not dashboard.is_archived) and (self.include_drafts or not dashboard.is_draft)


@dataclass(frozen=True)
class IWatchQueryOptions:
    """How to run the selected queries with a given id, or else with a given tag.

    The fields are those of :class:`IWatchQuerySpec`. For each query, the options naming its id apply; failing
    those, the first options naming one of its tags; failing those, none.
    """

    query_id: int | None = None
    tag: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    partitions_def: dg.PartitionsDefinition | None = None
    partition_parameter: PartitionParameter | None = None
    range_end: RangeEnd = "inclusive"
    max_age: int = 0
    mode: Literal["execute", "cached"] = "execute"
    checks: Collection[str] = ()
    group_name: str | None = None
    pool: str | None = None

    def __post_init__(self) -> None:
        if (self.query_id is None) == (self.tag is None):
            raise ConfigError("query options need exactly one of query_id and tag")

    def spec_fields(self) -> dict[str, Any]:
        """The :class:`IWatchQuerySpec` fields these options set."""
        return query_run_fields(self)


def query_run_fields(source: Any) -> dict[str, Any]:
    """The :class:`IWatchQuerySpec` fields that say how a query runs, from anything that has them (options, YAML)."""
    return {
        "parameters": dict(source.parameters),
        "partitions_def": source.partitions_def,
        "partition_parameter": source.partition_parameter,
        "range_end": source.range_end,
        "max_age": source.max_age,
        "mode": source.mode,
        "checks": tuple(source.checks),
        "group_name": source.group_name,
        "pool": source.pool,
    }


@dataclass(frozen=True)
class WorkspacePlan:
    """What a snapshot gives under a selection: the query and dashboard specs, each with its final asset spec."""

    queries: Sequence[tuple[IWatchQuerySpec, dg.AssetSpec]]
    dashboards: Sequence[tuple[IWatchDashboardSpec, dg.AssetSpec]]

    @property
    def asset_specs(self) -> list[dg.AssetSpec]:
        """Every asset spec, queries first."""
        return [a for _, a in self.queries] + [a for _, a in self.dashboards]


SnapshotLike: TypeAlias = InstanceSnapshot | str | os.PathLike[str]
"""A snapshot, or the path of a snapshot file."""


def _snapshot(snapshot: SnapshotLike) -> InstanceSnapshot:
    return snapshot if isinstance(snapshot, InstanceSnapshot) else read_snapshot(snapshot)


def plan_workspace(
    snapshot: SnapshotLike,
    *,
    selector: IWatchQuerySelector | None = None,
    query_options: Sequence[IWatchQueryOptions] = (),
    translator: TranslatorLike | None = None,
    dashboards: bool = True,
    dashboard_translator: DashboardTranslatorLike | None = None,
    group_name: str | None = None,
) -> WorkspacePlan:
    """The specs a snapshot gives: see :func:`build_iwatch_workspace_definitions` for the arguments."""
    found = _snapshot(snapshot)
    selector = selector or IWatchQuerySelector()
    records = [q for q in found.queries if selector.matches(q)]
    rules = as_translator(translator)
    by_id = {o.query_id: o for o in query_options if o.query_id is not None}
    by_tag = [o for o in query_options if o.tag is not None]
    names = [snake_case(record.name) for record in records]
    lowest_ids = _lowest_ids(records, names)
    specs = []
    for record, name in zip(records, names, strict=True):
        options = by_id.get(record.id) or next((o for o in by_tag if o.tag in record.tags), None)
        fields = options.spec_fields() if options else {}
        if group_name and not fields.get("group_name"):
            fields["group_name"] = group_name
        key = None
        if lowest_ids[name] != record.id:
            # Two queries share a name: the older keeps it, the others add their id.
            key = ["iwatch", f"{name}_{record.id}"]
        specs.append(
            IWatchQuerySpec(
                query_id=record.id,
                key=key,
                record=record,
                metadata={"iwatch/query_url": dg.MetadataValue.url(found.query_url(record.id))},
                **fields,
            )
        )
    # Lineage between queries goes in with the translator's keys, so each asset spec is built once; a translator
    # that changes keys in get_asset_spec only costs a second pass over the queries whose upstream it moved.
    expected = {spec.query_id: rules.get_asset_key(spec) for spec in specs}
    upstream_ids = {record.id: record.upstream_query_ids for record in records}
    translated = []
    for spec in specs:
        upstream = [expected[q] for q in upstream_ids[spec.query_id] if q in expected]
        translated.append((spec, rules.get_asset_spec(spec.with_deps(upstream) if upstream else spec)))
    final = {spec.query_id: asset_spec.key for spec, asset_spec in translated}
    moved = {q for q, key in final.items() if key is not expected[q] and key != expected[q]}
    queries = translated
    if moved:
        queries = [
            (spec, _with_query_lineage(asset_spec, upstream_ids[spec.query_id], expected, final))
            if moved.intersection(upstream_ids[spec.query_id])
            else (spec, asset_spec)
            for spec, asset_spec in translated
        ]
    keys = {spec.query_id: asset_spec for spec, asset_spec in queries}

    dashboard_specs: list[tuple[IWatchDashboardSpec, dg.AssetSpec]] = []
    if dashboards:
        board_rules = as_dashboard_translator(dashboard_translator)
        for board in found.dashboards:
            if not selector.matches_dashboard(board):
                continue
            board_spec = IWatchDashboardSpec(
                slug_or_id=board.slug or board.id,
                deps=[keys[q] for q in board.query_ids if q in keys],
                group_name=group_name,
                metadata={
                    "iwatch/dashboard_id": board.id,
                    "iwatch/dashboard_name": board.name,
                    "iwatch/dashboard_url": dg.MetadataValue.url(found.dashboard_url(board)),
                    "iwatch/query_ids": dg.MetadataValue.json(list(board.query_ids)),
                },
                record=board,
            )
            dashboard_specs.append((board_spec, board_rules.get_asset_spec(board_spec)))
    workspace = WorkspacePlan(queries=queries, dashboards=dashboard_specs)
    unique_keys(workspace.asset_specs, "queries and dashboards")
    return workspace


def _lowest_ids(records: Sequence[QueryRecord], names: Sequence[str]) -> dict[str, int]:
    """Per snake-case name: the lowest id among the queries that have it."""
    lowest: dict[str, int] = {}
    for record, name in zip(records, names, strict=True):
        lowest[name] = min(lowest.get(name, record.id), record.id)
    return lowest


def _with_query_lineage(
    asset_spec: dg.AssetSpec,
    upstream: Sequence[int],
    expected: Mapping[int, dg.AssetKey],
    final: Mapping[int, dg.AssetKey],
) -> dg.AssetSpec:
    """The asset spec with its query-parameter deps moved from the keys expected to the keys the translator gave."""
    stale = {expected[q] for q in upstream if q in expected and final[q] != expected[q]}
    deps = [d for d in asset_spec.deps if d.asset_key not in stale]
    deps += [dg.AssetDep(final[q]) for q in upstream if q in final]
    return asset_spec.replace_attributes(deps=list({d.asset_key: d for d in deps}.values()))


def load_iwatch_asset_specs(
    snapshot: SnapshotLike,
    *,
    selector: IWatchQuerySelector | None = None,
    translator: TranslatorLike | None = None,
    dashboards: bool = True,
    dashboard_translator: DashboardTranslatorLike | None = None,
) -> list[dg.AssetSpec]:
    """The asset specs of an instance's queries and dashboards, read from a snapshot (no HTTP call).

    For external assets, or to build your own steps. :func:`build_iwatch_workspace_definitions` gives assets that
    run the queries.

    Args:
        snapshot: A snapshot (see :func:`dagster_iwatch.state.fetch_snapshot`) or the path of a snapshot file.
        selector: Which queries (default: every query neither archived nor a draft).
        translator: Rules for the query assets: an :class:`IWatchTranslator` or a function
            ``(query_spec, default_asset_spec) -> AssetSpec``; ``query_spec.record`` is the snapshot's record.
        dashboards: Whether dashboards become assets too.
        dashboard_translator: Rules for the dashboard assets.

    Returns:
        The query specs, then the dashboard specs, with the lineage between them.

    Raises:
        SnapshotError: The snapshot file cannot be read.
        ConfigError: Two assets get the same key.
    """
    return plan_workspace(
        snapshot,
        selector=selector,
        translator=translator,
        dashboards=dashboards,
        dashboard_translator=dashboard_translator,
    ).asset_specs


def build_iwatch_workspace_definitions(
    snapshot: SnapshotLike,
    *,
    selector: IWatchQuerySelector | None = None,
    query_options: Sequence[IWatchQueryOptions] = (),
    translator: TranslatorLike | None = None,
    dashboards: bool = True,
    dashboard_translator: DashboardTranslatorLike | None = None,
    group_name: str | None = None,
    cadence: Cadence = "none",
    polling_sensor: bool = False,
    resource_key: str = "iwatch",
    name_prefix: str = "iwatch",
    layout: Layout = "grouped",
    step_concurrency: int = 4,
) -> dg.Definitions:
    """Definitions for an instance's queries and dashboards, read from a snapshot (no HTTP call).

    Args:
        snapshot: A snapshot or the path of a snapshot file.
        selector: Which queries (default: every query neither archived nor a draft).
        query_options: Parameters, partitions, mode and checks for queries by id or tag.
        translator: Rules for the query assets (see :func:`load_iwatch_asset_specs`).
        dashboards: Whether dashboards become assets (downstream of the query assets they show).
        dashboard_translator: Rules for the dashboard assets.
        group_name: The asset group of every asset, unless options or a translator set another.
        cadence: ``"automation_condition"`` gives each query asset whose query has a refresh schedule in Inverse
            Watch an ``on_cron`` automation condition; ``"schedule"`` one job and schedule per schedule (not for
            partitioned assets); ``"none"`` (default) leaves orchestration to you.
        polling_sensor: Add :func:`dagster_iwatch.sensors.build_iwatch_polling_sensor` over the query assets.
        resource_key: The key of the :class:`IWatchResource` in your Definitions.
        name_prefix: The start of the names of the schedules, jobs, sensor and grouped steps.
        layout: ``"grouped"`` (default): one subsettable asset definition per partitions definition (and pool),
            whose step materializes the selected queries, ``step_concurrency`` at a time; it loads in a fraction
            of the time, which counts from hundreds of queries on. ``"per_query"``: one asset definition, so one
            step, per query, each with its own retry policy.
        step_concurrency: In the grouped layout, how many of a step's queries run at once.

    Returns:
        The assets (and schedules, jobs, sensor); add the resource and IO manager (or merge with Definitions that
        have them).
    """
    if cadence not in ("none", "automation_condition", "schedule"):
        raise ConfigError(f"cadence must be 'none', 'automation_condition' or 'schedule', got {cadence!r}")
    if layout not in ("grouped", "per_query"):
        raise ConfigError(f"layout must be 'grouped' or 'per_query', got {layout!r}")
    workspace = plan_workspace(
        snapshot,
        selector=selector,
        query_options=query_options,
        translator=translator,
        dashboards=dashboards,
        dashboard_translator=dashboard_translator,
        group_name=group_name,
    )
    scheduled: list[tuple[dg.AssetKey, cadences.Cadence]] = []
    members: list[tuple[IWatchQuerySpec, Member]] = []
    for spec, asset_spec in workspace.queries:
        found = cadences.cadence(spec.record.schedule) if spec.record and cadence != "none" else None
        if found is not None and cadence == "automation_condition" and asset_spec.automation_condition is None:
            asset_spec = asset_spec.replace_attributes(automation_condition=cadences.automation_condition(found))
        elif found is not None and cadence == "schedule":
            if asset_spec.partitions_def is None:
                scheduled.append((asset_spec.key, found))
            else:
                _LOGGER.warning(
                    "Inverse Watch query %s is partitioned: its schedule is not turned into a Dagster schedule",
                    spec.query_id,
                )
        members.append((spec, query_member(spec, asset_spec)))
    assets = _query_assets(members, layout, resource_key, name_prefix, step_concurrency)
    assets += [build_dashboard_step(spec, asset_spec, resource_key) for spec, asset_spec in workspace.dashboards]
    schedules = cadences.schedules(scheduled, name_prefix)
    sensors = []
    if polling_sensor and workspace.queries:
        watched = [asset_spec for _, asset_spec in workspace.queries]
        sensors.append(
            build_iwatch_polling_sensor(watched, name=f"{name_prefix}_polling_sensor", resource_key=resource_key)
        )
    return _definitions(assets, schedules, sensors)


def _definitions(
    assets: Sequence[dg.AssetsDefinition],
    schedules: Sequence[dg.ScheduleDefinition],
    sensors: Sequence[dg.SensorDefinition],
) -> dg.Definitions:
    # Dagster compiles a record's constructor on its first call and keeps the caller's local variables for good:
    # called from here, it keeps these three lists, not the whole plan of the instance, which every later garbage
    # collection would otherwise go through.
    return dg.Definitions(assets=assets, schedules=schedules, sensors=sensors)


def _query_assets(
    members: Sequence[tuple[IWatchQuerySpec, Member]],
    layout: Layout,
    resource_key: str,
    name_prefix: str,
    step_concurrency: int,
) -> list[dg.AssetsDefinition]:
    if layout == "per_query":
        return [
            build_step(
                m.asset_spec,
                m.body,
                resource_key=resource_key,
                check_specs=m.check_specs,
                pool=spec.pool,
                retry_policy=spec.retry_policy,
            )
            for spec, m in members
        ]
    # Grouped by what one step must share: the partitions and the concurrency pool.
    groups: list[tuple[dg.PartitionsDefinition | None, str | None, list[Member]]] = []
    for spec, member in members:
        partitions, pool = member.asset_spec.partitions_def, spec.pool
        group = next((g for g in groups if g[0] == partitions and g[1] == pool), None)
        if group is None:
            group = (partitions, pool, [])
            groups.append(group)
        group[2].append(member)
    return [
        build_group_step(
            f"{name_prefix}_queries" + (f"_{index}" if index else ""),
            grouped,
            resource_key=resource_key,
            max_concurrency=step_concurrency,
            pool=pool,
        )
        for index, (_, pool, grouped) in enumerate(groups)
    ]
