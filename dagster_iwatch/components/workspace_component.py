"""``IWatchWorkspaceComponent``: a whole Inverse Watch instance as assets, from a snapshot kept as defs state."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import dagster as dg
from dagster.components import DefsStateConfig, DefsStateConfigArgs, ResolvedDefsStateConfig
from pydantic import BaseModel

from dagster_iwatch.assets import IWatchQuerySpec
from dagster_iwatch.components.models import (
    IWatchConnectionArgs,
    QueryOptionsArgs,
    ResolvedIWatchTranslationFn,
)
from dagster_iwatch.dashboards import IWatchDashboardSpec
from dagster_iwatch.state import read_snapshot, write_snapshot
from dagster_iwatch.workspace import IWatchQuerySelector, build_iwatch_workspace_definitions

_LOGGER = logging.getLogger("dagster_iwatch.components")

CadenceName = Literal["none", "automation_condition", "schedule"]


class QuerySelectorArgs(dg.Model):
    """Which queries become assets; a query must pass every rule given."""

    ids: list[int] | None = None
    tags: list[str] = []
    name_pattern: str | None = None
    exclude_ids: list[int] = []
    exclude_tags: list[str] = []
    include_archived: bool = False
    include_drafts: bool = False

    def to_selector(self) -> IWatchQuerySelector:
        """The workspace's selector."""
        return IWatchQuerySelector(**self.model_dump())


class ScaffoldParams(BaseModel):
    """``dg scaffold defs dagster_iwatch.IWatchWorkspaceComponent <path> --url ... --api-key-env ...``."""

    url: str | None = None
    api_key_env: str = "IWATCH_API_KEY"


class WorkspaceScaffolder(dg.Scaffolder[ScaffoldParams]):
    """Writes a ``defs.yaml`` that reads the connection from the environment."""

    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        """The options ``dg scaffold defs`` accepts."""
        return ScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ScaffoldParams]) -> None:
        """Write the component's YAML."""
        params = request.params
        url = params.url or "{{ env.IWATCH_URL }}"
        dg.scaffold_component(
            request,
            {
                "connection": {"url": url, "api_key": f"{{{{ env.{params.api_key_env} }}}}"},
                "selection": {"tags": []},
                "dashboards": True,
            },
        )


@dg.scaffold_with(WorkspaceScaffolder)
@dataclass
class IWatchWorkspaceComponent(dg.StateBackedComponent, dg.Resolvable):
    """Saved queries and dashboards of an Inverse Watch instance as assets, from a cached snapshot.

    The snapshot (queries with SQL, parameters, tags, owner and schedule; dashboards with their widgets) is the
    component's defs state: ``dg utils refresh-defs-state`` fetches it (4 list requests for 1,000 queries, one per
    dashboard); loading definitions reads it and makes no HTTP call. Each query asset runs its query and stores the
    result as Parquet through the project's ``iwatch`` resource and IO manager.

    Attributes:
        connection: ``url`` and ``api_key`` of the instance (for refreshing the snapshot).
        selection: Which queries: ``ids``, ``tags`` (any of), ``name_pattern`` (a regular expression),
            ``exclude_ids``, ``exclude_tags``, ``include_archived``, ``include_drafts``.
        queries: Options by ``query_id`` or ``tag``: ``parameters``, ``partitions_def``, ``partition_parameter``,
            ``range_end``, ``max_age``, ``mode``, ``checks``, ``group_name``, ``pool``.
        translation: Asset attributes (``key``, ``key_prefix``, ``group_name``, ``tags``, ``metadata``, ``owners``,
            ``description``, ``code_version``, ``automation_condition``...), templated with ``{{ data }}`` (the
            query's or dashboard's record: ``data.id``, ``data.name``, ``data.tags``...) and ``{{ kind }}``.
        dashboards: Whether dashboards become assets, downstream of the query assets they show.
        group_name: The asset group of every asset (unless options or translation set another).
        cadence: ``none``, ``automation_condition`` or ``schedule``: turn each query's Inverse Watch refresh schedule
            into an ``on_cron`` automation condition or a Dagster schedule.
        polling_sensor: Add the sensor that records results refreshed outside Dagster.
        resource_key: The key of the ``IWatchResource`` the assets use.
        name_prefix: The start of the names of schedules, jobs, the sensor and the grouped steps.
        layout: ``grouped`` (one subsettable step per partitions definition; fast to load) or ``per_query``.
        step_concurrency: In the grouped layout, how many of a step's queries run at once.
        defs_state: Where the snapshot is kept (default: ``LOCAL_FILESYSTEM``).
    """

    connection: IWatchConnectionArgs
    selection: QuerySelectorArgs = field(default_factory=QuerySelectorArgs)
    queries: Sequence[QueryOptionsArgs] = ()
    translation: ResolvedIWatchTranslationFn = None
    dashboards: bool = True
    group_name: str | None = None
    cadence: CadenceName = "none"
    polling_sensor: bool = False
    resource_key: str = "iwatch"
    name_prefix: str = "iwatch"
    layout: Literal["grouped", "per_query"] = "grouped"
    step_concurrency: int = 4
    defs_state: ResolvedDefsStateConfig = field(default_factory=DefsStateConfigArgs.local_filesystem)

    @property
    def defs_state_config(self) -> DefsStateConfig:
        """The state key names the instance: ``IWatchWorkspaceComponent[<host:port>]``."""
        return DefsStateConfig.from_args(self.defs_state, default_key=f"{type(self).__name__}[{self.connection.host}]")

    def write_state_to_path(self, state_path: Path) -> None:
        """Fetch the instance's snapshot and write it to ``state_path``."""
        with self.connection.client() as client:
            write_snapshot(client, state_path, dashboards=self.dashboards)

    def translate(self, spec: IWatchQuerySpec | IWatchDashboardSpec, asset_spec: dg.AssetSpec) -> dg.AssetSpec:
        """The asset spec of a query or dashboard: the default one with ``translation`` applied.

        Override it in a subclass for rules in Python (faster than templates on thousands of assets); ``spec.record``
        is the snapshot's record of the query or dashboard.
        """
        if self.translation is None or spec.record is None:
            return asset_spec
        return self.translation(asset_spec, spec.record)

    def build_defs_from_state(self, context: dg.ComponentLoadContext, state_path: Path | None) -> dg.Definitions:
        """The assets of the snapshot; none (with a warning) before the first refresh."""
        if state_path is None:
            _LOGGER.warning(
                "%s: no snapshot of %s yet; run `dg utils refresh-defs-state` to fetch it",
                type(self).__name__,
                self.connection.url,
            )
            return dg.Definitions()
        return build_iwatch_workspace_definitions(
            read_snapshot(state_path),
            selector=self.selection.to_selector(),
            query_options=[o.to_options() for o in self.queries],
            translator=self.translate,
            dashboards=self.dashboards,
            dashboard_translator=self.translate,
            group_name=self.group_name,
            cadence=self.cadence,
            polling_sensor=self.polling_sensor,
            resource_key=self.resource_key,
            name_prefix=self.name_prefix,
            layout=self.layout,
            step_concurrency=self.step_concurrency,
        )
