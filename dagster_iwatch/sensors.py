"""A sensor that notices query results refreshed outside Dagster (by Inverse Watch's own schedules).

Each tick reads a bounded number of the watched queries (one request each, round robin, within a time budget) and
compares each query's latest result id with the one last seen. A new result that Dagster did not produce (it is not
the ``iwatch/query_result_id`` of the asset's latest materialization) is recorded once: as an ``AssetObservation``
(the default; no Parquet is written), or as a run request that materializes the asset, so the table in Parquet
follows. The cursor (JSON, in Dagster's storage) survives restarts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dagster as dg

from dagster_iwatch.errors import ConfigError, IWatchError
from dagster_iwatch.resource import IWatchResource

_CURSOR_VERSION = 1

OnRefresh = Literal["observe", "materialize"]

WatchedAssets = Mapping[int, dg.AssetKey | str | Sequence[str]] | Sequence[dg.AssetsDefinition | dg.AssetSpec]
"""The watched query assets: ``{query_id: asset key}``, or query assets and specs (their ``iwatch/query_id``)."""


def build_iwatch_polling_sensor(
    query_assets: WatchedAssets,
    *,
    name: str = "iwatch_polling_sensor",
    resource_key: str = "iwatch",
    on_refresh: OnRefresh = "observe",
    minimum_interval_seconds: int = 60,
    max_requests_per_tick: int = 50,
    max_seconds_per_tick: float = 20.0,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """Build the sensor that records query results refreshed outside Dagster on the matching assets.

    Args:
        query_assets: The watched assets: ``{query_id: asset key}``, or query asset definitions and specs.
        name: The sensor's name.
        resource_key: The key of the :class:`IWatchResource` in your Definitions.
        on_refresh: ``"observe"`` records an ``AssetObservation`` with the result's id (no Parquet written);
            ``"materialize"`` requests a run of the asset (give the asset ``mode="cached"`` or a ``max_age`` so the
            run stores the refreshed result instead of running the query again; partitioned assets are observed).
        minimum_interval_seconds: Seconds between ticks.
        max_requests_per_tick: Queries read per tick; the next tick carries on where this one stopped.
        max_seconds_per_tick: Time budget of a tick's requests.
        default_status: Whether the sensor starts running or stopped.

    Returns:
        The sensor definition.

    Raises:
        ConfigError: No watched query, a bad budget, or an unknown ``on_refresh``.
    """
    watched = _watched(query_assets)
    if not watched:
        raise ConfigError("the polling sensor needs at least one query asset to watch")
    if on_refresh not in ("observe", "materialize"):
        raise ConfigError(f"on_refresh must be 'observe' or 'materialize', got {on_refresh!r}")
    if (
        isinstance(max_requests_per_tick, bool)
        or not isinstance(max_requests_per_tick, int)
        or max_requests_per_tick < 1
    ):
        raise ConfigError(f"max_requests_per_tick must be a positive integer, got {max_requests_per_tick!r}")
    if not isinstance(max_seconds_per_tick, int | float) or max_seconds_per_tick <= 0:
        raise ConfigError(f"max_seconds_per_tick must be a positive number, got {max_seconds_per_tick!r}")
    partitioned = {key for key, partitions in watched.values() if partitions}
    order = sorted(watched)

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={resource_key},
        asset_selection=[key for key, _ in watched.values()] if on_refresh == "materialize" else None,
        description="Records Inverse Watch query results refreshed outside Dagster on the matching assets.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        resource: IWatchResource = getattr(context.resources, resource_key)
        seen, position = _read_cursor(context.cursor)
        deadline = time.monotonic() + max_seconds_per_tick
        events: list[dg.AssetObservation] = []
        runs: list[dg.RunRequest] = []
        checked = 0
        with resource.get_client() as client:
            while checked < min(max_requests_per_tick, len(order)) and (not checked or time.monotonic() < deadline):
                query_id = order[(position + checked) % len(order)]
                checked += 1
                key = watched[query_id][0]
                try:
                    query = client.get_query(query_id)
                except IWatchError as error:
                    context.log.warning(f"Inverse Watch query {query_id}: not read this tick ({error})")
                    continue
                result_id = query.latest_query_data_id
                if result_id is None or seen.get(query_id) == result_id:
                    continue
                seen[query_id] = result_id
                if _produced_by_dagster(context.instance, key, result_id):
                    continue
                if on_refresh == "materialize" and key not in partitioned:
                    runs.append(dg.RunRequest(run_key=f"iwatch-{query_id}-{result_id}", asset_selection=[key]))
                else:
                    events.append(_observation(key, query_id, result_id, query.updated_at, client.query_url(query_id)))
        cursor = _write_cursor(seen, (position + checked) % len(order))
        return dg.SensorResult(asset_events=events, run_requests=runs, cursor=cursor)

    return _sensor


def _watched(query_assets: WatchedAssets) -> dict[int, tuple[dg.AssetKey, bool]]:
    """``{query_id: (asset key, partitioned)}``."""
    if isinstance(query_assets, Mapping):
        return {int(q): (dg.AssetKey.from_coercible(k), False) for q, k in query_assets.items()}
    found: dict[int, tuple[dg.AssetKey, bool]] = {}
    for asset in query_assets:
        specs = asset.specs if isinstance(asset, dg.AssetsDefinition) else [asset]
        for spec in specs:
            value = spec.metadata.get("iwatch/query_id")
            value = getattr(value, "value", value)
            if isinstance(value, int) and not isinstance(value, bool):
                found[value] = (spec.key, spec.partitions_def is not None)
    return found


def _produced_by_dagster(instance: dg.DagsterInstance, key: dg.AssetKey, result_id: int) -> bool:
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        return False
    value = materialization.metadata.get("iwatch/query_result_id")
    return getattr(value, "value", value) == result_id


def _observation(key: dg.AssetKey, query_id: int, result_id: int, updated_at: Any, url: str) -> dg.AssetObservation:
    metadata: dict[str, Any] = {
        "iwatch/query_id": query_id,
        "iwatch/query_result_id": result_id,
        "iwatch/query_url": dg.MetadataValue.url(url),
        "iwatch/refreshed_by": "inverse-watch",
    }
    if updated_at is not None:
        metadata["iwatch/query_updated_at"] = dg.MetadataValue.timestamp(updated_at)
    return dg.AssetObservation(asset_key=key, metadata=metadata)


def _read_cursor(cursor: str | None) -> tuple[dict[int, int], int]:
    """The last result id seen per query, and where the next tick starts; an unreadable cursor starts afresh."""
    if not cursor:
        return {}, 0
    try:
        data = json.loads(cursor)
        if data.get("v") != _CURSOR_VERSION:
            return {}, 0
        return {int(q): int(r) for q, r in data["seen"].items()}, int(data["next"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}, 0


def _write_cursor(seen: Mapping[int, int], position: int) -> str:
    return json.dumps({"v": _CURSOR_VERSION, "seen": {str(q): r for q, r in sorted(seen.items())}, "next": position})
