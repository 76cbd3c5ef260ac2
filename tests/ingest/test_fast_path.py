"""The native path (table_from_rows_json) gives exactly what result_to_arrow gives, on every known pitfall."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from dagster_iwatch.arrow import result_to_arrow, table_from_rows_json
from dagster_iwatch.errors import ProtocolError
from tests.ingest.helpers import assert_same_table, columns_of, python_result, rows_text

Spec = list[tuple[str, str | None]]


def column_case(kind: str | None, values: list[Any]) -> tuple[Spec, list[dict[str, Any]]]:
    return [("c", kind), ("n", "integer")], [{"c": v, "n": i} for i, v in enumerate(values)]


# (id, spec, rows): each is a pitfall from the ingest baseline or a rule of dagster_iwatch.arrow.
CASES: list[tuple[str, Spec, list[dict[str, Any]]]] = [
    ("fraction_in_integer", *column_case("integer", [1, 1.5, None])),
    ("whole_float_token_in_integer", *column_case("integer", [1, 2.0])),
    ("beyond_int64", *column_case("integer", [1, 2**64 + 1, None, -(2**70)])),
    ("wider_than_38_digits", *column_case("integer", [10**40 + 7, 5])),
    ("float_whole_beyond_2_53", *column_case("float", [2**53 + 1, 3])),
    ("float_whole_beyond_2_53_and_fraction", *column_case("float", [2**53 + 1, 1.5])),
    ("float_huge_float_token", *column_case("float", [1.2345678901234567e19, 2.5])),
    ("float_ints_only", *column_case("float", [1, 2, None])),
    ("float_signed_zeros_and_extremes", *column_case("float", [-0.0, 0.0, 5e-324, 1.7976931348623157e308, -1e-300])),
    ("ints_in_string", *column_case("string", ["x", 5, ["a", "b"], None])),
    ("bools_and_floats_in_string", *column_case("string", ["x", True, 1.5, 1e300, {"k": [1, None]}])),
    ("list_in_integer", *column_case("integer", [1, [2, 3]])),
    ("datetime_mixed_offsets", *column_case("datetime", ["2024-01-02T03:04:05+02:00", "2024-01-02T03:04:05-05:30"])),
    ("datetime_mixed_fractions", *column_case("datetime", ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.25Z"])),
    ("numeric_strings_in_string", *column_case("string", ["1", "2.5", None])),
    ("string_in_integer", *column_case("integer", [1, "two", None])),
    ("bool_in_integer", *column_case("integer", [1, True])),
    ("string_in_boolean", *column_case("boolean", [True, "yes"])),
    ("zero_one_in_boolean", *column_case("boolean", [0, 1, None])),
    ("object_in_float", *column_case("float", [1.5, {"a": 1}])),
    ("untyped_mixed", *column_case(None, ["a", 1, None])),
    ("untyped_zero_and_true", *column_case(None, [0, True])),
    ("untyped_ints", *column_case(None, [1, None, 2])),
    ("untyped_numbers", *column_case(None, [1, 2.5])),
    ("untyped_bools", *column_case(None, [True, None])),
    ("untyped_date_like_strings", *column_case(None, ["2024-01-01", "2024-01-01T00:00:00"])),
    ("untyped_objects_lists", *column_case(None, [{"a": 1, "b": [1, 2]}, None, [1, 2, 3]])),
    ("untyped_all_null", *column_case(None, [None, None])),
    ("untyped_big", *column_case(None, [2**64])),
    ("unknown_type_name", *column_case("geometry", ["POINT(1 2)", None])),
    ("datetime_offsets_z_space", *column_case("datetime", ["2024-01-02 03:04:05+02:00", "2024-01-02T03:04:05.5Z"])),
    ("datetime_naive", *column_case("datetime", ["2024-01-02T03:04:05", "2024-01-02T03:04:05.678", None])),
    ("datetime_mixed_naive_offset", *column_case("datetime", ["2024-01-02T03:04:05+02:00", "2024-01-02T03:04:05"])),
    ("datetime_unparseable", *column_case("datetime", ["2024-01-02T03:04:05Z", "yesterday"])),
    ("datetime_nanoseconds", *column_case("datetime", ["2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05"])),
    ("datetime_epoch_numbers", *column_case("datetime", [1704067200, None])),
    ("date_plain", *column_case("date", ["2024-01-02", None])),
    ("date_holding_datetimes", *column_case("date", ["2024-01-02T00:00:00", "2024-01-03T00:00:00"])),
    ("date_mixed_dates_and_datetimes", *column_case("date", ["2024-01-02", "2024-01-03T00:00:00Z"])),
    ("nan_in_float", *column_case("float", [1.5, float("nan"), None])),
    ("nan_in_integer", *column_case("integer", [1, float("nan")])),
    ("nan_untyped", *column_case(None, [float("nan"), "x"])),
    ("unicode_and_escapes", *column_case("string", ["é😀", 'quote " and \\ backslash', "}, {", "line\nbreak"])),
    (
        "missing_keys",
        [("b", "integer"), ("a", None), ("c", "string"), ("d", "datetime")],
        [{"a": "x", "b": 1, "c": "y"}, {"c": "z"}, {}, {"a": None, "b": 3, "d": "2024-01-01T00:00:00Z"}],
    ),
]
for kind in ("integer", "float", "boolean", "string", "datetime", "date", None):
    CASES.append((f"all_null_{kind}", *column_case(kind, [None, None])))
    CASES.append((f"empty_{kind}", [("c", kind)], []))

PG_SPEC: Spec = [
    ("int2", "integer"),
    ("int8", "integer"),
    ("float4", "float"),
    ("numeric", "float"),
    ("big_numeric", "float"),
    ("text", None),
    ("varchar", "string"),
    ("bool", "boolean"),
    ("date", "date"),
    ("ts", "datetime"),
    ("tstz", "datetime"),
    ("time", None),
    ("jsonb", None),
    ("int_array", None),
    ("text_array", "string"),
    ("null_unknown", None),
    ("null_int", "integer"),
]
PG_ROW: dict[str, Any] = {
    "int2": 1,
    "int8": 3,
    "float4": 1.5,
    "numeric": 1.1234567890123457,
    "big_numeric": 1.2345678901234567e19,
    "text": "txt",
    "varchar": "vc",
    "bool": True,
    "date": "2024-01-02",
    "ts": "2024-01-02T03:04:05.678",
    "tstz": "2024-01-02T01:04:05.678Z",
    "time": "03:04:05",
    "jsonb": {"b": [1, 2], "nested": [{"x": "}, {"}, {"y": None}]},
    "int_array": [1, 2, 3],
    "text_array": ["x", "y"],
    "null_unknown": None,
    "null_int": None,
}
CASES.append(("postgres_types", PG_SPEC, [PG_ROW, {**PG_ROW, "int8": 2**63 - 1}, {k: None for k in PG_ROW}]))


def random_rows(count: int, seed: int) -> tuple[Spec, list[dict[str, Any]]]:
    """Rows of the benchmark's shape, with floats whose every bit matters."""
    rng = random.Random(seed)
    spec: Spec = [("id", "integer"), ("amount", "float"), ("flag", "boolean"), ("token", None), ("t", "datetime")]
    rows = [
        {
            "id": n,
            "amount": rng.random() * 10 ** rng.randint(-5, 12) if n % 11 else None,
            "flag": rng.random() < 0.5,
            "token": rng.choice(["ETH", "USDC", None, "é"]),
            "t": f"2024-01-{1 + n % 28:02d}T{n % 24:02d}:00:00.{n % 1000:03d}Z",
        }
        for n in range(count)
    ]
    return spec, rows


