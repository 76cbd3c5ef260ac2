"""Ingest: a Redash JSON result body to a Parquet file, dagster-iwatch against naive pandas and pyarrow.json.

Variants (each in a fresh process, the body file read into memory before the timer unless said):

- ``naive``: ``json.loads`` -> ``pd.DataFrame(rows)`` -> ``pd.to_datetime`` on time columns -> ``to_parquet``
  (what a typical client user writes).
- ``ours_memory``: :func:`dagster_iwatch.ingest.read_result_body` -> ``pq.write_table`` (zstd).
- ``ours_stream``: :func:`dagster_iwatch.ingest.write_result_parquet` over 64 KiB chunks of the body in
  memory, row groups written as pieces complete (the path of a materialization with our IO manager), with
  ``refetch`` (no spool file: a restart would take the body again).
- ``ours_stream_file``: the same reading the chunks from the file, so the body is never whole in memory
  (as when it comes from the network), with the default spool file.
- ``pyarrow_json``: ``pyarrow.json.read_json`` on the whole body (one JSON object, so one block) with an
  explicit schema, rows flattened, dates and datetimes cast, ``pq.write_table`` (zstd): the same table.
- ``parse_msgspec``: lower bound of a Python parse: ``msgspec.json.decode(body)`` only.
- ``parse_ndjson``: lower bound of our parse: ``pyarrow.json`` on the rows as newline-delimited JSON
  prepared beforehand, with our explicit schema, on all cores.
- ``write_only``: lower bound of the write: ``pq.write_table`` (zstd) of the finished table.

Fields of the BENCH line (1M rows, medians of per-round ratios): ``ingest_speedup`` = naive wall /
ours_stream wall; ``ingest_vs_pyarrow_json`` = pyarrow_json wall / ours_stream wall;
``ingest_rss_over_body`` = ours_stream peak memory above the post-import baseline (body included) / body size.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

from dagster_iwatch.arrow import result_to_arrow
from dagster_iwatch.ingest import read_result_body, write_result_parquet
from dagster_iwatch.piece_reader import fast_type
from dagster_iwatch.types import Column, QueryResult
from tests.bench.runner import Section, current_rss_mb, interleaved, median, paired_ratio, timed

COLUMNS: list[tuple[str, str | None]] = [
    ("id", "integer"),
    ("block_number", "integer"),
    ("amount", "float"),
    ("amount_usd", "float"),
    ("is_contract", "boolean"),
    ("token", "string"),
    ("from_address", "string"),
    ("note", None),
    ("block_time", "datetime"),
    ("block_date", "date"),
]
NULL_RATE = 0.018
CHUNK = 1 << 16
VARIANT_ORDER = [
    "naive",
    "ours_memory",
    "ours_stream",
    "ours_stream_file",
    "pyarrow_json",
    "parse_msgspec",
    "parse_ndjson",
    "write_only",
]


def make_rows(rows: int, seed: int = 7) -> list[dict[str, Any]]:
    """Deterministic rows of the baseline's shape: 10 columns of six kinds, 1.8 % nulls."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    tokens = ["ETH", "USDC", "WBTC", "DAI", "LINK"]
    data_rows: list[dict[str, Any]] = []
    for n in range(rows):
        moment = start + timedelta(seconds=n * 7)
        row: dict[str, Any] = {
            "id": n + 1,
            "block_number": 19_000_000 + n,
            "amount": rng.random() * 1000,
            "amount_usd": round(rng.random() * 5000, 2),
            "is_contract": rng.random() < 0.3,
            "token": tokens[n % 5],
            "from_address": f"0x{rng.getrandbits(160):040x}",
            "note": f"note #{n}" if n % 7 == 0 else None,
            "block_time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "block_date": moment.strftime("%Y-%m-%d"),
        }
        for name, _ in COLUMNS[1:]:
            if rng.random() < NULL_RATE:
                row[name] = None
        data_rows.append(row)
    return data_rows


def write_inputs(rows: int, folder: Path) -> Path:
    """The body (Redash's key order and separators), the rows as NDJSON and the finished Parquet file."""
    data_rows = make_rows(rows)
    body_path = folder / "body.json"
    columns = [{"name": n, "friendly_name": n, "type": t} for n, t in COLUMNS]
    with body_path.open("w") as out:
        out.write('{"query_result": {"id": 1, "query_hash": "bench", "query": "select ...", "data": {"columns": ')
        out.write(json.dumps(columns) + ', "rows": [')
        out.write(", ".join(json.dumps(row) for row in data_rows))
        out.write(']}, "data_source_id": 1, "runtime": 1.0, "retrieved_at": "2024-04-01T00:00:00Z"}}')
    with (folder / "rows.ndjson").open("w") as out:
        out.write("\n".join(json.dumps(row) for row in data_rows))
    del data_rows
    _, table = read_result_body(body_path.read_bytes())
    pq.write_table(table, folder / "table.parquet", compression="zstd")
    return body_path


