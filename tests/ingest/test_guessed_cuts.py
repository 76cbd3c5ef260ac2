"""Pieces cut by the text between rows (unchecked): the same tables, and a misplaced cut is cut again, checked."""

from __future__ import annotations

import io
from typing import Any

import pytest

from dagster_iwatch.arrow import result_to_arrow, table_from_rows_json
from dagster_iwatch.errors import ProtocolError
from dagster_iwatch.ingest import ResultStream, StreamRestart, read_result_body, write_result_parquet
from dagster_iwatch.jsonrows import ByteBuffer, RowsPiece, split_rows_array
from tests.ingest.helpers import assert_same_table, body_text, columns_of, python_result, rows_text
from tests.ingest.test_fast_path import CASES, Spec, random_rows
from tests.ingest.test_stream import assert_same_file, chunked, in_memory_file, streamed_file

PIECE = 300


def pieces(text: bytes, guess: bool = True, piece_bytes: int = PIECE) -> list[RowsPiece]:
    buffer = ByteBuffer()
    buffer.append(text)
    buffer.eof = True
    return [piece for piece in split_rows_array(buffer, piece_bytes, guess=guess) if piece is not None]


def with_later(rows: list[dict[str, Any]], later: dict[str, Any]) -> list[dict[str, Any]]:
    """``rows`` with ``later`` in the middle, where a guessed piece holds it."""
    return [*rows[:30], later, *rows[30:]]


BASE_SPEC: Spec = [("id", "integer"), ("amount", "float"), ("flag", "boolean"), ("token", None), ("t", "datetime")]


def base_rows() -> list[dict[str, Any]]:
    return random_rows(60, 9)[1]


def test_pieces_after_the_first_are_cut_by_the_text_between_rows() -> None:
    spec, rows = random_rows(200, 4)
    cut = pieces(rows_text(rows))
    assert cut[0].checked
    assert not all(piece.checked for piece in cut)
    assert sum(piece.rows for piece in cut) == 200
    assert [piece.rows for piece in cut] == [piece.rows for piece in pieces(rows_text(rows), guess=False)]
    assert_same_table(
        result_to_arrow(python_result(spec, rows)),
        table_from_rows_json(rows_text(rows), columns_of(spec), piece_bytes=PIECE),
    )


@pytest.mark.parametrize(("spec", "rows"), [(s, r) for _, s, r in CASES], ids=[c[0] for c in CASES])
def test_every_pitfall_in_a_guessed_piece_equals_the_python_path(spec: Spec, rows: list[dict[str, Any]]) -> None:
    # The pitfall's rows after enough plain ones that a guessed piece holds them.
    first = spec[0][0]
    plain = [{first: None} for _ in range(40)]
    data = plain + rows + plain
    expected = result_to_arrow(python_result(spec, data))
    assert_same_table(expected, table_from_rows_json(rows_text(data), columns_of(spec), piece_bytes=120))
    text, before = rows_text(rows)[1:-1], len(rows_text(plain))
    starts = text.count(b'}, {"' + first.encode() + b'":') == text.count(b"}, {")
    if rows and b"[" not in text and starts and all(next(iter(row), None) == first for row in rows):
        # Nothing in these rows stops a guess: an unchecked piece holds them.
        held = [p for p in pieces(rows_text(data), piece_bytes=120) if p.stop > before and p.start < before + len(text)]
        assert not any(piece.checked for piece in held)


@pytest.mark.parametrize(
    "later",
    [
        {"id": 1, "token": 'x}, {"id": 5'},  # the text between rows inside a string (escaped there)
        {"id": 1, "token": [{"id": 2}, {"id": 3}]},  # a list of objects that start like rows
        {"token": "x", "id": 1},  # another key order
        {"id": 1, "amount": float("nan")},  # a bare NaN token
        {"id": 1, "amount": float("inf")},  # Infinity, as Python writes it
    ],
    ids=["text_in_string", "list_of_row_like_objects", "key_order", "nan", "infinity"],
)
def test_rows_that_defeat_the_guess_give_the_same_table(later: dict[str, Any]) -> None:
    rows = with_later(base_rows(), later)
    expected = result_to_arrow(python_result(BASE_SPEC, rows))
    assert_same_table(expected, table_from_rows_json(rows_text(rows), columns_of(BASE_SPEC), piece_bytes=PIECE))


def test_a_misplaced_guess_restarts_the_stream_and_the_file_is_the_same() -> None:
    spec = [*BASE_SPEC, ("d", "date")]
    rows = [{**row, "d": "2024-02-01"} for row in base_rows()]
    body = body_text(spec, rows)
    # One separator written otherwise: valid JSON, but the guessed piece holding it does not parse.
    late = body.index(b'}, {"id": 40')
    body = body[:late] + b'},{"id": 40' + body[late + len(b'}, {"id": 40') :]
    with pytest.raises(StreamRestart, match="cut"):
        list(ResultStream(chunked(body, 256), piece_bytes=PIECE))
    streamed = streamed_file(body, 256, PIECE)
    assert_same_file(in_memory_file(body), streamed)
    assert_same_file(streamed, streamed_file(body, 256, PIECE, refetch=True))
    assert_same_table(result_to_arrow(python_result(spec, rows)), read_result_body(body)[1])


@pytest.mark.parametrize(
    "bad",
    [b'{"id": 1}{"id": 2}', b'{"id": 1} {"id": 2}', b'{"id": 1, "amount": Inf}', b'{"id": 1, "amount": -Inf}'],
    ids=["no_comma", "blank_not_comma", "inf", "minus_inf"],
)
def test_invalid_json_in_a_guessed_piece_is_refused_as_in_a_checked_one(bad: bytes) -> None:
    text = rows_text(base_rows())
    cut = text.index(b"}, {", len(text) // 2) + 3
    broken = text[:cut] + bad + b", " + text[cut:]
    with pytest.raises(ProtocolError):
        table_from_rows_json(broken, columns_of(BASE_SPEC), piece_bytes=PIECE)
    body = body_text(BASE_SPEC, []).replace(b'"rows": []', b'"rows": ' + broken)
    with pytest.raises(ProtocolError):
        write_result_parquet(chunked(body, 128), io.BytesIO(), piece_bytes=PIECE)
