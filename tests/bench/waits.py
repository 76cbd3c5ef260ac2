"""Job waits: how long after a job's end its result is in hand, and how many polls it took.

Each run starts a fresh local server (in the child, on a copy of a data folder seeded once) and runs the
seeded "Slow query" (id 11, ``select sleep({{ seconds }})``; its ``number`` parameter takes fractions) for a
job of the given length, then reads the result:

- ``ours``: ``IWatchClient.execute`` with its default poll schedule (:mod:`dagster_iwatch.poll`). The query
  has never run on the fresh server (a warm-up runs another query first, so that first-read imports do not
  count), so no runtime is known and the plain schedule applies (5 ms, doubling, then whole seconds).
- ``ours_known``: the same with the query's last runtime known (the job's length, as the queries list
  reports after a run), so the checks are dense around the expected finish.
- ``fixed``: a loop written with ``requests``: submit, then ``GET /api/jobs/<id>`` every second, then the result.

The job's end is the server's own record of it (``JobState.finished_at``, ``time.monotonic()`` in the same
process); the latency is from then to the parsed result in hand. Polls are the job-status requests the server
saw. For jobs of 1 s or more, the variants of a round run at the same time, each in a fresh process with its own
server (they mostly sleep; run one after the other they would cost the section about 3 more minutes); the 0.05 s
job's variants run one after the other, so that its millisecond latencies see no other run. Fields of the BENCH
line: ``wait_small_ms`` (ours, 0.05 s job), ``wait_10s_ms`` (ours, 10.5 s job),
``polls_10s_job`` (ours, 10.5 s job), medians.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from dagster_iwatch import IWatchClient
from dagster_iwatch.local import LocalServer
from tests.bench.runner import Section, interleaved, median, paired_ratio

SLOW_QUERY = 11
WARM_UP_QUERY = 13
"""A quick query run first by ours so that the first read's imports do not count; not the slow query, whose
runtime stays unknown."""
VARIANT_ORDER = ["ours", "ours_known", "fixed"]
TOGETHER_FROM = 1.0
"""Jobs this long or longer run a round's variants at the same time, each in its own process against its own
server: the runs mostly wait on the job, and the section would otherwise spend minutes sleeping."""


def _job_end(server: LocalServer, job_id: str) -> float:
    job = server._app.state.executor.get(job_id)  # the server's record: when the job ended, in this clock
    if job is None or job.finished_at is None:
        raise RuntimeError(f"job {job_id} has no end on the server")
    return job.finished_at


def _polls(server: LocalServer) -> int:
    return sum(1 for method, path in server.requests_seen if method == "GET" and "/jobs/" in path)


def _serve(template: str, folder: str) -> LocalServer:
    data = Path(folder, "data")
    shutil.copytree(template, data)
    return LocalServer(data).start()


def _ours(template: str, seconds: str, known: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="iwatch-bench-") as folder, _serve(template, folder) as server:
        client = IWatchClient(server.url, server.user_api_key)
        client.execute(WARM_UP_QUERY)  # first-read imports (Arrow, its compute functions, pandas) are not the wait
        query = client.get_query(SLOW_QUERY)
        if known:
            query = dataclasses.replace(query, runtime=float(seconds))
        server.clear_requests_seen()
        start = time.monotonic()
        result = client.execute(SLOW_QUERY, {"seconds": float(seconds)}, query=query)
        done = time.monotonic()
        if result.job_id is None or not result.rows:
            raise RuntimeError("the slow query returned no job or no row")
        end = _job_end(server, result.job_id)
        return {"wall": done - start, "latency": done - end, "polls": float(_polls(server))}


def _fixed(template: str, seconds: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="iwatch-bench-") as folder, _serve(template, folder) as server:
        session = requests.Session()
        session.headers["Authorization"] = f"Key {server.user_api_key}"
        session.get(f"{server.url}/api/queries/{SLOW_QUERY}", timeout=30).json()  # connection and imports warm
        server.clear_requests_seen()
        start = time.monotonic()
        answer = session.post(
            f"{server.url}/api/queries/{SLOW_QUERY}/results",
            json={"parameters": {"seconds": float(seconds)}, "max_age": 0},
            timeout=30,
        )
        answer.raise_for_status()
        job: dict[str, Any] = answer.json()["job"]
        job_id = job["id"]
        while job["status"] not in (3, 4, 5):
            time.sleep(1.0)
            job = session.get(f"{server.url}/api/jobs/{job_id}", timeout=30).json()["job"]
        assert job["status"] == 3, f"the slow query's job ended with status {job['status']}"
        rid = job["query_result_id"]
        rows = session.get(f"{server.url}/api/queries/{SLOW_QUERY}/results/{rid}.json", timeout=30).json()
        done = time.monotonic()
        assert rows["query_result"]["data"]["rows"], "the slow query returned no row"
        end = _job_end(server, job_id)
        return {"wall": done - start, "latency": done - end, "polls": float(_polls(server))}


def _ours_known(template: str, seconds: str) -> dict[str, float]:
    return _ours(template, seconds, known=True)


VARIANTS = {"ours": _ours, "ours_known": _ours_known, "fixed": _fixed}


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(f"{cell:>12}" for cell in cells) + " |"


HEADER = ("job s", "variant", "latency ms", "polls", "wall s", "fixed/this")


def run(lengths: list[float], rounds: int, long_rounds: int) -> Section:
    """The job-wait section: one row per job length and variant; jobs of 20 s or more get ``long_rounds``."""
    section = Section("Job waits: job's end -> result in hand, and polls (local server, loopback)")
    with tempfile.TemporaryDirectory(prefix="iwatch-bench-seed-") as folder:
        template = str(Path(folder, "data"))
        LocalServer(template).start().stop()  # seeds the data folder once; each run copies it
        runs = {
            seconds: interleaved(
                "waits",
                VARIANT_ORDER if seconds < 20 else [v for v in VARIANT_ORDER if v != "ours_known"],
                [template, str(seconds)],
                long_rounds if seconds >= 20 else rounds,
                progress=f"waits {seconds} s job ",
                together=seconds >= TOGETHER_FROM,
            )
            for seconds in lengths
        }
    section.lines += [
        "a fresh server and client process per run, variants interleaved; medians, and medians of per-round ratios;",
        f"jobs of {TOGETHER_FROM:g} s or more: a round's variants run at the same time (own processes and servers)",
        "ours: execute's default schedule, no runtime known; ours_known: the same, the last runtime known "
        "(jobs under 20 s only, for time); "
        "fixed: a requests loop polling every 1 s",
        _row(HEADER),
        "|" + "|".join("-" * 14 for _ in HEADER) + "|",
    ]
    for seconds, by_variant in runs.items():
        for variant, figures in by_variant.items():
            section.lines.append(
                _row(
                    (
                        f"{seconds:g} ({len(figures)}x)",
                        variant,
                        f"{1000 * median([r['latency'] for r in figures]):.0f}",
                        f"{median([r['polls'] for r in figures]):.0f}",
                        f"{median([r['wall'] for r in figures]):.2f}",
                        f"{paired_ratio(by_variant['fixed'], figures, 'latency'):.2f}x",
                    )
                )
            )
    section.lines.append("")
    small, ten = min(lengths), next((s for s in lengths if 10 <= s < 20), None)
    section.fields["wait_small_ms"] = f"{1000 * median([r['latency'] for r in runs[small]['ours']]):.0f}"
    if ten is not None:
        section.fields["wait_10s_ms"] = f"{1000 * median([r['latency'] for r in runs[ten]['ours']]):.0f}"
        section.fields["polls_10s_job"] = f"{median([r['polls'] for r in runs[ten]['ours']]):.0f}"
    return section
