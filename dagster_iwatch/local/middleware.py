"""ASGI layers around the routes: the access log, the request record and fault injection."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dagster_iwatch.local.faults import Fault, Faults

ACCESS_LOG = logging.getLogger("dagster_iwatch.local.access")
_API_KEY = re.compile(r"(^|&)(api_key=)[^&]*")
_RESET_NOTE = "ASGI callable returned without completing response."
ADMIN_PREFIX = "/__local/"


def masked_target(scope: Scope) -> str:
    """The request's path and query string with any ``api_key`` value replaced by ``***``."""
    query = scope.get("query_string", b"").decode("latin-1")
    path = str(scope.get("path", ""))
    return f"{path}?{_API_KEY.sub(_mask, query)}" if query else path


def _mask(m: re.Match[str]) -> str:
    return f"{m.group(1)}{m.group(2)}***"


class AccessLog:
    """Log one line per request: client, method, path (``api_key`` masked), status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request and log it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            if ACCESS_LOG.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                ms = (time.perf_counter() - started) * 1000
                ACCESS_LOG.info(
                    '%s "%s %s" %d %.1fms', client[0], scope["method"], masked_target(scope), status or 500, ms
                )


class QuietResets(logging.Filter):
    """Drop uvicorn's note about a response cut short: that is what an injected reset does."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the note."""
        return record.getMessage() != _RESET_NOTE


class FaultInjector:
    """Record each request, then apply the first planned fault that affects it."""

    def __init__(self, app: ASGIApp, faults: Faults, record: Callable[[str, str], None]) -> None:
        self.app = app
        self.faults = faults
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, misbehaving when a fault says so."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = str(scope["method"]), str(scope["path"])
        self.record(method, path)
        fault = None if path.startswith(ADMIN_PREFIX) else self.faults.take(method, path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        kind = fault.kind
        if kind == "status" and fault.status is not None:
            await _send_status(send, fault)
        elif kind == "non-json":
            await _send_all(send, 200, b"<html><body><h1>Gateway</h1>Try again later.</body></html>", "text/html")
        elif kind == "large":
            await _send_large(send, fault.rows, path)
        elif kind in ("hang", "fail"):
            await self.app({**scope, "iwatch.job_fault": kind}, receive, send)
        elif kind in ("reset", "truncate"):
            await self._cut(scope, receive, send, reset=kind == "reset")
        else:
            await self.app(scope, receive, send)

    async def _cut(self, scope: Scope, receive: Receive, send: Send, *, reset: bool) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self.app(scope, receive, keep)
        if start is None:
            return
        body = b"".join(chunks)
        half = body[: len(body) // 2]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if reset:
            # The full length is announced and half is sent: the client sees the connection drop mid-body.
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": start["status"], "headers": headers})
            await send({"type": "http.response.body", "body": half, "more_body": True})
            return
        headers.append((b"content-length", str(len(half)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": half})


async def _send_all(send: Send, status: int, body: bytes, content_type: str, extra: Any = ()) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_status(send: Send, fault: Fault) -> None:
    status = int(fault.status or 500)
    extra = [] if fault.retry_after is None else [(b"retry-after", str(fault.retry_after).encode())]
    if fault.body is None:
        body, content_type = json.dumps({"message": f"Injected fault: {status}"}).encode(), "application/json"
    elif isinstance(fault.body, bytes):
        body, content_type = fault.body, "text/plain; charset=utf-8"
    elif isinstance(fault.body, str):
        body, content_type = fault.body.encode(), "text/plain; charset=utf-8"
    else:
        body, content_type = json.dumps(fault.body).encode(), "application/json"
    await _send_all(send, status, body, content_type, extra)


TOKENS = ("ETH", "USDC", "WBTC", "DAI", "LINK")
_FIRST_DAY = date(2024, 1, 1)
_LARGE_ROWS: dict[int, list[bytes]] = {}
_LARGE_SIZES_KEPT = 3


def large_row(i: int) -> dict[str, Any]:
    """Row `i` (from 1) of a generated large result: the same for every server, so tests can check it."""
    return {
        "id": i,
        "amount": i * 0.5,
        "token": TOKENS[i % len(TOKENS)],
        "block_date": (_FIRST_DAY + timedelta(days=i % 366)).isoformat(),
        "is_contract": i % 3 == 0,
    }


async def _large_chunks(rows: int, result_id: int) -> AsyncIterator[bytes]:
    columns = [
        {"name": "id", "friendly_name": "id", "type": "integer"},
        {"name": "amount", "friendly_name": "amount", "type": "float"},
        {"name": "token", "friendly_name": "token", "type": None},
        {"name": "block_date", "friendly_name": "block_date", "type": "date"},
        {"name": "is_contract", "friendly_name": "is_contract", "type": "boolean"},
    ]
    head = {"id": result_id, "query_hash": "0" * 32, "query": f"-- {rows} generated rows"}
    yield ('{"query_result": ' + json.dumps(head)[:-1] + ', "data": {"columns": ' + json.dumps(columns)).encode()
    yield b', "rows": ['

    cached = _LARGE_ROWS.get(rows)
    if cached is not None:
        for chunk in cached:
            yield chunk
    else:
        kept: list[bytes] = []
        batch = 2000
        for first in range(1, rows + 1, batch):
            last = min(rows, first + batch - 1)
            text = ", ".join(json.dumps(large_row(i)) for i in range(first, last + 1))
            chunk = ((", " if first > 1 else "") + text).encode()
            kept.append(chunk)
            yield chunk
            await asyncio.sleep(0)  # let other requests through between batches
        # Kept for the next read of the same size (a few sizes at a time), which then goes at the socket's
        # pace rather than at the pace of generating JSON in Python: benchmarks read one result many times.
        while len(_LARGE_ROWS) >= _LARGE_SIZES_KEPT:
            del _LARGE_ROWS[next(iter(_LARGE_ROWS))]
        _LARGE_ROWS[rows] = kept
    tail = {"data_source_id": 1, "runtime": 0.0, "retrieved_at": "2024-01-01T00:00:00.000Z"}
    yield ("]}, " + json.dumps(tail)[1:] + "}").encode()


async def _send_large(send: Send, rows: int, path: str) -> None:
    # Generated batch by batch and sent chunked, so a first read starts at once.
    digits = re.findall(r"\d+", path)
    result_id = int(digits[-1]) if digits else 0
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    async for chunk in _large_chunks(rows, result_id):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
