"""Typed conversion of query results to Arrow tables and pandas DataFrames.

Each column is built on its own, from its values, with the type its Redash column type names:

- ``integer`` -> ``int64``. Values beyond int64 make it ``decimal128(38, 0)``, or ``string`` when wider than
  38 digits; a fraction such as ``1.5`` makes it ``float64`` (never truncated).
- ``float`` -> ``float64``. Whole numbers are exact up to 2**53; beyond that the column stays ``int64``
  rather than round.
- ``boolean`` -> ``bool``.
- ``string`` -> ``string``. Non-string values become their JSON text (``5`` -> ``"5"``, ``["x", "y"]`` ->
  ``'["x", "y"]'``).
- ``datetime`` -> ``timestamp[us, tz=UTC]`` from ISO-8601 strings: an offset is converted to UTC and a value
  with no offset is taken as UTC. Digits past microseconds keep the column as ``string``.
- ``date`` -> ``date32`` from ``YYYY-MM-DD``; datetime strings make it a UTC timestamp column.
- ``null`` (no type) or any other name -> inferred from the values, see below.

A column whose values do not fit its declared type is typed as if it had no type, so nothing is lost
silently. Inference: all integers -> ``int64`` (wider ones as above); integers and floats -> ``float64``;
booleans -> ``bool``; strings -> ``string`` (strings are never parsed into dates or numbers); objects or
lists -> their JSON text as ``string``; a mix of kinds (say numbers and strings, or ``0`` and ``true``) ->
``string`` holding strings as they are and other values as JSON text. A column with no type whose values
are all null (or that has no rows) is ``string``: a text column that happens to be empty in one partition
then matches the other partitions. A column with a declared type keeps that type when all its values are
null, and an empty result keeps every declared column with its type.

Column order follows the result's column list; a row missing a key holds null there. Every field carries
its Redash type in the field metadata ``iwatch.type`` (``"null"`` when the server gave none) and its
display name in ``iwatch.friendly_name``; both reach Parquet files through the Arrow schema.

:func:`arrow_to_pandas` gives pandas' nullable dtypes where pandas has one (``Int64``, ``Float64``,
``boolean``, ``string``), ``datetime64[us, UTC]`` for timestamps, and :class:`pandas.ArrowDtype` for the
rest (``date32``, ``decimal128``), so nulls stay nulls and no integer turns into a float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from dagster_iwatch.columns import Column
from dagster_iwatch.errors import ProtocolError

if TYPE_CHECKING:
    import pandas as pd

    from dagster_iwatch.jsonrows import RowsPiece

__all__ = [
    "IWATCH_FRIENDLY_NAME_KEY",
    "IWATCH_TYPE_KEY",
    "arrow_to_pandas",
    "build_column",
    "column_field",
    "finish_column",
    "result_to_arrow",
    "table_from_pieces",
    "table_from_rows_json",
]

IWATCH_TYPE_KEY = b"iwatch.type"
IWATCH_FRIENDLY_NAME_KEY = b"iwatch.friendly_name"

_UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
_NAIVE_TIMESTAMP = pa.timestamp("us")
_DECIMAL_INT = pa.decimal128(38, 0)
_MAX_DECIMAL_INT = 10**38 - 1
_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)
# Python's fromisoformat silently drops digits past microseconds; such values stay strings.
_TOO_PRECISE = re.compile(r"[.,]\d{7,}")
_NON_BLANK = re.compile(rb"[^ \t\r\n]")
_DATE = Column("date", type="date")

# pyarrow ships no type information, so its arrays are Any to mypy; the alias names what flows.
_ArrowArray: TypeAlias = Any


class RowsResult(Protocol):
    """What :func:`result_to_arrow` reads of a result (a :class:`~dagster_iwatch.types.QueryResult`)."""

    @property
    def columns(self) -> Sequence[Column]:
        """The result's columns."""

    @property
    def rows(self) -> Sequence[Mapping[str, Any]]:
        """The result's rows, as the server sent them."""


