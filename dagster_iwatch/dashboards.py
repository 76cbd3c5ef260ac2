"""Dashboards as downstream assets: one Parquet table of a dashboard's widgets, after the query assets it shows.

Building the asset makes no HTTP call; the dashboard is fetched when the asset runs. Its deps draw the lineage
from the query assets to the dashboard, and the optional ``queries_upstream`` check says whether every query the
dashboard shows is among them.
"""

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeAlias

import dagster as dg
import pyarrow as pa

from dagster_iwatch._factory import build_step, check_names, table_output
from dagster_iwatch.assets import DEFAULT_KINDS, iwatch_failure, record_tags, snake_case
from dagster_iwatch.errors import ConfigError, IWatchError
from dagster_iwatch.metadata import markdown_preview
from dagster_iwatch.resource import IWatchResource
from dagster_iwatch.state import DashboardRecord
from dagster_iwatch.types import Dashboard

DashboardDep: TypeAlias = (
    dg.AssetsDefinition | dg.AssetSpec | dg.AssetDep | dg.SourceAsset | dg.AssetKey | str | Sequence[str]
)
"""An upstream asset of a dashboard: an asset definition or spec, or anything that names an asset key."""

WIDGET_SCHEMA = pa.schema(
    [
        pa.field("widget_id", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("visualization_id", pa.int64()),
        pa.field("visualization_name", pa.string()),
        pa.field("visualization_type", pa.string()),
        pa.field("query_id", pa.int64()),
        pa.field("query_name", pa.string()),
        pa.field("text", pa.string()),
    ]
)
"""The columns of a dashboard asset's table, one row per widget."""

_CHECKS: dict[str, str] = {
    "queries_upstream": (
        "Every query the dashboard shows has an upstream Inverse Watch query asset (among the asset's deps)."
    ),
}


@dataclass(frozen=True)
class IWatchDashboardSpec:
    """What to build for one dashboard; the fields are those of :func:`build_iwatch_dashboard_asset`.

    ``record`` is the dashboard as a snapshot holds it (see :mod:`dagster_iwatch.state`): the translator then names
    the asset after the dashboard and gives it the dashboard's tags and URL.
    """

    slug_or_id: str | int
    key: dg.AssetKey | str | Sequence[str] | None = None
    deps: Sequence[DashboardDep] = ()
    group_name: str | None = None
    owners: Sequence[str] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    kinds: Collection[str] = DEFAULT_KINDS
    checks: Collection[str] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    record: DashboardRecord | None = None

    def __post_init__(self) -> None:
        _check_ref(self.slug_or_id)
        check_names(self.checks, _CHECKS, "dashboard checks")
        if isinstance(self.deps, str):
            raise ConfigError(f"deps must be a list of assets or asset keys, e.g. [{self.deps!r}], not a string")


class IWatchDashboardTranslator:
    """Turns a dashboard spec into the Dagster ``AssetSpec``. Subclass it to apply rules to every dashboard."""

    def get_asset_key(self, spec: IWatchDashboardSpec) -> dg.AssetKey:
        """The asset key: the spec's own, else ``["iwatch", "dashboard_<slug or id>"]``."""
        if spec.key is not None:
            return dg.AssetKey.from_coercible(spec.key)
        return _default_key(spec.record.slug if spec.record and spec.record.slug else spec.slug_or_id)

    def get_asset_spec(self, spec: IWatchDashboardSpec) -> dg.AssetSpec:
        """The asset spec for a dashboard spec."""
        record = spec.record
        ref = spec.slug_or_id
        default = f"Widgets of Inverse Watch dashboard {ref!r}, one row per widget, as Parquet."
        if record is not None:
            default = f"Widgets of the Inverse Watch dashboard **{record.name}**, one row per widget, as Parquet."
        return dg.AssetSpec(
            key=self.get_asset_key(spec),
            description=spec.description or default,
            group_name=spec.group_name,
            owners=list(spec.owners),
            tags={**(record_tags(record.tags) if record else {}), **spec.tags},
            kinds=set(spec.kinds),
            metadata={**_ref_metadata(ref), **spec.metadata},
            deps=_upstream(spec.deps)[0],
        )


DashboardTranslatorLike: TypeAlias = (
    IWatchDashboardTranslator | Callable[[IWatchDashboardSpec, dg.AssetSpec], dg.AssetSpec]
)
"""A dashboard translator, or a function of a dashboard spec and its default asset spec."""


class _FunctionTranslator(IWatchDashboardTranslator):
    def __init__(self, function: Callable[[IWatchDashboardSpec, dg.AssetSpec], dg.AssetSpec]) -> None:
        self._function = function

    def get_asset_spec(self, spec: IWatchDashboardSpec) -> dg.AssetSpec:
        return self._function(spec, super().get_asset_spec(spec))


def as_dashboard_translator(translator: DashboardTranslatorLike | None) -> IWatchDashboardTranslator:
    """The dashboard translator to use: the default one, the one given, or one applying the function given."""
    if translator is None:
        return IWatchDashboardTranslator()
    if isinstance(translator, IWatchDashboardTranslator):
        return translator
    if callable(translator):
        return _FunctionTranslator(translator)
    raise ConfigError(f"translator must be an IWatchDashboardTranslator or a function, got {type(translator).__name__}")


def build_iwatch_dashboard_asset(
    slug_or_id: str | int | IWatchDashboardSpec,
    *,
    key: dg.AssetKey | str | Sequence[str] | None = None,
    deps: Sequence[DashboardDep] = (),
    resource_key: str = "iwatch",
    group_name: str | None = None,
    owners: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    kinds: Collection[str] = DEFAULT_KINDS,
    checks: Collection[str] = (),
    translator: DashboardTranslatorLike | None = None,
) -> dg.AssetsDefinition:
    """Build an asset that fetches a dashboard and hands the IO manager a table of its widgets.

    The table (a ``pyarrow.Table``) has one row per widget, in the server's order: ``widget_id``, ``kind``
    (``"visualization"`` or ``"text"``), ``visualization_id``, ``visualization_name``, ``visualization_type``,
    ``query_id``, ``query_name`` (null for a text box) and ``text`` (null for a visualization without text).

    The ``queries_upstream`` check passes when each query the dashboard shows is the ``iwatch/query_id`` of one of
    the deps. Only deps given as asset definitions or specs carry that metadata (the query assets of
    :func:`build_iwatch_query_asset` do); a dep given as a bare key cannot be matched to a query, and the check
    lists it under ``unmatched_deps``. A failed check is a warning: the lineage is incomplete, the table is right.

    Args:
        slug_or_id: The dashboard's slug (``str``) or id (``int``); either works on both server flavors. Or a
            complete :class:`IWatchDashboardSpec` (then pass no other spec field).
        key: The asset key (default ``["iwatch", "dashboard_<slug in snake case>"]`` or
            ``["iwatch", "dashboard_<id>"]``).
        deps: The upstream query assets (asset definitions, specs or keys), so the lineage runs from the query
            assets to the dashboard.
        resource_key: The key of the :class:`IWatchResource` in your Definitions.
        group_name: The asset group.
        owners: The asset's owners (emails or ``team:name``).
        tags: Tags for the asset.
        description: The asset's description (default: names the dashboard).
        kinds: Kinds shown in the UI (default ``{"iwatch", "parquet"}``).
        checks: Asset checks to switch on: ``"queries_upstream"``.
        translator: Rules for the asset's attributes: an :class:`IWatchDashboardTranslator`, or a function
            ``(dashboard_spec, default_asset_spec) -> AssetSpec``.

    Returns:
        The asset definition. Its value is a ``pyarrow.Table``; use :class:`IWatchParquetIOManager` to store it.

    Raises:
        ConfigError: ``slug_or_id`` is neither a non-empty slug nor a positive id, ``deps`` or ``checks`` is a
            single string, or a check name is unknown.

    Example:
        .. code-block:: python

            prices = build_iwatch_query_asset(15)
            volume = build_iwatch_query_asset(5, parameters={"period": (date(2024, 1, 1), date(2024, 1, 31))})
            overview = build_iwatch_dashboard_asset(
                "chain-overview", deps=[prices, volume], checks=["queries_upstream"]
            )
            defs = dg.Definitions(
                assets=[prices, volume, overview],
                resources={
                    "iwatch": IWatchResource(base_url="https://app.inverse.watch", api_key=dg.EnvVar("IWATCH_API_KEY")),
                    "io_manager": IWatchParquetIOManager(base_path="data"),
                },
            )
    """
    if isinstance(slug_or_id, IWatchDashboardSpec):
        given: dict[str, Any] = dict(key=key, group_name=group_name, tags=tags, description=description)
        given |= dict(deps=deps or None, owners=owners or None, checks=checks or None)
        given |= dict(kinds=None if kinds is DEFAULT_KINDS else kinds)
        ignored = sorted(name for name, value in given.items() if value is not None)
        if ignored:
            raise ConfigError(f"pass either an IWatchDashboardSpec or its fields, not both; set {ignored} on the spec")
        spec = slug_or_id
    else:
        spec = IWatchDashboardSpec(
            slug_or_id=_check_ref(slug_or_id),
            key=key,
            deps=deps,
            group_name=group_name,
            owners=owners,
            tags=dict(tags or {}),
            description=description,
            kinds=kinds,
            checks=checks,
        )
    return build_dashboard_step(spec, as_dashboard_translator(translator).get_asset_spec(spec), resource_key)


def build_dashboard_step(spec: IWatchDashboardSpec, asset_spec: dg.AssetSpec, resource_key: str) -> dg.AssetsDefinition:
    """The asset definition of a dashboard spec, with the asset spec its translator gave."""
    upstream, query_ids = _upstream(spec.deps)
    check_specs = [
        dg.AssetCheckSpec(name, asset=asset_spec.key, description=_CHECKS[name])
        for name in check_names(spec.checks, _CHECKS, "dashboard checks")
    ]
    body = partial(_fetch, ref=spec.slug_or_id, checks=frozenset(spec.checks), query_ids=query_ids, upstream=upstream)
    return build_step(asset_spec, body, resource_key=resource_key, check_specs=check_specs)


def _fetch(
    context: dg.AssetExecutionContext,
    resource: IWatchResource,
    key: dg.AssetKey,
    output_name: str,
    *,
    ref: str | int,
    checks: frozenset[str],
    query_ids: Mapping[dg.AssetKey, int],
    upstream: Sequence[dg.AssetDep],
) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
    try:
        with resource.get_client() as client:
            dashboard = client.get_dashboard(ref)
    except IWatchError as error:
        raise iwatch_failure(error, _ref_metadata(ref), f"Inverse Watch dashboard {ref!r}") from error
    table = widget_table(dashboard)
    yield table_output(table, output_name, _metadata(dashboard, table))
    if "queries_upstream" in checks:
        yield _queries_upstream(key, dashboard, upstream, query_ids)


def widget_table(dashboard: Dashboard) -> pa.Table:
    """A dashboard's widgets as a table with :data:`WIDGET_SCHEMA`, the dashboard named in the schema metadata.

    Args:
        dashboard: The dashboard, as :meth:`IWatchClient.get_dashboard` returns it.

    Returns:
        One row per widget, in the dashboard's order.
    """
    rows = [
        {
            "widget_id": w.id,
            "kind": w.kind,
            "visualization_id": w.visualization_id,
            "visualization_name": w.visualization_name,
            "visualization_type": w.visualization_type,
            "query_id": w.query_id,
            "query_name": w.query_name,
            "text": w.text if w.kind == "text" else (w.text or None),
        }
        for w in dashboard.widgets
    ]
    table = pa.Table.from_pylist(rows, schema=WIDGET_SCHEMA)
    return table.replace_schema_metadata(
        {
            "iwatch.dashboard_id": str(dashboard.id),
            "iwatch.dashboard_slug": dashboard.slug,
            "iwatch.dashboard_name": dashboard.name,
            "iwatch.dashboard_version": "" if dashboard.version is None else str(dashboard.version),
        }
    )


def _check_ref(slug_or_id: Any) -> str | int:
    if isinstance(slug_or_id, int) and not isinstance(slug_or_id, bool) and slug_or_id > 0:
        return slug_or_id
    if isinstance(slug_or_id, str) and slug_or_id.strip():
        return slug_or_id
    raise ConfigError(f"slug_or_id must be a dashboard slug or a positive dashboard id, got {slug_or_id!r}")


def _default_key(ref: str | int) -> dg.AssetKey:
    return dg.AssetKey(["iwatch", f"dashboard_{ref if isinstance(ref, int) else snake_case(ref)}"])


def _ref_metadata(ref: str | int) -> dict[str, Any]:
    return {"iwatch/dashboard_id": ref} if isinstance(ref, int) else {"iwatch/dashboard_slug": ref}


def _upstream(deps: Sequence[DashboardDep]) -> tuple[list[dg.AssetDep], dict[dg.AssetKey, int]]:
    """The deps as ``AssetDep`` objects without repeats, and the query id of each dep that is a query asset."""
    if isinstance(deps, str):
        raise ConfigError(f"deps must be a list of assets or asset keys, e.g. [{deps!r}], not a string")
    found: list[tuple[dg.AssetDep, int | None]] = []
    for dep in deps:
        if isinstance(dep, dg.AssetsDefinition):
            found += [(dg.AssetDep(spec.key), _query_id(spec.metadata)) for spec in dep.specs]
        elif isinstance(dep, dg.AssetSpec):
            found.append((dg.AssetDep(dep.key), _query_id(dep.metadata)))
        elif isinstance(dep, dg.AssetDep):
            found.append((dep, None))
        elif isinstance(dep, dg.SourceAsset):
            found.append((dg.AssetDep(dep.key), _query_id(dep.metadata)))
        else:
            found.append((dg.AssetDep(dg.AssetKey.from_coercible(dep)), None))
    upstream: dict[dg.AssetKey, dg.AssetDep] = {}
    query_ids: dict[dg.AssetKey, int] = {}
    for asset_dep, query_id in found:
        upstream.setdefault(asset_dep.asset_key, asset_dep)
        if query_id is not None:
            query_ids.setdefault(asset_dep.asset_key, query_id)
    return list(upstream.values()), query_ids


def _query_id(metadata: Mapping[str, Any]) -> int | None:
    value = metadata.get("iwatch/query_id")
    value = getattr(value, "value", value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _queries_upstream(
    key: dg.AssetKey, dashboard: Dashboard, upstream: Sequence[dg.AssetDep], query_ids: Mapping[dg.AssetKey, int]
) -> dg.AssetCheckResult:
    covered = set(query_ids.values())
    missing = [q for q in dashboard.query_ids if q not in covered]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="queries_upstream",
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "missing_query_ids": dg.MetadataValue.json(missing),
            "dashboard_query_ids": dg.MetadataValue.json(list(dashboard.query_ids)),
            "upstream_query_ids": dg.MetadataValue.json(sorted(covered)),
            "unmatched_deps": dg.MetadataValue.json(
                [d.asset_key.to_user_string() for d in upstream if d.asset_key not in query_ids]
            ),
        },
    )


def _metadata(dashboard: Dashboard, table: pa.Table) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=f.name,
                    type="integer" if pa.types.is_integer(f.type) else "string",
                    description=f"arrow: {f.type}",
                    constraints=dg.TableColumnConstraints(nullable=f.nullable),
                )
                for f in table.schema
            ]
        ),
        "iwatch/dashboard_id": dashboard.id,
        "iwatch/dashboard_slug": dashboard.slug,
        "iwatch/dashboard_name": dashboard.name,
        "iwatch/query_ids": dg.MetadataValue.json(list(dashboard.query_ids)),
        "iwatch/tags": dg.MetadataValue.json(list(dashboard.tags)),
        "iwatch/preview": dg.MetadataValue.md(markdown_preview(table)),
    }
    if dashboard.version is not None:
        metadata["iwatch/dashboard_version"] = dashboard.version
    if dashboard.updated_at is not None:
        metadata["iwatch/dashboard_updated_at"] = dg.MetadataValue.timestamp(dashboard.updated_at)
    return metadata
