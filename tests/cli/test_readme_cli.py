"""The README's command-line examples run as written against a local server with the demo key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_iwatch.local import LocalServer
from example_project import LOCAL_API_KEY

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = README.read_text().split("## Command line\n", 1)[1].split("\n## ", 1)[0]
COMMANDS, TRANSCRIPT = re.findall(r"```(?:sh)?\n(.*?)```", SECTION, re.DOTALL)[-2:]
BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("demo"), user_api_key=LOCAL_API_KEY) as srv:
        yield srv


def _shell(command: str, server: LocalServer, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The examples say port 5055 (make serve); the test's server listens on a free port instead.
    env = {k: v for k, v in os.environ.items() if not k.startswith("IWATCH_")}
    env |= {"PATH": f"{BIN}{os.pathsep}{env['PATH']}"}
    script = command.replace("http://127.0.0.1:5055", server.url)
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_example_command_succeeds(demo_server: LocalServer, tmp_path: Path) -> None:
    lines = COMMANDS.strip().splitlines()
    assert lines[0].startswith("export IWATCH_URL=http://127.0.0.1:5055 IWATCH_API_KEY=")
    assert all(line.startswith("iwatch ") for line in lines[1:])
    done = _shell("set -e\n" + COMMANDS, demo_server, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "volume.parquet").stat().st_size > 0
    assert (tmp_path / "counts.csv").read_text().splitlines()[0] == '"token","n"'


def _same_run(text: str) -> str:
    return re.sub(r"job [0-9a-f-]{36} in \d+\.\ds", "job JOB in Ts", text)


def test_the_transcript_shows_what_the_commands_print(demo_server: LocalServer, tmp_path: Path) -> None:
    export = COMMANDS.strip().splitlines()[0]
    steps = [step.partition("\n") for step in re.split(r"^\$ ", TRANSCRIPT, flags=re.MULTILINE)[1:]]
    assert len(steps) >= 3
    previous_code = None
    for command, _, expected in steps:
        if command == "echo $?":
            assert f"{previous_code}\n" == expected
            continue
        done = _shell(f"{export}\n{command} 2>&1", demo_server, tmp_path)
        assert _same_run(done.stdout) == _same_run(expected), command
        previous_code = done.returncode


def test_the_tour_commands_run_as_written(demo_server: LocalServer, tmp_path: Path) -> None:
    tour = next(b for b in re.findall(r"```sh\n(.*?)```", README.read_text(), re.DOTALL) if "make serve &" in b)
    lines = [line.split("#")[0].strip() for line in tour.strip().splitlines()]
    # The test's own server stands in for `make serve`; the rest runs as written, the venv's programs on PATH.
    assert lines[0] == "make serve &"
    script = "\n".join(["set -e", *lines[1:]]).replace(".venv/bin/", "")
    done = _shell(script, demo_server, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "All transfers" in done.stdout
    assert (tmp_path / "january.parquet").stat().st_size > 0
