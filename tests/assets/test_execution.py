from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from . import worker_defs

ROOT = Path(__file__).resolve().parents[2]
JOB_PATH = re.compile(r"/api/(?:queries/\d+/)?jobs/([0-9a-f-]+)$")


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def worker_env(server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "IWATCH_URL": server.url,
        "IWATCH_API_KEY": server.user_api_key,
        "IWATCH_PARQUET_PATH": str(tmp_path / "parquet"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_assets_run_under_the_multiprocess_executor(worker_env: dict[str, str], tmp_path: Path) -> None:
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path)) as instance:
        result = dg.execute_job(dg.reconstructable(worker_defs.multiprocess_job), instance=instance)
        assert result.success
        keys = {e.materialization.asset_key for e in result.get_asset_materialization_events()}
        pids = {e.pid for e in result.all_events if e.is_step_start}

    assert keys == {a.key for a in worker_defs.ASSETS}
    assert len(pids) == len(worker_defs.ASSETS)
    assert os.getpid() not in pids
    tokens = pq.read_table(Path(worker_env["IWATCH_PARQUET_PATH"]) / "mp" / "tokens.parquet")
    assert tokens.column("token").to_pylist() == ["DAI", "ETH", "LINK", "USDC", "WBTC"]


def test_terminating_a_run_cancels_the_remote_job(server: Any, worker_env: dict[str, str]) -> None:
    before = len(server.requests_seen)
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.assets.worker_defs"],
        cwd=ROOT,
        env={**os.environ, **worker_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def started_job() -> str | None:
            for _, path in server.requests_seen[before:]:
                match = JOB_PATH.search(path)
                if match and server.job_status(match.group(1)) == 2:
                    return match.group(1)
            return None

        job_id = wait_for(started_job, timeout=60, what="the slow query's job to start")
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()

    assert wait_for(lambda: server.job_status(job_id) in (4, 5), what="the job to be cancelled")
    assert server.job_status(job_id) == 5, output
    assert ("DELETE", f"/api/jobs/{job_id}") in server.requests_seen[before:]
    assert "success" not in output.splitlines()
    # The step's error says what became of the remote job, not only that the run was interrupted.
    assert f"Query 11: job {job_id} was cancelled on the server" in output
    assert not (Path(worker_env["IWATCH_PARQUET_PATH"]) / "slow.parquet").exists()
