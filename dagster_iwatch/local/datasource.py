"""The SQLite data source: connections, the `sleep` SQL function, and Redash-style typed results."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DATA_SOURCE_ID = 1

# Declared SQLite column types -> Redash column types. TEXT and JSON map to None on purpose: the real
# server leaves text-like database types untyped, and clients must cope with that.
_DECLARED: dict[str, str | None] = {
    "INTEGER": "integer",
    "INT": "integer",
    "BIGINT": "integer",
    "REAL": "float",
    "FLOAT": "float",
    "DOUBLE": "float",
    "NUMERIC": "float",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "datetime",
    "DATETIME": "datetime",
    "VARCHAR": "string",
    "TEXT": None,
    "JSON": None,
}

_SQLITE_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z?$")
_LIMIT_AT_END = re.compile(r"\blimit\s+\d+\s*(?:offset\s+\d+\s*)?;?\s*$", re.IGNORECASE)


def connect(path: Path, cancel_event: Callable[[], threading.Event | None]) -> sqlite3.Connection:
    """Open a read-only connection to the data source with the `sleep(seconds)` function registered.

    `cancel_event` returns the event of the job currently running on this connection, so that `sleep`
    returns as soon as the job is cancelled rather than after its full duration.
    """
    # Read-only and without ATTACH: no query may change the sample data or reach the server's metadata file.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)

    def sleep(seconds: float | int | None) -> float:
        secs = float(seconds or 0)
        event = cancel_event()
        if event is None:
            threading.Event().wait(secs)
        else:
            event.wait(secs)
        return secs

    conn.create_function("sleep", 1, sleep)
    return conn


def apply_auto_limit(sql: str) -> str:
    """Append ``LIMIT 1000`` unless the statement already ends with a limit, as Redash does."""
    stripped = sql.rstrip().rstrip(";").rstrip()
    if _LIMIT_AT_END.search(stripped):
        return stripped
    return f"{stripped} LIMIT 1000"


def declared_types(conn: sqlite3.Connection) -> dict[str, str]:
    """Map each column name to its declared SQL type when all tables declaring it agree."""
    seen: dict[str, set[str]] = {}
    tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
    for table in tables:
        for row in conn.execute("select name, type from pragma_table_info(?)", (table,)):
            seen.setdefault(str(row[0]), set()).add(str(row[1]).upper().split("(")[0].strip())
    return {name: types.pop() for name, types in seen.items() if len(types) == 1}


def run_sql(conn: sqlite3.Connection, sql: str, decl: dict[str, str]) -> dict[str, Any]:
    """Run one statement and return Redash's ``data`` object: ``{"columns": [...], "rows": [...]}``."""
    cur = conn.execute(sql)
    names = [d[0] for d in (cur.description or ())]
    raw_rows = cur.fetchall()
    # Column-wise work keeps large results (the bench runs hundreds of thousands of rows) fast.
    cols: list[Sequence[Any]] = [list(c) for c in zip(*raw_rows, strict=True)] if raw_rows else [[] for _ in names]
    unique = _unique_names(names)
    columns: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        kinds = {type(v) for v in cols[i]}
        kinds.discard(type(None))
        col_type, conv = _column_type(decl.get(name), kinds)
        columns.append({"name": unique[i], "friendly_name": unique[i], "type": col_type})
        if conv is not None:
            cols[i] = [None if v is None else conv(v) for v in cols[i]]
    rows = [dict(zip(unique, r, strict=True)) for r in zip(*cols, strict=True)]
    return {"columns": columns, "rows": rows}


def _unique_names(names: list[str]) -> list[str]:
    # Redash renames duplicate column names (a, a -> a, a1) so rows stay dictionaries.
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        candidate, n = name, 1
        while candidate in used:
            candidate = f"{name}{n}"
            n += 1
        used.add(candidate)
        out.append(candidate)
    return out


def _to_bool(value: Any) -> Any:
    return bool(value)


def _to_datetime(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) == 19 and value[10] == " ":
            return f"{value[:10]}T{value[11:]}Z"
        m = _SQLITE_TS.match(value)
        if m:
            return f"{m.group(1)}T{m.group(2)}Z"
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _to_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "BOOLEAN": _to_bool,
    "TIMESTAMP": _to_datetime,
    "DATETIME": _to_datetime,
    "JSON": _to_json,
}


def _column_type(declared: str | None, kinds: set[type]) -> tuple[str | None, Callable[[Any], Any] | None]:
    """Return the Redash type of a column and the converter its values need (None when none)."""
    if declared is not None and declared in _DECLARED and _consistent(declared, kinds):
        return _DECLARED[declared], _CONVERTERS.get(declared)
    if not kinds:
        return None, None
    if kinds <= {int}:
        return "integer", None
    if kinds <= {int, float}:
        return "float", None
    return "string", _to_text if bytes in kinds else None


def _consistent(declared: str, kinds: set[type]) -> bool:
    kind = _DECLARED[declared]
    if kind in ("integer", "boolean"):
        return kinds <= {int}
    if kind == "float":
        return kinds <= {int, float}
    return kinds <= {str}
