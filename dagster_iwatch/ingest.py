"""From a result body to Arrow and Parquet: in memory, or batch by batch as the body arrives.

A result body is ``{"query_result": {..., "data": {"columns": [...], "rows": [...]}, ...}}``. Everything
but the rows (the *envelope*) is decoded as usual; the rows are never decoded into Python objects. They
are cut into pieces of whole rows (:mod:`dagster_iwatch.jsonrows`) and each piece is read natively
(:mod:`dagster_iwatch.piece_reader`), with the same types and values as
:func:`dagster_iwatch.arrow.result_to_arrow` gives for the same rows.

Streaming (:class:`ResultStream`, :func:`write_result_parquet`) turns each piece into a record batch as
soon as its bytes have arrived, so memory holds about one piece of text and one batch at a time, whatever
the result's size. A column's type is fixed by the first piece; should a later piece need another (an
integer column whose values turn out to hold a fraction, say), the batches so far cannot stand and the
result is converted again as a whole, from a spool file the body was copied to as it arrived (or from
the body fetched again, when the caller says how): :func:`write_result_parquet` then rewrites its
output, so both ways always give the same table. When the server lists the columns after the rows, the
rows wait in the spool and are converted once the columns have arrived.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dagster_iwatch.arrow import build_column, column_field, finish_column, table_from_pieces, table_from_rows_json
from dagster_iwatch.columns import Column
from dagster_iwatch.errors import IWatchError, ProtocolError
from dagster_iwatch.jsonrows import (
    PIECE_BYTES,
    ByteBuffer,
    CutMisplaced,
    NeedMore,
    RowsPiece,
    next_byte,
    split_rows_array,
)
from dagster_iwatch.piece_reader import PieceReader
from dagster_iwatch.prefetch import prefetch

__all__ = [
    "BatchObserver",
    "ResultStream",
    "StreamRestart",
    "columns_of",
    "read_result_body",
    "split_result_body",
    "write_result_parquet",
]

_ROWS_PATH = ("query_result", "data", "rows")
_OBJECT_PATHS = frozenset({(), ("query_result",), ("query_result", "data")})
_STRUCTURE = re.compile(rb'["\[\]{}]')
_QUOTE = re.compile(rb'"')
_SCALAR_END = re.compile(rb"[,}\] \t\r\n]")
_ANY = msgspec.json.Decoder()
_SPOOL_IN_MEMORY = 4 << 20
_ARROW_SCHEMA_KEY = "ARROW:schema"


class StreamRestart(IWatchError):
    """Batches already yielded cannot stand: a later piece changed a column's type (see :class:`ResultStream`)."""


def _decode(text: bytes | bytearray | memoryview) -> Any:
    try:
        return _ANY.decode(text)
    except msgspec.DecodeError:
        try:
            return json.loads(bytes(text))
        except ValueError as error:
            raise ProtocolError(f"The result body is not valid JSON: {error}") from None


def _skip_value(buffer: ByteBuffer) -> Generator[None, None, Any]:
    """Decode the JSON value at ``pos`` (an envelope value: small) and move past it."""
    first = yield from next_byte(buffer, "the result envelope")
    while True:
        end = _value_end(buffer.data, buffer.pos, first, buffer.eof)
        if end is not None:
            break
        if buffer.eof:
            raise ProtocolError("The result body ends inside a value")
        yield None
    value = _decode(buffer.data[buffer.pos : end])
    buffer.pos = end
    return value


def _value_end(data: bytes | bytearray | memoryview, start: int, first: int, eof: bool) -> int | None:
    """Where the value starting at ``start`` ends, or ``None`` if the buffer does not hold all of it."""
    if first == ord('"'):
        return _string_end(data, start + 1)
    if first not in b"[{":
        match = _SCALAR_END.search(data, start)
        return match.start() if match else (len(data) if eof else None)
    depth, position = 0, start
    while True:
        match = _STRUCTURE.search(data, position)
        if match is None:
            return None
        position = match.start()
        byte = data[position]
        if byte == ord('"'):
            end = _string_end(data, position + 1)
            if end is None:
                return None
            position = end
            continue
        depth += 1 if byte in b"[{" else -1
        position += 1
        if depth == 0:
            return position


