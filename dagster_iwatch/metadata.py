"""What a materialization records: Dagster metadata, Parquet key-value metadata and the data version."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import dagster as dg
import pyarrow as pa

from dagster_iwatch.types import Query, QueryResult

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 40
# Rows hashed at a time by a data version: a fixed size, so that the version does not depend on the batches.
_HASHED_ROWS = 1 << 16


def sql_hash(sql: str) -> str:
    """A stable hash of a query's SQL text, the seed of a future code version."""
    return hashlib.sha256(sql.encode()).hexdigest()[:16]


def file_metadata(result: QueryResult, query_id: int) -> dict[str, str]:
    """The result's provenance as Parquet key-value metadata."""
    return {
        "iwatch.query_id": str(query_id),
        "iwatch.query_result_id": "" if result.id is None else str(result.id),
        "iwatch.query_hash": result.query_hash or "",
        "iwatch.retrieved_at": result.retrieved_at.isoformat() if result.retrieved_at else "",
        "iwatch.parameters": json.dumps(result.parameters, default=_json_default, sort_keys=True),
        "iwatch.column_types": json.dumps({c.name: c.type for c in result.columns}),
    }


def with_file_metadata(table: pa.Table, result: QueryResult, query_id: int) -> pa.Table:
    """The table with the result's provenance in its schema metadata, which the Parquet file keeps."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **file_metadata(result, query_id)})


def data_version(table: pa.Table) -> dg.DataVersion:
    """A data version from the table's content alone, so an unchanged result gives an unchanged version.

    Schema metadata is left out: it holds the result id and retrieval time, which change on every run.
    """
    fingerprint = BatchFingerprint()
    for batch in table.to_batches():
        fingerprint.batch(batch)
    return fingerprint.data_version(table.schema)


class BatchFingerprint:
    """The data version and first rows of a table seen batch by batch, as it is streamed to a file.

    The rows are hashed in slices of a fixed size, so the version depends on the values alone, not on how the
    table happens to be cut into batches: the same rows give the same version as :func:`data_version`.
    """

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """Forget the batches seen so far (the file is written again from its start)."""
        self._sink = _HashingSink()
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._first: list[pa.RecordBatch] = []
        self._kept = 0

    def batch(self, batch: pa.RecordBatch) -> None:
        """Add one batch."""
        content = batch.replace_schema_metadata(None)
        if self._kept < PREVIEW_ROWS:
            first = content.slice(0, PREVIEW_ROWS - self._kept)
            self._first.append(first)
            self._kept += first.num_rows
        self._pending.append(content)
        self._pending_rows += content.num_rows
        while self._pending_rows >= _HASHED_ROWS:
            self._hash(_HASHED_ROWS)

    def _hash(self, rows: int) -> None:
        pending = pa.Table.from_batches(self._pending)
        head = pending.slice(0, rows).combine_chunks()
        if self._writer is None:
            # Streamed into the hash rather than into a buffer, so a large result is not held twice in memory.
            self._writer = pa.ipc.new_stream(pa.PythonFile(self._sink, mode="w"), head.schema)
        for batch in head.to_batches():
            self._writer.write_batch(batch)
        self._pending = pending.slice(rows).to_batches()
        self._pending_rows -= rows

    def data_version(self, schema: pa.Schema) -> dg.DataVersion:
        """The version of all batches seen; ``schema`` is the table's, for a table without batches."""
        if self._pending_rows:
            self._hash(self._pending_rows)
        if self._writer is None:
            self._writer = pa.ipc.new_stream(pa.PythonFile(self._sink, mode="w"), schema.remove_metadata())
        self._writer.close()
        return dg.DataVersion(self._sink.digest.hexdigest()[:32])

    def first_rows(self, schema: pa.Schema) -> pa.Table:
        """The first :data:`PREVIEW_ROWS` rows seen, as a table of ``schema``."""
        return pa.Table.from_batches(self._first, schema.remove_metadata())


class _HashingSink:
    """A write-only file that feeds everything written to it into a SHA-256 digest."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def column_schema(result: QueryResult, table: pa.Table) -> dg.TableSchema:
    """The table's columns, each typed as Inverse Watch declared it, with the Arrow type when none was given."""
    declared = {c.name: c.type for c in result.columns}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=declared.get(f.name) or str(f.type),
                description=f"arrow: {f.type}",
            )
            for f in table.schema
        ]
    )


#: Shown for provenance the server did not send (a query key's cached answer carries no result id or hash).
UNAVAILABLE = "unavailable: the server did not send it to this key"


def materialization_metadata(
    *,
    query_id: int,
    query: Query | None,
    query_url: str,
    result: QueryResult,
    table: pa.Table,
    mode: str,
    rows: int | None = None,
) -> dict[str, Any]:
    """The metadata recorded with each materialization of a query asset.

    ``table`` is the stored table, or its first rows with ``rows`` its row count when it was streamed.
    """
    rows = table.num_rows if rows is None else rows
    metadata: dict[str, Any] = {
        "dagster/row_count": rows,
        "dagster/column_schema": column_schema(result, table),
        "iwatch/query_id": query_id,
        "iwatch/query_url": dg.MetadataValue.url(query_url),
        "iwatch/query_result_id": result.id if result.id is not None else UNAVAILABLE,
        "iwatch/query_hash": result.query_hash or UNAVAILABLE,
        "iwatch/mode": mode,
        "iwatch/from_cache": result.from_cache,
        "iwatch/parameters": dg.MetadataValue.json(json.loads(json.dumps(result.parameters, default=_json_default))),
        "iwatch/preview": dg.MetadataValue.md(markdown_preview(table, total=rows)),
    }
    if result.job_id:
        metadata["iwatch/job_id"] = result.job_id
    if result.retrieved_at is not None:
        metadata["iwatch/retrieved_at"] = dg.MetadataValue.timestamp(result.retrieved_at)
    if result.runtime is not None:
        metadata["iwatch/runtime_seconds"] = round(float(result.runtime), 3)
    sql = query.query if query is not None else result.query
    if sql:
        metadata["iwatch/sql_hash"] = sql_hash(sql)
    if query is not None:
        metadata["iwatch/query_name"] = query.name
    return metadata


def markdown_preview(table: pa.Table, rows: int = PREVIEW_ROWS, total: int | None = None) -> str:
    """The first rows of a table as a markdown table; ``total`` is its row count if ``table`` holds only the first."""
    total = table.num_rows if total is None else total
    names = table.column_names
    if not names:
        return "_no columns_"
    lines = ["| " + " | ".join(_cell(n) for n in names) + " |", "|" + " --- |" * len(names)]
    for row in table.slice(0, rows).to_pylist():
        lines.append("| " + " | ".join(_cell(row[n]) for n in names) + " |")
    if total > rows:
        lines.append(f"\n_{rows} of {total} rows_")
    elif total == 0:
        lines.append("\n_no rows_")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if len(text) > PREVIEW_CELL_CHARS:
        text = text[: PREVIEW_CELL_CHARS - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def range_metadata(per_partition: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The metadata of one output that holds several partitions: Dagster records it with each of them.

    So it keeps only the entries every partition shares (query, URL, mode, and the schema when they agree), and
    adds each partition's row count under ``iwatch/row_counts``.
    """
    first, *rest = per_partition.values()
    shared = {k: v for k, v in first.items() if all(k in m and m[k] == v for m in rest)}
    shared.pop("dagster/row_count", None)
    shared["iwatch/row_counts"] = dg.MetadataValue.json(
        {key: m.get("dagster/row_count") for key, m in per_partition.items()}
    )
    return shared
