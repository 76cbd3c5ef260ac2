"""A write that dies half-way leaves the previous file readable and no partial file under the final name.

The writer runs in a child process whose file-size limit (RLIMIT_FSIZE) is far below the new file's size, so
the kernel stops it at a known point in the middle of writing Parquet: by default with SIGXFSZ, which kills
the process on the spot like SIGKILL would; with the signal ignored, the write fails with EFBIG instead.
"""

import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from dagster_iwatch.io_manager import read_parquet, write_parquet_atomic

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")

LIMIT = 64 * 1024

CHILD = textwrap.dedent(
    """
    import errno, resource, signal, sys
    import numpy as np
    import pyarrow as pa
    from dagster_iwatch.io_manager import write_parquet_atomic

    path, mode, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(7)
    table = pa.table({"x": rng.random(200_000), "y": rng.integers(0, 2**62, 200_000)})
    # CPython ignores SIGXFSZ at startup; "kill" restores the default action, which ends the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL if mode == "kill" else signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        write_parquet_atomic(table, path, compression="none", row_group_size=10_000)
    except OSError as error:
        print("write failed:", error, file=sys.stderr)
        sys.exit(3)
    sys.exit(0)
    """
)


SCENARIOS = {"killed": "kill", "failed": "error", "failed_first": "error"}


def previous_file(folder: Path) -> tuple[Path, bytes, pa.Table]:
    table = pa.table({"x": [1.0, 2.0], "y": [1, 2]})
    path = folder / "asset.parquet"
    write_parquet_atomic(table, path)
    return path, path.read_bytes(), table


@dataclass
class Outcome:
    folder: Path
    path: Path
    returncode: int
    stderr: str
    before: bytes | None = None
    table: pa.Table | None = None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every scenario's child at once: each pays for importing Dagster, so in parallel they cost one."""
    prepared: dict[str, tuple[Path, Path, bytes | None, pa.Table | None]] = {}
    for name in SCENARIOS:
        folder = tmp_path_factory.mktemp(name)
        if name == "failed_first":
            prepared[name] = (folder, folder / "asset.parquet", None, None)
        else:
            path, before, table = previous_file(folder)
            prepared[name] = (folder, path, before, table)
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", CHILD, str(prepared[name][1]), mode, str(LIMIT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, mode in SCENARIOS.items()
    }
    results = {}
    for name, child in children.items():
        _, stderr = child.communicate(timeout=60)
        folder, path, before, table = prepared[name]
        results[name] = Outcome(folder, path, child.returncode, stderr, before, table)
    return results


def test_killed_writer_leaves_previous_file_intact(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["killed"]

    assert outcome.returncode == -signal.SIGXFSZ, outcome.stderr
    assert outcome.path.read_bytes() == outcome.before
    assert read_parquet(outcome.path).equals(outcome.table)
    leftovers = [p for p in outcome.folder.iterdir() if p != outcome.path]
    # The killed writer could not clean up: its partial file is hidden and never carries the final name.
    assert len(leftovers) == 1
    [partial] = leftovers
    assert partial.name.startswith(".asset.parquet.")
    assert partial.name.endswith(".tmp")
    assert partial.stat().st_size == LIMIT


def test_failed_write_cleans_up_and_leaves_previous_file_intact(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["failed"]

    assert outcome.returncode == 3, outcome.stderr
    assert "File too large" in outcome.stderr
    assert outcome.path.read_bytes() == outcome.before
    assert read_parquet(outcome.path).equals(outcome.table)
    assert sorted(outcome.folder.iterdir()) == [outcome.path]


def test_failed_first_write_leaves_nothing(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["failed_first"]

    assert outcome.returncode == 3, outcome.stderr
    assert list(outcome.folder.iterdir()) == []
