"""From a result body to Arrow and Parquet: in memory, or batch by batch as the body arrives.

A result body is ``{"query_result": {..., "data": {"columns": [...], "rows": [...]}, ...}}``. Everything
but the rows (the *envelope*) is decoded as usual; the rows are never decoded into Python objects. They
are cut into pieces of whole rows (:mod:`dagster_iwatch.result_body`) and each piece is read natively
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
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dagster_iwatch.arrow import build_column, column_field, finish_column, table_from_rows_json
from dagster_iwatch.columns import Column
from dagster_iwatch.errors import IWatchError
from dagster_iwatch.jsonrows import PIECE_BYTES, CutMisplaced, RowsPiece
from dagster_iwatch.piece_reader import PieceReader
from dagster_iwatch.prefetch import prefetch
from dagster_iwatch.result_body import BodyScan, columns_of, read_result_body, scan_body, split_result_body

__all__ = [
    "BatchObserver",
    "ResultStream",
    "StreamRestart",
    "columns_of",
    "read_result_body",
    "split_result_body",
    "write_result_parquet",
]

_SPOOL_IN_MEMORY = 4 << 20
_ARROW_SCHEMA_KEY = "ARROW:schema"


class StreamRestart(IWatchError):
    """Batches already yielded cannot stand: a later piece changed a column's type (see :class:`ResultStream`)."""


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
        self._body = BodyScan(piece_bytes=piece_bytes)
        self._refetch = refetch
        self._spool: IO[bytes] | None = (
            None if refetch is not None else tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        )
        self._pieces: Generator[tuple[RowsPiece, tuple[Column, ...] | None], None, None] = prefetch(
            scan_body(chunks, self._body, self._spool)
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
            assert columns is not None  # scan_body raised otherwise
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
