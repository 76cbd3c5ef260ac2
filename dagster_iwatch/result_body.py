"""A result body's envelope and the region of its rows, found without decoding the rows.

A result body is ``{"query_result": {..., "data": {"columns": [...], "rows": [...]}, ...}}``. Everything
but the rows (the *envelope*) is decoded as usual; the rows are cut into pieces of whole rows
(:mod:`dagster_iwatch.jsonrows`) as the bytes arrive, for :mod:`dagster_iwatch.ingest` to read natively.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec
import pyarrow as pa

from dagster_iwatch.arrow import table_from_pieces, table_from_rows_json
from dagster_iwatch.columns import Column
from dagster_iwatch.errors import ProtocolError
from dagster_iwatch.jsonrows import (
    PIECE_BYTES,
    ByteBuffer,
    CutMisplaced,
    NeedMore,
    RowsPiece,
    next_byte,
    split_rows_array,
)

__all__ = ["BodyScan", "columns_of", "read_result_body", "scan_body", "split_result_body"]

_ROWS_PATH = ("query_result", "data", "rows")
_OBJECT_PATHS = frozenset({(), ("query_result",), ("query_result", "data")})
_STRUCTURE = re.compile(rb'["\[\]{}]')
_QUOTE = re.compile(rb'"')
_SCALAR_END = re.compile(rb"[,}\] \t\r\n]")
_ANY = msgspec.json.Decoder()


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
class BodyScan:
    """What the body parser has found so far."""

    piece_bytes: int = PIECE_BYTES
    guess: bool = True
    envelope: dict[str, Any] = field(default_factory=dict)
    columns: tuple[Column, ...] | None = None
    rows_start: int = -1
    rows_stop: int = -1


def _parse_object(
    buffer: ByteBuffer, path: tuple[str, ...], body: BodyScan
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


def _parse_body(buffer: ByteBuffer, body: BodyScan) -> Generator[RowsPiece | None, None, None]:
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


def scan_body(
    chunks: Iterable[bytes | bytearray | memoryview], body: BodyScan, spool: IO[bytes] | None
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
    found = BodyScan()
    for _piece in scan_body([view], found, None):
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
    found = BodyScan(guess=guess)
    run = scan_body([view], found, None)
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
