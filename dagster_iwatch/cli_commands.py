"""The ``iwatch`` commands that talk to a server: ``queries``, ``run``, ``dashboards`` and ``snapshot``.

Tables and summaries are for people; ``--json`` and ``-o`` are for programs. Data goes to standard output,
progress and summaries to standard error.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import click

from dagster_iwatch._cli_connection import CliError, ExitCode, connection_options, resolve_connection
from dagster_iwatch._cli_output import ProgressLine, echo_preview, output_format, seconds, table, write_table
from dagster_iwatch._cli_params import describe_type, format_value, parse_parameter_options
from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import IWatchError, NotFoundError
from dagster_iwatch.types import Dashboard, Query, QueryResult

__all__ = ["dashboards", "queries", "run", "snapshot"]


@contextlib.contextmanager
def _connected(url: str | None, api_key_file: Path | None) -> Iterator[IWatchClient]:
    """A client for the command's server; every library error leaves as one line and its exit code."""
    connection = resolve_connection(url, api_key_file)
    try:
        with connection.client() as client:
            yield client
    except IWatchError as error:
        raise connection.explain(error) from None


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group()
def queries() -> None:
    """List and inspect saved queries."""


@queries.command("list")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only queries with this tag (repeat: all of them).")
@click.option("--search", default=None, metavar="TEXT", help="Only queries matching this text.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@connection_options
def list_queries(
    tags: tuple[str, ...], search: str | None, as_json: bool, url: str | None, api_key_file: Path | None
) -> None:
    """List saved queries: id, name, tags and parameters."""
    with _connected(url, api_key_file) as client:
        found = list(client.list_queries(q=search, tags=list(tags) or None))
    if as_json:
        _echo_json([_query_json(query) for query in found])
        return
    if not found:
        click.echo("No queries match.", err=True)
        return
    rows = [(q.id, q.name, ", ".join(q.tags), ", ".join(p.name for p in q.parameters)) for q in found]
    click.echo(table(("id", "name", "tags", "parameters"), rows))


def _query_json(query: Query) -> dict[str, Any]:
    # Built field by field: the query's own API key (and the raw payload that holds it) never goes out.
    return {
        "id": query.id,
        "name": query.name,
        "description": query.description,
        "tags": list(query.tags),
        "parameters": [
            {"name": p.name, "type": p.type, "title": p.title, "default": p.value} for p in query.parameters
        ],
        "schedule": query.schedule,
        "is_archived": query.is_archived,
        "is_draft": query.is_draft,
        "updated_at": query.updated_at.isoformat() if query.updated_at else None,
    }


@queries.command("show")
@click.argument("query_id", type=int)
@connection_options
def show_query(query_id: int, url: str | None, api_key_file: Path | None) -> None:
    """Show a query: name, tags, schedule, parameters with types and defaults, latest result and SQL."""
    with _connected(url, api_key_file) as client:
        query = client.get_query(query_id)
        latest = _latest_result(client, query)
    click.echo(f"Query {query.id}: {query.name}")
    if query.description:
        click.echo(f"Description: {query.description}")
    click.echo(f"Tags: {', '.join(query.tags) or 'none'}")
    click.echo(f"Schedule: {_schedule(query.schedule)}")
    if query.parameters:
        click.echo("Parameters:")
        rows = [(p.name, p.type, format_value(p, p.value), describe_type(p)) for p in query.parameters]
        click.echo(_indent(table(("name", "type", "default", "accepts"), rows, max_cell=None)))
    else:
        click.echo("Parameters: none")
    click.echo(f"Latest result: {latest}")
    click.echo("SQL:")
    click.echo(_indent(query.query))


def _latest_result(client: IWatchClient, query: Query) -> str:
    if query.latest_query_data_id is None:
        if query.parameters:
            return "none kept (the server keeps no latest result for queries with parameters)"
        return "none yet"
    try:
        result = client.get_cached_result(query.id)
    except NotFoundError:
        return "none kept"
    when = f", retrieved {result.retrieved_at:%Y-%m-%d %H:%M:%S %Z}".rstrip() if result.retrieved_at else ""
    runtime = f", ran in {seconds(result.runtime)}" if result.runtime is not None else ""
    return f"{result.row_count} rows, {len(result.columns)} columns{when}{runtime}"


def _schedule(schedule: Mapping[str, Any] | None) -> str:
    if not schedule or not schedule.get("interval"):
        return "none"
    interval = int(schedule["interval"])
    days, rest = divmod(interval, 86400)
    every = f"{days} days" if days and not rest else f"{interval} seconds"
    text = f"every {every}"
    if schedule.get("time"):
        text += f" at {schedule['time']} UTC"
    if schedule.get("day_of_week"):
        text += f" on {schedule['day_of_week']}"
    if schedule.get("until"):
        text += f" until {schedule['until']}"
    return text


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


@click.command()
@click.argument("query_id", type=int)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter value, read by its declared type: dates YYYY-MM-DD, ranges START..END, several values a,b.",
)
@click.option(
    "--max-age",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Accept a cached result up to this many seconds old; 0 always runs the query.",
)
@click.option(
    "--timeout",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Give up (and cancel the job) after this many seconds.  [default: 1800]",
)
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="FILE",
    help="Write every row to FILE.parquet (zstd) or FILE.csv; '-' writes CSV to standard output.",
)
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="Rows shown when no --output is given.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show the live progress line.  [default: when standard error is a terminal]",
)
@connection_options
def run(
    query_id: int,
    params: tuple[str, ...],
    max_age: int,
    timeout: float | None,
    output: str | None,
    limit: int,
    progress: bool | None,
    url: str | None,
    api_key_file: Path | None,
) -> None:
    """Run saved query QUERY_ID and show its rows, or write them to a file."""
    # A bad target fails before the query runs; Parquet is written as the rows arrive, in bounded memory.
    streamed = output is not None and output_format(output) == "parquet"
    line = ProgressLine(sys.stderr.isatty() if progress is None else progress)
    with _terminate_as_interrupt(), _connected(url, api_key_file) as client:
        query = client.get_query(query_id)
        values = parse_parameter_options(query, params)
        started = time.monotonic()
        try:
            if streamed:
                assert output is not None
                result = _write_parquet(client, query_id, output, values, max_age, timeout, query, line)
            else:
                result = client.execute(query_id, values, max_age=max_age, timeout=timeout, query=query, progress=line)
        except KeyboardInterrupt:
            # The client asked the server to cancel the job before letting the interrupt through.
            cancelled = f"; the server was asked to cancel job {line.job_id}" if line.job_id else ""
            raise CliError(f"interrupted{cancelled}", ExitCode.INTERRUPTED) from None
        finally:
            line.clear()
        elapsed = time.monotonic() - started
    if output is None:
        echo_preview(result.to_arrow(), limit)
    elif not streamed:
        try:
            write_table(result.to_arrow(), output)
        except OSError as error:
            raise CliError(f"cannot write {output}: {error.strerror or error}", ExitCode.ERROR) from None
    click.echo(_summary(result, len(result.columns), output, elapsed), err=True)


