from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_with_a_schedule_for_the_daily_asset() -> None:
    from example_project.definitions import daily_volume, defs

    dg.Definitions.validate_loadable(defs)
    schedule = defs.resolve_schedule_def("daily_volume_job_schedule")
    assert schedule.job_name == "daily_volume_job"
    assert daily_volume.partitions_def is not None


def test_main_job_writes_parquet_files_and_says_where(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IWATCH_")}
    env |= {
        "IWATCH_LOCAL_DATA": str(tmp_path / "local"),
        "IWATCH_PARQUET_PATH": str(tmp_path / "parquet"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "example_project.run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    listed = re.findall(
        r"^  (\S+?)(?: \[(\S+)\])?: (\S+\.parquet) \((\d+) rows(?:, cached result)?\)$", run.stdout, re.MULTILINE
    )
    assert {key for key, *_ in listed} == {
        "onchain/transfers",
        "onchain/prices",
        "onchain/daily_volume",
        "onchain/chain_overview",
    }
    assert sorted(p for key, p, *_ in listed if key == "onchain/daily_volume") == [
        "2024-03-29",
        "2024-03-30",
        "2024-03-31",
    ]
    for _, _, path, rows in listed:
        assert Path(path).is_relative_to(tmp_path / "parquet")
        assert pq.read_metadata(path).num_rows == int(rows) > 0
