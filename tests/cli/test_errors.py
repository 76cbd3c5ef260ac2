"""Failures of the CLI: one line on stderr, a distinct exit code, nothing sent when the input is bad, no key shown."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from dagster_iwatch._cli_connection import ExitCode
from dagster_iwatch.local import LocalServer
from tests.cli.conftest import Cli


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "4", "-p", "day=2024-13-01"], "'day': cannot parse '2024-13-01'; expected a date YYYY-MM-DD"),
        (["run", "4", "-p", "dya=2024-01-01"], "'dya': unknown parameter, value '2024-01-01'; expected one of query 4"),
        (["run", "4", "-p", "day"], "expected name=value"),
        (["run", "4", "-p", "day=2024-01-01", "-p", "day=2024-01-02"], "given twice"),
        (["run", "5", "-p", "period=2024-01-01"], "not a range: '2024-01-01'; expected START..END, each a date"),
        (["run", "5", "-p", "period=2024-02-01..2024-01-01"], "start is after end"),
        (["run", "7", "-p", "token=DOGE"], "value not allowed: 'DOGE'; expected one of ETH"),
        (["run", "8", "-p", "tokens=ETH,DOGE"], "expected one or more of ETH"),
        (["run", "2", "-p", "min_amount=lots"], "not a number: 'lots'; expected a number"),
        (["run", "6", "-p", "since=2024-03-01 12:00:30"], "more precise than the format allows"),
    ],
)
def test_bad_parameters_are_usage_errors_and_nothing_runs(
    cli: Cli, posts: Callable[[], list[str]], args: list[str], says: str
) -> None:
    result = cli(*args)
    assert result.exit_code == ExitCode.USAGE == 2
    assert says in _one_error_line(result.stderr)
    assert result.stdout == ""
    assert posts() == []


def test_a_wrong_key_is_an_auth_error_that_never_shows_the_key(cli: Cli, tmp_path: Path) -> None:
    wrong = "f" * 40
    result = cli("run", "1", key=wrong)
    assert result.exit_code == ExitCode.AUTH == 3
    line = _one_error_line(result.stderr)
    assert "the server rejected the API key" in line
    assert line.endswith("(key from IWATCH_API_KEY)")

    key_file = tmp_path / "key"
    key_file.write_text(wrong + "\n")
    listed = cli("queries", "list", "--api-key-file", str(key_file), env={"IWATCH_API_KEY": None})
    assert listed.exit_code == ExitCode.AUTH
    assert f"(key from {key_file})" in listed.stderr
    assert wrong not in listed.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "9999"], "query 9999 does not exist or is not visible to this key"),
        (["queries", "show", "9999"], "query 9999 does not exist or is not visible to this key"),
        (["dashboards", "show", "no-such-board"], "dashboard no-such-board does not exist"),
    ],
)
def test_unknown_objects_exit_not_found(cli: Cli, args: list[str], says: str) -> None:
    result = cli(*args)
    assert result.exit_code == ExitCode.NOT_FOUND == 4
    assert says in _one_error_line(result.stderr)


def test_a_failing_query_exits_query_failed_and_leaves_the_old_file(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    target.write_bytes(b"previous")
    result = cli("run", "10", "-o", str(target))
    assert result.exit_code == ExitCode.QUERY_FAILED == 5
    assert re.search(r"Query 10 failed \(job \S+\): near \"selec\": syntax error", _one_error_line(result.stderr))
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_a_timeout_cancels_the_job_and_exits_timeout(cli: Cli, server: LocalServer) -> None:
    result = cli("run", "11", "-p", "seconds=30", "--timeout", "0.5")
    assert result.exit_code == ExitCode.TIMEOUT == 6
    line = _one_error_line(result.stderr)
    assert "the server confirmed its cancel (deadline 0.5s)" in line
    job = re.search(r"job (\S+) did not finish", line)
    assert job is not None
    assert server.job_status(job.group(1)) == 5


def test_an_unreachable_server_exits_unreachable(cli: Cli) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("queries", "list", "--url", f"http://127.0.0.1:{port}")
    assert result.exit_code == ExitCode.UNREACHABLE == 7
    assert f"127.0.0.1:{port}" in _one_error_line(result.stderr)


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["queries", "list"], {"IWATCH_URL": None}, "no server given: set IWATCH_URL or pass --url URL"),
        (["queries", "list"], {"IWATCH_API_KEY": None}, "no API key in IWATCH_API_KEY: set IWATCH_API_KEY, or pass"),
        (["queries", "list", "--url", "127.0.0.1:5255"], {}, "base_url must be an http:// or https:// URL"),
        (["queries", "list", "--api-key-file", "/no/such/key"], {}, "cannot read the API key file /no/such/key"),
        (["run", "1", "-o", "out.txt"], {}, "cannot tell the format of out.txt: end the name in .parquet or .csv"),
        (["run", "1", "-o", "/no/such/dir/out.csv"], {}, "the folder /no/such/dir does not exist"),
    ],
)
def test_configuration_errors_are_usage_errors_before_any_request(
    cli: Cli, server: LocalServer, args: list[str], env: dict[str, str | None], says: str
) -> None:
    result = cli(*args, env=env)
    assert result.exit_code == ExitCode.USAGE
    assert says in _one_error_line(result.stderr)
    assert server.requests_seen == []


def test_a_key_on_the_command_line_is_refused_without_echoing_it(cli: Cli, server: LocalServer) -> None:
    secret = "0123456789abcdef0123456789abcdef01234567"
    result = cli("run", "1", "--api-key", secret)
    assert result.exit_code == ExitCode.USAGE
    assert "visible to every user of the machine in the process list" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert server.requests_seen == []


def test_the_key_can_come_from_standard_input_or_be_a_query_key(cli: Cli, server: LocalServer) -> None:
    from_stdin = cli("queries", "list", "--api-key-file", "-", env={"IWATCH_API_KEY": None}, stdin=cli.key + "\n")
    assert from_stdin.exit_code == 0, from_stdin.stderr
    assert "All transfers" in from_stdin.stdout

    query_key = server.query_api_key(4)
    own = cli("run", "4", "-p", "day=2024-01-02", key=query_key)
    assert own.exit_code == 0, own.stderr
    other = cli("run", "1", key=query_key)
    assert other.exit_code == ExitCode.AUTH
