"""Reading pieces of result rows into Arrow columns: natively where the values fit, in Python where not.

Each column gets an explicit Arrow type from its Redash type (``integer`` -> int64, ``float`` -> float64,
``boolean`` -> bool, everything else -> string: dates and datetimes are cast later, so that the rule for
values with no offset stays the one in :mod:`dagster_iwatch.arrow`) and ``pyarrow.json`` reads the piece
with that schema, on all cores, never making a Python object per value. A column whose values the native
reader refuses (a fraction or a number beyond int64 in an integer column, numbers or objects in a string
column, 0/1 in a boolean column, a whole number beyond 2**53 in a float column, which float64 would round)
becomes a *fallback* column for the rest of the result: its values are decoded in Python and typed by the
exactness rules of :mod:`dagster_iwatch.arrow`, exactly as for a result held as Python rows.

Keys not among the columns are refused natively (``unexpected_field_behavior="error"``) when no column
has fallen back, and otherwise checked while the fallback values are decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from dagster_iwatch.columns import Column
from dagster_iwatch.errors import ProtocolError
from dagster_iwatch.jsonrows import CutMisplaced, RowsPiece, read_rows

__all__ = ["PieceReader", "check_columns", "fast_type"]

_FAST_TYPES = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_()}
_EXACT_FLOAT_LIMIT = float(2**53)
# pyarrow's JSON reader parses blocks of this size in parallel: two per piece, as less CPU goes to block overhead.
_BLOCK_BYTES = 2 << 20


def fast_type(column: Column) -> pa.DataType:
    """The Arrow type the native reader gives a column (dates and datetimes stay strings until cast)."""
    return _FAST_TYPES.get(column.type or "", pa.string())


def check_columns(columns: Sequence[Column]) -> None:
    """Refuse a column list that names a column twice (a table cannot hold both).

    Raises:
        ProtocolError: Two columns share a name.
    """
    seen: set[str] = set()
    for column in columns:
        if column.name in seen:
            raise ProtocolError(
                f"The result names column {column.name!r} twice; give each column a distinct name in the query "
                "(for example with AS)"
            )
        seen.add(column.name)


def unknown_key_error(key: str) -> ProtocolError:
    """The error for a row holding a key that is not among the result's columns."""
    return ProtocolError(f"A result row holds the key {key!r}, which is not among the result's columns")


