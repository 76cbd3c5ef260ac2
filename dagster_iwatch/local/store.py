"""Persistent metadata of the local server: queries, results, dashboards, widgets, visualizations, keys."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_KINDS = ("queries", "visualizations", "dashboards", "widgets")

_SCHEMA = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists queries (id integer primary key autoincrement, doc text not null);
create table if not exists visualizations (id integer primary key autoincrement, doc text not null);
create table if not exists dashboards (id integer primary key autoincrement, doc text not null);
create table if not exists widgets (id integer primary key autoincrement, doc text not null);
create table if not exists query_results (
    id integer primary key autoincrement,
    query_id integer,
    data_source_id integer not null,
    query_hash text not null,
    query text not null,
    data text not null,
    runtime real not null,
    retrieved_at text not null,
    retrieved_ts real not null
);
create index if not exists query_results_hash on query_results (data_source_id, query_hash, retrieved_ts);
"""

Doc = dict[str, Any]


def new_api_key() -> str:
    """Return a fresh random API key (40 characters, like Redash's)."""
    return secrets.token_hex(20)


class Store:
    """JSON documents in a SQLite file, one connection guarded by a lock so any thread may use it."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=normal")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes so a crash never leaves half of them (nested calls join the outer one)."""
        with self._lock:
            if self._conn.in_transaction:
                yield
                return
            self._conn.execute("begin immediate")
            try:
                yield
            except BaseException:
                self._conn.execute("rollback")
                raise
            self._conn.execute("commit")

    def get_meta(self, key: str) -> str | None:
        """Return a metadata value, or None."""
        with self._lock:
            row = self._conn.execute("select value from meta where key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        with self._lock:
            self._conn.execute("insert or replace into meta (key, value) values (?, ?)", (key, value))

    def insert(self, kind: str, doc: Doc) -> int:
        """Store a new document of `kind` and return its id (the document gets it as ``id``)."""
        table = _table(kind)
        # One transaction: a crash between the two statements must not leave an empty document behind.
        with self.transaction():
            cur = self._conn.execute(f"insert into {table} (doc) values (?)", ("{}",))
            new_id = int(cur.lastrowid or 0)
            doc["id"] = new_id
            self._conn.execute(f"update {table} set doc = ? where id = ?", (json.dumps(doc), new_id))
        return new_id

    def get(self, kind: str, doc_id: int) -> Doc | None:
        """Return one document, or None."""
        with self._lock:
            row = self._conn.execute(f"select doc from {_table(kind)} where id = ?", (doc_id,)).fetchone()
        return None if row is None else _load(row[0])

    def put(self, kind: str, doc: Doc) -> None:
        """Replace a stored document (matched by its ``id``)."""
        with self._lock:
            self._conn.execute(f"update {_table(kind)} set doc = ? where id = ?", (json.dumps(doc), doc["id"]))

    def delete(self, kind: str, doc_id: int) -> None:
        """Remove one document."""
        with self._lock:
            self._conn.execute(f"delete from {_table(kind)} where id = ?", (doc_id,))

    def all(self, kind: str) -> list[Doc]:
        """Return every document of `kind`, by id."""
        with self._lock:
            rows = self._conn.execute(f"select doc from {_table(kind)} order by id").fetchall()
        return [_load(r[0]) for r in rows]

    def add_result(
        self,
        *,
        query_id: int | None,
        data_source_id: int,
        query_hash: str,
        query: str,
        data_json: str,
        runtime: float,
        retrieved_at: str,
        retrieved_ts: float,
    ) -> int:
        """Store a query result and return its id."""
        with self._lock:
            cur = self._conn.execute(
                "insert into query_results (query_id, data_source_id, query_hash, query, data, runtime,"
                " retrieved_at, retrieved_ts) values (?, ?, ?, ?, ?, ?, ?, ?)",
                (query_id, data_source_id, query_hash, query, data_json, runtime, retrieved_at, retrieved_ts),
            )
        return int(cur.lastrowid or 0)

    def get_result(self, result_id: int) -> Doc | None:
        """Return a stored result's row (``data`` kept as JSON text), or None."""
        with self._lock:
            row = self._conn.execute(
                "select id, query_id, data_source_id, query_hash, query, data, runtime, retrieved_at,"
                " retrieved_ts from query_results where id = ?",
                (result_id,),
            ).fetchone()
        return None if row is None else _result_row(row)

    def latest_result(self, data_source_id: int, query_hash: str, min_ts: float | None) -> Doc | None:
        """Return the newest result for this SQL retrieved at or after `min_ts` (any age when None)."""
        with self._lock:
            row = self._conn.execute(
                "select id, query_id, data_source_id, query_hash, query, data, runtime, retrieved_at,"
                " retrieved_ts from query_results where data_source_id = ? and query_hash = ?"
                " and retrieved_ts >= ? order by retrieved_ts desc, id desc limit 1",
                (data_source_id, query_hash, -1.0 if min_ts is None else min_ts),
            ).fetchone()
        return None if row is None else _result_row(row)

    def latest_result_summary(self, data_source_id: int, query_hash: str) -> Doc | None:
        """Return ``id``, ``retrieved_at`` and ``runtime`` of the newest result for this SQL, or None."""
        with self._lock:
            row = self._conn.execute(
                "select id, retrieved_at, runtime from query_results where data_source_id = ? and query_hash = ?"
                " order by retrieved_ts desc, id desc limit 1",
                (data_source_id, query_hash),
            ).fetchone()
        return None if row is None else {"id": row[0], "retrieved_at": row[1], "runtime": row[2]}


def _table(kind: str) -> str:
    if kind not in _KINDS:
        raise ValueError(f"unknown document kind {kind!r}")
    return kind


def _load(text: str) -> Doc:
    doc: Doc = json.loads(text)
    return doc


def _result_row(row: tuple[Any, ...]) -> Doc:
    keys = (
        "id",
        "query_id",
        "data_source_id",
        "query_hash",
        "query",
        "data",
        "runtime",
        "retrieved_at",
        "retrieved_ts",
    )
    return dict(zip(keys, row, strict=True))
