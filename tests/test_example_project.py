from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from example_project import LOCAL_API_KEY, LOCAL_URL

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_without_deprecations_with_owners_and_partitioned_schedules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Set, so that importing the definitions does not point this process at the demo server.
    monkeypatch.setenv("IWATCH_URL", LOCAL_URL)
    monkeypatch.setenv("IWATCH_API_KEY", LOCAL_API_KEY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from example_project import definitions

        dg.Definitions.validate_loadable(definitions.defs)
    defs = definitions.defs
    for name, partitions in [
        ("daily_volume_job", definitions.daily),
        ("token_day_volume_job", definitions.daily_by_token),
    ]:
        assert defs.resolve_job_def(name).partitions_def == partitions
        schedule = defs.resolve_schedule_def(f"{name}_schedule")
        assert (schedule.job_name, schedule.cron_schedule) == (name, "0 0 * * *")
    assert definitions.token_transfers.partitions_def == dg.StaticPartitionsDefinition(definitions.TOKENS)
    assert isinstance(definitions.token_day_volume.partitions_def, dg.MultiPartitionsDefinition)
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    # The hand-written assets and the single-query component (the workspace component adds more once refreshed).
    assert len(keys) == 8
    for key in keys:
        assert graph.get(key).owners == ["team:onchain-data"], key


def test_main_job_says_what_it_runs_and_lists_every_file(tmp_path: Path) -> None:
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

    planned = re.search(r"^Materializing in (\d+) runs: (.*), then (.*)$", run.stdout, re.MULTILINE)
    assert planned is not None, run.stdout
    assert planned.group(2) == (
        "daily_volume [2024-03-30, 2024-03-31], token_transfers [ETH], token_day_volume [2024-03-31|ETH]"
    )
    rest = planned.group(3).split(", ")
    assert int(planned.group(1)) == 4 + 1

    count = re.search(r"^Parquet files \((\d+)\):$", run.stdout, re.MULTILINE)
    assert count is not None
    listed = re.findall(
        r"^  onchain/(\S+?)(?: \[(\S+)\])?: (\S+\.parquet) \((\d+) rows?(?:, cached result)?\)$",
        run.stdout,
        re.MULTILINE,
    )
    assert len(listed) == int(count.group(1))
    assert [(name, partition) for name, partition, *_ in listed] == [
        ("daily_volume", "2024-03-30"),
        ("daily_volume", "2024-03-31"),
        ("token_transfers", "ETH"),
        ("token_day_volume", "2024-03-31|ETH"),
        ("prices", ""),
        ("transfers", ""),
        ("chain_overview", ""),
    ]
    without_file = re.search(r"^Materialized without a file \(.*\): (.*)$", run.stdout, re.MULTILINE)
    assert without_file is not None
    # Every asset the message announced is accounted for: a file, or named as having none.
    assert sorted(rest) == sorted([n for n, p, *_ in listed if not p] + [without_file.group(1).split("/")[-1]])
    for _, _, path, rows in listed:
        assert Path(path).is_relative_to(tmp_path / "parquet")
        assert pq.read_metadata(path).num_rows == int(rows) > 0
    tokens = pq.read_table(next(p for n, _, p, _ in listed if n == "token_day_volume")).to_pydict()
    assert (tokens["token"], [str(d) for d in tokens["block_date"]]) == (["ETH"], ["2024-03-31"])


def test_make_run_installs_the_package_alone_and_make_test_the_dev_extra(tmp_path: Path) -> None:
    def planned(target: str) -> list[str]:
        dry = subprocess.run(
            ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return [line for line in dry.stdout.splitlines() if " pip install " in line and "/uv " in line]

    assert [line.split()[-1] for line in planned("run")] == ["."]
    assert [line.split()[-1] for line in planned("dev")] == ["'.[webserver]'"]
    assert [line.split()[-1] for line in planned("test")] == ["'.[dev]'"]
