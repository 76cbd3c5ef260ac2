"""`iwatch run`: typed parameters, the preview, Parquet and CSV files, CSV on standard output, progress."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.local import LocalServer
from tests.cli.conftest import Cli


def _client(server: LocalServer) -> IWatchClient:
    return IWatchClient(server.url, api_key=server.user_api_key)


def test_run_previews_rows_and_summarizes_on_stderr(cli: Cli) -> None:
    result = cli("run", "5", "-p", "period=2024-01-01..2024-01-03", "--limit", "4")
    assert result.exit_code == 0, result.stderr
    header, *rows, more = result.stdout.splitlines()
    assert header.split() == ["BLOCK_DATE", "TOKEN", "N", "TOTAL"]
    assert len(rows) == 4
    assert rows[0].split()[:2] == ["2024-01-01", "DAI"]
    assert more == "... 11 more rows (write them all with -o FILE)"
    assert result.stderr.startswith("15 rows, 4 columns (ran as job ")


def test_run_writes_zstd_parquet_with_the_query_result(cli: Cli, server: LocalServer, tmp_path: Path) -> None:
    target = tmp_path / "volume.parquet"
    result = cli("run", "5", "-p", "period=2024-02-01..2024-02-29", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"written to {target}" in result.stderr

    with _client(server) as client:
        expected = client.execute(5, {"period": ("2024-02-01", "2024-02-29")}).to_arrow()
    written = pq.read_table(target)
    assert written.equals(expected)
    assert written.num_rows > 0
    assert pq.ParquetFile(target).metadata.row_group(0).column(0).compression == "ZSTD"
    assert [p.name for p in tmp_path.iterdir()] == ["volume.parquet"]


def test_run_writes_csv_to_a_file_and_to_stdout(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "prices.csv"
    assert cli("run", "4", "-p", "day=2024-02-29", "-o", str(target)).exit_code == 0
    from_file = pa_csv.read_csv(target)
    assert from_file.column_names == ["day", "token", "price"]
    assert from_file.num_rows == 5

    piped = cli("run", "4", "-p", "day=2024-02-29", "-o", "-")
    assert piped.exit_code == 0, piped.stderr
    assert pa_csv.read_csv(io.BytesIO(piped.stdout_bytes)).equals(from_file)
    assert "written to standard output" in piped.stderr


def test_multi_value_enum_takes_commas_or_repeated_options(cli: Cli) -> None:
    commas = cli("run", "8", "-p", "tokens=ETH,USDC")
    assert commas.exit_code == 0, commas.stderr
    assert [line.split()[0] for line in commas.stdout.splitlines()[1:]] == ["ETH", "USDC"]
    repeated = cli("run", "8", "-p", "tokens=ETH", "-p", "tokens=USDC")
    assert repeated.stdout == commas.stdout


def test_dates_numbers_and_datetime_ranges_are_read_by_declared_type(cli: Cli, server: LocalServer) -> None:
    window = cli("run", "16", "-p", "window=2024-01-01 00:00..2024-01-01 01:00", "-o", "-")
    assert window.exit_code == 0, window.stderr
    with _client(server) as client:
        expected = client.execute(16, {"window": ("2024-01-01 00:00", "2024-01-01 01:00")}).row_count
    assert window.stdout.count("\n") == expected + 1

    above = cli("run", "2", "-p", "min_amount=999.5", "-o", "-")
    assert above.exit_code == 0, above.stderr
    amounts = pa_csv.read_csv(io.BytesIO(above.stdout_bytes)).column("amount").to_pylist()
    assert amounts
    assert min(amounts) >= 999.5


def test_defaults_apply_to_parameters_not_given(cli: Cli) -> None:
    result = cli("run", "4", "-o", "-")
    assert result.exit_code == 0, result.stderr
    days = pa_csv.read_csv(io.BytesIO(result.stdout_bytes)).column("day").to_pylist()
    assert {str(day) for day in days} == {"2024-02-29"}


def test_max_age_takes_a_cached_result(cli: Cli) -> None:
    assert cli("run", "12").exit_code == 0
    cached = cli("run", "12", "--max-age", "3600")
    assert cached.exit_code == 0, cached.stderr
    assert "(cached result from " in cached.stderr


def test_progress_line_shows_job_status_bytes_and_rows(cli: Cli) -> None:
    result = cli("run", "1", "--progress", "-o", "-")
    assert result.exit_code == 0, result.stderr
    line, summary = result.stderr.rsplit("\r\x1b[K", 1)
    states = [state.removesuffix("\x1b[K") for state in line.split("\r") if state]
    assert states[0].startswith("query 1 · job ")
    assert any(" · reading result: " in s and " kB · " in s for s in states)
    assert states[-1].startswith("query 1 · 3000 rows · ")
    assert summary.startswith("3000 rows, 11 columns")


def test_no_progress_line_when_stderr_is_not_a_terminal(cli: Cli) -> None:
    result = cli("run", "12")
    assert "\r" not in result.stderr
    assert result.stderr.count("\n") == 1
