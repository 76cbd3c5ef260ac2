"""The CLI run in-process with click's CliRunner against the session's local server."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result

from dagster_iwatch.cli import main
from dagster_iwatch.local import LocalServer


@dataclass
class Cli:
    """Invokes ``iwatch`` with the server's URL and a key in the environment; every result is checked for it."""

    server: LocalServer
    key: str

    def __call__(
        self, *args: str, key: str | None = None, env: Mapping[str, str | None] | None = None, stdin: str | None = None
    ) -> Result:
        used = self.key if key is None else key
        environment: dict[str, str | None] = {"IWATCH_URL": self.server.url, "IWATCH_API_KEY": used}
        environment |= env or {}
        result = CliRunner().invoke(main, list(args), env=environment, input=stdin, catch_exceptions=False)
        for secret in {used, self.server.user_api_key}:
            assert secret not in result.stdout
            assert secret not in result.stderr
        return result


@pytest.fixture
def cli(server: LocalServer) -> Cli:
    """``iwatch`` against the local server with its user key."""
    return Cli(server, server.user_api_key)


@pytest.fixture
def posts(server: LocalServer) -> Callable[[], list[str]]:
    """The paths of the run requests (POST) the server has received since the test began."""
    return lambda: [path for method, path in server.requests_seen if method == "POST"]
