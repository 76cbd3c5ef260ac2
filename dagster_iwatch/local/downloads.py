"""A stored result as Redash serves it: JSON (spliced, not re-encoded), CSV, TSV and Excel downloads."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dagster_iwatch.local.replies import Reply, bad_request, internal_error
from dagster_iwatch.local.store import Doc

FORMATS = ("json", "csv", "tsv", "xlsx")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def result_json(row: Doc, *, public: bool = False) -> bytes:
    """Return ``{"query_result": ...}`` for a stored row; `public` gives a query key's short form."""
    # The stored data is already JSON: splice it in rather than parse and re-encode large results.
    if public:
        head = json.dumps({"retrieved_at": row["retrieved_at"]})
        return f'{{"query_result": {{"data": {row["data"]}, {head[1:]}}}'.encode()
    first = json.dumps({"id": row["id"], "query_hash": row["query_hash"], "query": row["query"]})
    rest = json.dumps(
        {"data_source_id": row["data_source_id"], "runtime": row["runtime"], "retrieved_at": row["retrieved_at"]}
    )
    return f'{{"query_result": {first[:-1]}, "data": {row["data"]}, {rest[1:]}}}'.encode()


def download(row: Doc, fmt: str, stem: str) -> Reply:
    """Answer a result in `fmt` with Redash's ``Content-Disposition`` (an unknown format is a bare 500)."""
    day = datetime.now(UTC).strftime("%Y_%m_%d")
    headers = {"Content-Disposition": f"attachment; filename={stem}_{day}.{fmt}"}
    if fmt == "json":
        return Reply(200, result_json(row), headers=headers)
    if fmt not in FORMATS:
        raise internal_error()
    data = json.loads(row["data"])
    if fmt == "csv":
        return Reply(200, _delimited(data, ","), "text/csv; charset=UTF-8", headers)
    if fmt == "tsv":
        return Reply(200, _delimited(data, "\t"), "text/tab-separated-values; charset=UTF-8", headers)
    return Reply(200, _xlsx(data), XLSX_TYPE, headers)


def file_stem(name: str) -> str:
    """A query name as Redash puts it in download file names."""
    return re.sub(r"\W+", "_", name).strip("_") or "query"


def _cell(value: Any, col_type: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if col_type in ("datetime", "date") and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        return moment.strftime("%d/%m/%y %H:%M" if col_type == "datetime" else "%d/%m/%y")
    return str(value)


def _delimited(data: Mapping[str, Any], delimiter: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    columns = data["columns"]
    writer.writerow([c["name"] for c in columns])
    for row in data["rows"]:
        writer.writerow([_cell(row.get(c["name"]), c["type"]) for c in columns])
    return buf.getvalue()


def _xlsx(data: Mapping[str, Any]) -> bytes:
    try:
        import xlsxwriter
    except ImportError:
        raise bad_request(
            "Excel downloads need the xlsx extra (pip install 'dagster-iwatch[xlsx]');"
            " supported formats here: json, csv, tsv"
        ) from None
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False, "strings_to_urls": False})
    sheet = book.add_worksheet("result")
    columns = data["columns"]
    for j, col in enumerate(columns):
        sheet.write_string(0, j, str(col["name"]))
    for i, row in enumerate(data["rows"], start=1):
        for j, col in enumerate(columns):
            value = row.get(col["name"])
            if value is None:
                continue
            if isinstance(value, bool | int | float):
                sheet.write(i, j, value)
            else:
                sheet.write_string(i, j, value if isinstance(value, str) else json.dumps(value))
    book.close()
    return buf.getvalue()
