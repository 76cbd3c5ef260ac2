"""The example project as a dg project: state refreshed with the server up, `dg check defs` with it down."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_iwatch.local import LocalServer
from dagster_iwatch.local.seed import SEED_QUERIES
from dagster_iwatch.state import read_snapshot
from example_project import LOCAL_API_KEY

ROOT = Path(__file__).resolve().parents[2]
DG = Path(sys.executable).parent / "dg"


def dg(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DG), *args], cwd=project, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_refresh_then_check_defs_without_the_server(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(
        ROOT / "example_project",
        project / "example_project",
        ignore=shutil.ignore_patterns("__pycache__", ".local_defs_state"),
    )
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IWATCH_")}
    env |= {
        "PYTHONPATH": str(project),
        "VIRTUAL_ENV": str(Path(sys.prefix)),
        "PATH": f"{DG.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(home),
        "IWATCH_PARQUET_PATH": str(tmp_path / "parquet"),
    }
    with LocalServer(tmp_path / "local", user_api_key=LOCAL_API_KEY, workers=1) as server:
        refreshed = dg(project, env | {"IWATCH_URL": server.url}, "utils", "refresh-defs-state")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    (state,) = (project / "example_project" / "defs" / ".local_defs_state").glob("*/state")
    assert len(read_snapshot(state).queries) == len(SEED_QUERIES)

    # The server is stopped and refresh_if_dev is false: the check reads the snapshot only.
    checked = dg(project, env, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
