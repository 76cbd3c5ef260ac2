"""Shared helpers for the ingest tests: results as Python rows and as JSON text, and table comparison."""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from dagster_iwatch.types import Column, QueryResult


def columns_of(spec: list[tuple[str, str | None]]) -> tuple[Column, ...]:
    return tuple(Column(name, f"{name} label", kind) for name, kind in spec)


def python_result(spec: list[tuple[str, str | None]], rows: list[dict[str, Any]]) -> QueryResult:
    """The rows as the client's JSON decoding gives them (what result_to_arrow converts today)."""
    decoded = json.loads(rows_text(rows))
    return QueryResult(
        id=1,
        query_hash="h",
        query="select 1",
        data_source_id=1,
        runtime=0.1,
        retrieved_at=datetime(2024, 1, 1, tzinfo=UTC),
        columns=columns_of(spec),
        rows=decoded,
    )


def rows_text(rows: list[dict[str, Any]], separator: str = ", ") -> bytes:
    """The rows array as a server writes it (a bare NaN for a float NaN, as Redash before v9 did)."""
    return ("[" + separator.join(json.dumps(row, ensure_ascii=False) for row in rows) + "]").encode()


def body_text(spec: list[tuple[str, str | None]], rows: list[dict[str, Any]], *, columns_last: bool = False) -> bytes:
    """A whole result body, shaped like the captured Redash answers."""
    columns = json.dumps([{"name": n, "friendly_name": f"{n} label", "type": k} for n, k in spec])
    parts = [f'"columns": {columns}', f'"rows": {rows_text(rows).decode()}']
    data = ", ".join(reversed(parts) if columns_last else parts)
    return (
        '{"query_result": {"id": 7, "query_hash": "h", "query": "select \\"x\\" -- {[", '
        f'"data": {{{data}}}, "data_source_id": 1, "runtime": 0.25, "retrieved_at": "2024-01-01T00:00:00Z"}}}}'
    ).encode()


def _bits(value: Any) -> Any:
    if isinstance(value, float):
        return ("float", struct.pack("<d", value), math.isnan(value))
    return value


def assert_same_table(expected: pa.Table, actual: pa.Table) -> None:
    """Same schema (field metadata included) and the same values, every float bit included."""
    assert actual.schema.equals(expected.schema, check_metadata=True), (expected.schema, actual.schema)
    for name in expected.column_names:
        want = expected.column(name).combine_chunks()
        got = actual.column(name).combine_chunks()
        assert got.type == want.type, name
        assert [_bits(v) for v in got.to_pylist()] == [_bits(v) for v in want.to_pylist()], name
        assert got.null_count == want.null_count, name