def _string_end(data: bytes | bytearray | memoryview, position: int) -> int | None:
    """Just past the closing quote of a string whose text starts at ``position``."""
    while True:
        quote = _find(data, b'"', position)
        if quote < 0:
            return None
        backslashes = 0
        while data[quote - 1 - backslashes] == ord("\\"):
            backslashes += 1
        if backslashes % 2 == 0:
            return quote + 1
        position = quote + 1


def _find(data: bytes | bytearray | memoryview, needle: bytes, start: int) -> int:
    if isinstance(data, memoryview):
        match = _QUOTE.search(data, start)
        return match.start() if match else -1
    return data.find(needle, start)


@dataclass
class _Body:
    """What the body parser has found so far."""

    piece_bytes: int = PIECE_BYTES
    guess: bool = True
    envelope: dict[str, Any] = field(default_factory=dict)
    columns: tuple[Column, ...] | None = None
    rows_start: int = -1
    rows_stop: int = -1


def _parse_object(
    buffer: ByteBuffer, path: tuple[str, ...], body: _Body
) -> Generator[RowsPiece | None, None, dict[str, Any]]:
    """An envelope object; yields the rows' pieces when it holds them, ``None`` when it needs bytes."""
    if (yield from next_byte(buffer, "the result envelope")) != ord("{"):
        raise ProtocolError("The result body is not a JSON object")
    buffer.pos += 1
    result: dict[str, Any] = {}
    if (yield from next_byte(buffer, "the result envelope")) == ord("}"):
        buffer.pos += 1
        return result
    while True:
        key = yield from _skip_value(buffer)
        if not isinstance(key, str) or (yield from next_byte(buffer, "the result envelope")) != ord(":"):
            raise ProtocolError("The result body is not a JSON object with string keys")
        buffer.pos += 1
        inner = (*path, key)
        first = yield from next_byte(buffer, "the result envelope")
        if inner == _ROWS_PATH:
            body.rows_start = buffer.offset()
            yield from split_rows_array(buffer, body.piece_bytes, guess=body.guess)
            body.rows_stop = buffer.offset()
        elif inner in _OBJECT_PATHS and first == ord("{"):
            result[key] = yield from _parse_object(buffer, inner, body)
        else:
            result[key] = yield from _skip_value(buffer)
            if inner == ("query_result", "data", "columns"):
                body.columns = columns_of(result[key])
        separator = yield from next_byte(buffer, "the result envelope")
        buffer.pos += 1
        if separator == ord("}"):
            return result
        if separator != ord(","):
            raise ProtocolError(f"The result body is not valid JSON (found {chr(separator)!r} after a value)")


def columns_of(value: Any) -> tuple[Column, ...]:
    """The server's column list as :class:`Column` values.

    Raises:
        ProtocolError: It is not a list of objects with a string ``name``.
    """
    if not isinstance(value, list) or not all(isinstance(c, Mapping) and isinstance(c.get("name"), str) for c in value):
        raise ProtocolError("Unexpected result columns from the server: each needs a name")
    return tuple(Column(c["name"], c.get("friendly_name"), c.get("type")) for c in value)


def _parse_body(buffer: ByteBuffer, body: _Body) -> Generator[RowsPiece | None, None, None]:
    body.envelope = yield from _parse_object(buffer, (), body)
    while True:
        try:
            buffer.skip_ws()
        except NeedMore:
            if buffer.eof:
                return
            yield None
            continue
        raise ProtocolError("The result body holds more than one JSON value")


def _run(
    chunks: Iterable[bytes | bytearray | memoryview], body: _Body, spool: IO[bytes] | None
) -> Iterator[tuple[RowsPiece, tuple[Column, ...] | None]]:
    """Drive the body parser over the chunks, yielding the rows' pieces; fills ``body``.

    Each piece comes with the columns as known when it was cut: the consumer may run in another thread
    while the parser reads on (and finds the columns after the rows).
    """
    buffer = ByteBuffer()
    parser_iter = iter(_parse_body(buffer, body))
    source = iter(chunks)
    while True:
        try:
            item = next(parser_iter)
        except StopIteration:
            break
        if item is not None:
            yield item, body.columns
            continue
        chunk = next(source, None)
        if chunk is None:
            buffer.eof = True
            continue
        if spool is not None:
            spool.write(chunk)
        buffer.append(chunk)
    if body.rows_stop < 0 or body.columns is None:
        raise ProtocolError("Unexpected result from the server: no query_result.data with columns and rows")