class PieceReader:
    """Reads pieces of one result's rows; remembers which columns fell back to Python.

    Args:
        columns: The result's columns, as the server listed them.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        check_columns(columns)
        self.columns = tuple(columns)
        self.names = frozenset(column.name for column in columns)
        self.fallback: set[str] = set()
        self._decoders: dict[tuple[tuple[str, ...], bool], msgspec.json.Decoder[Any]] = {}

    def fast_columns(self) -> list[Column]:
        """The columns read natively, in result order."""
        return [column for column in self.columns if column.name not in self.fallback]

    def fallback_columns(self) -> list[Column]:
        """The columns read in Python, in result order."""
        return [column for column in self.columns if column.name in self.fallback]

    def read_fast(self, piece: RowsPiece) -> tuple[pa.Table | None, bool]:
        """The natively read columns of a piece, and whether its keys were checked against the columns.

        Columns the native reader refuses move to :attr:`fallback` first; the table holds the others.

        Raises:
            CutMisplaced: The piece is unchecked and proves not to be whole rows.
        """
        for _ in range(2):
            fields = self._fields()
            if not fields:
                _check_whole_rows(piece)
                return None, False
            mode = "infer" if self.fallback else "error"
            table = _read_json(piece, fields, mode)
            if table is not None:
                _check_row_count(piece, table)
                for name in table.column_names:
                    if name not in self.names:
                        raise unknown_key_error(name)
                return self._keep_exact(table.select([field.name for field in fields])), True
            _check_whole_rows(piece)
            refused = {field.name for field in fields if _read_json(piece, [field], "ignore") is None}
            if not refused:
                break
            self.fallback |= refused
        # An unknown key, a key twice in a row, or a fallback column pyarrow cannot infer: keys are checked
        # in Python with the fallback values.
        _check_whole_rows(piece)
        fields = self._fields()
        if not fields:
            return None, False
        table = _read_json(piece, fields, "ignore")
        if table is None:
            self.fallback |= {field.name for field in fields}
            return None, False
        return self._keep_exact(table), False

    def read_fallback(
        self, array: bytes | bytearray, check_keys: bool, *, checked: bool = True
    ) -> dict[str, list[Any]]:
        """The Python values of every fallback column in a piece (its rows as a JSON array).

        Raises:
            ProtocolError: With ``check_keys``, a row holds a key that is not among the columns; or the text
                is not JSON.
            CutMisplaced: The text is not JSON and the piece is unchecked (``checked=False``).
        """
        names = tuple(column.name for column in self.fallback_columns())
        if not names and not check_keys:
            return {}
        decoder = self._decoder(names, check_keys)
        try:
            rows = decoder.decode(array)
        except msgspec.ValidationError as error:
            raise ProtocolError(f"A result row holds a key that is not among the result's columns: {error}") from None
        except msgspec.DecodeError:
            return self._read_fallback_slowly(array, names, check_keys, checked)
        return {name: [getattr(row, f"f{index}") for row in rows] for index, name in enumerate(names)}

    def _read_fallback_slowly(
        self, array: bytes | bytearray, names: tuple[str, ...], check_keys: bool, checked: bool
    ) -> dict[str, list[Any]]:
        """The standard library's reading, for text msgspec refuses (bare ``NaN`` tokens)."""
        try:
            rows = read_rows(bytes(array))
        except ValueError as error:
            if not checked:
                raise CutMisplaced("A piece of rows cut at the text between rows is not JSON") from None
            raise ProtocolError(f"The result's rows are not valid JSON: {error}") from None
        if check_keys:
            for row in rows:
                for key in row:
                    if key not in self.names:
                        raise unknown_key_error(key)
        return {name: [row.get(name) for row in rows] for name in names}

    def _decoder(self, names: tuple[str, ...], check_keys: bool) -> msgspec.json.Decoder[Any]:
        decoder = self._decoders.get((names, check_keys))
        if decoder is None:
            fields: list[tuple[str, Any, Any]] = [(f"f{index}", Any, None) for index, _ in enumerate(names)]
            rename = {f"f{index}": name for index, name in enumerate(names)}
            if check_keys:
                # Every other column must be a field too, or it would count as unknown; Raw keeps it undecoded.
                others = [column.name for column in self.columns if column.name not in names]
                fields += [(f"o{index}", msgspec.Raw, msgspec.Raw(b"null")) for index, _ in enumerate(others)]
                rename |= {f"o{index}": name for index, name in enumerate(others)}
            row_type = msgspec.defstruct("Row", fields, rename=rename, forbid_unknown_fields=check_keys)
            decoder = msgspec.json.Decoder(list[row_type])  # type: ignore[valid-type]
            self._decoders[(names, check_keys)] = decoder
        return decoder

    def _fields(self) -> list[pa.Field]:
        return [pa.field(column.name, fast_type(column)) for column in self.fast_columns()]

    def _keep_exact(self, table: pa.Table) -> pa.Table:
        """Move float columns holding whole numbers beyond 2**53 to the fallback (their JSON text may be exact)."""
        inexact = [
            column.name
            for column in self.fast_columns()
            if column.type == "float"
            and pc.any(pc.greater_equal(pc.abs(table.column(column.name)), _EXACT_FLOAT_LIMIT)).as_py()
        ]
        if not inexact:
            return table
        self.fallback |= set(inexact)
        return table.drop_columns(inexact)


def _check_row_count(piece: RowsPiece, table: pa.Table) -> None:
    """An unchecked piece the native reader read must hold as many rows as its cut counted."""
    if not piece.checked and table.num_rows != piece.rows:
        raise CutMisplaced(f"A piece of rows cut at the text between rows held {table.num_rows} rows, not {piece.rows}")


def _check_whole_rows(piece: RowsPiece) -> None:
    """Prove an unchecked piece is whole rows before its values are blamed for a refusal."""
    if piece.checked:
        return
    table = _read_json(piece, [], "ignore")
    if table is None:
        raise CutMisplaced("A piece of rows cut at the text between rows is not whole rows")
    _check_row_count(piece, table)


def _read_json(piece: RowsPiece, fields: list[pa.Field], mode: str) -> pa.Table | None:
    """``pyarrow.json`` over a piece with an explicit schema, or ``None`` if it refuses the values."""
    block = min(_BLOCK_BYTES, max(len(piece.lines) // 2 + 1, 1 << 16))
    for _ in range(2):
        options = pj.ParseOptions(
            explicit_schema=pa.schema(fields),
            unexpected_field_behavior=mode,
            newlines_in_values=piece.multiline,
        )
        try:
            return pj.read_json(
                pa.BufferReader(piece.lines),
                read_options=pj.ReadOptions(use_threads=True, block_size=block),
                parse_options=options,
            )
        except pa.ArrowInvalid as error:
            # A row longer than a block: read the piece as one block instead.
            if "straddl" not in str(error) or block > len(piece.lines):
                return None
            block = len(piece.lines) + 1
    return None
