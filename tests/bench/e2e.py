"""End to end over loopback HTTP: a large result from the local server to a Parquet file.

The local server runs in the section's process and answers every read of query 1's results with a generated
result of ``rows`` rows (the ``large`` fault, streamed; generated once before the rounds and then sent from
memory, so the server's pace is the socket's); each variant is a client in a fresh process:

- ``ours``: ``IWatchClient.execute_to_parquet(1, path)``: the rows go from the socket to row groups piece by
  piece (parsing overlaps the download; memory holds a few pieces).
- ``ours_table``: ``IWatchClient.execute(1).to_arrow()`` then ``pyarrow.parquet.write_table`` (the whole body,
  then the whole table, in memory).
- ``naive``: ``requests``: submit, poll the job, ``GET`` the result, ``.json()``, ``pd.DataFrame(rows)``,
  ``to_parquet`` (what a typical client user writes).
- ``drain``: lower bound: the same result read from the socket and thrown away (the server's own pace).

Client time counts from the moment the client sees the job finished to the Parquet file written; peak memory is
the client's, above its resident memory after warming up (imports, and a run of a 20,000-row result of the same
shape, so that the code and libraries the run needs are loaded before the baseline). Both clients write with the
defaults of their library. Fields of the BENCH line: ``e2e_client_speedup`` = naive / ours client time (median of
per-round ratios); ``e2e_rss_over_body`` = ours peak memory / body size.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import requests

from dagster_iwatch import IWatchClient
from dagster_iwatch.local import LocalServer
from dagster_iwatch.run_handler import RunProgress
from tests.bench.runner import Section, current_rss_mb, interleaved, median, paired_ratio, peak_rss_mb, reset_peak

QUERY = 1
WARM_UP_QUERY = 15
WARM_UP_ROWS = 20_000
VARIANT_ORDER = ["naive", "ours", "ours_table", "drain"]


def _figures(seen_done: float, baseline_mb: float, path: Path) -> dict[str, float]:
    return {
        "wall": time.perf_counter() - seen_done,
        "peak_mb": peak_rss_mb() - baseline_mb,
        "rows": float(pq.ParquetFile(path).metadata.num_rows),
    }


def _ours(url: str, key: str, folder: str, streamed: bool = True) -> dict[str, float]:
    client = IWatchClient(url, key)
    warm_up = Path(folder, f"warm-{os.getpid()}.parquet")
    client.execute_to_parquet(WARM_UP_QUERY, warm_up)
    pq.write_table(client.execute(WARM_UP_QUERY).to_arrow(), warm_up)
    warm_up.unlink()
    query = client.get_query(QUERY)
    seen: list[float] = []

    def progress(update: RunProgress) -> None:
        if update.stage == "waiting" and update.job_status is not None and int(update.job_status) == 3 and not seen:
            seen.append(time.perf_counter())

    path = Path(folder, f"ours-{os.getpid()}.parquet")
    baseline = current_rss_mb()
    reset_peak()
    cpu = time.process_time()
    if streamed:
        client.execute_to_parquet(QUERY, path, query=query, progress=progress)
    else:
        pq.write_table(client.execute(QUERY, query=query, progress=progress).to_arrow(), path)
    figures = _figures(seen[0], baseline, path)
    path.unlink()
    return figures | {"cpu": time.process_time() - cpu}


def _ours_table(url: str, key: str, folder: str) -> dict[str, float]:
    return _ours(url, key, folder, streamed=False)


def _run_job(session: requests.Session, url: str, query_id: int) -> int:
    """Submit a run and poll its job every 50 ms; the result's id."""
    job: dict[str, Any] = session.post(
        f"{url}/api/queries/{query_id}/results", json={"parameters": {}, "max_age": 0}, timeout=60
    ).json()["job"]
    while job["status"] not in (3, 4, 5):
        time.sleep(0.05)
        job = session.get(f"{url}/api/jobs/{job['id']}", timeout=60).json()["job"]
    if job["status"] != 3:
        raise RuntimeError(f"query {query_id}'s job ended with status {job['status']}")
    return int(job["query_result_id"])