def _warm_up() -> float:
    """Pay the one-off costs (imports, pyarrow's lazy pandas import) before the baseline is taken."""
    pa.array([1])
    pd.DataFrame({"a": [1]}).to_parquet(io.BytesIO())
    return current_rss_mb()


def _body(folder: str) -> tuple[bytes, float]:
    baseline = _warm_up()
    return Path(folder, "body.json").read_bytes(), baseline


def _naive(folder: str) -> dict[str, float]:
    body, baseline = _body(folder)

    def work() -> None:
        data = json.loads(body)["query_result"]["data"]
        frame = pd.DataFrame(data["rows"], columns=[c["name"] for c in data["columns"]])
        for column in data["columns"]:
            if column["type"] in ("datetime", "date"):
                frame[column["name"]] = pd.to_datetime(frame[column["name"]], utc=True)
        frame.to_parquet(Path(folder, "naive.parquet"))

    return timed(work, baseline)


def _ours_memory(folder: str) -> dict[str, float]:
    body, baseline = _body(folder)

    def work() -> None:
        _, table = read_result_body(body)
        pq.write_table(table, Path(folder, "ours_memory.parquet"), compression="zstd")

    return timed(work, baseline)


def _ours_stream(folder: str) -> dict[str, float]:
    body, baseline = _body(folder)
    view = memoryview(body)

    def chunks() -> Iterator[memoryview]:
        return (view[start : start + CHUNK] for start in range(0, len(view), CHUNK))

    def work() -> None:
        with Path(folder, "ours_stream.parquet").open("wb") as sink:
            write_result_parquet(chunks(), sink, refetch=chunks)

    return timed(work, baseline)


def _ours_stream_file(folder: str) -> dict[str, float]:
    baseline = _warm_up()

    def work() -> None:
        with (
            Path(folder, "body.json").open("rb") as source,
            Path(folder, "ours_stream_file.parquet").open("wb") as sink,
        ):
            write_result_parquet(iter(lambda: source.read(CHUNK), b""), sink)

    return timed(work, baseline)


def _pyarrow_json(folder: str) -> dict[str, float]:
    body, baseline = _body(folder)
    columns = [Column(n, n, t) for n, t in COLUMNS]
    row_type = pa.struct([pa.field(c.name, fast_type(c)) for c in columns])
    schema = pa.schema([("query_result", pa.struct([("data", pa.struct([("rows", pa.list_(row_type))]))]))])

    def work() -> None:
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        read = pj.read_json(
            pa.BufferReader(body), read_options=pj.ReadOptions(block_size=len(body) + 1), parse_options=options
        )
        rows = read.column("query_result").combine_chunks().field("data").field("rows").flatten()
        arrays = [rows.field(c.name) for c in columns]
        arrays[8] = arrays[8].cast(pa.timestamp("us", tz="UTC"))
        arrays[9] = arrays[9].cast(pa.date32())
        pq.write_table(
            pa.Table.from_arrays(arrays, names=[c.name for c in columns]),
            Path(folder, "pyarrow_json.parquet"),
            compression="zstd",
        )

    return timed(work, baseline)


def _parse_msgspec(folder: str) -> dict[str, float]:
    body, baseline = _body(folder)
    return timed(lambda: msgspec.json.decode(body), baseline)


def _parse_ndjson(folder: str) -> dict[str, float]:
    baseline = _warm_up()
    lines = Path(folder, "rows.ndjson").read_bytes()
    schema = pa.schema([pa.field(n, fast_type(Column(n, n, t))) for n, t in COLUMNS])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    read = pj.ReadOptions(use_threads=True, block_size=1 << 20)
    return timed(lambda: pj.read_json(pa.BufferReader(lines), read_options=read, parse_options=options), baseline)


def _write_only(folder: str) -> dict[str, float]:
    baseline = _warm_up()
    table = pq.read_table(Path(folder, "table.parquet"))
    return timed(lambda: pq.write_table(table, Path(folder, "write_only.parquet"), compression="zstd"), baseline)


def _stages(folder: str) -> dict[str, float]:
    """CPU seconds of each stage of the in-memory path, run one after the other in this thread (a profile)."""
    from dagster_iwatch.arrow import column_field, finish_column
    from dagster_iwatch.piece_reader import PieceReader
    from dagster_iwatch.result_body import BodyScan, scan_body

    body, _ = _body(folder)
    stages = {"cut": 0.0, "parse": 0.0, "cast": 0.0, "write": 0.0}
    found = BodyScan()
    pieces = scan_body([memoryview(body)], found, None)
    batches = []
    reader: PieceReader | None = None
    while True:
        mark = time.process_time()
        item = next(pieces, None)
        stages["cut"] += time.process_time() - mark
        if item is None:
            break
        reader = reader or PieceReader(item[1] or ())
        mark = time.process_time()
        table, _checked = reader.read_fast(item[0])
        stages["parse"] += time.process_time() - mark
        mark = time.process_time()
        arrays = [finish_column(c, table.column(c.name).combine_chunks())[0] for c in reader.columns]
        stages["cast"] += time.process_time() - mark
        schema = pa.schema([column_field(c, a.type) for c, a in zip(reader.columns, arrays, strict=True)])
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    mark = time.process_time()
    pq.write_table(pa.Table.from_batches(batches), Path(folder, "stages.parquet"), compression="zstd")
    stages["write"] = time.process_time() - mark
    return {"wall": 0.0, **stages}


