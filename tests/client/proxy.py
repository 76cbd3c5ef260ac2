"""A reverse proxy on a free loopback port that relays to a real server and misbehaves on plan.

It stands between the client and the local server where a test needs what a server cannot be asked to do
over its API: cut a body off mid-way with a connection reset, never answer, or speak TLS with a test CA.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import requests

Action = Literal["reset", "hang", "status"]
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass
class _Plan:
    method: str
    path_prefix: str
    action: Action
    times: int
    status: int = 500
    body: bytes = b'{"message": "planned by the proxy"}'


class Proxy:
    """Relays every request to ``upstream``; the next matching requests follow the plans instead."""

    def __init__(self, upstream: str, tls_context: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.seen: list[tuple[str, str]] = []
        self._plans: list[_Plan] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._http = requests.Session()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        if tls_context is not None:
            self._server.socket = tls_context.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls_context is not None else "http"
        self.url = f"{scheme}://localhost:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def plan(
        self, method: str, path_prefix: str, action: Action, times: int = 1, status: int = 500, body: bytes = b""
    ) -> None:
        """Make the next ``times`` requests matching ``method`` and ``path_prefix`` misbehave."""
        with self._lock:
            self._plans.append(_Plan(method, path_prefix, action, times, status, body or _Plan.body))

    def count(self, method: str, path_prefix: str) -> int:
        """How many requests with this method and path prefix reached the proxy."""
        return sum(1 for m, p in list(self.seen) if m == method and p.startswith(path_prefix))

    def take(self, method: str, path: str) -> _Plan | None:
        """The plan for this request, counted as used, if any."""
        with self._lock:
            for plan in self._plans:
                if plan.method == method and path.startswith(plan.path_prefix):
                    plan.times -= 1
                    if plan.times <= 0:
                        self._plans.remove(plan)
                    return plan
        return None


def _handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _relay(self) -> None:
            path = self.path.split("?", 1)[0]
            proxy.seen.append((self.command, path))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            plan = proxy.take(self.command, path)
            if plan is not None and plan.action == "hang":
                proxy._released.wait(60)
                self.close_connection = True
                return
            if plan is not None and plan.action == "status":
                self._answer(plan.status, {"Content-Type": "application/json"}, plan.body)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = proxy._http.request(
                self.command, proxy.upstream + self.path, headers=headers, data=body, timeout=60, allow_redirects=False
            )
            relayed = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            if plan is not None and plan.action == "reset":
                self._reset_mid_body(answer.status_code, relayed, answer.content)
                return
            self._answer(answer.status_code, relayed, answer.content)

        def _answer(self, status: int, headers: dict[str, str], body: bytes, sent: int | None = None) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:sent])
            self.wfile.flush()

        def _reset_mid_body(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self._answer(status, headers, body, sent=len(body) // 2)
            # SO_LINGER with a zero timeout makes close() send a TCP reset instead of a clean end.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        do_GET = do_POST = do_DELETE = _relay

    return Handler
