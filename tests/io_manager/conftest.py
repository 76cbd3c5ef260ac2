"""Fixtures for the Parquet IO manager tests: a local folder, and an S3 endpoint (moto) on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    return tmp_path / "parquet"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def bucket(moto_endpoint: str, aws_env: None) -> str:
    import boto3

    name = f"iwatch-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def options_for(endpoint: str) -> dict[str, Any]:
    """storage_options for s3fs against a local endpoint; one attempt per request keeps failures fast."""
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}},
    }


@pytest.fixture
def s3_options(moto_endpoint: str, aws_env: None) -> dict[str, Any]:
    return options_for(moto_endpoint)


@pytest.fixture
def s3_options_for(aws_env: None) -> Callable[[str], dict[str, Any]]:
    return options_for


class CuttingProxy:
    """A TCP proxy that, once armed, closes each connection after forwarding `limit` bytes upstream."""

    def __init__(self, upstream_port: int, limit: int) -> None:
        self.upstream_port = upstream_port
        self.limit = limit
        self.armed = threading.Event()
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True).start()

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        sent = 0
        try:
            while chunk := client.recv(65536):
                if self.armed.is_set() and sent + len(chunk) > self.limit:
                    upstream.sendall(chunk[: max(self.limit - sent, 0)])
                    self.cuts += 1
                    break
                upstream.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _pump_down(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


@pytest.fixture
def cutting_proxy(moto_endpoint: str) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(int(moto_endpoint.rsplit(":", 1)[1]), limit=32 * 1024)
    try:
        yield proxy
    finally:
        proxy.close()
