"""`iwatch --version`, `queries list/show` and `dashboards list/show` against the local server."""

from __future__ import annotations

import json
from pathlib import Path

from dagster_iwatch.local import LocalServer
from dagster_iwatch.local.seed import SEED_QUERIES
from dagster_iwatch.version import __version__
from tests.cli.conftest import Cli


def test_version_and_help_name_every_command(cli: Cli) -> None:
    assert cli("--version").stdout == f"iwatch {__version__}\n"
    listed = cli("--help").stdout
    for command in ("queries", "run", "dashboards", "local"):
        assert f"  {command} " in listed


def test_queries_list_is_a_table_of_every_query(cli: Cli) -> None:
    result = cli("queries", "list")
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "TAGS", "PARAMETERS"]
    assert {int(row.split()[0]) for row in rows} >= set(range(1, len(SEED_QUERIES) + 1))
    row = next(r for r in rows if r.startswith("5 "))
    assert "Daily volume in period" in row
    assert row.rstrip().endswith("period")


def test_queries_list_filters_by_tag_and_search_and_prints_json(cli: Cli) -> None:
    by_tag = json.loads(cli("queries", "list", "--tag", "enum", "--json").stdout)
    assert sorted(q["id"] for q in by_tag) == [7, 8]
    multi = next(q for q in by_tag if q["id"] == 8)
    assert multi["parameters"] == [{"name": "tokens", "type": "enum", "title": "Tokens", "default": ["ETH", "DAI"]}]
    assert all("api_key" not in q for q in by_tag)

    both = json.loads(cli("queries", "list", "--tag", "param", "--tag", "prices", "--json").stdout)
    assert [q["name"] for q in both] == ["Prices on day"]

    searched = cli("queries", "list", "--search", "Slow")
    assert [line.split()[0] for line in searched.stdout.splitlines()[1:]] == ["11"]

    none = cli("queries", "list", "--tag", "no-such-tag")
    assert none.exit_code == 0
    assert none.stdout == ""
    assert "No queries match" in none.stderr


def test_queries_show_gives_parameters_in_command_line_form(cli: Cli) -> None:
    result = cli("queries", "show", "5")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("Query 5: Daily volume in period\n")
    assert "Tags: param, transfers, daily" in out
    assert "Schedule: none" in out
    param_line = next(line for line in out.splitlines() if line.strip().startswith("period"))
    assert param_line.split()[:3] == ["period", "date-range", "2024-01-01..2024-01-31"]
    assert "START..END, each a date YYYY-MM-DD" in param_line
    assert "none kept" in out
    assert "where block_date between '{{ period.start }}'" in out

    enum = cli("queries", "show", "8").stdout
    assert "ETH,DAI" in enum
    assert "separated by commas" in enum


def test_queries_show_reports_the_latest_result_once_there_is_one(cli: Cli) -> None:
    assert cli("run", "14").exit_code == 0
    out = cli("queries", "show", "14").stdout
    assert "Parameters: none" in out
    latest = next(line for line in out.splitlines() if line.startswith("Latest result:"))
    assert latest.startswith("Latest result: 0 rows, 11 columns, retrieved ")


def test_dashboards_list_and_show_by_slug_or_id(cli: Cli) -> None:
    listed = cli("dashboards", "list")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:2] == ["1", "chain-overview"]
    assert json.loads(cli("dashboards", "list", "--json").stdout)[0]["slug"] == "chain-overview"

    by_slug = cli("dashboards", "show", "chain-overview")
    assert by_slug.exit_code == 0, by_slug.stderr
    assert by_slug.stdout.startswith("Dashboard 1: Chain overview (slug chain-overview)\n")
    assert "Queries: 15, 5" in by_slug.stdout
    widgets = by_slug.stdout.split("Widgets:\n")[1].splitlines()
    assert widgets[0].split() == ["ID", "KIND", "SHOWS", "QUERY"]
    assert "Daily prices (CHART)" in widgets[1]
    assert widgets[1].rstrip().endswith("15 Daily prices")
    assert widgets[3].split()[1] == "text"
    assert cli("dashboards", "show", "1").stdout == by_slug.stdout


def test_queries_show_says_what_each_parameter_type_accepts(cli: Cli) -> None:
    accepts = {
        2: "a number",
        3: "any text",
        6: "a datetime 'YYYY-MM-DD HH:MM'",
        7: "one of ETH, USDC, WBTC, DAI, LINK",
        9: "a value from the first column of query 12's result",
        16: "START..END, each a datetime 'YYYY-MM-DD HH:MM'",
    }
    for query_id, text in accepts.items():
        out = cli("queries", "show", str(query_id)).stdout
        parameters = out.split("Parameters:\n", 1)[1].split("Latest result:", 1)[0]
        assert parameters.splitlines()[1].rstrip().endswith(text), (query_id, parameters)


def test_snapshot_writes_a_file_definitions_load_from(cli: Cli, server: LocalServer, tmp_path: Path) -> None:
    from dagster_iwatch.state import read_snapshot

    path = tmp_path / "state" / "instance.json"
    result = cli("snapshot", str(path), "--tag", "transfers")
    assert result.exit_code == 0, result.stderr
    written = read_snapshot(path)
    assert written.queries
    assert all("transfers" in q.tags for q in written.queries)
    assert f"{len(written.queries)} queries" in result.stderr
    assert str(path) in result.stderr
    assert server.user_api_key not in path.read_text()