def _check(folder: str) -> dict[str, float]:
    """1.0 if every path of ours and pyarrow.json wrote the table the Python-rows path gives, else 0.0."""
    body = Path(folder, "body.json").read_bytes()
    data = json.loads(body)["query_result"]
    result = QueryResult(
        id=1,
        query_hash=None,
        query=None,
        data_source_id=None,
        runtime=None,
        retrieved_at=None,
        columns=tuple(Column(c["name"], c["friendly_name"], c["type"]) for c in data["data"]["columns"]),
        rows=data["data"]["rows"],
    )
    expected = result_to_arrow(result)
    same = all(
        pq.read_table(Path(folder, f"{name}.parquet")).equals(expected, check_metadata=name != "pyarrow_json")
        for name in ("ours_memory", "ours_stream", "ours_stream_file", "pyarrow_json")
    )
    return {"wall": 0.0, "same": 1.0 if same else 0.0}


VARIANTS = {
    "naive": _naive,
    "ours_memory": _ours_memory,
    "ours_stream": _ours_stream,
    "ours_stream_file": _ours_stream_file,
    "pyarrow_json": _pyarrow_json,
    "parse_msgspec": _parse_msgspec,
    "parse_ndjson": _parse_ndjson,
    "write_only": _write_only,
    "check": _check,
    "stages": _stages,
}


HEADER = ("variant", "wall s", "cpu s", "peak MB", "peak/body", "naive/this wall", "naive/this cpu", "this/ours wall")


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(f"{cell:<17}" if i == 0 else f"{cell:>9}" for i, cell in enumerate(cells)) + " |"


def run(sizes: list[int], rounds: int) -> Section:
    """The ingest section: a table per size; BENCH fields from the largest size."""
    section = Section("Ingest: result body -> typed Arrow -> Parquet")
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="iwatch-bench-") as folder:
            body_path = write_inputs(rows, Path(folder))
            body_mb = os.path.getsize(body_path) / 1e6
            load = os.getloadavg()[0]
            runs = interleaved("ingest", VARIANT_ORDER, [folder], rounds, progress=f"ingest {rows:,} rows ")
            same = interleaved("ingest", ["check"], [folder], 1)["check"][0]["same"] == 1.0
            stages = interleaved("ingest", ["stages"], [folder], 1)["stages"][0]
        section.lines += [
            f"{rows:,} rows, {body_mb:.1f} MB of JSON; {rounds} interleaved rounds, a fresh process per run; "
            "medians, and medians of per-round ratios;",
            f"load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
            f"every output equal to result_to_arrow's table: {'yes' if same else 'NO'}",
            _row(HEADER),
            "|" + "|".join("-" * (19 if i == 0 else 11) for i in range(len(HEADER))) + "|",
        ]
        ours = runs["ours_stream"]
        for variant in VARIANT_ORDER:
            figures = runs[variant]
            peak = median([r["peak_mb"] for r in figures])
            cells = (
                variant,
                f"{median([r['wall'] for r in figures]):.3f}",
                f"{median([r['cpu'] for r in figures]):.3f}",
                f"{peak:.1f}",
                f"{peak / body_mb:.2f}",
                f"{paired_ratio(runs['naive'], figures, 'wall'):.2f}x",
                f"{paired_ratio(runs['naive'], figures, 'cpu'):.2f}x",
                f"{paired_ratio(figures, ours, 'wall'):.2f}x",
            )
            section.lines.append(_row(cells))
        total = sum(stages[key] for key in ("cut", "parse", "cast", "write"))
        section.lines.append(
            "profile of ours, CPU s by stage, one thread after another: "
            + ", ".join(
                f"{key} {stages[key]:.3f} ({stages[key] / total:.0%})" for key in ("cut", "parse", "cast", "write")
            )
        )
        section.lines.append("")
        section.fields = {
            "ingest_speedup": f"{paired_ratio(runs['naive'], ours, 'wall'):.2f}",
            "ingest_vs_pyarrow_json": f"{paired_ratio(runs['pyarrow_json'], ours, 'wall'):.2f}",
            "ingest_rss_over_body": f"{median([r['peak_mb'] for r in ours]) / body_mb:.2f}",
        }
    return section
