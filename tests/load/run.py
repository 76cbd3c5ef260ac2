"""Load check: concurrent executions through one shared IWatchClient against the local server with faults.

Run with ``make load`` or ``python -m tests.load.run [--executions N] [--concurrency C] [--deadline S]``.
The server runs in this process on a loopback port over a fresh data folder; a share of GET requests get
503, 429 with ``Retry-After`` or extra latency. Every result is checked against the data source itself
(SQLite, queried directly with bound parameters). The last line is::

    LOAD ok=<n>/<N> lost=<l> wrong=<w> dup=<d> eps=<x>

- lost: an execution that raised or returned no result;
- wrong: a result whose rows differ from the data source's for the parameters sent;
- dup: a result (or job) handed to executions with different parameters, or an execution answered twice.

The exit status is 0 only when every execution is ok and the run ended before its deadline.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.local import LocalServer

TOKENS = ("ETH", "USDC", "WBTC", "DAI", "LINK")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Case:
    """One execution: a saved query, its parameters, how to project the client's rows, and the expected SQL."""

    index: int
    query_id: int
    parameters: dict[str, Any]
    project: Callable[[Sequence[Any]], Rows]
    expected_sql: str
    expected_args: tuple[Any, ...]


@dataclass
class Outcome:
    """What one execution gave."""

    case: Case
    seconds: float
    rows: Rows | None = None
    result_id: int | None = None
    job_id: str | None = None
    error: str | None = None
    answers: int = 0
    notes: list[str] = field(default_factory=list)


def _cols(*names: str) -> Callable[[Sequence[Any]], Rows]:
    def project(rows: Sequence[Any]) -> Rows:
        return [tuple(r[n] for n in names) for r in rows]

    return project