def _naive(url: str, key: str, folder: str) -> dict[str, float]:
    session = requests.Session()
    session.headers["Authorization"] = f"Key {key}"
    rid = _run_job(session, url, WARM_UP_QUERY)
    warm = session.get(f"{url}/api/queries/{WARM_UP_QUERY}/results/{rid}.json", timeout=60).json()
    pd.DataFrame(warm["query_result"]["data"]["rows"]).to_parquet(io.BytesIO())
    baseline = current_rss_mb()
    reset_peak()
    cpu = time.process_time()
    rid = _run_job(session, url, QUERY)
    seen_done = time.perf_counter()
    body = session.get(f"{url}/api/queries/{QUERY}/results/{rid}.json", timeout=600).json()
    frame = pd.DataFrame(body["query_result"]["data"]["rows"])
    path = Path(folder, f"naive-{os.getpid()}.parquet")
    frame.to_parquet(path)
    figures = _figures(seen_done, baseline, path)
    path.unlink()
    return figures | {"cpu": time.process_time() - cpu}


def _drain(url: str, key: str, folder: str) -> dict[str, float]:
    session = requests.Session()
    session.headers["Authorization"] = f"Key {key}"
    rid = _run_job(session, url, QUERY)
    start, cpu, size = time.perf_counter(), time.process_time(), 0
    with session.get(f"{url}/api/queries/{QUERY}/results/{rid}.json", stream=True, timeout=600) as answer:
        for chunk in answer.iter_content(1 << 16):
            size += len(chunk)
    return {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "peak_mb": 0.0, "body": size}


VARIANTS = {"ours": _ours, "ours_table": _ours_table, "naive": _naive, "drain": _drain}

HEADER = ("variant", "client s", "cpu s", "peak MB", "peak/body", "naive/this")


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(f"{cell:<9}" if i == 0 else f"{cell:>10}" for i, cell in enumerate(cells)) + " |"


def run(rows: int, rounds: int) -> Section:
    """The end-to-end section for one result size."""
    section = Section(f"End to end over loopback HTTP: {rows:,} rows from the local server to Parquet")
    with (
        tempfile.TemporaryDirectory(prefix="iwatch-bench-") as folder,
        LocalServer(Path(folder, "data")) as server,
    ):
        server.inject_fault(
            kind="large", rows=rows, method="GET", path_prefix=f"/api/queries/{QUERY}/results/", times=None
        )
        # The warm-up reads a small result of the same shape: code paths and libraries loaded before the baseline.
        server.inject_fault(
            kind="large",
            rows=WARM_UP_ROWS,
            method="GET",
            path_prefix=f"/api/queries/{WARM_UP_QUERY}/results/",
            times=None,
        )
        _drain(server.url, server.user_api_key, folder)  # the server generates the body once, then keeps it
        runs = interleaved("e2e", VARIANT_ORDER, [server.url, server.user_api_key, folder], rounds, progress="e2e ")
    body_mb = median([r["body"] for r in runs["drain"]]) / 1e6
    written = {variant: {r["rows"] for r in runs[variant]} for variant in ("ours", "ours_table", "naive")}
    section.lines += [
        f"{body_mb:.1f} MB of JSON per read; {rounds} interleaved rounds, a fresh client process per run; medians, "
        f"and medians of per-round ratios; rows written: {written}; drain = reading the body only (server's pace)",
        _row(HEADER),
        "|" + "|".join("-" * (11 if i == 0 else 12) for i in range(len(HEADER))) + "|",
    ]
    for variant in VARIANT_ORDER:
        figures = runs[variant]
        peak = median([r["peak_mb"] for r in figures])
        section.lines.append(
            _row(
                (
                    variant,
                    f"{median([r['wall'] for r in figures]):.2f}",
                    f"{median([r['cpu'] for r in figures]):.2f}",
                    f"{peak:.0f}" if variant != "drain" else "-",
                    f"{peak / body_mb:.2f}" if variant != "drain" else "-",
                    f"{paired_ratio(runs['naive'], figures, 'wall'):.2f}x",
                )
            )
        )
    beyond = {
        variant: [r["wall"] - d["wall"] for r, d in zip(runs[variant], runs["drain"], strict=True)]
        for variant in ("naive", "ours", "ours_table")
    }
    section.lines.append(
        "client time beyond the server's pace (client s - drain s, paired by round): "
        + ", ".join(f"{variant} {median(values):.2f} s" for variant, values in beyond.items())
        + f"; naive/ours {median([n / o for n, o in zip(beyond['naive'], beyond['ours'], strict=True)]):.2f}x"
    )
    section.lines.append("")
    section.fields = {
        "e2e_client_speedup": f"{paired_ratio(runs['naive'], runs['ours'], 'wall'):.2f}",
        "e2e_rss_over_body": f"{median([r['peak_mb'] for r in runs['ours']]) / body_mb:.2f}",
    }
    return section