def split_result_body(body: bytes | memoryview) -> tuple[dict[str, Any], memoryview]:
    """Split a result body into its envelope (decoded) and the text of its rows (not decoded).

    The rows' text is checked to be an array of whole JSON objects, without decoding their values.

    Args:
        body: The whole body: ``{"query_result": {..., "data": {"columns": [...], "rows": [...]}}}``.

    Returns:
        The body decoded without ``query_result.data.rows``, and a view of the rows' text (``[...]``) in ``body``.

    Raises:
        ProtocolError: The body is not JSON, or holds no ``query_result.data`` with columns and rows.
    """
    view = memoryview(body)
    found = _Body()
    for _piece in _run([view], found, None):
        pass
    return found.envelope, view[found.rows_start : found.rows_stop]


def read_result_body(body: bytes | memoryview) -> tuple[dict[str, Any], pa.Table]:
    """The envelope and the typed table of a result body held in memory, in one pass over the rows.

    Args:
        body: The whole body, as for :func:`split_result_body`.

    Returns:
        The body decoded without ``query_result.data.rows``, and the rows as
        :func:`dagster_iwatch.arrow.table_from_rows_json` gives them.

    Raises:
        ProtocolError: As :func:`split_result_body` and :func:`dagster_iwatch.arrow.table_from_rows_json`.
    """
    view = memoryview(body)
    try:
        return _read_body(view, guess=True)
    except CutMisplaced:
        pass  # cut again below, outside this handler, so that no error holds the first try's views of the body
    return _read_body(view, guess=False)


def _read_body(view: memoryview, *, guess: bool) -> tuple[dict[str, Any], pa.Table]:
    found = _Body(guess=guess)
    run = _run([view], found, None)
    first = next(run, None)
    pieces = (piece for piece, _columns in run)
    if first is not None and first[1] is None:
        # The columns come after the rows: read them first, then the rows again.
        for _piece in pieces:
            pass
        assert found.columns is not None
        return found.envelope, table_from_rows_json(view[found.rows_start : found.rows_stop], found.columns)
    if first is None:
        assert found.columns is not None
        return found.envelope, table_from_pieces([], found.columns, view)
    assert found.columns is not None
    table = table_from_pieces(itertools.chain([first[0]], pieces), found.columns, view)
    return found.envelope, table


@dataclass
class _ColumnState:
    """What the first batches fixed for one column."""

    type: pa.DataType
    rule: str | None


