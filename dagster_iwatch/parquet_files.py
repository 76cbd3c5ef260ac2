"""Parquet files written atomically, on a local folder or any fsspec URL; no Dagster here.

On a local filesystem a file is written to a hidden temporary file in the same folder, flushed to disk and
renamed over the final name with :func:`os.replace`. On an object store (``s3://``, ``gs://``, ``az://``...)
it is written to a local staging file first and uploaded with one ``put`` to the final key: the store makes
an object visible only once its upload completed, so a failed or killed upload leaves the previous object as
it was. The staging file lives in the system's temporary folder (``TMPDIR``), which needs room for the largest
file.

A writer that is killed cannot remove its temporary file. Each temporary name therefore carries the writer's
host name and process id, ``.<file name>.<host>.<pid>.<random>.tmp`` (staging folders:
``iwatch-parquet-<host>.<pid>.<random>``), and every write first removes, in the folder it writes to, the
temporary files whose writer is gone: those of this host whose process no longer runs. A live writer keeps
its file. A process id can be reused and another host's processes cannot be seen, so a temporary file is also
removed once it has not been written to for an hour: a live writer touches its file with every write and
renames it as soon as it is complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.parquet as pq

from dagster_iwatch.errors import BasePathError
from dagster_iwatch.parquet_paths import escape_segment

if TYPE_CHECKING:
    from upath import UPath

__all__ = [
    "STALE_TEMP_SECONDS",
    "StagedParquet",
    "atomic_local_file",
    "check_base_path",
    "discard_staged",
    "display_uri",
    "is_local",
    "place_staged",
    "read_parquet",
    "remove_abandoned_temps",
    "staging_path",
    "write_parquet_atomic",
]

STALE_TEMP_SECONDS = 3600.0
"""A temporary file left untouched this long is removed whatever its name says about its writer."""

_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
_TEMP = re.compile(r"^\.(?P<final>.+)\.(?P<host>[a-z0-9_!%-]+)\.(?P<pid>[0-9]+)\.[0-9a-f]{16}\.tmp$")
# Temporary names of earlier releases (``.<file name>.<uuid hex>.tmp``) say nothing about their writer.
_OLD_TEMP = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
_STAGING_PREFIX = "iwatch-parquet-"
_STAGING_FOLDER = ".iwatch-staging"
_STAGING = re.compile(r"^iwatch-parquet-(?P<host>[a-z0-9_!%-]+)\.(?P<pid>[0-9]+)\.[0-9a-f]{16}$")


def is_local(path: UPath) -> bool:
    """Whether ``path`` is on the local filesystem."""
    return path.protocol in _LOCAL_PROTOCOLS


def _as_upath(path: UPath | str | os.PathLike[str]) -> UPath:
    from upath import UPath

    return path if isinstance(path, UPath) else UPath(path)


def display_uri(path: UPath | str | os.PathLike[str]) -> str:
    """The path or URL of a file, fit for logs and metadata: any ``user:password@`` part is removed.

    Args:
        path: A local path or fsspec URL.

    Returns:
        The absolute local path for a local file, else the URL without credentials.
    """
    upath = _as_upath(path)
    if is_local(upath):
        return str(Path(upath.path).absolute())
    parts = urlsplit(str(upath))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _host() -> str:
    return escape_segment(socket.gethostname(), dots=False)


def _writer_tag() -> str:
    return f"{_host()}.{os.getpid()}.{secrets.token_hex(8)}"


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    # A killed process its parent has not reaped yet still answers, as a zombie.
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rpartition(")")[2].split()[:1] != ["Z"]
    return True


def _abandoned(host: str | None, pid: int | None, mtime: float, now: float) -> bool:
    if now - mtime > STALE_TEMP_SECONDS:
        return True
    return host == _host() and pid is not None and pid != os.getpid() and not _process_runs(pid)


def remove_abandoned_temps(folder: Path) -> list[Path]:
    """Remove the temporary files in ``folder`` whose writer is gone, as the module docstring describes.

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(".tmp"):
            continue
        match = _TEMP.match(entry.name)
        if match is None and _OLD_TEMP.match(entry.name) is None:
            continue
        with contextlib.suppress(OSError):
            host, pid = (match["host"], int(match["pid"])) if match else (None, None)
            if entry.is_file(follow_symlinks=False) and _abandoned(host, pid, entry.stat().st_mtime, now):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _remove_abandoned_staging() -> None:
    now = time.time()
    root = tempfile.gettempdir()
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            match = _STAGING.match(entry.name) if entry.name.startswith(_STAGING_PREFIX) else None
            with contextlib.suppress(OSError):
                if match and _abandoned(match["host"], int(match["pid"]), entry.stat().st_mtime, now):
                    shutil.rmtree(entry.path, ignore_errors=True)


