"""Dashboards as downstream assets: one Parquet table of a dashboard's widgets, after the query assets it shows.

Building the asset makes no HTTP call; the dashboard is fetched when the asset runs. Its deps draw the lineage
from the query assets to the dashboard, and the optional ``queries_upstream`` check says whether every query the
dashboard shows is among them.
"""

import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

import dagster as dg
import pyarrow as pa

from dagster_iwatch.assets import DEFAULT_KINDS, iwatch_failure, snake_case
from dagster_iwatch.errors import ConfigError, IWatchError
from dagster_iwatch.metadata import data_version, markdown_preview
from dagster_iwatch.resource import IWatchResource
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


def build_iwatch_dashboard_asset(
    slug_or_id: str | int,
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
        slug_or_id: The dashboard's slug (``str``) or id (``int``); either works on both server flavors.
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
    ref = _check_ref(slug_or_id)
    check_names = _check_names(checks)
    upstream, query_ids = _upstream(deps)
    asset_key = dg.AssetKey.from_coercible(key) if key is not None else _default_key(ref)
    ref_metadata = _ref_metadata(ref)
    # multi_asset types the output of a spec without an IO manager key as Nothing; the table must be stored.
    asset_spec = dg.AssetSpec(
        key=asset_key,
        description=description or f"Widgets of Inverse Watch dashboard {ref!r}, one row per widget, as Parquet.",
        group_name=group_name,
        owners=list(owners),
        tags=dict(tags or {}),
        kinds=set(kinds),
        metadata=ref_metadata,
        deps=upstream,
    ).with_io_manager_key("io_manager")
    output_name = asset_key.to_python_identifier()

    @dg.multi_asset(
        name=output_name,
        specs=[asset_spec],
        check_specs=[dg.AssetCheckSpec(name, asset=asset_key, description=_CHECKS[name]) for name in check_names],
        required_resource_keys={resource_key},
    )
    def _asset(context: dg.AssetExecutionContext) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        resource: IWatchResource = getattr(context.resources, resource_key)
        try:
            with resource.get_client() as client:
                dashboard = client.get_dashboard(ref)
        except IWatchError as error:
            raise iwatch_failure(error, ref_metadata, f"Inverse Watch dashboard {ref!r}") from error
        table = widget_table(dashboard)
        with warnings.catch_warnings():
            # Output(data_version=...) is marked beta, yet it is the documented way to version a result.
            warnings.simplefilter("ignore", dg.BetaWarning)
            yield dg.Output(table, output_name, metadata=_metadata(dashboard, table), data_version=data_version(table))
        if "queries_upstream" in check_names:
            yield _queries_upstream(asset_key, dashboard, upstream, query_ids)

    return _asset


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


def _check_names(checks: Collection[str]) -> list[str]:
    if isinstance(checks, str):
        raise ConfigError(f"checks must be a list of check names, e.g. [{checks!r}], not a string")
    unknown = set(checks) - set(_CHECKS)
    if unknown:
        raise ConfigError(f"unknown dashboard checks {sorted(unknown)}; choose from {sorted(_CHECKS)}")
    return sorted(set(checks))


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
