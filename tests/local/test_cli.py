"""`iwatch local serve` as a subprocess: prints its URL and keys, answers, stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from dagster_iwatch.cli import main
from dagster_iwatch.local.seed import SEED_QUERIES


def test_help_lists_local_serve() -> None:
    result = CliRunner().invoke(main, ["local", "serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--data", "--flavor", "--api-key"):
        assert option in result.output


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["local", "serve", "--port", str(port), "--data", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
    assert result.exception is not None
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("option", [["--port", "70000"], ["--port", "-1"], ["--workers", "0"]])
def test_out_of_range_options_are_usage_errors(tmp_path: Path, option: list[str]) -> None:
    result = CliRunner().invoke(main, ["local", "serve", "--data", str(tmp_path / "d"), *option])
    assert result.exit_code == 2
    assert f"Invalid value for '{option[0]}'" in result.output
    assert not (tmp_path / "d").exists()


def test_serve_subprocess(tmp_path: Path) -> None:
    data = tmp_path / "local"
    cmd = [
        sys.executable,
        "-c",
        "from dagster_iwatch.cli import main; main()",
        "local",
        "serve",
        "--port",
        "0",
        "--data",
        str(data),
        "--flavor",
        "redash",
        "--api-key",
        "cli-test-key",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        url = re.search(r"at (http://127\.0\.0\.1:\d+)", text)
        assert url, text
        keys = re.search(r"API keys \(user, then each query's\): (.+)$", text, flags=re.MULTILINE)
        assert keys, text
        key_file = Path(keys.group(1))
        assert key_file.stat().st_mode & 0o777 == 0o600
        written = key_file.read_text()
        assert written.startswith("user cli-test-key\n")
        key_lines = re.findall(r"^query (\d+) ([0-9a-f]{40}) (.+)$", written, flags=re.MULTILINE)
        assert "cli-test-key" not in text
        assert not any(key in text for _, key, _ in key_lines)
        assert [int(k[0]) for k in key_lines] == list(range(1, len(SEED_QUERIES) + 1))
        assert key_lines[0][2] == "All transfers"
        base = url.group(1)
        r = requests.get(f"{base}/api/dashboards/1", headers={"Authorization": "Key cli-test-key"}, timeout=5)
        assert r.json()["slug"] == "chain-overview"
        r = requests.get(f"{base}/api/queries/1", params={"api_key": key_lines[0][1]}, timeout=5)
        assert r.json()["name"] == "All transfers"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Stopped." in out
    assert (data / "metadata.sqlite").exists()
    assert '"GET /api/dashboards/1" 200 ' in err
    assert '"GET /api/queries/1?api_key=***" 200 ' in err
    assert key_lines[0][1] not in err
    assert "cli-test-key" not in err


def test_serve_quiet_has_no_access_log(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "from dagster_iwatch.cli import main; main()", "local", "serve", "--quiet"]
    cmd += ["--port", "0", "--data", str(tmp_path / "d"), "--api-key", "k", "--fault", '{"status": 418, "times": 1}']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = ""
        for line in proc.stdout:
            found = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
            base = found.group(1) if found else base
            if line.startswith("Press Ctrl-C"):
                break
        assert requests.get(f"{base}/api/jobs/x", headers={"Authorization": "Key k"}, timeout=5).status_code == 418
        assert requests.get(f"{base}/api/jobs/x", headers={"Authorization": "Key k"}, timeout=5).status_code == 500
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "GET /api/jobs/x" not in err


def test_bad_fault_option_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["local", "serve", "--data", str(tmp_path / "d"), "--fault", "{nope"])
    assert result.exit_code == 2
    assert "Invalid value for --fault: not JSON" in result.output
    result = CliRunner().invoke(main, ["local", "serve", "--data", str(tmp_path / "d"), "--fault", '{"kind": "x"}'])
    assert result.exit_code == 1
    assert "fault kind must be one of" in result.output


def test_local_server_imports_neither_client_nor_dagster() -> None:
    code = (
        "import sys, dagster_iwatch.local;"
        "bad = [m for m in ('dagster', 'dagster_iwatch.client', 'requests', 'pandas', 'pyarrow') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"
