"""The API's JSON shapes, and their conversion to the value types in :mod:`dagster_iwatch.types`.

Every answer is checked here, against msgspec structs that say what each field may hold; a body that does not
fit raises a :class:`ProtocolError` that names the call and the field. Fields the client does not use are
ignored, and most fields may be missing or null, as servers of different versions leave some out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from dagster_iwatch.errors import ProtocolError
from dagster_iwatch.types import (
    Column,
    Dashboard,
    Job,
    JobStatus,
    JsonRows,
    MultiValuesOptions,
    Parameter,
    Query,
    QueryResult,
    Widget,
    WrittenRows,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "decode",
    "parse_dashboard",
    "parse_job",
    "parse_page",
    "parse_query",
    "parse_result",
    "parse_run",
    "written_result",
]

_T = TypeVar("_T")


class _MultiValues(msgspec.Struct, frozen=True):
    prefix: str | None = None
    suffix: str | None = None
    separator: str | None = None


class _Parameter(msgspec.Struct, frozen=True):
    name: str
    type: str | None = None
    title: str | None = None
    value: Any = None
    enumOptions: str | list[Any] | None = None
    queryId: int | None = None
    multiValuesOptions: _MultiValues | None = None


class _Options(msgspec.Struct, frozen=True):
    parameters: list[_Parameter] | None = None


class _User(msgspec.Struct, frozen=True):
    email: str | None = None


class _Query(msgspec.Struct, frozen=True):
    id: int
    name: str | None = None
    query: str | None = None
    description: str | None = None
    query_hash: str | None = None
    data_source_id: int | None = None
    options: _Options | None = None
    tags: list[str] | None = None
    is_archived: bool | None = None
    is_draft: bool | None = None
    is_safe: bool | None = None
    version: int | None = None
    latest_query_data_id: int | None = None
    schedule: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    api_key: str | None = None
    user: _User | None = None
    runtime: float | None = None
    retrieved_at: str | None = None


class _Job(msgspec.Struct, frozen=True):
    id: str
    status: int
    error: str | None = None
    query_result_id: int | None = None


class _JobAnswer(msgspec.Struct, frozen=True):
    job: _Job


class _Column(msgspec.Struct, frozen=True):
    name: str
    friendly_name: str | None = None
    type: str | None = None


class _Columns(msgspec.Struct, frozen=True):
    columns: list[_Column]


class _Data(_Columns, frozen=True):
    # Left as JSON text: the rows go to Arrow natively (see dagster_iwatch.arrow), never one object per value.
    rows: msgspec.Raw


_D = TypeVar("_D", _Data, _Columns)


class _Result(msgspec.Struct, Generic[_D], frozen=True):
    data: _D
    id: int | None = None
    query_hash: str | None = None
    query: str | None = None
    data_source_id: int | None = None
    runtime: float | None = None
    retrieved_at: str | None = None


class _ResultAnswer(msgspec.Struct, frozen=True):
    query_result: _Result[_Data]


class _WrittenAnswer(msgspec.Struct, frozen=True):
    # A body whose rows were read as it arrived (dagster_iwatch.ingest): the rest of it.
    query_result: _Result[_Columns]


class _RunAnswer(msgspec.Struct, frozen=True):
    query_result: _Result[_Data] | None = None
    job: _Job | None = None


class _VisualizationQuery(msgspec.Struct, frozen=True):
    id: int | None = None
    name: str | None = None


class _Visualization(msgspec.Struct, frozen=True):
    id: int | None = None
    name: str | None = None
    type: str | None = None
    query: _VisualizationQuery | None = None


class _Widget(msgspec.Struct, frozen=True):
    id: int
    visualization: _Visualization | None = None
    text: str | None = None
    options: dict[str, Any] | None = None


class _Dashboard(msgspec.Struct, frozen=True):
    id: int
    slug: str | None = None
    name: str | None = None
    tags: list[str] | None = None
    is_archived: bool | None = None
    is_draft: bool | None = None
    version: int | None = None
    widgets: list[_Widget] | None = None
    created_at: str | None = None
    updated_at: str | None = None


class _Page(msgspec.Struct, frozen=True):
    results: list[Any]
    count: int | None = None
    page_size: int | None = None


# msgspec keeps integers beyond 64 bits exact, like the stdlib, and parses about twice as fast.
_DECODER = msgspec.json.Decoder()


def decode(body: bytes, call: str) -> Any:
    """A JSON body as Python objects (``None`` for an empty body).

    Raises:
        ProtocolError: The body is not JSON.
    """
    if not body.strip():
        return None
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError:
        pass
    try:
        # Bare NaN tokens (Redash before v9) or numbers beyond float range: the stdlib accepts those.
        return json.loads(body)
    except ValueError:
        failure = ProtocolError(f"{call}: the answer is not JSON ({len(body)} bytes)")
    raise failure


def _convert(data: Any, shape: type[_T], call: str) -> _T:
    try:
        return msgspec.convert(data, shape)
    except msgspec.ValidationError as error:
        failure = ProtocolError(f"{call}: unexpected answer from the server: {error}")
    raise failure


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _parameter(wire: _Parameter) -> Parameter:
    kind = wire.type or "text"
    options: tuple[str, ...] | None = None
    if isinstance(wire.enumOptions, str):
        options = tuple(line.strip() for line in wire.enumOptions.splitlines() if line.strip())
    elif isinstance(wire.enumOptions, list):
        options = tuple(str(option) for option in wire.enumOptions)
    multi = wire.multiValuesOptions
    return Parameter(
        name=wire.name,
        type=kind,
        title=wire.title or "",
        value=wire.value,
        enum_options=options if kind == "enum" else None,
        query_id=wire.queryId,
        multi_values=(
            MultiValuesOptions(prefix=multi.prefix or "", suffix=multi.suffix or "", separator=multi.separator or ",")
            if multi is not None
            else None
        ),
    )


def parse_query(data: Any, call: str) -> Query:
    """A saved query from its JSON object (``raw`` keeps the object)."""
    wire = _convert(data, _Query, call)
    parameters = wire.options.parameters if wire.options is not None else None
    return Query(
        id=wire.id,
        name=wire.name or "",
        query=wire.query or "",
        description=wire.description,
        query_hash=wire.query_hash,
        data_source_id=wire.data_source_id,
        parameters=tuple(_parameter(p) for p in parameters or ()),
        tags=tuple(wire.tags or ()),
        is_archived=bool(wire.is_archived),
        is_draft=bool(wire.is_draft),
        is_safe=wire.is_safe is not False,
        version=wire.version,
        latest_query_data_id=wire.latest_query_data_id,
        schedule=wire.schedule,
        created_at=_time(wire.created_at),
        updated_at=_time(wire.updated_at),
        api_key=wire.api_key,
        raw=data,
        owner_email=wire.user.email if wire.user is not None else None,
        runtime=wire.runtime,
        retrieved_at=_time(wire.retrieved_at),
    )


def _job(wire: _Job, call: str) -> Job:
    try:
        status = JobStatus(wire.status)
    except ValueError:
        failure = ProtocolError(f"{call}: job {wire.id} has an unknown status {wire.status!r}")
        raise failure from None
    return Job(id=wire.id, status=status, error=wire.error or "", query_result_id=wire.query_result_id)


def parse_job(data: Any, call: str) -> Job:
    """A job from ``{"job": {...}}``."""
    return _job(_convert(data, _JobAnswer, call).job, call)


def _columns(wire: list[_Column], call: str) -> tuple[Column, ...]:
    names = [column.name for column in wire]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ProtocolError(
            f"{call}: the result has duplicate column names {duplicates}; give each column its own alias in the SQL"
        )
    return tuple(Column(c.name, c.friendly_name, c.type) for c in wire)


def _result(wire: _Result[_Data], call: str, rows_json: bytes | memoryview | None = None) -> QueryResult:
    from dagster_iwatch.arrow import table_from_rows_json

    columns = _columns(wire.data.columns, call)
    rows = memoryview(wire.data.rows) if rows_json is None else rows_json
    try:
        table = table_from_rows_json(rows, columns)
    except ProtocolError as error:
        failure = ProtocolError(f"{call}: {error}")
        raise failure from None
    return _query_result(wire, columns, JsonRows(rows, table.num_rows), table)


def _query_result(
    wire: _Result[Any], columns: tuple[Column, ...], rows: Sequence[Mapping[str, Any]], table: pa.Table | None = None
) -> QueryResult:
    return QueryResult(
        id=wire.id,
        query_hash=wire.query_hash,
        query=wire.query,
        data_source_id=wire.data_source_id,
        runtime=wire.runtime,
        retrieved_at=_time(wire.retrieved_at),
        columns=columns,
        rows=rows,
        table=table,
    )


def _typed_answer(body: bytes, shape: type[_T], call: str) -> tuple[_T, bytes | None]:
    """The answer decoded into ``shape``, and the rows' text when the body needed the stdlib's parser."""
    try:
        return msgspec.json.decode(body, type=shape), None
    except msgspec.ValidationError as error:
        failure = ProtocolError(f"{call}: unexpected answer from the server: {error}")
        raise failure from None
    except msgspec.DecodeError:
        pass
    # Bare NaN tokens (Redash before v9): the stdlib parses them, and writes them back for the Arrow reader.
    data = decode(body, call)
    result = data.get("query_result") if isinstance(data, dict) else None
    payload = result.get("data") if isinstance(result, dict) else None
    if not isinstance(payload, dict) or payload.get("rows") is None:
        return _convert(data, shape, call), None
    rows = payload["rows"]
    payload["rows"] = []
    converted = msgspec.json.decode(json.dumps(data).encode(), type=shape)
    return converted, json.dumps(rows).encode()


def parse_result(body: bytes, call: str) -> QueryResult:
    """A result from the bytes of ``{"query_result": {...}}``, its rows read natively into Arrow."""
    answer, rows = _typed_answer(body, _ResultAnswer, call)
    return _result(answer.query_result, call, rows)


def written_result(envelope: Any, call: str, rows: int, where: str) -> QueryResult:
    """A result from a body's envelope (all but its rows), whose ``rows`` were written to ``where``."""
    wire = _convert(envelope, _WrittenAnswer, call).query_result
    return _query_result(wire, _columns(wire.data.columns, call), WrittenRows(rows, where))