def result_to_arrow(result: RowsResult) -> pa.Table:
    """Convert a query result to a :class:`pyarrow.Table` typed by its Redash column types.

    Args:
        result: The query result.

    Returns:
        A table with one field per result column, in order, typed by the rule in this module's docstring.

    Raises:
        ProtocolError: Two columns share a name, or a row holds a key that is not among the columns.
    """
    from dagster_iwatch.piece_reader import check_columns, unknown_key_error

    check_columns(result.columns)
    rows = result.rows
    names = {column.name for column in result.columns}
    for row in rows:
        if len(row) > len(names) or not names.issuperset(row):
            raise unknown_key_error(next(key for key in row if key not in names))
    arrays = [build_column(column.type, [row.get(column.name) for row in rows]) for column in result.columns]
    fields = [column_field(column, array.type) for column, array in zip(result.columns, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def table_from_rows_json(
    rows_json: bytes | memoryview, columns: Sequence[Column], *, piece_bytes: int | None = None
) -> pa.Table:
    """Convert the JSON text of a result's rows to a table, natively, with the same types as :func:`result_to_arrow`.

    The rows are read by ``pyarrow.json`` with an explicit schema built from the column types, piece by
    piece on all cores; columns whose values it refuses are built from Python values by the same rules as
    :func:`result_to_arrow` (see :mod:`dagster_iwatch.piece_reader`). The output equals
    ``result_to_arrow`` on the same rows, field metadata included (columns may hold several chunks).

    Args:
        rows_json: The text of the ``rows`` array (``[{"a": 1, ...}, ...]``), as sent by the server.
        columns: The server's column list for these rows.
        piece_bytes: Target size of the text read at once (:data:`dagster_iwatch.jsonrows.PIECE_BYTES`
            when ``None``).

    Returns:
        A table with one field per column, in order.

    Raises:
        ProtocolError: The text is not an array of objects, two columns share a name, or a row holds a
            key that is not among the columns.
    """
    from dagster_iwatch.jsonrows import PIECE_BYTES, ByteBuffer, CutMisplaced, split_rows_array

    view = memoryview(rows_json)
    for guess in (True, False):
        buffer = ByteBuffer()
        buffer.append(view)
        buffer.eof = True
        try:
            table = table_from_pieces(split_rows_array(buffer, piece_bytes or PIECE_BYTES, guess=guess), columns, view)
        except CutMisplaced:
            if not guess:
                raise
            continue
        if _NON_BLANK.search(buffer.data, buffer.pos):
            raise ProtocolError("The result's rows are followed by more text")
        break
    return table


def table_from_pieces(pieces: Iterable[RowsPiece | None], columns: Sequence[Column], source: memoryview) -> pa.Table:
    """The table of a result whose rows come as pieces cut from ``source`` (see :func:`table_from_rows_json`)."""
    from dagster_iwatch.piece_reader import PieceReader
    from dagster_iwatch.prefetch import prefetch

    reader = PieceReader(columns)
    # Where each piece's text is, whether it was proved whole rows, its table, whether its keys were checked.
    read: list[tuple[int, int, bool, pa.Table | None, bool]] = []
    for piece in prefetch(pieces):
        if piece is None:
            raise ProtocolError("The result's rows are cut short")
        table, checked = reader.read_fast(piece)
        read.append((piece.start, piece.stop, piece.checked, table, checked))
    python: dict[str, list[Any]] = {column.name: [] for column in reader.fallback_columns()}
    for start, stop, whole, _table, checked in read:
        if python or not checked:
            text = b"".join((b"[", source[start:stop], b"]"))
            for name, values in reader.read_fallback(text, check_keys=not checked, checked=whole).items():
                python[name] += values
    arrays: list[_ArrowArray] = []
    for column in columns:
        if column.name in python:
            arrays.append(build_column(column.type, python[column.name]))
            continue
        chunks = [
            chunk
            for _start, _stop, _whole, table, _checked in read
            if table is not None
            for chunk in table.column(column.name).chunks
        ]
        arrays.append(finish_column(column, pa.chunked_array(chunks, type=_fast_type(column)))[0])
    fields = [column_field(column, array.type) for column, array in zip(columns, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def finish_column(column: Column, array: _ArrowArray) -> tuple[_ArrowArray, str | None]:
    """The final array of a natively read column, and for dates and datetimes the rule that typed it.

    Dates and datetimes are cast from their strings (rules ``date``, ``offset``, ``naive``, ``mixed``, or
    ``text`` when they stay strings); other columns are final as read (rule ``None``).
    """
    if column.type == "date":
        try:
            return pc.cast(array, pa.date32()), "date"
        except _CONVERSION_ERRORS:
            pass
    if column.type in ("date", "datetime"):
        parsed, rule = _parse_timestamps(array)
        return (array, "text") if parsed is None else (parsed, rule)
    return array, None


def column_field(column: Column, arrow_type: pa.DataType) -> pa.Field:
    """The field of a result column: its type, with its Redash type and display name in the field metadata."""
    metadata = {
        IWATCH_TYPE_KEY: (column.type or "null").encode(),
        IWATCH_FRIENDLY_NAME_KEY: (column.friendly_name or column.name).encode(),
    }
    return pa.field(column.name, arrow_type, nullable=True, metadata=metadata)


def _fast_type(column: Column) -> pa.DataType:
    from dagster_iwatch.piece_reader import fast_type

    return fast_type(column)


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Convert a table to a pandas DataFrame with nullable dtypes.

    Args:
        table: A table, typically from :func:`result_to_arrow`.

    Returns:
        A DataFrame; see this module's docstring for the dtype of each Arrow type.
    """
    import pandas as pd

    def types_mapper(arrow_type: pa.DataType) -> Any:
        if pa.types.is_int64(arrow_type):
            return pd.Int64Dtype()
        if pa.types.is_float64(arrow_type):
            return pd.Float64Dtype()
        if pa.types.is_boolean(arrow_type):
            return pd.BooleanDtype()
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return pd.StringDtype("pyarrow")
        if pa.types.is_timestamp(arrow_type):
            return None
        return pd.ArrowDtype(arrow_type)

    frame: pd.DataFrame = table.to_pandas(types_mapper=types_mapper)
    return frame


def build_column(redash_type: str | None, values: list[Any]) -> _ArrowArray:
    """One column's array from its Python values, typed by its Redash type when they fit it, else by inference."""
    builder = _BUILDERS.get(redash_type or "")
    if builder is not None:
        built = builder(values)
        if built is not None:
            return built
    return _infer(values, null_type=pa.string())


def _inferred(values: list[Any]) -> _ArrowArray | None:
    """Arrow's own inference, or ``None`` when the values mix kinds or overflow int64."""
    try:
        return pa.array(values, from_pandas=False)
    except _CONVERSION_ERRORS:
        return None


def _integer(values: list[Any]) -> _ArrowArray | None:
    array = _inferred(values)
    if array is None:
        return None
    if pa.types.is_null(array.type):
        return pa.nulls(len(values), pa.int64())
    if pa.types.is_int64(array.type) or pa.types.is_float64(array.type):
        return array
    return None


def _float(values: list[Any]) -> _ArrowArray | None:
    array = _inferred(values)
    if array is None:
        return None
    if pa.types.is_null(array.type):
        return pa.nulls(len(values), pa.float64())
    if pa.types.is_float64(array.type):
        return array
    if pa.types.is_int64(array.type):
        try:
            return pc.cast(array, pa.float64(), safe=True)
        except _CONVERSION_ERRORS:
            return array
    return None


def _boolean(values: list[Any]) -> _ArrowArray | None:
    array = _inferred(values)
    if array is None:
        return None
    if pa.types.is_null(array.type):
        return pa.nulls(len(values), pa.bool_())
    return array if pa.types.is_boolean(array.type) else None


def _string(values: list[Any]) -> _ArrowArray | None:
    array = _inferred(values)
    if array is not None:
        if pa.types.is_null(array.type):
            return pa.nulls(len(values), pa.string())
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            return array
    return _as_text(values)


def _datetime(values: list[Any]) -> _ArrowArray | None:
    array = _inferred(values)
    if array is None:
        return None
    if pa.types.is_null(array.type):
        return pa.nulls(len(values), _UTC_TIMESTAMP)
    if not pa.types.is_string(array.type):
        return None
    return _parse_timestamps(array)[0]


def _date(values: list[Any]) -> _ArrowArray | None:
    array = _inferred(values)
    if array is None:
        return None
    if pa.types.is_null(array.type):
        return pa.nulls(len(values), pa.date32())
    if not pa.types.is_string(array.type):
        return None
    return finish_column(_DATE, array)[0]


def _parse_timestamps(array: _ArrowArray) -> tuple[_ArrowArray | None, str]:
    """ISO-8601 strings as UTC timestamps (values with no offset are UTC), or ``None`` if any does not parse.

    Also says which rule parsed them: ``offset`` (every value has one), ``naive`` (none has), ``mixed``.
    """
    try:
        return pc.cast(array, _UTC_TIMESTAMP), "offset"
    except _CONVERSION_ERRORS:
        pass
    try:
        return pc.cast(pc.cast(array, _NAIVE_TIMESTAMP), _UTC_TIMESTAMP), "naive"
    except _CONVERSION_ERRORS:
        pass
    # Offsets and naive values mixed in one column: Arrow's cast wants one or the other.
    parsed: list[datetime | None] = []
    for value in array.to_pylist():
        if value is None:
            parsed.append(None)
            continue
        if _TOO_PRECISE.search(value):
            return None, "text"
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None, "text"
        parsed.append(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC))
    return pa.array(parsed, type=_UTC_TIMESTAMP), "mixed"


def _infer(values: list[Any], *, null_type: pa.DataType) -> _ArrowArray:
    """Type a column from its values alone (the rule for columns with no or a misfitting type)."""
    array = _inferred(values)
    if array is not None:
        kind = array.type
        if pa.types.is_null(kind):
            return pa.nulls(len(values), null_type)
        if (
            pa.types.is_int64(kind)
            or pa.types.is_float64(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
        ):
            return array
        return _as_text(values)
    if all(value is None or (type(value) is int) for value in values):
        return _wide_integers(values)
    return _as_text(values)


def _wide_integers(values: list[int | None]) -> _ArrowArray:
    """Integers beyond int64: exact as decimal128(38, 0) when they fit, else as decimal text."""
    if all(value is None or abs(value) <= _MAX_DECIMAL_INT for value in values):
        return pa.array(values, type=_DECIMAL_INT)
    return pa.array([None if value is None else str(value) for value in values], type=pa.string())


def _as_text(values: list[Any]) -> _ArrowArray:
    """Strings as they are and every other non-null value as its JSON text."""
    return pa.array(
        [value if value is None or isinstance(value, str) else _json_text(value) for value in values],
        type=pa.string(),
    )


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


_BUILDERS: dict[str, Callable[[list[Any]], _ArrowArray | None]] = {
    "integer": _integer,
    "float": _float,
    "boolean": _boolean,
    "string": _string,
    "datetime": _datetime,
    "date": _date,
}
