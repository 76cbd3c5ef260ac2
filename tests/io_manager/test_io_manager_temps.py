"""Temporary files of killed writers go on the next write to their folder; a live writer's file stays.

The writers are real processes running write_parquet_atomic. Each stops just before its rename (the temporary
file complete on disk) and waits for a line on its standard input, so the test decides when it is killed or let
go: no timing is involved.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from dagster_iwatch.io_manager import read_parquet, write_parquet_atomic
from dagster_iwatch.parquet_files import STALE_TEMP_SECONDS, remove_abandoned_temps
from dagster_iwatch.parquet_paths import escape_segment

WRITER = textwrap.dedent(
    """
    import os, sys
    import pyarrow as pa
    from dagster_iwatch.parquet_files import write_parquet_atomic

    real_replace = os.replace

    def paused_replace(source, target):
        print(source, flush=True)
        if sys.stdin.readline().strip() == "go":
            real_replace(source, target)

    os.replace = paused_replace
    write_parquet_atomic(pa.table({"writer": [sys.argv[2]]}), sys.argv[1])
    """
)


class PausedWriter:
    """A writer process stopped with its temporary file complete, just before the rename."""

    def __init__(self, path: Path, name: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.temp = Path(self.process.stdout.readline().strip())
        assert self.temp.is_file(), "the writer did not reach its rename"

    def finish(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def writers() -> Iterator[list[PausedWriter]]:
    started: list[PausedWriter] = []
    yield started
    for writer in started:
        writer.close()


def test_temp_name_tells_host_and_process(base_dir: Path, writers: list[PausedWriter]) -> None:
    path = base_dir / "t.parquet"
    writer = PausedWriter(path, "live")
    writers.append(writer)
    host = escape_segment(socket.gethostname(), dots=False)
    assert writer.temp.parent == base_dir
    assert writer.temp.name.startswith(f".t.parquet.{host}.{writer.process.pid}.")
    assert writer.temp.name.endswith(".tmp")


def test_killed_writers_temp_goes_live_writers_stays(base_dir: Path, writers: list[PausedWriter]) -> None:
    path = base_dir / "t.parquet"
    sibling = base_dir / "u.parquet"
    write_parquet_atomic(pa.table({"writer": ["first"]}), path)
    dead = PausedWriter(path, "dead")
    dead_sibling = PausedWriter(sibling, "dead sibling")
    live = PausedWriter(path, "live")
    writers.extend([dead, dead_sibling, live])
    dead.kill()
    dead_sibling.kill()
    assert dead.temp.is_file()  # a killed writer cannot clean up after itself

    write_parquet_atomic(pa.table({"writer": ["next"]}), path)
    assert read_parquet(path).column("writer").to_pylist() == ["next"]
    # Both dead writers' files went (the same folder), the live writer's file is untouched.
    assert sorted(p.name for p in base_dir.iterdir()) == sorted([live.temp.name, "t.parquet"])

    live.finish()
    assert read_parquet(path).column("writer").to_pylist() == ["live"]
    assert sorted(p.name for p in base_dir.iterdir()) == ["t.parquet"]


def test_dagster_write_cleans_the_asset_folder(base_dir: Path, writers: list[PausedWriter]) -> None:
    import dagster as dg

    from dagster_iwatch.io_manager import IWatchParquetIOManager

    days = dg.StaticPartitionsDefinition(["d1", "d2"])

    @dg.asset(partitions_def=days)
    def daily(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"writer": [context.partition_key]})

    folder = base_dir / "daily.partitions"
    dead = PausedWriter(folder / "d1.parquet", "dead")
    writers.append(dead)
    dead.kill()
    manager = IWatchParquetIOManager(base_path=str(base_dir))
    assert dg.materialize([daily], partition_key="d2", resources={"io_manager": manager}).success
    assert sorted(p.name for p in folder.iterdir()) == ["d2.parquet"]


def test_old_or_foreign_temps_go_by_age(base_dir: Path) -> None:
    base_dir.mkdir(parents=True)
    # Another host's writer cannot be asked whether it runs, nor can the earlier releases' unnamed writers.
    other_host = base_dir / ".t.parquet.elsewhere.12345.0123456789abcdef.tmp"
    other_host_old = base_dir / ".t.parquet.elsewhere.12346.0123456789abcdef.tmp"
    unnamed = base_dir / f".t.parquet.{'a' * 32}.tmp"
    unnamed_old = base_dir / f".u.parquet.{'b' * 32}.tmp"
    not_ours = base_dir / ".notes.tmp"
    for leftover in (other_host, other_host_old, unnamed, unnamed_old, not_ours):
        leftover.write_bytes(b"PAR1 partial")
    long_ago = time.time() - STALE_TEMP_SECONDS - 60
    for leftover in (other_host_old, unnamed_old, not_ours):
        os.utime(leftover, (long_ago, long_ago))

    assert sorted(remove_abandoned_temps(base_dir)) == sorted([other_host_old, unnamed_old])
    assert sorted(p.name for p in base_dir.iterdir()) == sorted([other_host.name, unnamed.name, not_ours.name])


def test_this_processs_own_temps_stay(base_dir: Path) -> None:
    base_dir.mkdir(parents=True)
    host = escape_segment(socket.gethostname(), dots=False)
    mine = base_dir / f".t.parquet.{host}.{os.getpid()}.0123456789abcdef.tmp"
    mine.write_bytes(b"PAR1 partial")
    assert remove_abandoned_temps(base_dir) == []
    assert mine.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are read from /proc")
def test_unreaped_killed_writer_counts_as_gone(base_dir: Path, writers: list[PausedWriter]) -> None:
    writer = PausedWriter(base_dir / "t.parquet", "zombie")
    writers.append(writer)
    os.kill(writer.process.pid, signal.SIGKILL)
    # Not reaped yet: the process is a zombie until its parent (this test) waits for it.
    deadline = time.monotonic() + 30
    while Path(f"/proc/{writer.process.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the killed writer never became a zombie"
        time.sleep(0.01)
    assert remove_abandoned_temps(base_dir) == [writer.temp]