class ResultStream:
    """A result body, converted to record batches as its bytes arrive.

    Iterate to get the batches (bounded memory: one piece of rows at a time); :attr:`envelope` is complete
    once iteration ends (the server may send some of it after the rows). If a later piece changes a
    column's type, iteration raises :class:`StreamRestart`: drop what was written and take
    :meth:`replay` instead, which converts the whole result again from the spool. :func:`write_result_parquet`
    does all of this.

    Args:
        chunks: The body's bytes, in order (for example ``response.iter_content(1 << 16)``).
        piece_bytes: Target size of the text behind one batch.
        refetch: A way to get the same body again (a result is immutable once stored, so a second
            ``GET /api/query_results/<id>`` gives it); when given, the body is not copied to a spool file as
            it arrives, and a restart fetches it again instead.
    """

    def __init__(
        self,
        chunks: Iterable[bytes | bytearray | memoryview],
        *,
        piece_bytes: int = PIECE_BYTES,
        refetch: Callable[[], Iterable[bytes]] | None = None,
    ) -> None:
        self._body = _Body(piece_bytes=piece_bytes)
        self._refetch = refetch
        self._spool: IO[bytes] | None = (
            None if refetch is not None else tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        )
        self._pieces: Generator[tuple[RowsPiece, tuple[Column, ...] | None], None, None] = prefetch(
            _run(chunks, self._body, self._spool)
        )
        self.schema: pa.Schema | None = None
        self.rows = 0

    @property
    def envelope(self) -> dict[str, Any]:
        """The body without ``query_result.data.rows`` (complete once iteration ended)."""
        return self._body.envelope

    @property
    def columns(self) -> tuple[Column, ...] | None:
        """The server's columns, once seen."""
        return self._body.columns

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        reader: PieceReader | None = None
        states: dict[str, _ColumnState] = {}
        deferred = False
        for piece, columns in self._pieces:
            if columns is None:
                # The columns come after the rows: the rows wait in the spool, not in memory.
                deferred = True
                continue
            reader = reader or PieceReader(columns)
            try:
                batch = self._batch(reader, piece, states)
            except CutMisplaced:
                raise StreamRestart("The rows were cut in the wrong place; they are cut again, checked") from None
            yield batch
        if deferred:
            yield from self.replay().to_batches()
            return
        if self.schema is None:
            columns = self._body.columns
            assert columns is not None  # _run raised otherwise
            self.schema = pa.schema([column_field(c, _empty_type(c)) for c in columns])

    def _batch(self, reader: PieceReader, piece: RowsPiece, states: dict[str, _ColumnState]) -> pa.RecordBatch:
        before = set(reader.fallback)
        table, checked = reader.read_fast(piece)
        if self.schema is not None and reader.fallback != before:
            raise StreamRestart("A column of the result changed type after the first batch")
        python = (
            reader.read_fallback(piece.as_array(), check_keys=not checked, checked=piece.checked)
            if reader.fallback or not checked
            else {}
        )
        arrays = []
        for column in reader.columns:
            state = states.get(column.name)
            if column.name in python:
                array, rule = build_column(column.type, python[column.name]), None
            else:
                assert table is not None
                array, rule = finish_column(column, table.column(column.name).combine_chunks())
            if state is None:
                states[column.name] = _ColumnState(array.type, rule)
            elif array.null_count == len(array):
                # All nulls say nothing about the type: they take the one the first batch fixed.
                if array.type != state.type:
                    array = pa.nulls(len(array), state.type)
            elif array.type != state.type or rule != state.rule:
                raise StreamRestart(f"Column {column.name!r} changed type after the first batch")
            arrays.append(array)
        schema = pa.schema([column_field(c, a.type) for c, a in zip(reader.columns, arrays, strict=True)])
        if self.schema is None:
            self.schema = schema
        elif schema != self.schema:
            raise StreamRestart("A column of the result changed type after the first batch")
        self.rows += piece.rows
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def replay(self) -> pa.Table:
        """The whole result converted again (after :class:`StreamRestart`), in memory.

        From the spool the body was copied to, or from the body fetched again with ``refetch``.
        """
        for _piece in self._pieces:
            pass  # the rest of the body (into the spool), and the envelope
        if self._spool is None:
            assert self._refetch is not None
            envelope, table = read_result_body(b"".join(self._refetch()))
        else:
            # Read, not mapped: a map cannot close while an error's frames still hold views of it.
            self._spool.seek(0)
            envelope, table = read_result_body(self._spool.read())
        self._body.envelope = envelope
        self.schema = table.schema
        self.rows = table.num_rows
        return table

    def close(self) -> None:
        """Stop reading the body and remove the spool."""
        self._pieces.close()
        if self._spool is not None:
            self._spool.close()


def _dictionary_columns(batch: pa.RecordBatch) -> list[str]:
    """The columns worth dictionary-encoding: those whose values repeat in the first batch.

    A row group of one piece is small, so Parquet's own rule (encode with a dictionary until it outgrows its
    page) would encode every column that way, unique values included: slower to write and a bigger file
    than one row group of the whole table, which falls back to plain encoding for such columns.
    """
    chosen = []
    for name, array in zip(batch.schema.names, batch.columns, strict=True):
        values = len(array) - array.null_count
        if values and pc.count_distinct(array).as_py() * 2 <= values:
            chosen.append(name)
    return chosen


def _empty_type(column: Column) -> pa.DataType:
    table = table_from_rows_json(b"[]", [column])
    return table.schema.field(0).type


class BatchObserver(Protocol):
    """Sees the batches :func:`write_result_parquet` writes (to hash them, or keep the first rows)."""

    def batch(self, batch: pa.RecordBatch) -> None:
        """A batch was written."""

    def restart(self) -> None:
        """The batches seen so far no longer stand: the file is written again from its start."""


