"""Cutting the JSON text of a result's rows into pieces of whole rows, without decoding the values.

A result body holds its rows as one JSON array of objects. Native parsers (``pyarrow.json``) read
newline-delimited objects, in blocks, on several threads; this module turns the array into such pieces
of about :data:`PIECE_BYTES` each. A cut is placed at a ``}`` followed by ``,`` or ``]`` and accepted only
when msgspec reads the text from the piece's first row up to it as an array of complete objects: a cut
inside a string or a nested value never parses, so the rows are never split wrongly, and each row's
text is validated JSON. Text msgspec refuses (a bare ``NaN`` token, which Redash before v9 wrote) is read
with the standard library instead, which is slower but accepts it.

Once a piece has shown the text between two rows (say ``}, {"id":``, the separator and the first key),
later pieces are cut without msgspec, which was most of the cutting's time: the comma of every
occurrence of that text becomes a line break, when the piece holds no ``[``, no line break, and as many of
them as of the bare separator ``}, {`` (rows whose keys come in another order would differ). In valid
JSON that text then always separates two rows: it cannot lie inside a string (its quote would be escaped
there), and outside a list ``, {`` is found only between rows. Such a piece is *unchecked*: the native
reader checks it as it parses (it refuses text that is not whole JSON objects) and that it holds as many
rows as the cut counted, and values it accepts but msgspec and the standard library refuse (``Inf``) fail
the Python reading of their column. A piece that fails any of these raises :class:`CutMisplaced`, and the
rows are cut again the checked way, which says what is wrong. Pieces holding a ``[`` (list values) are
cut the checked way from the start.

The same code serves a body held in memory (one chunk, sliced without copying) and one read from the
network chunk by chunk (:class:`ByteBuffer` keeps only the unconsumed tail).
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from dagster_iwatch.errors import IWatchError, ProtocolError

__all__ = [
    "PIECE_BYTES",
    "ByteBuffer",
    "CutMisplaced",
    "NeedMore",
    "RowsPiece",
    "next_byte",
    "read_rows",
    "split_rows_array",
]

PIECE_BYTES = 4 << 20
"""Target size of one piece of rows: big enough that per-piece costs vanish, small enough to bound memory."""

# A candidate end of a piece: a closing brace followed by the separator or the end of the array.
_ROW_END = re.compile(rb"\}[ \t\r\n]*[,\]]")
# A candidate end of the whole array: the bracket followed by what may come after it in the body.
_ARRAY_END = re.compile(rb"\][ \t\r\n]*(?:[,}]|$)")
_NON_WS = re.compile(rb"[^ \t\r\n]")
# The first key of a row: ``{`` then a JSON string then ``:``.
_FIRST_KEY = re.compile(rb'\{[ \t\r\n]*("(?:[^"\\]|\\.)*")[ \t\r\n]*:')
# How many wrong candidates (a brace inside a string or nested value) to try before reading slowly.
_MAX_TRIES = 16
_BLANKS = frozenset(b" \t\r\n")
_OPEN = bytearray(b"[")
_ROWS_DECODER = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True)
class RowsPiece:
    """Whole rows of a result.

    Attributes:
        lines: The rows as newline-delimited JSON, one row per line (each row's original text, perhaps
            with blanks around it).
        array: The same rows as one JSON array, when kept (see :meth:`as_array`).
        rows: How many rows.
        multiline: Whether a row's text holds a line break (a pretty-printed body); readers then must not
            cut lines blindly.
        start: Where the piece's text starts in the stream (its first row's first byte).
        stop: Where it ends (just after its last row).
        checked: Whether msgspec proved the rows whole; if not, the reader must (see the module's docstring).
    """

    lines: bytes | bytearray
    array: bytes | bytearray | None
    rows: int
    multiline: bool
    start: int
    stop: int
    checked: bool = True

    def as_array(self) -> bytes | bytearray:
        """The rows as one JSON array."""
        if self.array is not None:
            return self.array
        # Without a kept array no row spans lines, so every line break separates two rows.
        return b"[" + bytes(self.lines).replace(b"\n", b",") + b"]"


class CutMisplaced(IWatchError):
    """An unchecked piece proved not to be whole rows: cut the rows again with ``guess=False``."""


class NeedMore(Exception):
    """Raised inside the scanner when the buffer holds too little; never escapes this package."""


class ByteBuffer:
    """The unconsumed part of a byte stream: appended to at the end, consumed from ``pos``.

    A single chunk appended to an empty buffer is kept as it is (no copy), so a body held in memory is
    scanned in place; later chunks are appended to a ``bytearray`` that drops its consumed head now and then.
    """

    def __init__(self) -> None:
        self.data: bytes | bytearray | memoryview = b""
        self.pos = 0
        self.eof = False
        self.consumed = 0

    def append(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next chunk of the stream."""
        if not chunk:
            return
        if self.pos >= len(self.data):
            self.consumed += self.pos
            self.data, self.pos = chunk, 0
            return
        if not isinstance(self.data, bytearray):
            self.consumed += self.pos
            self.data, self.pos = bytearray(self.data[self.pos :]), 0
        elif self.pos > (1 << 20) and self.pos * 2 > len(self.data):
            self.consumed += self.pos
            del self.data[: self.pos]
            self.pos = 0
        self.data += chunk

    @property
    def available(self) -> int:
        """Bytes not yet consumed."""
        return len(self.data) - self.pos

    def offset(self) -> int:
        """Position of ``pos`` in the whole stream."""
        return self.consumed + self.pos

    def skip_ws(self) -> int:
        """Move ``pos`` to the next non-blank byte and return it; :class:`NeedMore` if there is none yet."""
        match = _NON_WS.search(self.data, self.pos)
        if match is None:
            self.pos = len(self.data)
            raise NeedMore
        self.pos = match.start()
        return self.data[self.pos]


def split_rows_array(
    buffer: ByteBuffer, piece_bytes: int = PIECE_BYTES, *, guess: bool = True
) -> Generator[RowsPiece | None, None, None]:
    """Read one JSON array of row objects from ``buffer``, starting at its ``[``, yielding pieces of rows.

    Yields ``None`` when more bytes are needed (the caller appends a chunk, or sets ``eof``, and resumes).
    On return, ``buffer.pos`` is just after the array's ``]``. With ``guess``, pieces after the first may
    be cut by the text between rows and come unchecked (see the module's docstring).

    Raises:
        ProtocolError: The text is not an array of objects.
    """
    opening = yield from next_byte(buffer, "the result's rows")
    if opening != ord("["):
        raise ProtocolError(f"The result's rows are not a JSON array (they start with {chr(opening)!r})")
    buffer.pos += 1
    if (yield from next_byte(buffer, "the result's rows")) == ord("]"):
        buffer.pos += 1
        return
    state: dict[str, Any] = {"guess": guess}
    while True:
        piece = _cut(buffer, piece_bytes, state)
        if piece is None:
            if buffer.eof:
                piece = _cut_slowly(buffer)
            else:
                yield None
                continue
        yield piece
        # The cut left pos on the separator: a comma means more rows, a bracket the end.
        separator = buffer.data[buffer.pos]
        buffer.pos += 1
        if separator == ord("]"):
            return
        yield from next_byte(buffer, "the result's rows")


def next_byte(buffer: ByteBuffer, what: str) -> Generator[None, None, int]:
    """Move to the next non-blank byte and return it, yielding ``None`` while the buffer holds only blanks.

    Raises:
        ProtocolError: The stream ended first.
    """
    while True:
        try:
            return buffer.skip_ws()
        except NeedMore:
            if buffer.eof:
                raise ProtocolError(f"The result body ends inside {what}") from None
            yield None


def _row_start(buffer: ByteBuffer, state: dict[str, Any]) -> re.Pattern[bytes] | None:
    """A pattern for a separator followed by a row that starts like the first (with its first key).

    Nested objects seldom start with a row's first key, so cuts at such separators are almost never wrong.
    """
    match = _FIRST_KEY.match(buffer.data, buffer.pos)
    if match is None:
        return None
    state["head"] = bytes(match.group(0))
    return re.compile(rb"\}[ \t\r\n]*(,)[ \t\r\n]*\{[ \t\r\n]*" + re.escape(match.group(1)) + rb"[ \t\r\n]*:")


def _cut(buffer: ByteBuffer, piece_bytes: int, state: dict[str, Any]) -> RowsPiece | None:
    """The next piece, or ``None`` when the buffer does not yet hold a provable end of rows."""
    data, start = buffer.data, buffer.pos
    if len(data) - start >= piece_bytes and not state.get("slow"):
        if "row_start" not in state:
            state["row_start"] = _row_start(buffer, state)
        if "between" in state:
            piece = _guess(buffer, piece_bytes, state["between"])
            if piece is not None:
                return piece
        # Cut forward, near the target size; the data past the candidate proves the separator.
        for pattern in filter(None, (state["row_start"], _ROW_END)):
            for tries, match in enumerate(pattern.finditer(data, start + piece_bytes - 1)):
                if tries >= _MAX_TRIES:
                    break
                piece = _try(buffer, match.start() + 1, match.end(1) - 1 if pattern.groups else match.end() - 1, state)
                if piece is not None:
                    return piece
        if state["row_start"] is None or len(data) - start >= 4 * piece_bytes:
            # Braces in strings or nested values everywhere, or text msgspec refuses: read it all at the end.
            state["slow"] = True
    if not buffer.eof:
        return None
    # The stream has ended: the array's end is the last "]" after which the rows parse as a whole.
    ends = [m.start() for m in _ARRAY_END.finditer(data, start)]
    for end in reversed(ends[-_MAX_TRIES:]):
        last = end - 1
        while last > start and data[last] in _BLANKS:
            last -= 1
        if data[last] != ord("}"):
            continue
        piece = _try(buffer, last + 1, end, state)
        if piece is not None:
            return piece
    return None


@dataclass(frozen=True)
class _Between:
    """The text between two rows, as a piece showed it, and what an unchecked cut makes of it."""

    bare: bytes  # ``}, {``
    text: bytes  # ``}, {"id":``
    pattern: re.Pattern[bytes]
    comma: int  # where the comma is in ``text``


def _guess(buffer: ByteBuffer, piece_bytes: int, between: _Between) -> RowsPiece | None:
    """The next piece cut by the text between rows, unchecked; ``None`` where that cannot be trusted."""
    data, start = buffer.data, buffer.pos
    match = between.pattern.search(data, start + piece_bytes - 1)
    if match is None:
        return None
    stop = match.start() + 1
    lines = bytearray(data[start:stop])
    if b"\n" in lines or b"\r" in lines or b"[" in lines:
        return None
    # Where the text between rows is: at a "}" (rare in rows' values), compared byte by byte.
    view = np.frombuffer(lines, dtype=np.uint8)
    found = np.flatnonzero(view == ord("}"))
    found = found[found <= len(lines) - len(between.text)]
    bare = -1
    for index in range(1, len(between.text)):
        if index == len(between.bare):
            bare = len(found)
        found = found[view[found + index] == between.text[index]]
    if len(found) != bare:
        return None
    view[found + between.comma] = ord("\n")
    del view
    buffer.pos = match.start() + between.comma
    first = buffer.consumed + start
    return RowsPiece(lines, None, len(found) + 1, False, first, first + stop - start, checked=False)


def _try(buffer: ByteBuffer, stop: int, separator: int, state: dict[str, Any]) -> RowsPiece | None:
    """The rows from ``pos`` up to ``stop`` if they parse as whole objects; then ``pos`` moves to ``separator``."""
    data, start = buffer.data, buffer.pos
    # One copy, no zeroing: the byte at ``separator`` (a comma, blank or bracket) becomes the closing bracket.
    array = _OPEN + data[start : stop + 1]
    array[-1] = ord("]")
    try:
        rows = _ROWS_DECODER.decode(array)
    except msgspec.DecodeError:
        return None
    if not rows:
        raise ProtocolError("Unexpected result rows from the server: an empty row")
    # A row that is not an object is refused later: the readers read objects only.
    count = len(rows)
    multiline = b"\n" in array or b"\r" in array
    template = None if multiline else _separators_to_newlines(array, rows)
    if template is not None:
        lines: bytes | bytearray = array
        kept: bytes | bytearray | None = None
        if template and state.get("guess") and "head" in state and "between" not in state:
            text = b"}" + template + state["head"]
            state["between"] = _Between(b"}" + template + b"{", text, re.compile(re.escape(text)), text.index(b","))
    else:
        lines, kept = b"\n".join(rows), array
        multiline = lines.count(b"\n") != count - 1 or b"\r" in lines
    del rows
    buffer.pos = separator
    first = buffer.consumed + start
    return RowsPiece(lines, kept, count, multiline, first, first + stop - start)


def _separators_to_newlines(array: bytearray, rows: list[msgspec.Raw]) -> bytes | None:
    """Turn ``[r1, r2, ...]`` into newline-delimited rows in place, if every separator is the same text.

    Returns that text (empty for a single row), or ``None`` when the separators differ (nothing changed).

    The rows' lengths and the first separator give where every other separator must be; the change is made
    only after checking that each of those places holds that separator followed by a row's ``{``, which
    proves by induction that each is a real separator between rows (a separator of another length would put
    a row's first byte, or a blank, where the check expects the other). Avoids a copy of every row.
    """
    count = len(rows)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=count)
    gaps = len(array) - 2 - int(lengths.sum())
    template = b""
    if count == 1:
        ok = gaps == 0
    else:
        width, rest = divmod(gaps, count - 1)
        first_end = 1 + int(lengths[0])
        template = bytes(array[first_end : first_end + width])
        ok = rest == 0 and template.count(b",") == 1 and not template.strip(b" \t,")
        if ok:
            view = np.frombuffer(array, dtype=np.uint8)
            starts = np.empty(count, dtype=np.int64)
            starts[0] = 1
            np.cumsum(lengths[:-1] + width, out=starts[1:])
            starts[1:] += 1
            ends = starts[:-1] + lengths[:-1]
            ok = bool((view[starts] == ord("{")).all()) and all(
                bool((view[ends + index] == byte).all()) for index, byte in enumerate(template)
            )
            if ok:
                view[ends + template.index(b",")] = ord("\n")
            del view
    if not ok:
        return None
    array[0] = array[-1] = ord(" ")
    return template