def _cases(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            amount = round(50 + i * 3.7 + rng.random(), 3)
            cases.append(
                Case(i, 2, {"min_amount": amount}, _cols("id", "amount"),
                     "select id, amount from transfers where amount >= ? order by id", (amount,))
            )  # fmt: skip
        elif kind == 1:
            day = f"2024-{1 + i % 3:02d}-{1 + i % 28:02d}"
            cases.append(
                Case(i, 4, {"day": day}, _cols("token", "price"),
                     "select token, price from prices where day = ? order by token", (day,))
            )  # fmt: skip
        elif kind == 2:
            start = 1 + i % 20
            period = {"start": f"2024-02-{start:02d}", "end": f"2024-02-{start + rng.randrange(1, 8):02d}"}
            cases.append(
                Case(i, 5, {"period": period}, _cols("block_date", "token", "n"),
                     "select block_date, token, count(*) from transfers where block_date between ? and ?"
                     " group by block_date, token order by block_date, token", (period["start"], period["end"]))
            )  # fmt: skip
        elif kind == 3:
            token = TOKENS[i % len(TOKENS)]
            # Distinct SQL per execution would need distinct values; the enum has five, so these share jobs.
            cases.append(
                Case(i, 7, {"token": token}, _cols("id"),
                     "select id from transfers where token = ? order by id", (token,))
            )  # fmt: skip
        elif kind == 4:
            picked = sorted(rng.sample(TOKENS, rng.randrange(1, 4)))
            marks = ", ".join("?" for _ in picked)
            cases.append(
                Case(i, 8, {"tokens": picked}, _cols("token", "n"),
                     f"select token, count(*) from transfers where token in ({marks}) group by token order by token",
                     tuple(picked))
            )  # fmt: skip
        else:
            rows = 200 + i * 7
            cases.append(
                Case(i, 17, {"n": rows}, _cols("id"),
                     "with recursive seq(n) as (select 1 union all select n + 1 from seq where n < ?)"
                     " select n from seq", (rows,))
            )  # fmt: skip
    rng.shuffle(cases)
    return cases


def _expected(data_source: Path, case: Case) -> Rows:
    conn = sqlite3.connect(f"{data_source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(case.expected_sql, case.expected_args).fetchall()]
    finally:
        conn.close()


def _plan_faults(srv: LocalServer, seed: int) -> None:
    # GETs are retried by the client (polls, results); POSTs that start jobs are not, so they are left alone.
    srv.inject_fault(status=503, method="GET", path_prefix="/api/", times=None, share=0.05, seed=seed)
    srv.inject_fault(
        status=429, method="GET", path_prefix="/api/", times=None, share=0.03, retry_after=0, seed=seed + 1
    )
    srv.inject_fault(status=None, method=None, path_prefix="/api/", times=None, share=0.1, delay=0.02, seed=seed + 2)


def _fault_name(spec: dict[str, Any]) -> str:
    return "delay" if spec["status"] is None else str(spec["status"])


def _run_one(client: IWatchClient, case: Case) -> Outcome:
    started = time.perf_counter()
    outcome = Outcome(case, 0.0)
    try:
        result = client.execute(case.query_id, case.parameters, max_age=0, timeout=120)
    except Exception as exc:  # every failure is counted as lost, and named
        outcome.error = f"{type(exc).__name__}: {exc}"
    else:
        outcome.answers += 1
        outcome.rows = case.project(result.rows)
        outcome.result_id = result.id
        outcome.job_id = result.job_id
    outcome.seconds = time.perf_counter() - started
    return outcome


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    """Run the load check and print its summary; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds for the whole run")
    parser.add_argument("--workers", type=int, default=4, help="server threads running queries")
    parser.add_argument("--seed", type=int, default=20240101)
    args = parser.parse_args(argv)
    if not 1 <= args.executions <= 10_000 or not 1 <= args.concurrency <= 1000:
        parser.error("--executions must be in 1..10000 and --concurrency in 1..1000")
    cases = _cases(args.executions, args.seed)
    with tempfile.TemporaryDirectory(prefix="iwatch-load-") as tmp:
        data = Path(tmp) / "data"
        with LocalServer(data, workers=args.workers, record_requests=False) as srv:
            _plan_faults(srv, args.seed)
            client = IWatchClient(srv.url, api_key=srv.user_api_key, poll_interval=0.05, max_poll_interval=0.5)
            began = time.perf_counter()
            pool = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="load")
            try:
                futures = [pool.submit(_run_one, client, c) for c in cases]
                done, pending = wait(futures, timeout=args.deadline)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
            elapsed = time.perf_counter() - began
            client.close()
            outcomes = [f.result() for f in done]
            hits = {_fault_name(spec): n for spec, n in srv.faults_planned()}
            srv.clear_faults()
        print("faults injected: " + ", ".join(f"{name}={n}" for name, n in hits.items()))
        expected = {c.index: _expected(data / "datasource.sqlite", c) for c in cases}
    return _report(cases, outcomes, expected, elapsed, timed_out=bool(pending))


def _report(
    cases: list[Case], outcomes: list[Outcome], expected: dict[int, Rows], elapsed: float, *, timed_out: bool
) -> int:
    by_index: dict[int, list[Outcome]] = {}
    for o in outcomes:
        by_index.setdefault(o.case.index, []).append(o)
    lost = sum(1 for c in cases if not any(o.rows is not None for o in by_index.get(c.index, [])))
    wrong = sum(1 for o in outcomes if o.rows is not None and o.rows != expected[o.case.index])
    owners: dict[tuple[str, object], set[str]] = {}
    for o in outcomes:
        key = repr(sorted(o.case.parameters.items())) + f"@{o.case.query_id}"
        for ident in (("result", o.result_id), ("job", o.job_id)):
            if ident[1] is not None:
                owners.setdefault(ident, set()).add(key)
    dup = sum(1 for keys in owners.values() if len(keys) > 1)
    dup += sum(1 for group in by_index.values() if len(group) > 1 or sum(o.answers for o in group) > 1)
    ok = sum(1 for o in outcomes if o.rows is not None and o.rows == expected[o.case.index])
    for o in outcomes:
        if o.error:
            print(f"lost: execution {o.case.index} (query {o.case.query_id}): {o.error}")
        elif o.rows != expected[o.case.index]:
            print(f"wrong: execution {o.case.index} (query {o.case.query_id}, {o.case.parameters})")
    latencies = [o.seconds for o in outcomes]
    n = len(cases)
    eps = len(outcomes) / elapsed if elapsed > 0 else 0.0
    if latencies:
        print(
            f"executions={n} finished={len(outcomes)} elapsed={elapsed:.2f}s eps={eps:.1f}"
            f" p50={statistics.median(latencies) * 1000:.0f}ms p95={_percentile(latencies, 0.95) * 1000:.0f}ms"
        )
    if timed_out:
        print(f"deadline reached with {n - len(outcomes)} executions unfinished")
    print(f"LOAD ok={ok}/{n} lost={lost} wrong={wrong} dup={dup} eps={eps:.1f}")
    return 0 if ok == n and lost == wrong == dup == 0 and not timed_out else 1


if __name__ == "__main__":
    threading.current_thread().name = "load-main"
    sys.exit(main())
