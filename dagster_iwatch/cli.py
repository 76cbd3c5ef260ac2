"""The ``iwatch`` command line: saved queries, runs to Parquet or CSV, dashboards, and the local server.

Exit codes: 0 success, 1 any other error, 2 bad usage (options, parameters, configuration), 3 the key was
refused, 4 not found, 5 the query failed or was cancelled, 6 timeout, 7 server unreachable, 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from dagster_iwatch._cli_connection import CliError, ExitCode
from dagster_iwatch.cli_commands import dashboards, queries, run, snapshot
from dagster_iwatch.version import __version__


class _Main(click.Group):
    """The top-level group: an interrupt ends the process with its own exit code and one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise CliError("interrupted", ExitCode.INTERRUPTED) from None


@click.group(cls=_Main)
@click.version_option(__version__, prog_name="iwatch", message="%(prog)s %(version)s")
def main() -> None:
    """Inverse Watch (Redash) from the command line: list and run saved queries, look at dashboards.

    Commands that talk to a server take it from IWATCH_URL or --url, and the API key (a user key, or a
    query key for that query's commands) from IWATCH_API_KEY, from --api-key-file PATH, or from standard
    input with --api-key-file -. A key is never accepted on the command line.
    """


main.add_command(queries)
main.add_command(run)
main.add_command(dashboards)
main.add_command(snapshot)


@main.group()
def local() -> None:
    """Run a local Inverse-Watch-compatible server."""


@local.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=5055, show_default=True, type=click.IntRange(0, 65535), help="TCP port (0 picks a free one)."
)
@click.option(
    "--data",
    "data_dir",
    default="./.iwatch/local",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder; seeded with sample data and queries when empty.",
)
@click.option(
    "--flavor",
    type=click.Choice(["inverse-watch", "redash"]),
    default="inverse-watch",
    show_default=True,
    help="Which server's behaviour to follow where Inverse Watch and upstream Redash differ.",
)
@click.option("--api-key", default=None, help="Use this admin API key instead of the stored one.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Threads running queries.")
@click.option(
    "--max-body",
    default=10 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest request body accepted, in bytes (larger: 413).",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="JSON",
    help='Plan a fault from the start, e.g. \'{"status": 503, "share": 0.1, "times": null, "path_prefix": "/api/"}\'.',
)
@click.option("--quiet", is_flag=True, help="No access log (500 tracebacks are still printed).")
def serve(
    host: str,
    port: int,
    data_dir: Path,
    flavor: str,
    api_key: str | None,
    workers: int,
    max_body: int,
    faults: tuple[str, ...],
    quiet: bool,
) -> None:
    """Serve the local server until Ctrl-C, after printing its URL and where its API keys are."""
    from dagster_iwatch.local import LocalServer, LocalServerError

    try:
        specs = [json.loads(f) for f in faults]
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--fault") from None
    try:
        srv = LocalServer(
            data_dir,
            host=host,
            port=port,
            flavor=flavor,
            workers=workers,
            user_api_key=api_key,
            record_requests=False,
            max_body=max_body,
            faults=specs,
        )
        srv.start()
    except LocalServerError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    _log_to_stderr(access=not quiet)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        click.echo(f"Inverse Watch local server ({flavor}) at {srv.url}")
        click.echo(f"Data folder: {data_dir.resolve()}")
        click.echo(f"API keys (user, then each query's): {_write_keys(srv, data_dir)}")
        click.echo(f"Pages: {srv.url}/queries/1 and {srv.url}/dashboard/chain-overview")
        click.echo("Press Ctrl-C to stop.", nl=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        srv.stop()
        click.echo("Stopped.")


def _write_keys(srv: Any, data_dir: Path) -> Path:
    """Write the server's keys to a file only its owner can read; the terminal never shows a key."""
    path = (data_dir / "api-keys.txt").resolve()
    lines = [f"user {srv.user_api_key}"]
    lines += [f"query {query_id} {key} {name}" for query_id, name, key in srv.query_keys()]
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def _log_to_stderr(*, access: bool) -> None:
    server_log = logging.getLogger("dagster_iwatch.local")
    if not any(getattr(h, "name", None) == "iwatch-local-stderr" for h in server_log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name("iwatch-local-stderr")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    logging.getLogger("dagster_iwatch.local.access").setLevel(logging.INFO if access else logging.WARNING)
