"""Frozen value types for what the Inverse Watch API returns."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any, overload

import msgspec

from dagster_iwatch.columns import Column
from dagster_iwatch.errors import IWatchError

__all__ = [
    "Column",
    "Dashboard",
    "Job",
    "JobStatus",
    "MultiValuesOptions",
    "Parameter",
    "Query",
    "QueryResult",
    "Widget",
    "WrittenRows",
]

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class JobStatus(IntEnum):
    """A job's status code, as Redash reports it."""

    PENDING = 1
    STARTED = 2
    SUCCESS = 3
    FAILURE = 4
    CANCELLED = 5
    DEFERRED = 6
    SCHEDULED = 7


CANCELLED_MESSAGES = ("query cancelled by user", "query execution cancelled")


@dataclass(frozen=True)
class Job:
    """A query execution job.

    Upstream Redash reports a cancelled job as ``FAILURE`` with "Query cancelled by user.";
    :attr:`is_cancelled` treats both forms as cancelled.
    """

    id: str
    status: JobStatus
    error: str = ""
    query_result_id: int | None = None

    @property
    def is_finished(self) -> bool:
        """Whether the job reached a final state (success, failure or cancelled)."""
        return self.status in (JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.CANCELLED)

    @property
    def is_cancelled(self) -> bool:
        """Whether the job was cancelled, in either the Inverse Watch or the upstream Redash form."""
        if self.status == JobStatus.CANCELLED:
            return True
        return self.status == JobStatus.FAILURE and self.error.strip().lower().rstrip(".") in CANCELLED_MESSAGES


@dataclass(frozen=True)
class MultiValuesOptions:
    """How a multi-value enum or query parameter joins its values into SQL."""

    prefix: str = ""
    suffix: str = ""
    separator: str = ","


@dataclass(frozen=True)
class Parameter:
    """A parameter declared by a saved query (``options.parameters``).

    Attributes:
        type: Redash's type name: ``text``, ``number``, ``date``, ``datetime-local``,
            ``datetime-with-seconds``, ``date-range``, ``datetime-range``, ``datetime-range-with-seconds``,
            ``enum`` or ``query``.
        value: The default value stored with the query (``None`` when there is none).
        enum_options: Allowed values of an ``enum`` parameter.
        query_id: For a ``query`` parameter, the query whose first column gives the allowed values.
        multi_values: Set when the parameter takes several values.
    """

    name: str
    type: str
    title: str = ""
    value: Any = None
    enum_options: tuple[str, ...] | None = None
    query_id: int | None = None
    multi_values: MultiValuesOptions | None = None


