"""The local server's state over a data folder: the data source, the metadata store, the jobs and the keys."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from dagster_iwatch.local import datasource, seed
from dagster_iwatch.local.executor import CANCELLED, FAILURE, Executor
from dagster_iwatch.local.replies import FLAVORS, LocalServerError, Principal
from dagster_iwatch.local.store import Store, new_api_key


class LocalState:
    """What every resource of the local server shares: store, executor, flavor, keys and the write lock."""

    def __init__(
        self, data_dir: Path, *, flavor: str, workers: int, user_api_key: str | None, job_ttl: float = 600.0
    ) -> None:
        if flavor not in FLAVORS:
            raise LocalServerError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        if user_api_key is not None and not user_api_key.strip():
            raise LocalServerError("the user API key must not be empty")
        self.flavor = flavor
        self.data_dir = data_dir
        _prepare_folder(data_dir)
        self.data_path = data_dir / "datasource.sqlite"
        _prepare_data_source(self.data_path)
        self.store = _open_store(data_dir / "metadata.sqlite")
        self.write_lock = threading.RLock()
        stored_key = self.store.get_meta("user_api_key")
        if user_api_key is not None and user_api_key != stored_key:
            self.store.set_meta("user_api_key", user_api_key)
        elif stored_key is None:
            self.store.set_meta("user_api_key", new_api_key())
        self.user_api_key = str(self.store.get_meta("user_api_key"))
        self.executor = Executor(
            self.data_path,
            self.store,
            workers=workers,
            cancelled_status=CANCELLED if flavor == "inverse-watch" else FAILURE,
            job_ttl=job_ttl,
        )

    def close(self) -> None:
        """Stop the workers and close the store."""
        self.executor.stop()
        self.store.close()

    def authenticate(self, key: str | None) -> Principal | None:
        """Return who owns `key`, or None when it is nobody's."""
        if not key:
            return None
        if key == self.user_api_key:
            return Principal()
        for doc in self.store.all("queries"):
            if doc.get("api_key") == key:
                return Principal(query_id=int(doc["id"]))
        return None


def _prepare_folder(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise LocalServerError(f"data folder {data_dir} exists and is not a folder: pass another --data path")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalServerError(
            f"cannot create data folder {data_dir}: {exc.strerror or exc}; pass a writable --data path"
        ) from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise LocalServerError(f"data folder {data_dir} is not writable: pass a writable --data path")


def _prepare_data_source(path: Path) -> None:
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.unlink(missing_ok=True)
            seed.build_data_source(tmp)
            tmp.replace(path)
        except (OSError, sqlite3.Error) as exc:
            raise LocalServerError(f"cannot write the sample data source {path}: {exc}") from None
    try:
        conn = datasource.connect(path, lambda: None)
        try:
            datasource.declared_types(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise LocalServerError(
            f"the data source {path} is not a readable SQLite database ({exc}): delete it to have it rebuilt"
        ) from None


def _open_store(path: Path) -> Store:
    try:
        return Store(path)
    except sqlite3.Error as exc:
        raise LocalServerError(
            f"the metadata file {path} is not a readable SQLite database ({exc}): move it away to start afresh"
            " (saved queries, dashboards and results are lost), or pass another --data folder"
        ) from None