CASES.append(("random_floats", *random_rows(500, 3)))


@pytest.mark.parametrize("piece_bytes", [None, 40], ids=["one_piece", "row_per_piece"])
@pytest.mark.parametrize(("spec", "rows"), [(s, r) for _, s, r in CASES], ids=[c[0] for c in CASES])
def test_native_path_equals_python_path(spec: Spec, rows: list[dict[str, Any]], piece_bytes: int | None) -> None:
    expected = result_to_arrow(python_result(spec, rows))
    actual = table_from_rows_json(rows_text(rows), columns_of(spec), piece_bytes=piece_bytes)
    assert_same_table(expected, actual)


@pytest.mark.parametrize("separator", [",", ",\n", " ,\t", ",\r\n  "])
def test_any_blanks_between_rows(separator: str) -> None:
    spec, rows = random_rows(50, 5)
    expected = result_to_arrow(python_result(spec, rows))
    actual = table_from_rows_json(rows_text(rows, separator), columns_of(spec), piece_bytes=300)
    assert_same_table(expected, actual)


def test_pretty_printed_rows() -> None:
    spec, rows = random_rows(40, 6)
    text = json.dumps(rows, indent=2).encode()
    expected = result_to_arrow(python_result(spec, rows))
    assert_same_table(expected, table_from_rows_json(text, columns_of(spec), piece_bytes=500))
    assert_same_table(expected, table_from_rows_json(memoryview(b"  " + text + b"\n")[2:-1], columns_of(spec)))