def _write_options(compression: str, compression_level: int | None, row_group_size: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {"compression": compression}
    if compression_level is not None:
        options["compression_level"] = compression_level
    if row_group_size is not None:
        options["row_group_size"] = row_group_size
    return options


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened, hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_local_file(final: Path) -> Iterator[IO[bytes]]:
    """A new binary file that appears at ``final`` complete (flushed to disk), or not at all.

    Written as a temporary file in the same folder and renamed over ``final`` when the block ends without
    an error; on an error the temporary file is removed and ``final`` is left as it was.
    """
    # Before writing, so that a killed writer's full-size file is gone before this one needs the room.
    remove_abandoned_temps(final.parent)
    temp = final.parent / f".{final.name}.{_writer_tag()}.tmp"
    try:
        with open(temp, "xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _write_local_atomic(table: pa.Table, final: Path, options: Mapping[str, Any]) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_local_file(final) as handle:
        pq.write_table(table, handle, **options)


@dataclass(frozen=True)
class StagedParquet:
    """A complete Parquet file written ahead of its place, for :func:`place_staged` to move there.

    Attributes:
        path: The staged file (from :func:`staging_path`).
        rows: Its row count.
    """

    path: Path
    rows: int


def staging_path(base: UPath) -> Path:
    """A new path where a file bound for ``base`` can be written first (on the same filesystem when local).

    Local base paths stage in their hidden ``.iwatch-staging`` folder, so that placing the file is a rename;
    object stores stage in the system's temporary folder. Abandoned staged files are removed as temporary
    files are (see the module docstring); :func:`discard_staged` removes one that will not be placed.
    """
    if is_local(base):
        folder = Path(base.path) / _STAGING_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        remove_abandoned_temps(folder)
    else:
        _remove_abandoned_staging()
        folder = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{_writer_tag()}"))
    return folder / f".staged.{_writer_tag()}.tmp"


def place_staged(staged: Path, path: UPath) -> None:
    """Move a complete staged file to ``path`` so that readers see the old file or the new one, never a part.

    A rename on the same filesystem; else a copy to a temporary file beside ``path`` and a rename; an upload
    (one ``put``) to an object store.
    """
    if is_local(path):
        final = Path(path.path)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staged, final)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            with atomic_local_file(final) as handle, open(staged, "rb") as source:
                shutil.copyfileobj(source, handle, 1 << 20)
        _fsync_dir(final.parent)
    else:
        path.fs.put_file(str(staged), path.path)
    discard_staged(staged)


def discard_staged(staged: Path) -> None:
    """Remove a staged file (and its staging folder when it had one of its own); never raises."""
    with contextlib.suppress(OSError):
        staged.unlink(missing_ok=True)
    if _STAGING.match(staged.parent.name):
        shutil.rmtree(staged.parent, ignore_errors=True)


def _write_remote_atomic(table: pa.Table, path: UPath, options: Mapping[str, Any]) -> None:
    _remove_abandoned_staging()
    with tempfile.TemporaryDirectory(prefix=f"{_STAGING_PREFIX}{_writer_tag()}") as folder:
        local = os.path.join(folder, "upload.parquet")
        pq.write_table(table, local, **options)
        path.fs.put_file(local, path.path)


def write_parquet_atomic(
    table: pa.Table,
    path: UPath | str | os.PathLike[str],
    *,
    compression: str = "zstd",
    compression_level: int | None = None,
    row_group_size: int | None = None,
) -> None:
    """Write ``table`` as one Parquet file at ``path`` so that readers see the old file or the new one, never a part.

    Schema and field metadata are kept (the schema's key-value metadata becomes the file's, and the Arrow
    schema with field metadata is stored alongside). Temporary files of killed writers in the same folder
    are removed first (see the module docstring).

    Args:
        table: The table to write.
        path: A local path or an fsspec URL; pass a ``UPath`` to carry storage options.
        compression: Parquet codec (``zstd``, ``snappy``, ``gzip``, ``brotli``, ``lz4`` or ``none``).
        compression_level: Codec level, or ``None`` for the codec's default.
        row_group_size: Maximum rows per row group, or ``None`` for pyarrow's default.

    Raises:
        OSError: The file could not be written (an object store's client may raise its own error type
            instead); either way the previous file, if any, is left as it was.
    """
    upath = _as_upath(path)
    options = _write_options(compression, compression_level, row_group_size)
    if is_local(upath):
        _write_local_atomic(table, Path(upath.path), options)
    else:
        _write_remote_atomic(table, upath, options)


def read_parquet(path: UPath | str | os.PathLike[str]) -> pa.Table:
    """Read one Parquet file into a ``pyarrow.Table``, with its schema and field metadata.

    Args:
        path: A local path or an fsspec URL; pass a ``UPath`` to carry storage options.

    Returns:
        The table.

    Raises:
        FileNotFoundError: There is no file at ``path``.
    """
    upath = _as_upath(path)
    if is_local(upath):
        return pq.read_table(pa.memory_map(upath.path))
    with upath.fs.open(upath.path, "rb") as handle:
        return pq.read_table(handle)


def check_base_path(base: UPath) -> None:
    """Check that files can be written under ``base``.

    A missing local folder is created; then a small probe file is created and removed in it.

    Raises:
        BasePathError: ``base`` cannot be created, is not a folder, or cannot be written to.
    """
    shown = display_uri(base)
    probe_name = f".iwatch-write-check.{_writer_tag()}.tmp"
    if is_local(base):
        folder = Path(base.path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise BasePathError(shown, "it exists and is not a folder") from None
        except OSError as error:
            raise BasePathError(shown, f"the folder cannot be created ({_reason(error)})") from error
        probe = folder / probe_name
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            probe.unlink()
        except OSError as error:
            raise BasePathError(shown, f"files cannot be written in it ({_reason(error)})") from error
        return
    target = f"{base.path.rstrip('/')}/{probe_name}"
    try:
        base.fs.pipe_file(target, b"")
    except Exception as error:  # each store's client raises its own error types
        raise BasePathError(shown, f"objects cannot be written under it ({_reason(error)})") from error
    with contextlib.suppress(Exception):
        base.fs.rm_file(target)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"
