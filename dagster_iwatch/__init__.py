"""Dagster integration for Inverse Watch: saved queries as scheduled, partitioned Parquet assets.

Names are loaded on first use, so that the plain client and the local server can be used without
importing Dagster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dagster_iwatch.version import __version__

if TYPE_CHECKING:
    from dagster_iwatch.assets import (
        IWatchQuerySpec,
        IWatchTranslator,
        build_iwatch_query_asset,
        build_iwatch_query_assets,
    )
    from dagster_iwatch.client import IWatchClient
    from dagster_iwatch.components import IWatchQueryComponent, IWatchWorkspaceComponent
    from dagster_iwatch.dashboards import IWatchDashboardSpec, IWatchDashboardTranslator, build_iwatch_dashboard_asset
    from dagster_iwatch.io_manager import IWatchParquetIOManager
    from dagster_iwatch.resource import IWatchResource
    from dagster_iwatch.sensors import build_iwatch_polling_sensor
    from dagster_iwatch.state import InstanceSnapshot, fetch_snapshot, read_snapshot, write_snapshot
    from dagster_iwatch.types import Column, Dashboard, Job, JobStatus, Parameter, Query, QueryResult
    from dagster_iwatch.workspace import (
        IWatchQueryOptions,
        IWatchQuerySelector,
        build_iwatch_workspace_definitions,
        load_iwatch_asset_specs,
    )

_EXPORTS = {
    "IWatchClient": "dagster_iwatch.client",
    "IWatchResource": "dagster_iwatch.resource",
    "IWatchParquetIOManager": "dagster_iwatch.io_manager",
    "IWatchQuerySpec": "dagster_iwatch.assets",
    "IWatchTranslator": "dagster_iwatch.assets",
    "build_iwatch_query_asset": "dagster_iwatch.assets",
    "build_iwatch_query_assets": "dagster_iwatch.assets",
    "build_iwatch_dashboard_asset": "dagster_iwatch.dashboards",
    "IWatchDashboardSpec": "dagster_iwatch.dashboards",
    "IWatchDashboardTranslator": "dagster_iwatch.dashboards",
    "IWatchQueryComponent": "dagster_iwatch.components",
    "IWatchWorkspaceComponent": "dagster_iwatch.components",
    "IWatchQueryOptions": "dagster_iwatch.workspace",
    "IWatchQuerySelector": "dagster_iwatch.workspace",
    "build_iwatch_workspace_definitions": "dagster_iwatch.workspace",
    "load_iwatch_asset_specs": "dagster_iwatch.workspace",
    "build_iwatch_polling_sensor": "dagster_iwatch.sensors",
    "InstanceSnapshot": "dagster_iwatch.state",
    "fetch_snapshot": "dagster_iwatch.state",
    "read_snapshot": "dagster_iwatch.state",
    "write_snapshot": "dagster_iwatch.state",
    "Column": "dagster_iwatch.types",
    "Dashboard": "dagster_iwatch.types",
    "Job": "dagster_iwatch.types",
    "JobStatus": "dagster_iwatch.types",
    "Parameter": "dagster_iwatch.types",
    "Query": "dagster_iwatch.types",
    "QueryResult": "dagster_iwatch.types",
}

__all__ = [
    "Column",
    "Dashboard",
    "IWatchClient",
    "IWatchDashboardSpec",
    "IWatchDashboardTranslator",
    "IWatchParquetIOManager",
    "IWatchQueryComponent",
    "IWatchQueryOptions",
    "IWatchQuerySelector",
    "IWatchQuerySpec",
    "IWatchResource",
    "IWatchTranslator",
    "IWatchWorkspaceComponent",
    "InstanceSnapshot",
    "Job",
    "JobStatus",
    "Parameter",
    "Query",
    "QueryResult",
    "__version__",
    "build_iwatch_dashboard_asset",
    "build_iwatch_polling_sensor",
    "build_iwatch_query_asset",
    "build_iwatch_query_assets",
    "build_iwatch_workspace_definitions",
    "fetch_snapshot",
    "load_iwatch_asset_specs",
    "read_snapshot",
    "write_snapshot",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dagster_iwatch' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    # dg lists a registry module's components through dir(); the lazily loaded names must be in it.
    return sorted(set(globals()) | set(__all__))
