"""The HTTP side of the local server: routing, authentication, fault injection and the LocalServer handle."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dagster_iwatch.local.app import (
    MSG_BAD_REQUEST,
    MSG_FORBIDDEN,
    MSG_INTERNAL,
    HTTPError,
    LocalApp,
    Principal,
    Reply,
    login_required,
    not_found,
)
from dagster_iwatch.local.faults import Fault, Faults

Args = dict[str, list[str]]
# A route handler gets the app, the caller, the URL match, the query string and a body reader.
Handler = Callable[[LocalApp, Principal, "re.Match[str]", Args, Callable[[], Any]], Reply]

_NO_BODY = object()


def _int(text: str) -> int:
    # Redash routes non-integer ids through the int converter's failure into a bare 500.
    if not text.isdigit():
        raise HTTPError(500, MSG_INTERNAL)
    return int(text)


def _fmt(ext: str | None) -> str:
    return (ext or ".json")[1:]


def _user_only(principal: Principal) -> None:
    if not principal.is_user:
        raise login_required()


def _own_query(principal: Principal, query_id: str) -> None:
    if not principal.is_user and str(principal.query_id) != query_id:
        raise login_required()


def _body_strict(read: Callable[[], Any]) -> Any:
    body = read()
    if body is _NO_BODY:
        raise HTTPError(400, MSG_BAD_REQUEST)
    return body


def _body_lenient(read: Callable[[], Any]) -> Any:
    body = read()
    return {} if body is _NO_BODY else body


def _queries_list(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.list_queries(a)


def _queries_create(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.post_queries(_body_strict(read))


def _query_get(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _own_query(p, m["qid"])
    return app.get_query(_int(m["qid"]))


def _query_edit(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    if not p.is_user:
        raise HTTPError(403, MSG_FORBIDDEN)
    return app.edit_query(_int(m["qid"]), _body_strict(read))


def _query_archive(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    if not p.is_user:
        raise HTTPError(403, MSG_FORBIDDEN)
    return app.archive_query(_int(m["qid"]))


def _query_results_get(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _own_query(p, m["qid"])
    return app.get_query_latest_result(_int(m["qid"]), _fmt(m["ext"]))


def _query_results_post(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _own_query(p, m["qid"])
    return app.run_query(_int(m["qid"]), _body_lenient(read), p)


def _query_result_scoped(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _own_query(p, m["qid"])
    return app.get_query_result_scoped(_int(m["qid"]), _int(m["rid"]), _fmt(m["ext"]), p)


def _query_job_get(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    # A query key's scope is the query in the URL; the job itself may have been started by anyone (as Redash).
    _own_query(p, m["qid"])
    return app.get_job(m["jid"])


def _query_job_delete(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _own_query(p, m["qid"])
    return app.cancel_job(m["jid"])


def _job_get(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.get_job(m["jid"])


def _job_delete(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.cancel_job(m["jid"])


def _result_get(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.get_result(_int(m["rid"]), _fmt(m["ext"]))


def _adhoc(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.run_adhoc(_body_strict(read))


def _dashboards_list(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.list_dashboards(a)


def _dashboards_create(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.post_dashboards(_body_strict(read))


def _dashboard_get(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.get_dashboard(m["ref"], a)


def _dashboard_edit(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.edit_dashboard(m["ref"], _body_strict(read))


def _dashboard_delete(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.archive_dashboard(m["ref"])


def _widgets_create(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.post_widget(_body_strict(read))


def _widget_delete(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.delete_widget(_int(m["wid"]))


def _viz_create(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.post_visualization(_body_strict(read))


def _query_tags(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.tags("queries")


def _dashboard_tags(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.tags("dashboards")


def _data_sources(app: LocalApp, p: Principal, m: re.Match[str], a: Args, read: Callable[[], Any]) -> Reply:
    _user_only(p)
    return app.list_data_sources()


_SEG = r"[^/]+"
_EXT = r"(?P<ext>\.[A-Za-z0-9]+)?"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"/api/queries"), _queries_list),
    ("GET", re.compile(r"/api/queries/tags"), _query_tags),
    ("POST", re.compile(r"/api/queries"), _queries_create),
    ("GET", re.compile(rf"/api/queries/(?P<qid>{_SEG})/results{_EXT}"), _query_results_get),
    ("POST", re.compile(rf"/api/queries/(?P<qid>{_SEG})/results"), _query_results_post),
    ("GET", re.compile(rf"/api/queries/(?P<qid>{_SEG})/results/(?P<rid>[^/.]+){_EXT}"), _query_result_scoped),
    ("GET", re.compile(rf"/api/queries/(?P<qid>{_SEG})/jobs/(?P<jid>{_SEG})"), _query_job_get),
    ("DELETE", re.compile(rf"/api/queries/(?P<qid>{_SEG})/jobs/(?P<jid>{_SEG})"), _query_job_delete),
    ("GET", re.compile(rf"/api/queries/(?P<qid>{_SEG})"), _query_get),
    ("POST", re.compile(rf"/api/queries/(?P<qid>{_SEG})"), _query_edit),
    ("DELETE", re.compile(rf"/api/queries/(?P<qid>{_SEG})"), _query_archive),
    ("GET", re.compile(rf"/api/jobs/(?P<jid>{_SEG})"), _job_get),
    ("DELETE", re.compile(rf"/api/jobs/(?P<jid>{_SEG})"), _job_delete),
    ("GET", re.compile(rf"/api/query_results/(?P<rid>[^/.]+){_EXT}"), _result_get),
    ("POST", re.compile(r"/api/query_results"), _adhoc),
    ("GET", re.compile(r"/api/dashboards"), _dashboards_list),
    ("GET", re.compile(r"/api/dashboards/tags"), _dashboard_tags),
    ("POST", re.compile(r"/api/dashboards"), _dashboards_create),
    ("GET", re.compile(rf"/api/dashboards/(?P<ref>{_SEG})"), _dashboard_get),
    ("POST", re.compile(rf"/api/dashboards/(?P<ref>{_SEG})"), _dashboard_edit),
    ("DELETE", re.compile(rf"/api/dashboards/(?P<ref>{_SEG})"), _dashboard_delete),
    ("POST", re.compile(r"/api/widgets"), _widgets_create),
    ("DELETE", re.compile(rf"/api/widgets/(?P<wid>{_SEG})"), _widget_delete),
    ("POST", re.compile(r"/api/visualizations"), _viz_create),
    ("GET", re.compile(r"/api/data_sources"), _data_sources),
]


def _api_key(headers: Any, args: Args) -> str | None:
    # Redash takes ?api_key= first, then the Authorization header with an optional "Key " prefix.
    if args.get("api_key"):
        return args["api_key"][0]
    header = headers.get("Authorization")
    if not header:
        return None
    header = str(header).strip()
    return header[4:].strip() if header.startswith("Key ") else header


class _Handler(BaseHTTPRequestHandler):
    """One HTTP request: record, maybe misbehave, authenticate, route, answer JSON."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, delayed ACKs add ~40 ms per response.
    disable_nagle_algorithm = True
    # Idle keep-alive connections must not pin handler threads forever.
    timeout = 30
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines can carry ``?api_key=``."""

    def do_GET(self) -> None:
        """Handle GET."""
        self._handle("GET")

    def do_POST(self) -> None:
        """Handle POST."""
        self._handle("POST")

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._handle("DELETE")

    def do_PUT(self) -> None:
        """Handle PUT (no route takes it)."""
        self._handle("PUT")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            # Unread chunks would be parsed as the next request on this keep-alive connection.
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        owner = self.server.owner
        try:
            raw = self._read_body()
        except OSError:
            self.close_connection = True
            return
        except ValueError:
            # The framing is broken, so the rest of this connection cannot be trusted either.
            self.close_connection = True
            self._send(Reply(400, {"message": MSG_BAD_REQUEST}))
            return
        if owner._stopping.is_set():
            # A pooled connection that outlived stop(): drop it rather than answer from a closed app.
            self.close_connection = True
            return
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        owner._record(method, split.path)
        fault = owner._faults.take(method, split.path)
        if fault is not None:
            if fault.delay > 0:
                owner._stopping.wait(fault.delay)
            if fault.status is not None:
                self._send_fault(fault)
                return
        try:
            reply = self._dispatch(method, path, parse_qs(split.query, keep_blank_values=True), raw)
        except HTTPError as exc:
            reply = exc.reply
        except Exception:  # a bad request must never take the server down
            reply = Reply(500, {"message": MSG_INTERNAL})
        self._send(reply)

    def _dispatch(self, method: str, path: str, args: Args, raw: bytes) -> Reply:
        app = self.server.owner._app
        matched_path = False
        for route_method, pattern, handler in ROUTES:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            matched_path = True
            if route_method != method:
                continue
            principal = app.authenticate(_api_key(self.headers, args))
            if principal is None:
                raise login_required()

            def read() -> Any:
                if not raw.strip():
                    return _NO_BODY
                try:
                    body = json.loads(raw)
                    # JSON may escape lone surrogates, which could then be neither stored nor sent back as UTF-8.
                    json.dumps(body, ensure_ascii=False).encode("utf-8")
                except ValueError:
                    return _NO_BODY
                return body

            return handler(app, principal, m, args, read)
        if matched_path:
            raise HTTPError(405, "The method is not allowed for the requested URL.")
        raise not_found()

    def _send_fault(self, fault: Fault) -> None:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        status = int(fault.status or 500)
        if fault.body is None:
            body: Any = {"message": f"Injected fault: {status}"}
        else:
            body = fault.body
        content_type = "text/plain; charset=utf-8" if isinstance(body, str | bytes) else "application/json"
        self._send(Reply(status, body, content_type, headers))

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, bytes):
            payload = reply.body
        elif isinstance(reply.body, str) and not reply.content_type.startswith("application/json"):
            payload = reply.body.encode("utf-8")
        else:
            payload = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: LocalServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class LocalServer:
    """A local server that speaks Inverse Watch's (Redash's) REST API over a SQLite data source.

    Args:
        data_dir: Folder holding the metadata, results and the SQLite data source; seeded when empty.
        host: Interface to listen on (loopback by default).
        port: TCP port; 0 picks a free one.
        flavor: ``"inverse-watch"`` (dashboards by slug, cancelled jobs status 5) or ``"redash"``
            (dashboards by id, cancelled jobs status 4).
        workers: Number of threads running queries.
        user_api_key: The admin user's key; generated at first start and persisted when not given.
        record_requests: Keep :attr:`requests_seen`; long-running servers may turn it off.
        job_ttl: Seconds a finished job stays known; later its id gives 500, as on Redash.

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
    ) -> None:
        self.data_dir = Path(data_dir)
        self.record_requests = record_requests
        self.host = host
        self.port = port
        self.flavor = flavor
        self.workers = workers
        self._given_key = user_api_key
        self.job_ttl = job_ttl
        self._app_obj: LocalApp | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._faults = Faults()
        self._seen: list[tuple[str, str]] = []
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return f"LocalServer(data_dir={str(self.data_dir)!r}, url={self.url if self._httpd else None!r})"

    @property
    def _app(self) -> LocalApp:
        if self._app_obj is None:
            raise RuntimeError("the local server is not started")
        return self._app_obj

    def start(self) -> LocalServer:
        """Open the data folder (seeding it when empty) and serve in background threads.

        Returns:
            This server, so that ``srv = LocalServer(d).start()`` works.
        """
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._app_obj = LocalApp(
            self.data_dir, flavor=self.flavor, workers=self.workers, user_api_key=self._given_key, job_ttl=self.job_ttl
        )
        try:
            server_cls = _HTTPServer6 if ":" in self.host else _HTTPServer
            httpd = server_cls((self.host, self.port), _Handler)
        except OSError:
            self._app_obj.close()
            self._app_obj = None
            raise
        httpd.owner = self
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="iwatch-local-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cancel running jobs and join the threads; safe to call twice."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
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
        """The admin user's API key."""
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
        times: int = 2,
        retry_after: float | int | str | None = None,
        delay: float = 0.0,
        body: Any = None,
    ) -> None:
        """Make the next `times` requests matching `method` and `path_prefix` misbehave.

        Args:
            status: Answer this status instead of handling the request; None to only delay it.
            method: HTTP method to match; None matches any.
            path_prefix: Path prefix to match (without the query string).
            times: How many matching requests are affected.
            retry_after: Value of a ``Retry-After`` header sent with the status.
            delay: Seconds to wait before answering.
            body: Body to send with the status (JSON, or text when a string); a short message by default.
        """
        self._faults.add(Fault(status, method, path_prefix, times, retry_after, delay, body))

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
        while True:
            status = self.job_status(job_id)
            if status in statuses:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still has status {status} after {timeout}s")
            self._stopping.wait(0.01)
