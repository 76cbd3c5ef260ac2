"""IWatchClient against the local server over HTTP: endpoints, keys, errors, retries and secrets."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dagster_iwatch import _transport
from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import (
    APIError,
    AuthError,
    ConfigError,
    ConflictError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    ResultTooLargeError,
    TransportError,
)
from dagster_iwatch.local import LocalServer
from dagster_iwatch.types import JobStatus, MultiValuesOptions, Parameter


@pytest.fixture
def client(server: LocalServer) -> Iterator[IWatchClient]:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02, backoff_factor=0.01) as c:
        yield c


def count(server: LocalServer, method: str, prefix: str) -> int:
    return sum(1 for m, path in server.requests_seen if m == method and path.startswith(prefix))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Configuration


@pytest.mark.parametrize(
    "base_url",
    ["", "ftp://example.com", "http://", "example.com", "https://host:99999", "https://host/?api_key=x", 5],
)
def test_bad_base_url_is_a_config_error(base_url: object) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        IWatchClient(base_url, "k")  # type: ignore[arg-type]


def test_credentials_in_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as caught:
        IWatchClient("https://user:hunter2@example.com", "k")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": (1.0, -1.0)},
        {"timeout": "10"},
        {"job_timeout": 0},
        {"poll_interval": 0},
        {"poll_interval": 2.0, "max_poll_interval": 1.0},
        {"max_retries": -1},
        {"max_retries": True},
        {"backoff_factor": -1},
        {"max_result_bytes": 0},
        {"query_api_keys": {"x": "k"}},
        {"query_api_keys": {1: ""}},
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        IWatchClient("http://127.0.0.1:1", "k", **kwargs)  # type: ignore[arg-type]


def test_query_keys_mapped_the_wrong_way_round_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError, match="not a query id") as caught:
        IWatchClient("https://example.com", query_api_keys={"s3cr3t-query-key": "15"})
    assert "s3cr3t" not in str(caught.value)


def test_repr_and_query_url_show_the_base_url_only() -> None:
    client = IWatchClient("https://example.com/org/", "s3cr3t-key", query_api_keys={5: "q-key"})
    assert repr(client) == "IWatchClient(base_url='https://example.com/org')"
    assert client.query_url(5) == "https://example.com/org/queries/5"
    client.close()


def test_base_url_path_prefix_is_kept(server: LocalServer) -> None:
    with IWatchClient(server.url + "/org/", server.user_api_key, max_retries=0) as client:
        server.clear_requests_seen()
        with pytest.raises(NotFoundError):
            client.get_query(1)
    assert server.requests_seen == [("GET", "/org/api/queries/1")]


# Queries


def test_list_queries_walks_every_page(client: IWatchClient, server: LocalServer) -> None:
    everything = [q.id for q in client.list_queries(page_size=250)]
    assert set(range(1, 18)) <= set(everything)
    server.clear_requests_seen()
    paged = client.list_queries(page_size=4)
    assert server.requests_seen == []
    assert [q.id for q in paged] == everything
    assert count(server, "GET", "/api/queries") == -(-len(everything) // 4)


def test_list_queries_filters(client: IWatchClient) -> None:
    assert {q.id for q in client.list_queries(tags=["param", "enum"])} == {7, 8}
    assert 15 in {q.id for q in client.list_queries(q="Daily prices")}
    assert list(client.list_queries(tags=["no-such-tag"])) == []
    names = [q.name for q in client.list_queries(order="name", page_size=250)]
    assert names == sorted(names, key=str.lower) or names == sorted(names)


def test_list_queries_checks_page_size_before_sending(client: IWatchClient, server: LocalServer) -> None:
    server.clear_requests_seen()
    with pytest.raises(ConfigError, match="page_size"):
        client.list_queries(page_size=251)
    with pytest.raises(ConfigError, match="tags"):
        client.list_queries(tags="param")
    assert server.requests_seen == []


def test_get_query_parses_parameters(client: IWatchClient, server: LocalServer) -> None:
    multi = client.get_query(8)
    (tokens,) = multi.parameters
    assert tokens.type == "enum"
    assert tokens.enum_options == ("ETH", "USDC", "WBTC", "DAI", "LINK")
    assert tokens.multi_values == MultiValuesOptions(prefix="'", suffix="'", separator=",")
    assert tokens.value == ["ETH", "DAI"]
    listed = client.get_query(9)
    assert listed.parameters[0].query_id == 12
    assert client.get_query(3).is_safe is False
    plain = client.get_query(1)
    assert plain.parameters == ()
    assert plain.api_key == server.query_api_key(1)
    assert server.query_api_key(1) not in repr(plain)
    assert plain.created_at is not None
    assert plain.created_at.tzinfo is not None
    assert plain.owner_email == "admin@localhost"


def test_the_queries_list_carries_each_querys_latest_runtime(client: IWatchClient) -> None:
    ran = client.execute(12)
    (listed,) = [q for q in client.list_queries() if q.id == 12]
    assert listed.runtime is not None
    assert listed.runtime >= 0
    assert listed.retrieved_at == ran.retrieved_at


def test_get_missing_query_is_not_found(client: IWatchClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_query(999999)
    assert caught.value.status == 404
    assert caught.value.path == "/api/queries/999999"


def test_create_update_archive_query(client: IWatchClient) -> None:
    name = f"test {uuid.uuid4().hex[:8]}"
    created = client.create_query(
        name=name,
        query="select id, token from transfers where token = '{{ token }}' limit {{ n }}",
        data_source_id=1,
        description="made by a test",
        parameters=[
            Parameter("token", "enum", title="Token", value="ETH", enum_options=("ETH", "DAI")),
            {"name": "n", "title": "N", "type": "number", "value": 3},
        ],
        tags=["made-by-test"],
        options={"apply_auto_limit": False},
    )
    assert created.name == name
    assert [p.name for p in created.parameters] == ["token", "n"]
    assert created.parameters[0].enum_options == ("ETH", "DAI")
    assert created.raw["options"]["apply_auto_limit"] is False
    assert created.is_draft

    renamed = client.update_query(created.id, name=name + " renamed", is_draft=False, version=created.version)
    assert renamed.name == name + " renamed"
    assert not renamed.is_draft
    # Upstream keeps a query's version through edits: only a version it never had is a conflict.
    assert renamed.version == created.version
    with pytest.raises(ConflictError) as caught:
        client.update_query(created.id, name="stale", version=(created.version or 0) + 100)
    assert caught.value.status == 409

    reparam = client.update_query(
        created.id,
        parameters=[Parameter("token", "enum", value="DAI", enum_options=("DAI",)), Parameter("n", "number", value=2)],
    )
    assert reparam.parameter("token") is not None
    assert reparam.raw["options"]["apply_auto_limit"] is False

    result = client.execute(created.id)
    assert [r["token"] for r in result.rows] == ["DAI", "DAI"]

    client.archive_query(created.id)
    assert client.get_query(created.id).is_archived


def test_update_query_refuses_unknown_fields(client: IWatchClient, server: LocalServer) -> None:
    server.clear_requests_seen()
    with pytest.raises(ConfigError, match="unknown fields"):
        client.update_query(1, nmae="typo")
    assert server.requests_seen == []


# Results


def test_cached_result_query_result_and_downloads(client: IWatchClient) -> None:
    executed = client.execute(15)
    assert executed.id is not None
    cached = client.get_cached_result(15)
    assert cached.row_count == executed.row_count == 91 * 5
    by_id = client.get_query_result(executed.id)
    assert by_id.id == executed.id
    assert [c.name for c in by_id.columns] == ["day", "token", "price"]
    assert by_id.retrieved_at is not None
    csv = client.download_query_result(executed.id)
    assert csv.splitlines()[0].decode().strip() == "day,token,price"
    assert len(csv.splitlines()) == 91 * 5 + 1
    as_json = client.download_query_result(executed.id, "json")
    assert b'"rows"' in as_json
    with pytest.raises(ConfigError, match="format"):
        client.download_query_result(executed.id, "pdf")  # type: ignore[arg-type]


def test_never_executed_query_has_no_cached_result(client: IWatchClient) -> None:
    created = client.create_query(name="never run", query="select 1 as one", data_source_id=1)
    with pytest.raises(NotFoundError):
        client.get_cached_result(created.id)


def test_missing_result_is_not_found(client: IWatchClient) -> None:
    with pytest.raises(NotFoundError):
        client.get_query_result(999999)


def test_result_size_guard(server: LocalServer) -> None:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02, max_result_bytes=2000) as client:
        with pytest.raises(ResultTooLargeError) as caught:
            client.execute(1)
        assert caught.value.limit == 2000
        small = client.execute(4, {"day": "2024-01-02"})
    assert small.row_count == 5


# Dashboards, on both flavors


@pytest.mark.parametrize("flavor", ["inverse-watch", "redash"])
def test_dashboards(flavor: str, server: LocalServer, redash_server: LocalServer) -> None:
    srv = server if flavor == "inverse-watch" else redash_server
    with IWatchClient(srv.url, srv.user_api_key) as client:
        by_slug = client.get_dashboard("chain-overview")
        by_id = client.get_dashboard(by_slug.id)
        assert by_slug.id == by_id.id == 1
        assert by_slug.slug == by_id.slug == "chain-overview"
        assert by_slug.query_ids == (15, 5)
        assert any(w.visualization_id is None and w.text for w in by_slug.widgets)
        assert "chain-overview" in {d.slug for d in client.list_dashboards(page_size=1)}

        made = client.create_dashboard(f"Board {uuid.uuid4().hex[:6]}")
        assert made.slug
        everything = [d.id for d in client.list_dashboards(page_size=250)]
        assert made.id in everything
        assert len(everything) >= 2
        srv.clear_requests_seen()
        assert [d.id for d in client.list_dashboards(page_size=1)] == everything
        assert count(srv, "GET", "/api/dashboards") == len(everything)
        edited = client.update_dashboard(made.id, tags=("t1",), is_draft=False, version=made.version)
        assert edited.tags == ("t1",)
        assert made.id in {d.id for d in client.list_dashboards(tags=["t1"])}
        client.archive_dashboard(made.slug)
        assert client.get_dashboard(made.id).is_archived

        other = client.create_dashboard(f"Board {uuid.uuid4().hex[:6]}")
        client.archive_dashboard(other.id)
        assert client.get_dashboard(other.slug).is_archived

        with pytest.raises(NotFoundError):
            client.get_dashboard("no-such-board")
        with pytest.raises(NotFoundError):
            client.get_dashboard(999999)


# Keys


def test_user_key_is_required_for_user_calls(server: LocalServer) -> None:
    with IWatchClient(server.url, query_api_keys={1: server.query_api_key(1)}) as client:
        server.clear_requests_seen()
        for call in (
            lambda: client.list_queries(),
            lambda: client.list_dashboards(),
            lambda: client.get_dashboard("chain-overview"),
            lambda: client.get_query(2),
            lambda: client.get_job("abc"),
            lambda: client.get_query_result(1),
            lambda: client.create_dashboard("x"),
            lambda: client.archive_query(1),
        ):
            with pytest.raises(ConfigError, match="API key"):
                call()
    assert server.requests_seen == []


@pytest.mark.parametrize("flavor", ["inverse-watch", "redash"])
def test_query_key_uses_query_scoped_routes(flavor: str, server: LocalServer, redash_server: LocalServer) -> None:
    srv = server if flavor == "inverse-watch" else redash_server
    keys = {2: srv.query_api_key(2), 3: srv.query_api_key(3)}
    with IWatchClient(srv.url, query_api_keys=keys, poll_interval=0.02) as client:
        srv.clear_requests_seen()
        result = client.execute(2, {"min_amount": 2500})
        assert result.job_id is not None
        assert result.rows
        assert all(r["amount"] >= 2500 for r in result.rows)
        seen = list(srv.requests_seen)
        assert ("GET", "/api/queries/2") in seen
        assert ("POST", "/api/queries/2/results") in seen
        assert any(path.startswith(f"/api/queries/2/jobs/{result.job_id}") for _, path in seen)
        assert ("GET", f"/api/queries/2/results/{result.id}.json") in seen
        assert not any(path.startswith(("/api/jobs/", "/api/query_results/")) for _, path in seen)
        # A run with other values than the saved ones is not readable by id with a query key, as upstream.
        with pytest.raises(NotFoundError, match="of query 2 does not exist or is not visible"):
            client.get_query_result(result.id or 0, query_id=2)
        defaults = client.execute(2)
        assert client.get_query_result(defaults.id or 0, query_id=2).row_count == defaults.row_count
        assert client.download_query_result(defaults.id or 0, query_id=2).startswith(b"id,")

        srv.clear_requests_seen()
        with pytest.raises(ConfigError, match="text parameters"):
            client.execute(3, {"token": "ETH"})
        assert srv.requests_seen == [("GET", "/api/queries/3")]


def test_query_key_reads_a_result_the_scoped_route_refuses_from_the_cache(server: LocalServer) -> None:
    # Upstream Redash refuses a query key a result whose parameters differ from the query's saved values.
    refusal = {"message": "No cached result found for this query."}
    with IWatchClient(server.url, query_api_keys={2: server.query_api_key(2)}, poll_interval=0.02) as client:
        query = client.get_query(2)
        server.clear_requests_seen()
        server.inject_fault(status=404, method="GET", path_prefix="/api/queries/2/results/", times=1, body=refusal)
        result = client.execute(2, {"min_amount": 2700}, query=query)
    assert result.rows
    assert all(r["amount"] >= 2700 for r in result.rows)
    assert result.job_id is not None
    assert result.id is not None
    assert ("GET", f"/api/queries/2/results/{result.id}.json") in server.requests_seen
    assert count(server, "POST", "/api/queries/2/results") == 2
    assert server.job_status(result.job_id) == JobStatus.SUCCESS


def test_query_with_text_parameters_runs_with_the_user_key_when_both_are_given(server: LocalServer) -> None:
    keys = {3: server.query_api_key(3)}
    with IWatchClient(server.url, server.user_api_key, query_api_keys=keys, poll_interval=0.02) as client:
        server.clear_requests_seen()
        result = client.execute(3, {"token": "WBTC"})
    assert result.rows
    assert {r["token"] for r in result.rows} == {"WBTC"}
    # The server refuses query 3's own key this run (it has a text parameter): it ran with the user key.
    with IWatchClient(server.url, query_api_keys=keys) as query_key_only, pytest.raises(ConfigError):
        query_key_only.execute(3, {"token": "WBTC"})


@pytest.mark.parametrize("flavor", ["inverse-watch", "redash"])
def test_user_key_polls_and_reads_through_the_query_routes(
    flavor: str, server: LocalServer, redash_server: LocalServer
) -> None:
    srv = server if flavor == "inverse-watch" else redash_server
    with IWatchClient(srv.url, srv.user_api_key, poll_interval=0.02) as client:
        srv.clear_requests_seen()
        result = client.execute(2, {"min_amount": 2600})
    seen = list(srv.requests_seen)
    assert ("GET", f"/api/queries/2/jobs/{result.job_id}") in seen
    assert ("GET", f"/api/queries/2/results/{result.id}.json") in seen
    assert not any(path.startswith(("/api/jobs/", "/api/query_results/")) for _, path in seen)


def test_wrong_key_is_an_auth_error_with_a_hint(server: LocalServer) -> None:
    secret = "wrong-" + uuid.uuid4().hex
    with IWatchClient(server.url, secret, query_api_keys={2: "bad-" + secret}) as client:
        with pytest.raises(AuthError) as user_call:
            client.list_queries().__next__()
        with pytest.raises(AuthError) as query_call:
            client.get_query(2)
    assert user_call.value.status == 404
    assert user_call.value.hint == "This call needs a user API key"
    assert query_call.value.hint == "This call needs the user key or query 2's API key"
    assert "query 2's API key" in str(query_call.value)
    assert "the server rejected the API key" in str(user_call.value)
    assert str(user_call.value).endswith("This call needs a user API key")
    assert user_call.value.server_message == "Couldn't find resource. Please login and try again."


def test_a_netrc_entry_for_the_host_does_not_replace_the_key(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with IWatchClient(server.url, server.user_api_key) as client:
        assert client.get_query(1).id == 1


def test_query_key_of_another_query_is_refused(server: LocalServer) -> None:
    with IWatchClient(server.url, query_api_keys={2: server.query_api_key(1)}) as client, pytest.raises(AuthError):
        client.get_query(2)


def test_secrets_never_leak(server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = "leak-" + uuid.uuid4().hex
    query_secret = "qleak-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with IWatchClient(
        server.url, secret, query_api_keys={7: query_secret}, backoff_factor=0.01, max_retries=1
    ) as client:
        assert secret not in repr(client)
        assert query_secret not in repr(client)
        for call in (
            lambda: next(client.list_queries()),
            lambda: client.execute(7, {"token": "ETH"}),
            lambda: client.get_query_result(1),
            lambda: client.get_dashboard("chain-overview"),
        ):
            with pytest.raises(AuthError) as caught:
                call()
            errors.append(caught.value)
        server.inject_fault(status=500, method="GET", path_prefix="/api/queries/7", times=1, body={"message": secret})
        with pytest.raises(APIError) as caught_500:
            client.get_query(7)
        errors.append(caught_500.value)
    with IWatchClient(f"http://127.0.0.1:{free_port()}", secret, max_retries=1, backoff_factor=0.01) as down:
        with pytest.raises(TransportError) as caught_down:
            down.get_query(1)
        errors.append(caught_down.value)
    for error in errors:
        text = f"{error} {error!r} {error.args} {getattr(error, 'server_message', '')}"
        assert secret not in text
        assert query_secret not in text
    assert caplog.records
    assert secret not in caplog.text
    assert query_secret not in caplog.text


# Errors, retries and transport


def test_get_is_retried_on_503_and_429(client: IWatchClient, server: LocalServer) -> None:
    server.inject_fault(status=503, method="GET", path_prefix="/api/queries/1", times=2)
    server.clear_requests_seen()
    assert client.get_query(1).id == 1
    assert count(server, "GET", "/api/queries/1") == 3
    server.inject_fault(status=429, method="GET", path_prefix="/api/queries/1", times=2, retry_after=0)
    server.clear_requests_seen()
    assert client.get_query(1).id == 1
    assert count(server, "GET", "/api/queries/1") == 3


def test_retry_after_is_honoured(client: IWatchClient, server: LocalServer) -> None:
    server.inject_fault(status=429, method="GET", path_prefix="/api/queries/1", times=1, retry_after=1)
    started = time.monotonic()
    assert client.get_query(1).id == 1
    # The client's own backoff is 0.01 s: only the header explains a wait of a second.
    assert time.monotonic() - started >= 0.9


def test_retry_after_is_capped(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transport, "_RETRY_AFTER_MAX", 0.3)
    with IWatchClient(server.url, server.user_api_key, backoff_factor=0.01) as client:
        server.inject_fault(status=503, method="GET", path_prefix="/api/queries/1", times=1, retry_after=3600)
        started = time.monotonic()
        assert client.get_query(1).id == 1
    # Without the cap the client would sleep for the hour the server asked for.
    assert 0.25 <= time.monotonic() - started < 60


def test_rate_limit_after_retries(client: IWatchClient, server: LocalServer) -> None:
    server.inject_fault(status=429, method="GET", path_prefix="/api/queries/1", times=10, retry_after=0)
    server.clear_requests_seen()
    with pytest.raises(RateLimitError) as caught:
        client.get_query(1)
    assert caught.value.retry_after == 0
    assert count(server, "GET", "/api/queries/1") == 4


def test_execute_post_is_never_resent(client: IWatchClient, server: LocalServer) -> None:
    query = client.get_query(15)
    server.inject_fault(status=503, method="POST", path_prefix="/api/queries/15/results", times=1)
    server.clear_requests_seen()
    with pytest.raises(APIError) as caught:
        client.execute(15, query=query)
    assert caught.value.status == 503
    assert caught.value.method == "POST"
    assert count(server, "POST", "/api/queries/15/results") == 1


def test_server_message_is_kept(client: IWatchClient, server: LocalServer) -> None:
    server.clear_requests_seen()
    with pytest.raises(APIError) as caught:
        client.update_query(999999, name="x")
    assert isinstance(caught.value, NotFoundError)
    # A GET answered 500 is tried 1 + max_retries times before the error is raised.
    server.inject_fault(status=500, method="GET", path_prefix="/api/queries/1", times=4, body={"message": "boom"})
    with pytest.raises(APIError) as boom:
        client.get_query(1)
    assert boom.value.status == 500
    assert boom.value.server_message == "boom"


@pytest.mark.parametrize("body", ["<html>not json</html>", {"unexpected": "shape"}])
def test_malformed_answers_are_protocol_errors(client: IWatchClient, server: LocalServer, body: object) -> None:
    server.inject_fault(status=200, method="GET", path_prefix="/api/queries/1", times=1, body=body)
    with pytest.raises(ProtocolError):
        client.get_query(1)


def test_connection_refused_is_a_transport_error() -> None:
    client = IWatchClient(f"http://127.0.0.1:{free_port()}", "k", max_retries=2, backoff_factor=0.01)
    with client, pytest.raises(TransportError, match="could not get an answer"):
        client.get_query(1)


def test_read_timeout_is_a_transport_error(server: LocalServer) -> None:
    with IWatchClient(server.url, server.user_api_key, timeout=(2.0, 0.2), max_retries=0) as client:
        server.inject_fault(status=None, method="GET", path_prefix="/api/queries/1", times=1, delay=1.0)
        with pytest.raises(TransportError):
            client.get_query(1)


def test_nan_tokens_and_huge_integers_parse_like_the_stdlib(client: IWatchClient, server: LocalServer) -> None:
    body = (
        '{"query_result": {"id": 77, "query_hash": "h", "query": "q", "data_source_id": 1, "runtime": 0.1,'
        ' "retrieved_at": "2024-01-01T00:00:00Z", "data": {"columns": [{"name": "x", "type": "float"},'
        ' {"name": "n", "type": "integer"}], "rows": [{"x": NaN, "n": 123456789012345678901234567890}]}}}'
    )
    server.inject_fault(status=200, method="GET", path_prefix="/api/query_results/77", times=1, body=body)
    result = client.get_query_result(77)
    (row,) = result.rows
    assert row["x"] != row["x"]
    assert row["n"] == 123456789012345678901234567890
    assert result.to_arrow().column("n").to_pylist() == [Decimal(123456789012345678901234567890)]


class EndlessResult(BaseHTTPRequestHandler):
    """Streams a result body that never ends, with no Content-Length (chunked)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = b'{"query_result": {"data": {"rows": ['
        chunk = b'{"x": 1},' * 1000
        try:
            self.wfile.write(f"{len(head):x}\r\n".encode() + head + b"\r\n")
            while True:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            return


def test_size_guard_stops_reading_an_endless_body() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), EndlessResult)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        client = IWatchClient(url, "k", max_result_bytes=50_000, max_retries=0, timeout=5)
        with client, pytest.raises(ResultTooLargeError) as caught:
            client.get_query_result(1)
        assert caught.value.limit == 50_000
        assert caught.value.size is None
    finally:
        httpd.shutdown()
        httpd.server_close()