@pytest.mark.parametrize(
    ("spec", "rows"),
    [
        ([("a", "integer")], [{"a": 1}, {"a": 2, "extra": 3}]),
        ([("a", "integer"), ("m", None)], [{"a": 1, "m": {"x": 1}}, {"a": 2, "m": "s", "extra": 3}]),
        ([("a", "integer"), ("m", None)], [{"a": 1, "m": 2}, {"a": 2, "extra": float("nan")}]),
    ],
    ids=["native", "with_fallback_column", "nan"],
)
def test_row_key_not_among_columns_is_refused(spec: Spec, rows: list[dict[str, Any]]) -> None:
    with pytest.raises(ProtocolError, match="extra"):
        result_to_arrow(python_result(spec, rows))
    with pytest.raises(ProtocolError, match="extra"):
        table_from_rows_json(rows_text(rows), columns_of(spec))


def test_duplicate_column_names_are_refused() -> None:
    with pytest.raises(ProtocolError, match="'a' twice"):
        table_from_rows_json(b'[{"a": 1}]', columns_of([("a", "integer"), ("a", None)]))


@pytest.mark.parametrize("text", [b'[{"a": 1}, 2]', b"[[1]]", b'{"a": 1}', b'[{"a": 1}', b'[{"a": 1}] x', b""])
def test_rows_that_are_not_an_array_of_objects_are_refused(text: bytes) -> None:
    with pytest.raises(ProtocolError):
        table_from_rows_json(text, columns_of([("a", "integer")]))


def test_a_key_twice_in_a_row_keeps_the_last_value_as_the_python_decoding_does() -> None:
    text = b'[{"a": 1, "a": 2, "b": "x"}, {"a": 3, "b": "y", "b": "z"}]'
    spec: Spec = [("a", "integer"), ("b", "string")]
    expected = result_to_arrow(python_result(spec, [{"a": 2, "b": "x"}, {"a": 3, "b": "z"}]))
    assert_same_table(expected, table_from_rows_json(text, columns_of(spec)))


def test_rows_holding_lists_of_objects_are_still_cut_into_pieces() -> None:
    from dagster_iwatch.jsonrows import ByteBuffer, split_rows_array

    spec: Spec = [("id", "integer"), ("events", None)]
    rows = [{"id": n, "events": [{"id": k, "s": "}, {"} for k in range(40)]} for n in range(300)]
    buffer = ByteBuffer()
    buffer.append(rows_text(rows))
    buffer.eof = True
    pieces = list(split_rows_array(buffer, piece_bytes=4000))
    assert len(pieces) > 30
    assert sum(piece.rows for piece in pieces if piece) == 300
    expected = result_to_arrow(python_result(spec, rows))
    assert_same_table(expected, table_from_rows_json(rows_text(rows), columns_of(spec), piece_bytes=4000))
