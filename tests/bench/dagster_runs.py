"""Dagster runs as a deployment makes them, for the batch and backfill sections.

A run is one fresh process (the run worker a run launcher starts) that calls ``dg.execute_job`` on a
reconstructable job under the multiprocess executor (the default executor of ``dg.Definitions``), against a
persistent ``DagsterInstance`` on a temporary folder, so each step is a process spawned by Dagster. The job's
definitions read the server, its key and the output folder from environment variables, which the step processes
inherit: nothing secret goes into the run's configuration.
"""

# No ``from __future__ import annotations``: Dagster checks the step's ``context`` annotation as an object.

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from dagster_iwatch import IWatchParquetIOManager, IWatchResource

URL_VAR = "IWATCH_BENCH_URL"
KEY_VAR = "IWATCH_BENCH_KEY"
OUT_VAR = "IWATCH_BENCH_OUT"
JOB = "bench_job"


def prepare_instance(folder: Path) -> Path:
    """A Dagster instance folder (no telemetry), its storage created once so that runs only open it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dg.DagsterInstance.local_temp(str(folder)).dispose()
    return folder


def job_of(assets: Sequence[dg.AssetsDefinition]) -> dg.JobDefinition:
    """A job of every asset given, with the Inverse Watch resource and the Parquet IO manager from the environment."""
    defs = dg.Definitions(
        assets=list(assets),
        jobs=[dg.define_asset_job(JOB, selection=dg.AssetSelection.all())],
        resources={
            "iwatch": IWatchResource(base_url=dg.EnvVar(URL_VAR), api_key=dg.EnvVar(KEY_VAR)),
            "io_manager": IWatchParquetIOManager(base_path=os.environ[OUT_VAR]),
        },
    )
    return defs.resolve_job_def(JOB)


def execute(
    job_fn: Callable[[], dg.JobDefinition],
    url: str,
    key: str,
    instance_dir: str,
    out: Path,
    tags: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """One run of ``job_fn``'s job under the multiprocess executor; its wall time and how many steps it had.

    Raises:
        RuntimeError: The run failed.
    """
    os.environ.update({URL_VAR: url, KEY_VAR: key, OUT_VAR: str(out)})
    with dg.DagsterInstance.local_temp(instance_dir) as instance:
        start = time.perf_counter()
        result = dg.execute_job(dg.reconstructable(job_fn), instance=instance, tags=dict(tags or {}))
        wall = time.perf_counter() - start
        if not result.success:
            failed = [e.message for e in result.all_events if e.is_failure]
            raise RuntimeError(f"run {result.run_id} failed: {failed[:3]}")
        events = result.all_events
        steps = {e.step_key for e in events if e.event_type == dg.DagsterEventType.STEP_START}
        records = instance.all_logs(result.run_id)
    launched = _stamps(records, dg.DagsterEventType.STEP_WORKER_STARTING)
    done = _stamps(records, dg.DagsterEventType.STEP_SUCCESS)
    return {
        "wall": wall,
        "steps": float(len(steps)),
        # From the first step process launched to the last step done: what the steps cost, without the run's start.
        "steps_span": max(done.values()) - min(launched.values()),
    }


def _stamps(records: Sequence[dg.EventLogEntry], kind: dg.DagsterEventType) -> dict[str, float]:
    """When each step had an event of ``kind``, by step key."""
    return {
        r.step_key: r.timestamp
        for r in records
        if r.step_key is not None and r.dagster_event is not None and r.dagster_event.event_type == kind
    }


def parquet_rows(folder: Path) -> dict[str, int]:
    """Rows of every Parquet file under ``folder``, by path relative to it."""
    return {
        str(path.relative_to(folder)): pq.ParquetFile(path).metadata.num_rows
        for path in sorted(folder.rglob("*.parquet"))
    }