def parse_run(body: bytes, call: str) -> QueryResult | Job:
    """The answer to running a query: a cached result or a job."""
    answer, rows = _typed_answer(body, _RunAnswer, call)
    if answer.query_result is not None:
        return _result(answer.query_result, call, rows)
    if answer.job is not None:
        return _job(answer.job, call)
    raise ProtocolError(f"{call}: the answer holds neither a result nor a job")


def _widget(wire: _Widget) -> Widget:
    visualization = wire.visualization
    query = visualization.query if visualization is not None else None
    return Widget(
        id=wire.id,
        visualization_id=visualization.id if visualization is not None else None,
        query_id=query.id if query is not None else None,
        text=wire.text or "",
        options=wire.options or {},
        visualization_name=visualization.name if visualization is not None else None,
        visualization_type=visualization.type if visualization is not None else None,
        query_name=query.name if query is not None else None,
    )


def parse_dashboard(data: Any, call: str) -> Dashboard:
    """A dashboard (with its widgets when the answer has them) from its JSON object."""
    wire = _convert(data, _Dashboard, call)
    return Dashboard(
        id=wire.id,
        slug=wire.slug or "",
        name=wire.name or "",
        tags=tuple(wire.tags or ()),
        is_archived=bool(wire.is_archived),
        is_draft=bool(wire.is_draft),
        version=wire.version,
        widgets=tuple(_widget(w) for w in wire.widgets or ()),
        created_at=_time(wire.created_at),
        updated_at=_time(wire.updated_at),
        raw=data,
    )


def parse_page(data: Any, call: str) -> tuple[list[Mapping[str, Any]], int | None, int | None]:
    """A list page's items, total count and page size."""
    page = _convert(data, _Page, call)
    return page.results, page.count, page.page_size