def _cut_slowly(buffer: ByteBuffer) -> RowsPiece:
    """All remaining rows through the standard library (which accepts ``NaN``); for text msgspec refuses."""
    data, start = buffer.data, buffer.pos
    text = bytes(data[start:]).decode("utf-8", errors="surrogatepass")
    try:
        rows, end = json.JSONDecoder().raw_decode("[" + text)
    except ValueError as error:
        raise ProtocolError(f"The result's rows are not valid JSON: {error}") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise ProtocolError("Unexpected result rows from the server: each row must be an object")
    # raw_decode stopped just after the array's "]": the bytes consumed are the text before it.
    consumed = len(text[: end - 2].encode("utf-8", errors="surrogatepass"))
    lines = "\n".join(json.dumps(row, ensure_ascii=False, allow_nan=True) for row in rows).encode()
    buffer.pos = start + consumed
    first = buffer.consumed + start
    return RowsPiece(lines, None, len(rows), False, first, first + consumed)


def read_rows(array: bytes) -> list[dict[str, Any]]:
    """Decode a piece's rows to Python dicts (msgspec, or the standard library for ``NaN``); for the slow paths."""
    try:
        rows: list[dict[str, Any]] = msgspec.json.decode(array)
    except msgspec.DecodeError:
        rows = json.loads(array)
    return rows
