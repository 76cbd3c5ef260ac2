"""Result bodies: the envelope split from the rows, and streaming to Parquet equal to the in-memory path."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_iwatch.arrow import result_to_arrow
from dagster_iwatch.errors import ProtocolError
from dagster_iwatch.ingest import ResultStream, StreamRestart, read_result_body, split_result_body, write_result_parquet
from tests.ingest.helpers import assert_same_table, body_text, python_result
from tests.ingest.test_fast_path import random_rows

SPEC = [("id", "integer"), ("amount", "float"), ("flag", "boolean"), ("token", None), ("t", "datetime"), ("d", "date")]


def rows(count: int) -> list[dict[str, Any]]:
    _, base = random_rows(count, 11)
    return [{**row, "d": f"2024-02-{1 + n % 28:02d}"} for n, row in enumerate(base)]


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def file_metadata(envelope: dict[str, Any]) -> dict[str, str]:
    return {"iwatch.query_result_id": str(envelope["query_result"]["id"]), "iwatch.retrieved_at": "later"}


def in_memory_file(body: bytes) -> bytes:
    """What the IO manager writes for the in-memory table with the same key-value metadata."""
    envelope, table = read_result_body(body)
    sink = io.BytesIO()
    metadata = {**(table.schema.metadata or {}), **file_metadata(envelope)}
    pq.write_table(table.replace_schema_metadata(metadata), sink, compression="zstd")
    return sink.getvalue()


def streamed_file(body: bytes, chunk: int, piece_bytes: int, *, refetch: bool = False) -> bytes:
    sink = io.BytesIO()
    again = (lambda: chunked(body, chunk)) if refetch else None
    written = write_result_parquet(
        chunked(body, chunk), sink, file_metadata=file_metadata, piece_bytes=piece_bytes, refetch=again
    )
    assert written.envelope == read_result_body(body)[0]
    return sink.getvalue()


def assert_same_file(expected: bytes, actual: bytes) -> None:
    want, got = pq.ParquetFile(io.BytesIO(expected)), pq.ParquetFile(io.BytesIO(actual))
    assert got.metadata.metadata == want.metadata.metadata  # key-value metadata, stored Arrow schema included
    assert_same_table(want.read(), got.read())


def test_split_result_body_keeps_rows_as_text() -> None:
    data = rows(20)
    body = body_text(SPEC, data)
    envelope, rows_view = split_result_body(body)
    result = envelope["query_result"]
    assert set(result) == {"id", "query_hash", "query", "data", "data_source_id", "runtime", "retrieved_at"}
    assert result["query"] == 'select "x" -- {['
    assert result["data"] == {"columns": [{"name": n, "friendly_name": f"{n} label", "type": k} for n, k in SPEC]}
    assert isinstance(rows_view, memoryview)
    assert bytes(rows_view).startswith(b'[{"id": 0')
    assert bytes(rows_view).endswith(b"}]")


def test_split_result_body_of_a_query_key_answer_and_of_empty_rows() -> None:
    body = b'{"query_result": {"data": {"columns": [{"name": "a", "type": null}], "rows": [ ]}, "retrieved_at": "x"}}'
    envelope, rows_view = split_result_body(body)
    assert envelope == {"query_result": {"data": {"columns": [{"name": "a", "type": None}]}, "retrieved_at": "x"}}
    assert bytes(rows_view) == b"[ ]"
    assert read_result_body(body)[1].schema.field("a").type == pa.string()


@pytest.mark.parametrize(
    "body",
    [
        b'{"query_result": {"data": {"columns": []}}}',
        b'{"job": {"id": "x"}}',
        b'{"query_result": {"data": {"rows": []}}}',
    ],
)
def test_a_body_without_columns_and_rows_is_refused(body: bytes) -> None:
    with pytest.raises(ProtocolError, match="columns and rows"):
        split_result_body(body)


def test_text_after_the_body_is_refused() -> None:
    body = body_text(SPEC, rows(5)) + b"  \n" + b"{}"
    with pytest.raises(ProtocolError, match="more than one"):
        list(ResultStream(chunked(body, 3)))
    assert read_result_body(body_text(SPEC, rows(5)) + b" \n")[1].num_rows == 5


@pytest.mark.parametrize("cut", [10, 150, -40, -3])
def test_a_truncated_body_is_refused(cut: int) -> None:
    body = body_text(SPEC, rows(5))
    with pytest.raises(ProtocolError):
        list(ResultStream(chunked(body[:cut], 7), piece_bytes=64))


@pytest.mark.parametrize("columns_last", [False, True])
def test_in_memory_body_equals_python_rows(columns_last: bool) -> None:
    data = rows(300)
    expected = result_to_arrow(python_result(SPEC, data))
    assert_same_table(expected, read_result_body(body_text(SPEC, data, columns_last=columns_last))[1])


@pytest.mark.parametrize(("chunk", "piece_bytes"), [(1, 100), (7, 1000), (4096, 4096), (1 << 20, 1 << 20)])
@pytest.mark.parametrize("columns_last", [False, True])
def test_streaming_writes_the_same_file_as_in_memory(chunk: int, piece_bytes: int, columns_last: bool) -> None:
    body = body_text(SPEC, rows(600), columns_last=columns_last)
    streamed = streamed_file(body, chunk, piece_bytes)
    assert_same_file(in_memory_file(body), streamed)
    assert_same_file(streamed, streamed_file(body, chunk, piece_bytes, refetch=True))
    if piece_bytes < 10_000 and not columns_last:
        assert pq.ParquetFile(io.BytesIO(streamed)).metadata.num_row_groups > 1


@pytest.mark.parametrize(
    ("spec", "late"),
    [
        ([("id", "integer"), ("n", "integer")], {"n": 1.5}),
        ([("id", "integer"), ("n", None)], {"n": "text"}),
        ([("id", "integer"), ("n", "float")], {"n": 2**53 + 1}),
        ([("id", "integer"), ("n", "datetime")], {"n": "2024-01-01T00:00:00"}),
        ([("id", "integer"), ("n", "date")], {"n": "2024-01-01T10:00:00Z"}),
    ],
    ids=["fraction", "text_after_ints", "inexact_float", "naive_after_offsets", "datetime_in_date"],
)
def test_a_late_change_of_type_rewrites_the_file_as_a_whole(
    spec: list[tuple[str, str | None]], late: dict[str, Any]
) -> None:
    early = {"integer": 7, None: 8, "float": 2.5, "datetime": "2024-01-01T00:00:00Z", "date": "2024-01-01"}[spec[1][1]]
    data = [{"id": n, "n": early} for n in range(200)] + [{"id": 200, **late}]
    body = body_text(spec, data)
    with pytest.raises(StreamRestart):
        list(ResultStream(chunked(body, 512), piece_bytes=256))
    streamed = streamed_file(body, 512, 256)
    assert_same_file(in_memory_file(body), streamed)
    assert_same_file(streamed, streamed_file(body, 512, 256, refetch=True))
    back = pq.read_table(io.BytesIO(streamed)).replace_schema_metadata(None)
    assert_same_table(result_to_arrow(python_result(spec, data)), back)


def test_streaming_an_empty_result_keeps_declared_types() -> None:
    body = body_text(SPEC, [])
    streamed = streamed_file(body, 64, 64)
    assert_same_file(in_memory_file(body), streamed)
    assert pq.read_schema(io.BytesIO(streamed)).field("t").type == pa.timestamp("us", tz="UTC")


def test_streaming_a_row_key_not_among_columns_is_refused() -> None:
    data = [{"id": n, "n": n} for n in range(50)] + [{"id": 51, "n": 1, "oops": 2}]
    with pytest.raises(ProtocolError, match="oops"):
        write_result_parquet(
            chunked(body_text([("id", "integer"), ("n", "integer")], data), 100), io.BytesIO(), piece_bytes=200
        )


def test_streaming_dictionary_encodes_only_columns_whose_values_repeat() -> None:
    spec: list[tuple[str, str | None]] = [("id", "integer"), ("token", "string"), ("note", "string")]
    data = [{"id": n, "token": ["ETH", "DAI"][n % 2], "note": f"note {n}"} for n in range(400)]
    streamed = streamed_file(body_text(spec, data), 4096, 2000)
    metadata = pq.ParquetFile(io.BytesIO(streamed)).metadata
    assert metadata.num_row_groups > 1
    for group in range(metadata.num_row_groups):
        encodings = {
            metadata.row_group(group).column(i).path_in_schema: metadata.row_group(group).column(i).encodings
            for i in range(3)
        }
        assert "RLE_DICTIONARY" in encodings["token"]
        assert "RLE_DICTIONARY" not in encodings["id"]
        assert "RLE_DICTIONARY" not in encodings["note"]
    assert_same_file(in_memory_file(body_text(spec, data)), streamed)