def _write_parquet(
    client: IWatchClient,
    query_id: int,
    output: str,
    values: dict[str, Any],
    max_age: int,
    timeout: float | None,
    query: Query,
    line: ProgressLine,
) -> QueryResult:
    try:
        return client.execute_to_parquet(
            query_id, output, values, max_age=max_age, timeout=timeout, query=query, progress=line
        )
    except OSError as error:
        raise CliError(f"cannot write {output}: {error.strerror or error}", ExitCode.ERROR) from None


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while a query runs, so that its job is cancelled on the server either way."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread, where only Python may set handlers: leave SIGTERM alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _summary(result: QueryResult, columns: int, output: str | None, elapsed: float) -> str:
    where = "" if output is None else f", written to {'standard output' if output == '-' else output}"
    if result.from_cache:
        when = f" from {result.retrieved_at:%Y-%m-%d %H:%M:%S}" if result.retrieved_at else ""
        origin = f"cached result{when}"
    else:
        origin = f"ran as job {result.job_id} in {seconds(elapsed)}"
    return f"{_count(result.row_count, 'row')}, {_count(columns, 'column')}{where} ({origin})"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@click.group()
def dashboards() -> None:
    """List and inspect dashboards."""


@dashboards.command("list")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only dashboards with this tag.")
@click.option("--search", default=None, metavar="TEXT", help="Only dashboards matching this text.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@connection_options
def list_dashboards(
    tags: tuple[str, ...], search: str | None, as_json: bool, url: str | None, api_key_file: Path | None
) -> None:
    """List dashboards: id, slug, name and tags."""
    with _connected(url, api_key_file) as client:
        found = list(client.list_dashboards(q=search, tags=list(tags) or None))
    if as_json:
        _echo_json([_dashboard_json(dashboard) for dashboard in found])
        return
    if not found:
        click.echo("No dashboards match.", err=True)
        return
    click.echo(table(("id", "slug", "name", "tags"), [(d.id, d.slug, d.name, ", ".join(d.tags)) for d in found]))


def _dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    return {
        "id": dashboard.id,
        "slug": dashboard.slug,
        "name": dashboard.name,
        "tags": list(dashboard.tags),
        "is_draft": dashboard.is_draft,
        "is_archived": dashboard.is_archived,
        "updated_at": dashboard.updated_at.isoformat() if dashboard.updated_at else None,
    }


@dashboards.command("show")
@click.argument("slug_or_id")
@connection_options
def show_dashboard(slug_or_id: str, url: str | None, api_key_file: Path | None) -> None:
    """Show a dashboard (by slug, or by id) and its widgets: what each shows, from which query."""
    key: str | int = int(slug_or_id) if slug_or_id.isdigit() else slug_or_id
    with _connected(url, api_key_file) as client:
        dashboard = client.get_dashboard(key)
    click.echo(f"Dashboard {dashboard.id}: {dashboard.name} (slug {dashboard.slug})")
    click.echo(f"Tags: {', '.join(dashboard.tags) or 'none'}")
    click.echo(f"Queries: {', '.join(str(i) for i in dashboard.query_ids) or 'none'}")
    if not dashboard.widgets:
        click.echo("Widgets: none")
        return
    click.echo("Widgets:")
    rows = [
        (
            w.id,
            w.kind,
            w.text if w.visualization_id is None else f"{w.visualization_name or ''} ({w.visualization_type or '?'})",
            "" if w.query_id is None else f"{w.query_id} {w.query_name or ''}".strip(),
        )
        for w in dashboard.widgets
    ]
    click.echo(_indent(table(("id", "kind", "shows", "query"), rows)))


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only queries with this tag (repeat: all of them).")
@click.option("--search", default=None, metavar="TEXT", help="Only queries matching this text.")
@click.option("--no-dashboards", is_flag=True, help="Leave dashboards out (one request fewer per dashboard).")
@connection_options
def snapshot(
    path: Path,
    tags: tuple[str, ...],
    search: str | None,
    no_dashboards: bool,
    url: str | None,
    api_key_file: Path | None,
) -> None:
    """Write the instance's snapshot (queries, dashboards) to PATH, for loading definitions without requests."""
    from dagster_iwatch.state import write_snapshot

    with _connected(url, api_key_file) as client:
        written = write_snapshot(client, path, tags=list(tags) or None, search=search, dashboards=not no_dashboards)
    click.echo(
        f"{len(written.queries)} queries, {_count(len(written.dashboards), 'dashboard')}"
        f"{f', {len(written.broken)} unreadable (see the log)' if written.broken else ''} -> {path}",
        err=True,
    )
