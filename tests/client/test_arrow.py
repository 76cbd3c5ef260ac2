"""Typing rules of result_to_arrow / arrow_to_pandas, on hand-made results and on the local server's."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_iwatch.arrow import arrow_to_pandas, result_to_arrow
from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import ProtocolError
from dagster_iwatch.local import LocalServer
from dagster_iwatch.types import Column, QueryResult


def make_result(columns: list[tuple[str, str | None]], rows: list[dict[str, Any]]) -> QueryResult:
    return QueryResult(
        id=1,
        query_hash="h",
        query="select 1",
        data_source_id=1,
        runtime=0.1,
        retrieved_at=datetime(2024, 1, 1, tzinfo=UTC),
        columns=tuple(Column(name, name, kind) for name, kind in columns),
        rows=rows,
    )


def one_column(kind: str | None, values: list[Any]) -> pa.ChunkedArray:
    table = result_to_arrow(make_result([("c", kind)], [{"c": v} for v in values]))
    return table.column("c")


@pytest.mark.parametrize(
    ("kind", "values", "arrow_type", "expected"),
    [
        ("integer", [1, None, -3], pa.int64(), [1, None, -3]),
        ("float", [1.5, None, 2.0], pa.float64(), [1.5, None, 2.0]),
        ("float", [1, 2, None], pa.float64(), [1.0, 2.0, None]),
        ("boolean", [True, None, False], pa.bool_(), [True, None, False]),
        ("string", ["a", None, "é"], pa.string(), ["a", None, "é"]),
        ("date", ["2024-01-02", None], pa.date32(), [date(2024, 1, 2), None]),
        (
            "datetime",
            ["2024-01-01T00:00:01Z", None, "2024-01-02T03:04:05.678"],
            pa.timestamp("us", tz="UTC"),
            [
                datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC),
                None,
                datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            ],
        ),
    ],
)
def test_declared_types(kind: str, values: list[Any], arrow_type: pa.DataType, expected: list[Any]) -> None:
    column = one_column(kind, values)
    assert column.type == arrow_type
    assert column.to_pylist() == expected


def test_datetime_offsets_are_converted_to_utc_and_mixed_forms_parse() -> None:
    column = one_column("datetime", ["2024-01-02 03:04:05+02:00", "2024-01-02T03:04:05", "2024-01-02T03:04:05.5Z"])
    assert column.type == pa.timestamp("us", tz="UTC")
    assert column.to_pylist() == [
        datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC),
    ]


def test_datetime_that_does_not_parse_stays_text() -> None:
    column = one_column("datetime", ["2024-01-02T03:04:05Z", "yesterday"])
    assert column.type == pa.string()
    assert column.to_pylist() == ["2024-01-02T03:04:05Z", "yesterday"]


def test_nanosecond_datetimes_are_not_truncated() -> None:
    column = one_column("datetime", ["2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05"])
    assert column.type == pa.string()
    assert column.to_pylist()[0] == "2024-01-02T03:04:05.123456789Z"


def test_date_column_holding_datetimes_becomes_timestamp() -> None:
    column = one_column("date", ["2024-01-02T00:00:00", "2024-01-03T00:00:00"])
    assert column.type == pa.timestamp("us", tz="UTC")
    assert column.to_pylist()[1] == datetime(2024, 1, 3, tzinfo=UTC)


def test_fraction_in_integer_column_becomes_float_not_truncated() -> None:
    column = one_column("integer", [1, 1.5, None])
    assert column.type == pa.float64()
    assert column.to_pylist() == [1.0, 1.5, None]


def test_integers_beyond_int64_are_exact_decimals() -> None:
    big = 2**64 + 1
    column = one_column("integer", [1, big, None, -(2**70)])
    assert column.type == pa.decimal128(38, 0)
    assert column.to_pylist() == [Decimal(1), Decimal(big), None, Decimal(-(2**70))]


def test_integers_wider_than_38_digits_are_text() -> None:
    huge = 10**40 + 7
    column = one_column("integer", [huge, 5])
    assert column.type == pa.string()
    assert column.to_pylist() == [str(huge), "5"]


def test_float_column_with_huge_whole_numbers_keeps_them_exact() -> None:
    column = one_column("float", [2**53 + 1, 3])
    assert column.type == pa.int64()
    assert column.to_pylist() == [2**53 + 1, 3]


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        ("integer", [1, "two", None], ["1", "two", None]),
        ("integer", [1, True], ["1", "true"]),
        ("boolean", [True, "yes"], ["true", "yes"]),
        ("float", [1.5, {"a": 1}], ["1.5", '{"a": 1}']),
        ("string", ["x", 5, ["a", "b"], None], ["x", "5", '["a", "b"]', None]),
        (None, ["a", 1, None], ["a", "1", None]),
        (None, [0, True], ["0", "true"]),
    ],
)
def test_mixed_values_become_text_without_loss(kind: str | None, values: list[Any], expected: list[Any]) -> None:
    column = one_column(kind, values)
    assert column.type == pa.string()
    assert column.to_pylist() == expected


def test_zero_and_one_in_boolean_column_stay_integers() -> None:
    column = one_column("boolean", [0, 1, None])
    assert column.type == pa.int64()
    assert column.to_pylist() == [0, 1, None]


@pytest.mark.parametrize(
    ("values", "arrow_type", "expected"),
    [
        ([1, None, 2], pa.int64(), [1, None, 2]),
        ([1, 2.5], pa.float64(), [1.0, 2.5]),
        ([True, None], pa.bool_(), [True, None]),
        (["txt", None], pa.string(), ["txt", None]),
        (["2024-01-01"], pa.string(), ["2024-01-01"]),
        ([{"a": 1, "b": [1, 2]}, None], pa.string(), ['{"a": 1, "b": [1, 2]}', None]),
        ([[1, 2, 3]], pa.string(), ["[1, 2, 3]"]),
        ([None, None], pa.string(), [None, None]),
        ([2**64], pa.decimal128(38, 0), [Decimal(2**64)]),
    ],
)
def test_untyped_columns_are_inferred(values: list[Any], arrow_type: pa.DataType, expected: list[Any]) -> None:
    column = one_column(None, values)
    assert column.type == arrow_type
    assert column.to_pylist() == expected


@pytest.mark.parametrize(
    ("kind", "arrow_type"),
    [
        ("integer", pa.int64()),
        ("float", pa.float64()),
        ("boolean", pa.bool_()),
        ("string", pa.string()),
        ("datetime", pa.timestamp("us", tz="UTC")),
        ("date", pa.date32()),
        (None, pa.string()),
    ],
)
def test_all_null_and_empty_columns_keep_the_declared_type(kind: str | None, arrow_type: pa.DataType) -> None:
    assert one_column(kind, [None, None]).type == arrow_type
    empty = result_to_arrow(make_result([("c", kind)], []))
    assert empty.num_rows == 0
    assert empty.schema.field("c").type == arrow_type


def test_column_order_missing_keys_and_metadata() -> None:
    result = make_result(
        [("b", "integer"), ("a", None), ("c", "string")],
        [{"a": "x", "b": 1, "c": "y"}, {"c": "z"}, {"a": None, "b": 3}],
    )
    table = result_to_arrow(result)
    assert table.column_names == ["b", "a", "c"]
    assert table.to_pylist() == [
        {"b": 1, "a": "x", "c": "y"},
        {"b": None, "a": None, "c": "z"},
        {"b": 3, "a": None, "c": None},
    ]
    assert table.schema.field("b").metadata[b"iwatch.type"] == b"integer"
    assert table.schema.field("a").metadata[b"iwatch.type"] == b"null"
    assert table.schema.field("c").metadata[b"iwatch.friendly_name"] == b"c"


def test_row_key_not_among_columns_is_refused() -> None:
    result = make_result([("b", "integer")], [{"b": 1}, {"b": 3, "extra": 9}])
    with pytest.raises(ProtocolError, match="'extra'"):
        result_to_arrow(result)


def test_duplicate_column_names_are_refused() -> None:
    result = make_result([("b", "integer"), ("b", None)], [{"b": 1}])
    with pytest.raises(ProtocolError, match="'b' twice"):
        result_to_arrow(result)


def test_redash_types_reach_parquet(tmp_path: Path) -> None:
    table = result_to_arrow(make_result([("n", "integer"), ("t", None)], [{"n": 1, "t": "a"}]))
    pq.write_table(table, tmp_path / "x.parquet")
    schema = pq.read_schema(tmp_path / "x.parquet")
    assert schema.field("n").metadata[b"iwatch.type"] == b"integer"
    assert schema.field("t").metadata[b"iwatch.type"] == b"null"


def test_to_pandas_uses_nullable_dtypes() -> None:
    result = make_result(
        [("i", "integer"), ("f", "float"), ("b", "boolean"), ("s", None), ("t", "datetime"), ("d", "date")],
        [
            {"i": 1, "f": 1.5, "b": True, "s": "x", "t": "2024-01-01T00:00:00Z", "d": "2024-01-01"},
            {"i": None, "f": None, "b": None, "s": None, "t": None, "d": None},
        ],
    )
    frame = result.to_pandas()
    assert str(frame["i"].dtype) == "Int64"
    assert str(frame["f"].dtype) == "Float64"
    assert str(frame["b"].dtype) == "boolean"
    assert isinstance(frame["s"].dtype, pd.StringDtype)
    assert str(frame["t"].dtype) == "datetime64[us, UTC]"
    assert isinstance(frame["d"].dtype, pd.ArrowDtype)
    assert frame["i"].isna().tolist() == [False, True]
    assert frame["i"].iloc[0] == 1
    assert frame["t"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert frame["d"].iloc[0] == date(2024, 1, 1)
    assert arrow_to_pandas(result.to_arrow()).shape == (2, 6)


# Columns and the one row of a real Redash (PostgreSQL) result, as captured.
PG_COLUMNS: list[tuple[str, str | None]] = [
    ("int2", "integer"),
    ("int4", "integer"),
    ("int8", "integer"),
    ("float4", "float"),
    ("float8", "float"),
    ("numeric", "float"),
    ("big_numeric", "float"),
    ("text", None),
    ("varchar", "string"),
    ("bpchar", None),
    ("bool", "boolean"),
    ("date", "date"),
    ("ts", "datetime"),
    ("tstz", "datetime"),
    ("time", None),
    ("interval", None),
    ("json", None),
    ("jsonb", None),
    ("int_array", None),
    ("text_array", "string"),
    ("uuid", None),
    ("bytea", None),
    ("inet", None),
    ("null_unknown", None),
    ("null_int", "integer"),
]
PG_ROW: dict[str, Any] = {
    "int2": 1,
    "int4": 2,
    "int8": 3,
    "float4": 1.5,
    "float8": 2.5,
    "numeric": 1.1234567890123457,
    "big_numeric": 1.2345678901234567e19,
    "text": "txt",
    "varchar": "vc",
    "bpchar": "c  ",
    "bool": True,
    "date": "2024-01-02",
    "ts": "2024-01-02T03:04:05.678",
    "tstz": "2024-01-02T01:04:05.678Z",
    "time": "03:04:05",
    "interval": "1 day, 2:00:00",
    "json": {"a": 1},
    "jsonb": {"b": [1, 2]},
    "int_array": [1, 2, 3],
    "text_array": ["x", "y"],
    "uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "bytea": "deadbeef",
    "inet": "10.0.0.1",
    "null_unknown": None,
    "null_int": None,
}


def test_real_redash_result_with_every_postgres_type() -> None:
    table = result_to_arrow(make_result(PG_COLUMNS, [PG_ROW]))
    types = {field.name: field.type for field in table.schema}
    assert types["int8"] == pa.int64()
    assert types["big_numeric"] == pa.float64()
    assert types["ts"] == types["tstz"] == pa.timestamp("us", tz="UTC")
    assert types["jsonb"] == types["int_array"] == types["text_array"] == pa.string()
    assert types["null_unknown"] == pa.string()
    assert types["null_int"] == pa.int64()
    row = table.to_pylist()[0]
    assert row["tstz"] == datetime(2024, 1, 2, 1, 4, 5, 678000, tzinfo=UTC)
    assert row["ts"] == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert row["jsonb"] == '{"b": [1, 2]}'


def test_local_server_results_are_typed(server: LocalServer) -> None:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
        table = client.execute(13).to_arrow()
        empty = client.execute(14).to_arrow()
    types = {field.name: field.type for field in table.schema}
    assert types["id"] == pa.int64()
    assert types["amount"] == pa.float64()
    assert types["is_contract"] == pa.bool_()
    assert types["block_date"] == pa.date32()
    assert types["block_time"] == pa.timestamp("us", tz="UTC")
    assert types["token"] == types["note"] == types["meta"] == pa.string()
    assert table.num_rows == 100
    assert table.column("note").null_count > 0
    assert empty.num_rows == 0
    assert empty.num_columns > 0
    assert empty.schema.field("id").type == pa.int64()
    assert empty.schema.field("block_time").type == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize("query_id", [1, 12, 13, 15])
def test_a_client_result_is_read_natively_and_equals_the_python_rules(server: LocalServer, query_id: int) -> None:
    with IWatchClient(server.url, server.user_api_key) as client:
        result = client.execute(query_id, max_age=3600)
    assert result.table is not None
    # The native table (built from the body's text) and the Python rules over the decoded rows agree exactly.
    assert result.to_arrow().equals(result_to_arrow(result), check_metadata=True)
    assert result.row_count == len(list(result.rows)) == result.table.num_rows
