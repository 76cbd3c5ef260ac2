"""A cached, serializable snapshot of an Inverse Watch instance: its queries and dashboards.

Definitions built from a snapshot make no HTTP call, so a code location loads fast and without the network; the
snapshot is refreshed on purpose (``dg utils refresh-defs-state``, ``iwatch snapshot`` or :func:`write_snapshot`).
A query or dashboard that cannot be read is recorded under ``broken`` and left out, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import ConfigError, IWatchError, SnapshotError
from dagster_iwatch.types import Dashboard, Parameter, Query

SNAPSHOT_VERSION = 1
"""The snapshot file format; a file of another version is refused with a hint to refresh it."""

MAX_PAGE_SIZE = 250

_LOGGER = logging.getLogger("dagster_iwatch.state")


# The records are left out of garbage collection (gc=False): they hold decoded JSON, which has no cycles, and a
# snapshot of thousands of queries would otherwise add to every full collection while definitions load.


class ParameterRecord(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A parameter a query declares: its name, Redash type, default value and options."""

    name: str
    type: str
    title: str = ""
    value: Any = None
    enum_options: tuple[str, ...] | None = None
    query_id: int | None = None
    multi_values: bool = False


class ScheduleRecord(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A query's refresh schedule in Inverse Watch.

    Attributes:
        interval: Seconds between refreshes.
        time: ``"HH:MM"`` (UTC) for daily and weekly refreshes.
        day_of_week: The weekday name of a weekly refresh.
        until: ``"YYYY-MM-DD"``: the last day of refreshes.
    """

    interval: int
    time: str | None = None
    day_of_week: str | None = None
    until: str | None = None


class QueryRecord(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """What a snapshot keeps of one saved query."""

    id: int
    name: str
    sql: str
    sql_hash: str
    description: str | None = None
    parameters: tuple[ParameterRecord, ...] = ()
    tags: tuple[str, ...] = ()
    owner_email: str | None = None
    schedule: ScheduleRecord | None = None
    is_archived: bool = False
    is_draft: bool = False
    data_source_id: int | None = None
    version: int | None = None
    latest_query_data_id: int | None = None
    retrieved_at: str | None = None
    updated_at: str | None = None

    @property
    def code_version(self) -> str:
        """A hash of the SQL text and the declared parameters: it changes when the query is edited."""
        digest = hashlib.sha256(self.sql.encode())
        digest.update(msgspec.json.encode(self.parameters))
        return digest.hexdigest()[:16]

    @property
    def upstream_query_ids(self) -> tuple[int, ...]:
        """The queries whose results give the values of this query's ``query`` parameters."""
        ids = (p.query_id for p in self.parameters if p.type == "query" and p.query_id is not None)
        return tuple(dict.fromkeys(i for i in ids if i != self.id))


class WidgetRecord(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A dashboard widget: a visualization of a query, or a text box (no ``query_id``)."""

    id: int
    query_id: int | None = None
    visualization_id: int | None = None
    visualization_name: str | None = None
    visualization_type: str | None = None


class DashboardRecord(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """What a snapshot keeps of one dashboard and its widgets."""

    id: int
    slug: str
    name: str
    tags: tuple[str, ...] = ()
    is_archived: bool = False
    is_draft: bool = False
    version: int | None = None
    widgets: tuple[WidgetRecord, ...] = ()
    updated_at: str | None = None

    @property
    def query_ids(self) -> tuple[int, ...]:
        """The queries its widgets show, in widget order, without repeats."""
        return tuple(dict.fromkeys(w.query_id for w in self.widgets if w.query_id is not None))


class BrokenRecord(msgspec.Struct, frozen=True, gc=False):
    """A query or dashboard the snapshot could not read, and why."""

    kind: str
    ref: str
    error: str


class InstanceSnapshot(msgspec.Struct, frozen=True, gc=False):
    """An instance's queries and dashboards at one moment, as stored in a snapshot file."""

    base_url: str
    fetched_at: str
    queries: tuple[QueryRecord, ...] = ()
    dashboards: tuple[DashboardRecord, ...] = ()
    broken: tuple[BrokenRecord, ...] = ()
    version: int = SNAPSHOT_VERSION

    def query(self, query_id: int) -> QueryRecord | None:
        """The query with this id, or ``None``."""
        return next((q for q in self.queries if q.id == query_id), None)

    def query_url(self, query_id: int) -> str:
        """The query's page in the web app."""
        return f"{self.base_url}/queries/{query_id}"

    def dashboard_url(self, dashboard: DashboardRecord) -> str:
        """The dashboard's page in the web app."""
        return f"{self.base_url}/dashboards/{dashboard.slug or dashboard.id}"


def query_record(query: Query) -> QueryRecord:
    """A snapshot record of a query as the client returned it.

    Raises:
        SnapshotError: The query's schedule or parameters cannot be understood.
    """
    return QueryRecord(
        id=query.id,
        name=query.name,
        sql=query.query,
        sql_hash=hashlib.sha256(query.query.encode()).hexdigest()[:16],
        description=query.description or None,
        parameters=tuple(_parameter_record(p) for p in query.parameters),
        tags=tuple(query.tags),
        owner_email=query.owner_email or None,
        schedule=_schedule_record(query.id, query.schedule),
        is_archived=query.is_archived,
        is_draft=query.is_draft,
        data_source_id=query.data_source_id,
        version=query.version,
        latest_query_data_id=query.latest_query_data_id,
        retrieved_at=query.retrieved_at.isoformat() if query.retrieved_at else None,
        updated_at=query.updated_at.isoformat() if query.updated_at else None,
    )


def dashboard_record(dashboard: Dashboard) -> DashboardRecord:
    """A snapshot record of a dashboard fetched with its widgets."""
    return DashboardRecord(
        id=dashboard.id,
        slug=dashboard.slug,
        name=dashboard.name,
        tags=tuple(dashboard.tags),
        is_archived=dashboard.is_archived,
        is_draft=dashboard.is_draft,
        version=dashboard.version,
        widgets=tuple(
            WidgetRecord(
                id=w.id,
                query_id=w.query_id,
                visualization_id=w.visualization_id,
                visualization_name=w.visualization_name,
                visualization_type=w.visualization_type,
            )
            for w in dashboard.widgets
        ),
        updated_at=dashboard.updated_at.isoformat() if dashboard.updated_at else None,
    )


def _parameter_record(parameter: Parameter) -> ParameterRecord:
    value = parameter.value
    if isinstance(value, dict):
        value = dict(sorted(value.items()))
    return ParameterRecord(
        name=parameter.name,
        type=parameter.type,
        title=parameter.title,
        value=value,
        enum_options=parameter.enum_options,
        query_id=parameter.query_id,
        multi_values=parameter.multi_values is not None,
    )


def _schedule_record(query_id: int, schedule: Any) -> ScheduleRecord | None:
    if not schedule or schedule.get("interval") in (None, "", 0):
        return None
    interval = schedule.get("interval")
    try:
        seconds = int(interval)
    except (TypeError, ValueError):
        raise SnapshotError(f"query {query_id}: schedule interval {interval!r} is not a number of seconds") from None
    if seconds <= 0:
        raise SnapshotError(f"query {query_id}: schedule interval {seconds} must be positive")
    fields = {}
    for name in ("time", "day_of_week", "until"):
        value = schedule.get(name)
        if value is not None and not isinstance(value, str):
            raise SnapshotError(f"query {query_id}: schedule {name} {value!r} must be a string")
        fields[name] = value or None
    return ScheduleRecord(interval=seconds, **fields)


def fetch_snapshot(
    client: IWatchClient,
    *,
    tags: Sequence[str] | None = None,
    search: str | None = None,
    dashboards: bool = True,
    max_workers: int = 4,
) -> InstanceSnapshot:
    """Read an instance's queries (a page of up to 250 per request) and dashboards (one request each).

    Args:
        client: A client with a user API key.
        tags: Only queries with all of these tags (dashboards are not filtered).
        search: Only queries matching this full-text search.
        dashboards: Whether to read dashboards and their widgets.
        max_workers: Dashboards fetched at once.

    Returns:
        The snapshot; what could not be read is under ``broken`` (and logged as a warning).

    Raises:
        ConfigError: ``max_workers`` is not a positive integer.
        IWatchError: The query or dashboard list cannot be read at all.
    """
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigError(f"max_workers must be a positive integer, got {max_workers!r}")
    fetched_at = datetime.now(UTC).isoformat()
    broken: list[BrokenRecord] = []
    queries = _records(client.list_queries(q=search, tags=tags, page_size=MAX_PAGE_SIZE), broken)
    dashboard_records: list[DashboardRecord] = []
    if dashboards:
        listed = list(client.list_dashboards(page_size=MAX_PAGE_SIZE))
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="iwatch-snapshot") as pool:
            for ref, outcome in zip(listed, pool.map(lambda d: _dashboard(client, d), listed), strict=True):
                if isinstance(outcome, DashboardRecord):
                    dashboard_records.append(outcome)
                else:
                    broken.append(_broken("dashboard", ref.slug or str(ref.id), outcome))
    return InstanceSnapshot(
        base_url=client.base_url,
        fetched_at=fetched_at,
        queries=tuple(sorted(queries, key=lambda q: q.id)),
        dashboards=tuple(sorted(dashboard_records, key=lambda d: d.id)),
        broken=tuple(broken),
    )


def _records(queries: Iterable[Query], broken: list[BrokenRecord]) -> list[QueryRecord]:
    records = []
    for query in queries:
        try:
            records.append(query_record(query))
        except IWatchError as error:
            broken.append(_broken("query", str(query.id), error))
    return records


def _dashboard(client: IWatchClient, listed: Dashboard) -> DashboardRecord | IWatchError:
    try:
        # Inverse Watch reads dashboards by slug, upstream Redash by id; the client handles both.
        return dashboard_record(client.get_dashboard(listed.slug or listed.id))
    except IWatchError as error:
        return error


def _broken(kind: str, ref: str, error: Exception) -> BrokenRecord:
    message = f"{type(error).__name__}: {error}"
    _LOGGER.warning("Inverse Watch snapshot: skipped %s %s (%s)", kind, ref, message)
    return BrokenRecord(kind=kind, ref=ref, error=message)


def encode_snapshot(snapshot: InstanceSnapshot) -> bytes:
    """The snapshot as JSON bytes."""
    return msgspec.json.encode(snapshot)


def decode_snapshot(data: bytes | str, source: str = "snapshot") -> InstanceSnapshot:
    """A snapshot from JSON bytes.

    Raises:
        SnapshotError: The data is not a snapshot, or one of another format version.
    """
    try:
        header = msgspec.json.decode(data, type=_Header)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise SnapshotError(f"{source} is not an Inverse Watch snapshot ({error}); refresh it") from None
    if header.version != SNAPSHOT_VERSION:
        raise SnapshotError(
            f"{source} has format version {header.version}, this dagster-iwatch reads version {SNAPSHOT_VERSION}; "
            "refresh it (dg utils refresh-defs-state, or iwatch snapshot)"
        )
    try:
        return msgspec.json.decode(data, type=InstanceSnapshot)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise SnapshotError(f"{source} is not a valid Inverse Watch snapshot ({error}); refresh it") from None


class _Header(msgspec.Struct):
    version: int = 0


def read_snapshot(path: str | os.PathLike[str]) -> InstanceSnapshot:
    """Read a snapshot file written by :func:`write_snapshot`.

    Raises:
        SnapshotError: The file is missing, unreadable, or not a snapshot of this format version.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SnapshotError(f"cannot read the Inverse Watch snapshot {str(path)!r}: {error.strerror}") from None
    return decode_snapshot(data, source=f"the file {str(path)!r}")


def save_snapshot(snapshot: InstanceSnapshot, path: str | os.PathLike[str]) -> Path:
    """Write a snapshot atomically: a reader sees the old file or the new one, never half of one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(encode_snapshot(snapshot))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_snapshot(
    client: IWatchClient,
    path: str | os.PathLike[str],
    *,
    tags: Sequence[str] | None = None,
    search: str | None = None,
    dashboards: bool = True,
    max_workers: int = 4,
) -> InstanceSnapshot:
    """Fetch an instance's snapshot (see :func:`fetch_snapshot`) and write it to ``path`` atomically.

    Args:
        client: A client with a user API key.
        path: The snapshot file (its folder is created).
        tags: Only queries with all of these tags.
        search: Only queries matching this full-text search.
        dashboards: Whether to read dashboards and their widgets.
        max_workers: Dashboards fetched at once.

    Returns:
        The snapshot written.
    """
    snapshot = fetch_snapshot(client, tags=tags, search=search, dashboards=dashboards, max_workers=max_workers)
    save_snapshot(snapshot, path)
    return snapshot