@dataclass(frozen=True)
class Query:
    """A saved query. The query's own API key is kept out of ``repr``.

    ``owner_email`` is its author's email; ``runtime`` and ``retrieved_at`` describe its latest result, when
    the server lists them (the queries list does; a single query's answer may not).
    """

    id: int
    name: str
    query: str
    description: str | None = None
    query_hash: str | None = None
    data_source_id: int | None = None
    parameters: tuple[Parameter, ...] = ()
    tags: tuple[str, ...] = ()
    is_archived: bool = False
    is_draft: bool = False
    is_safe: bool = True
    version: int | None = None
    latest_query_data_id: int | None = None
    schedule: Mapping[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    api_key: str | None = field(default=None, repr=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    owner_email: str | None = None
    runtime: float | None = None
    retrieved_at: datetime | None = None

    def parameter(self, name: str) -> Parameter | None:
        """The declared parameter called ``name``, or ``None``."""
        return next((p for p in self.parameters if p.name == name), None)


class _CountedRows(Sequence[Mapping[str, Any]]):
    """Rows known by their count, each kind of view saying how to read them."""

    def __init__(self, count: int) -> None:
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        return self._read()[index]

    def _read(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._count} rows)"


class JsonRows(_CountedRows):
    """A result's rows kept as the JSON text the server sent, decoded into dicts only when first read."""

    def __init__(self, text: bytes | memoryview, count: int) -> None:
        super().__init__(count)
        self._text = text
        self._rows: list[dict[str, Any]] | None = None

    def _read(self) -> list[dict[str, Any]]:
        if self._rows is None:
            try:
                self._rows = msgspec.json.decode(self._text)
            except msgspec.DecodeError:
                # Bare NaN tokens (Redash before v9): the stdlib reads them.
                self._rows = json.loads(bytes(self._text))
        return self._rows

    def __eq__(self, other: object) -> bool:
        return list(self) == other if isinstance(other, list) else self is other


class WrittenRows(_CountedRows):
    """The rows of a result streamed to a file: counted, not kept in memory."""

    def __init__(self, count: int, where: str) -> None:
        super().__init__(count)
        self._where = where

    def _read(self) -> list[dict[str, Any]]:
        raise self.not_kept()

    def not_kept(self) -> IWatchError:
        """The error a read of the rows raises: they are in the file."""
        return IWatchError(
            f"The {self._count} rows of this result were written to {self._where}, not kept: read them there"
        )


@dataclass(frozen=True)
class QueryResult:
    """A query result: its metadata, columns and rows as the server sent them.

    ``job_id`` is the job that produced this result in this call, or ``None`` when the server answered
    from its cache; :attr:`from_cache` says the same. ``parameters`` holds the parameter values sent, as
    serialized for the API. A result from the client carries its ``table``, read natively from the body
    (``rows`` decodes the JSON into dicts only when read).
    """

    id: int | None
    query_hash: str | None
    query: str | None
    data_source_id: int | None
    runtime: float | None
    retrieved_at: datetime | None
    columns: tuple[Column, ...]
    rows: Sequence[Mapping[str, Any]] = field(repr=False)
    job_id: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    table: pa.Table | None = field(default=None, repr=False, compare=False)

    @property
    def from_cache(self) -> bool:
        """Whether the server served a cached result instead of running a job for this call."""
        return self.job_id is None

    @property
    def row_count(self) -> int:
        """The number of rows."""
        return len(self.rows)

    def to_arrow(self) -> pa.Table:
        """The rows as a :class:`pyarrow.Table` typed by the Redash column types (see ``dagster_iwatch.arrow``)."""
        if self.table is not None:
            return self.table
        if isinstance(self.rows, WrittenRows):
            raise self.rows.not_kept()
        from dagster_iwatch.arrow import result_to_arrow

        return result_to_arrow(self)

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame with nullable dtypes, converted through Arrow."""
        from dagster_iwatch.arrow import arrow_to_pandas

        return arrow_to_pandas(self.to_arrow())


@dataclass(frozen=True)
class Widget:
    """A dashboard widget: a visualization of a query, or a text box (``visualization_id`` is ``None``).

    ``visualization_name``, ``visualization_type`` (such as ``CHART`` or ``TABLE``) and ``query_name`` describe
    what a visualization widget shows; they are ``None`` for a text box.
    """

    id: int
    visualization_id: int | None = None
    query_id: int | None = None
    text: str = ""
    options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    visualization_name: str | None = None
    visualization_type: str | None = None
    query_name: str | None = None

    @property
    def kind(self) -> str:
        """``"visualization"`` for a widget showing a visualization, else ``"text"``."""
        return "text" if self.visualization_id is None else "visualization"


@dataclass(frozen=True)
class Dashboard:
    """A dashboard and its widgets."""

    id: int
    slug: str
    name: str
    tags: tuple[str, ...] = ()
    is_archived: bool = False
    is_draft: bool = False
    version: int | None = None
    widgets: tuple[Widget, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def query_ids(self) -> tuple[int, ...]:
        """The ids of the queries its widgets show, in widget order, without repeats."""
        return tuple(dict.fromkeys(w.query_id for w in self.widgets if w.query_id is not None))
