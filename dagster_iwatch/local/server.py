"""The LocalServer handle: the routes served by uvicorn in a background thread on a loopback port."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from dagster_iwatch.local.app import LocalApp
from dagster_iwatch.local.faults import Fault, Faults
from dagster_iwatch.local.middleware import AccessLog, FaultInjector, QuietResets
from dagster_iwatch.local.replies import LocalServerError
from dagster_iwatch.local.routes import build_routes_app

DEFAULT_MAX_BODY = 10 * 1024 * 1024
_START_TIMEOUT = 30.0

logging.getLogger("uvicorn.error").addFilter(QuietResets())


class LocalServer:
    """A local server that speaks Inverse Watch's (Redash's) REST API over a SQLite data source.

    Args:
        data_dir: Folder holding the metadata, results and the SQLite data source; seeded when empty.
        host: Interface to listen on (loopback by default).
        port: TCP port; 0 picks a free one.
        flavor: ``"inverse-watch"`` (dashboards by slug, cancelled jobs status 5) or ``"redash"``
            (dashboards by id, cancelled jobs status 4, invalid JSON on ``/results`` read as ``{}``).
        workers: Number of threads running queries.
        user_api_key: The admin user's key; generated at first start and persisted when not given.
        record_requests: Keep :attr:`requests_seen`; long-running servers may turn it off.
        job_ttl: Seconds a finished job stays known; later its id gives 500, as on Redash.
        max_body: Largest request body accepted, in bytes; larger ones get 413.
        faults: Faults planned from the start, each a dict of :meth:`inject_fault`'s keyword arguments.

    Raises:
        LocalServerError: From :meth:`start`, when the data folder or its files cannot be used.

    Example:
        >>> with LocalServer(tmp_path) as srv:  # doctest: +SKIP
        ...     requests.get(f"{srv.url}/api/queries", headers={"Authorization": f"Key {srv.user_api_key}"})
    """

    def __init__(
        self,
        data_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        flavor: str = "inverse-watch",
        workers: int = 2,
        user_api_key: str | None = None,
        record_requests: bool = True,
        job_ttl: float = 600.0,
        max_body: int = DEFAULT_MAX_BODY,
        faults: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.flavor = flavor
        self.workers = workers
        self.record_requests = record_requests
        self.job_ttl = job_ttl
        self.max_body = max_body
        self._given_key = user_api_key
        self._faults = Faults()
        for spec in faults:
            self._faults.add(Fault.from_json(dict(spec)))
        self._seen: list[tuple[str, str]] = []
        self._app_obj: LocalApp | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LocalServer(data_dir={str(self.data_dir)!r}, url={self.url if self._uvicorn else None!r})"

    @property
    def _app(self) -> LocalApp:
        if self._app_obj is None:
            raise RuntimeError("the local server is not started")
        return self._app_obj

    def start(self) -> LocalServer:
        """Open the data folder (seeding it when empty) and serve in a background thread.

        Returns:
            This server, so that ``srv = LocalServer(d).start()`` works.

        Raises:
            LocalServerError: The data folder or its files cannot be used.
            OSError: The address cannot be listened on.
        """
        if self._uvicorn is not None:
            return self
        app = LocalApp(
            self.data_dir, flavor=self.flavor, workers=self.workers, user_api_key=self._given_key, job_ttl=self.job_ttl
        )
        try:
            sock = _listen(self.host, self.port)
        except OSError:
            app.close()
            raise
        self._app_obj = app
        self.port = int(sock.getsockname()[1])
        asgi = AccessLog(FaultInjector(build_routes_app(app, self._faults, self.max_body), self._faults, self._record))
        config = uvicorn.Config(
            asgi,
            http="h11",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # Pooled client connections stay usable across a client's pauses between polls.
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="iwatch-local-http", daemon=True)
        self._uvicorn, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise LocalServerError(f"the local server did not start on {self.host}:{self.port}")
            thread.join(0.005)
        return self

    def stop(self) -> None:
        """Stop serving, cancel running jobs and join the threads; safe to call twice."""
        server, self._uvicorn = self._uvicorn, None
        if server is not None:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        app, self._app_obj = self._app_obj, None
        if app is not None:
            app.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:5055``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def user_api_key(self) -> str:
        """The admin user's API key (it also guards the fault endpoint ``/__local/faults``)."""
        return self._app.user_api_key

    def query_api_key(self, query_id: int) -> str:
        """Return the API key of one saved query."""
        return self._app.query_api_key(query_id)

    def query_keys(self) -> list[tuple[int, str, str]]:
        """Return ``(id, name, api_key)`` of every saved query that is not archived."""
        return self._app.query_keys()

    def inject_fault(
        self,
        status: int | None = 503,
        method: str | None = "GET",
        path_prefix: str = "/api/jobs/",
        times: int | None = 2,
        retry_after: float | int | str | None = None,
        delay: float = 0.0,
        body: Any = None,
        *,
        kind: str = "status",
        share: float = 1.0,
        rows: int = 100_000,
        seed: int | None = None,
    ) -> None:
        """Make the next `times` requests matching `method` and `path_prefix` misbehave.

        Args:
            status: For kind ``"status"``: answer this status instead of handling the request; None to only
                delay it.
            method: HTTP method to match; None matches any.
            path_prefix: Path prefix to match (without the query string).
            times: How many requests are affected; None until :meth:`clear_faults`.
            retry_after: Value of a ``Retry-After`` header sent with the status.
            delay: Seconds to wait before answering (any kind).
            body: Body to send with the status (JSON, or text when a string); a short message by default.
            kind: ``"status"``; ``"reset"`` (the connection closes half-way through the real body);
                ``"truncate"`` (half the real body, framed as complete); ``"non-json"`` (200 with an HTML
                page); ``"hang"`` / ``"fail"`` (a job the request starts never finishes / fails);
                ``"large"`` (a GET answered with a generated result of `rows` rows, streamed).
            share: Probability that a matching request is affected (1: every one).
            rows: Rows of a ``"large"`` result.
            seed: Seed of the draws for `share`, for repeatable runs.

        Raises:
            LocalServerError: An option is out of range or the kind is unknown.
        """
        fault = Fault(
            status, method, path_prefix, times, retry_after, delay, body, kind=kind, share=share, rows=rows, seed=seed
        )
        self._faults.add(fault)

    def faults_planned(self) -> list[tuple[dict[str, Any], int]]:
        """The faults still planned, each as its options and how many requests it has affected so far."""
        return [(f.to_json(), f.hits) for f in self._faults.pending()]

    def clear_faults(self) -> None:
        """Forget every planned fault."""
        self._faults.clear()

    @property
    def requests_seen(self) -> list[tuple[str, str]]:
        """Every request received so far as ``(method, path)``, the query string left out (a live list)."""
        return self._seen

    def clear_requests_seen(self) -> None:
        """Forget the requests received so far."""
        self._seen.clear()

    def _record(self, method: str, path: str) -> None:
        if self.record_requests:
            self._seen.append((method, path))

    def job_status(self, job_id: str) -> int:
        """Return the status code of a job as the server holds it.

        Raises:
            KeyError: The server knows no such job.
        """
        return self._app.job_status(job_id)

    def wait_for_job(self, job_id: str, statuses: tuple[int, ...], timeout: float = 10.0) -> int:
        """Poll a job's status until it is one of `statuses` and return it.

        Raises:
            TimeoutError: The job did not reach one of `statuses` in time.
        """
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            status = self.job_status(job_id)
            if status in statuses:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still has status {status} after {timeout}s")
            pause.wait(0.01)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it: headers and body go out in two writes, and delayed ACKs would add ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock
