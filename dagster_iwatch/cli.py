"""The ``iwatch`` command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click


@click.group()
def main() -> None:
    """Inverse Watch tools for Dagster."""


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
    """Serve the local server until Ctrl-C, after printing its URL and API keys."""
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
        click.echo(f"User API key: {srv.user_api_key}")
        click.echo("Query API keys:")
        for query_id, name, key in srv.query_keys():
            click.echo(f"  {query_id:>3}  {key}  {name}")
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


def _log_to_stderr(*, access: bool) -> None:
    server_log = logging.getLogger("dagster_iwatch.local")
    if not any(getattr(h, "name", None) == "iwatch-local-stderr" for h in server_log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name("iwatch-local-stderr")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    logging.getLogger("dagster_iwatch.local.access").setLevel(logging.INFO if access else logging.WARNING)