class _RowGroups:
    """Batches gathered into row groups of ``size`` rows before they are written (all at once if ``None``)."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.batches: list[pa.RecordBatch] = []
        self.rows = 0

    def add(self, writer: pq.ParquetWriter, batch: pa.RecordBatch) -> None:
        if self.size is None:
            writer.write_batch(batch)
            return
        self.batches.append(batch)
        self.rows += batch.num_rows
        if self.rows >= self.size:
            table = pa.Table.from_batches(self.batches)
            whole = self.rows - self.rows % self.size
            writer.write_table(table.slice(0, whole), row_group_size=self.size)
            self.batches = table.slice(whole).to_batches()
            self.rows -= whole

    def flush(self, writer: pq.ParquetWriter) -> None:
        if self.batches:
            writer.write_table(pa.Table.from_batches(self.batches), row_group_size=self.size)
            self.batches, self.rows = [], 0


@dataclass(frozen=True)
class WrittenResult:
    """What :func:`write_result_parquet` wrote.

    Attributes:
        envelope: The body without ``query_result.data.rows``.
        schema: The Arrow schema written (with the key-value metadata).
        rows: How many rows.
    """

    envelope: dict[str, Any]
    schema: pa.Schema
    rows: int


def write_result_parquet(
    chunks: Iterable[bytes | bytearray | memoryview],
    sink: IO[bytes],
    *,
    compression: str = "zstd",
    compression_level: int | None = None,
    file_metadata: Callable[[dict[str, Any]], Mapping[str, str]] | None = None,
    piece_bytes: int = PIECE_BYTES,
    refetch: Callable[[], Iterable[bytes]] | None = None,
    row_group_size: int | None = None,
    observer: BatchObserver | None = None,
) -> WrittenResult:
    """Stream a result body into a Parquet file, one row group per batch, as the bytes arrive.

    The file equals ``pq.write_table(table, ...)`` of :func:`read_result_body`'s table with the same
    key-value metadata: same schema, field metadata and values. The row groups may be cut and encoded
    differently: a column is dictionary-encoded when its values repeat in the first batch.

    Args:
        chunks: The body's bytes, in order.
        sink: A seekable binary file, written from its current start (rewritten if the stream restarts).
        compression: Parquet codec, as the IO manager's.
        compression_level: Codec level, or ``None`` for the codec's default.
        file_metadata: Given the envelope once the body has been read, the key-value metadata to store
            (for example the provenance entries the assets record); merged over the schema's.
        piece_bytes: Target size of the text behind one row group.
        refetch: A way to get the same body again, instead of a spool file (see :class:`ResultStream`).
        row_group_size: Rows per row group: batches are gathered up to this many (and a larger one cut), so
            that small pieces still make row groups of a useful size; ``None``: one row group per batch.
        observer: Told of each batch written, and of a restart (the batches so far no longer stand).

    Raises:
        ProtocolError: The body is not a result, or its rows do not match its columns.
    """
    stream = ResultStream(chunks, piece_bytes=piece_bytes, refetch=refetch)
    options: dict[str, Any] = {"compression": compression}
    if compression_level is not None:
        options["compression_level"] = compression_level
    origin = sink.tell()
    try:
        writer: pq.ParquetWriter | None = None
        gathered = _RowGroups(row_group_size)
        try:
            for batch in prefetch(stream):
                if writer is None:
                    writer = pq.ParquetWriter(sink, batch.schema, use_dictionary=_dictionary_columns(batch), **options)
                gathered.add(writer, batch)
                if observer is not None:
                    observer.batch(batch)
            if writer is not None:
                gathered.flush(writer)
            else:
                assert stream.schema is not None
                writer = pq.ParquetWriter(sink, stream.schema, **options)
                # One empty row group, as pq.write_table writes: pyarrow 18 and 19 cannot read a file with none.
                writer.write_table(stream.schema.empty_table())
        except StreamRestart:
            if writer is not None:
                writer.close()
            sink.seek(origin)
            sink.truncate()
            table = stream.replay()
            if observer is not None:
                observer.restart()
            writer = pq.ParquetWriter(sink, table.schema, **options)
            writer.write_table(table, row_group_size=row_group_size)
            if observer is not None:
                for batch in table.to_batches():
                    observer.batch(batch)
        assert stream.schema is not None
        schema = stream.schema
        if file_metadata is not None:
            entries = {str(key): str(value) for key, value in file_metadata(stream.envelope).items()}
            schema = schema.with_metadata(
                {**(schema.metadata or {}), **{k.encode(): v.encode() for k, v in entries.items()}}
            )
            # The footer is written last, so metadata known only after the rows still reaches it; the Arrow
            # schema stored there is replaced too, as pq.write_table would have stored it with that metadata.
            writer.add_key_value_metadata(
                {**entries, _ARROW_SCHEMA_KEY: base64.b64encode(schema.serialize().to_pybytes()).decode()}
            )
        writer.close()
        return WrittenResult(stream.envelope, schema, stream.rows)
    finally:
        stream.close()
