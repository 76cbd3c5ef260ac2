"""What the ``iwatch`` commands print and write: tables, the live progress line, and result files.

Result files are written whole or not at all: into a temporary file beside the target, renamed over it once
complete, so that no reader ever sees a half-written Parquet or CSV file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from dagster_iwatch._cli_connection import CliError, ExitCode
from dagster_iwatch.run_handler import RunProgress

if TYPE_CHECKING:
    import pyarrow as pa

STDOUT = "-"
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_MAX_CELL = 60
_ERASE_TO_END = "\x1b[K"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], max_cell: int | None = _MAX_CELL) -> str:
    """Rows as left-aligned text columns under upper-case headers; cells over ``max_cell`` are cut with "…"."""
    cells = [[_cell(value, max_cell) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any, max_cell: int | None) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if max_cell is None or len(text) <= max_cell else text[: max_cell - 1] + "…"


def human_bytes(size: int) -> str:
    """A byte count for people: ``532 B``, ``1.2 kB``, ``3.4 MB``."""
    amount = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def seconds(elapsed: float) -> str:
    """A duration for people: ``3.2s``, ``2m05s``."""
    if elapsed < 60:
        return f"{elapsed:.1f}s"
    minutes, rest = divmod(round(elapsed), 60)
    return f"{minutes}m{rest:02d}s"


def describe_progress(progress: RunProgress) -> str:
    """One line saying where a run stands: the job's status and elapsed time, bytes read, rows when done."""
    parts = [f"query {progress.query_id}"]
    if progress.stage == "waiting":
        status = progress.job_status.name.lower() if progress.job_status is not None else "submitted"
        parts.append(f"job {progress.job_id} {status}" if progress.job_id else status)
    elif progress.stage == "reading":
        parts.append(f"reading result: {human_bytes(progress.bytes_read)}")
    else:
        parts.append(f"{progress.rows} rows{' from cache' if progress.from_cache else ''}")
    parts.append(seconds(progress.elapsed))
    return " · ".join(parts)


class ProgressLine:
    """A progress callback redrawing one line on standard error (on a terminal, or when asked)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.job_id: str | None = None
        self._drawn = False

    def __call__(self, progress: RunProgress) -> None:
        """Redraw the line for ``progress``, and note the run's job."""
        self.job_id = progress.job_id or self.job_id
        if self.enabled:
            self._draw(f"\r{describe_progress(progress)}{_ERASE_TO_END}")
            self._drawn = True

    def clear(self) -> None:
        """Erase the line, so that what follows starts on a clean one."""
        if self._drawn:
            self._draw(f"\r{_ERASE_TO_END}")
            self._drawn = False

    @staticmethod
    def _draw(text: str) -> None:
        # Not click.echo: it drops escape sequences when stderr is not a terminal, even with --progress.
        sys.stderr.write(text)
        sys.stderr.flush()


def output_format(target: str) -> str:
    """``parquet`` or ``csv`` for an ``-o`` target, checked before the query runs.

    Raises:
        CliError: The name has no known suffix, or its folder does not exist or is not writable.
    """
    if target == STDOUT:
        return "csv"
    path = Path(target)
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CliError(
            f"cannot tell the format of {target}: end the name in .parquet or .csv, or use - for CSV on standard "
            "output",
            ExitCode.USAGE,
        )
    folder = path.parent
    if not folder.is_dir():
        raise CliError(f"cannot write {target}: the folder {folder} does not exist", ExitCode.USAGE)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {target}: the folder {folder} is not writable", ExitCode.USAGE)
    if path.is_dir():
        raise CliError(f"cannot write {target}: it is a folder", ExitCode.USAGE)
    return kind


def write_table(data: pa.Table, target: str) -> None:
    """Write ``data`` to ``target``: Parquet (zstd) or CSV by suffix, ``-`` for CSV on standard output."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    kind = output_format(target)
    if target == STDOUT:
        try:
            pa_csv.write_csv(data, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # The reader stopped early (``| head``): what it took is what it wanted. Silence the final flush too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    writer: Callable[[str], None]
    if kind == "parquet":
        writer = functools.partial(pq.write_table, data, compression="zstd")
    else:
        writer = functools.partial(pa_csv.write_csv, data)
    with _atomic(Path(target)) as tmp:
        writer(tmp)


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[str]:
    """A temporary path beside ``path``, renamed over it when the block succeeds and removed otherwise."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def echo_preview(data: pa.Table, limit: int, out: IO[str] | None = None) -> None:
    """Print the first ``limit`` rows of ``data`` as a table, and how many more there are."""
    head = data.slice(0, limit).to_pylist()
    click.echo(table(data.column_names, [list(row.values()) for row in head]), file=out)
    if data.num_rows > limit:
        click.echo(f"... {data.num_rows - limit} more rows (write them all with -o FILE)", file=out)
