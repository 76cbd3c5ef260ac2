"""The IO manager under the multiprocess executor: each step runs in its own process."""

import importlib
import os
from pathlib import Path

import dagster as dg
import pytest

from dagster_iwatch.io_manager import read_parquet


def test_steps_in_separate_processes_share_files(
    tmp_path: Path, base_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Step processes import the definitions by module name, from the working directory recorded here.
    here = Path(__file__).parent
    monkeypatch.chdir(here)
    monkeypatch.syspath_prepend(str(here))
    defs_module = importlib.import_module("iwatch_io_mp_defs")
    run_config = {"resources": {"io_manager": {"config": {"base_path": str(base_dir)}}}}

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        result = dg.execute_job(dg.reconstructable(defs_module.mp_job), instance=instance, run_config=run_config)
        assert result.success
        pids = {
            event.pid
            for event in result.all_events
            if event.event_type == dg.DagsterEventType.STEP_START and event.pid is not None
        }
        assert len(pids) == 2
        assert os.getpid() not in pids

    source = read_parquet(base_dir / "mp_source.parquet")
    assert source.schema.metadata == {b"iwatch.query_id": b"1"}
    frame = read_parquet(base_dir / "mp_frame.parquet")
    assert frame.column("n").to_pylist() == [2, 4, None]
    assert frame.column("kind").to_pylist() == ["Int64"] * 3
