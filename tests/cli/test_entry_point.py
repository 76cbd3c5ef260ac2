"""The installed `iwatch` program as a user runs it: a subprocess, the key on standard input, data on stdout."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dagster_iwatch.local import LocalServer
from dagster_iwatch.version import __version__

IWATCH = str(Path(sys.executable).with_name("iwatch"))


def _env(server: LocalServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IWATCH_")}
    return env | {"IWATCH_URL": server.url}


def test_version_from_the_installed_program() -> None:
    done = subprocess.run([IWATCH, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, f"iwatch {__version__}\n")


def test_csv_to_stdout_with_the_key_on_stdin(server: LocalServer) -> None:
    done = subprocess.run(
        [IWATCH, "run", "4", "-p", "day=2024-03-01", "-o", "-", "--api-key-file", "-"],
        input=server.user_api_key + "\n",
        env=_env(server),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header == '"day","token","price"'
    assert len(rows) == 5
    assert all(row.startswith("2024-03-01,") for row in rows)
    assert server.user_api_key not in done.stdout + done.stderr


def test_a_reader_that_stops_early_ends_the_run_quietly(server: LocalServer) -> None:
    with subprocess.Popen(
        [IWATCH, "run", "17", "-p", "n=50000", "-o", "-", "--api-key-file", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(server),
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdin.write(server.user_api_key.encode() + b"\n")
        process.stdin.close()
        first = process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert first.startswith(b'"id","amount"')
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "Error" not in stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_cancels_its_job_and_exits_130(server: LocalServer, signum: int) -> None:
    with subprocess.Popen(
        [IWATCH, "run", "11", "-p", "seconds=60", "--progress", "--api-key-file", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(server),
    ) as process:
        assert process.stdin is not None
        assert process.stderr is not None
        process.stdin.write(server.user_api_key.encode() + b"\n")
        process.stdin.close()
        seen = b""
        deadline = time.monotonic() + 30
        job = None
        while job is None and time.monotonic() < deadline:
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, seen
            seen += chunk
            job = re.search(rb"job (\S+) started", seen)
        assert job is not None, seen
        process.send_signal(signum)
        stderr = (seen + process.stderr.read()).decode()
        code = process.wait(timeout=30)
    assert code == 130, stderr
    job_id = job.group(1).decode()
    assert stderr.rstrip().endswith(f"Error: interrupted; the server was asked to cancel job {job_id}")
    assert server.wait_for_job(job_id, (5,)) == 5
