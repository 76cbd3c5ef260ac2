"""The client under keys of either kind, bad keys, deadlines, retries, TLS, threads and malformed answers."""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest
import trustme
import urllib3

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import (
    APIError,
    AuthError,
    ConfigError,
    IWatchError,
    IWatchSecurityWarning,
    JobTimeoutError,
    NotFoundError,
    ProtocolError,
    TransportError,
)
from dagster_iwatch.local import LocalServer
from dagster_iwatch.resource import IWatchResource
from dagster_iwatch.run_handler import CANCEL_BUDGET_SECONDS

from .proxy import Proxy

CANCELLED = (4, 5)


@pytest.fixture
def proxy(server: LocalServer) -> Iterator[Proxy]:
    with Proxy(server.url) as p:
        yield p


def job_polls(proxy: Proxy, query_id: int) -> list[str]:
    return [p for m, p in proxy.seen if m == "GET" and p.startswith(f"/api/queries/{query_id}/jobs/")]


# Either kind of key as api_key


@pytest.mark.parametrize("flavor", ["inverse-watch", "redash"])
def test_a_query_key_given_as_api_key_runs_its_query(
    flavor: str, server: LocalServer, redash_server: LocalServer
) -> None:
    srv = server if flavor == "inverse-watch" else redash_server
    srv.clear_requests_seen()
    with IWatchClient(srv.url, srv.query_api_key(2), poll_interval=0.02) as client:
        result = client.execute(2, {"min_amount": 2600})
        defaults = client.execute(2)
    assert defaults.rows
    assert result.rows
    assert all(row["amount"] >= 2600 for row in result.rows)
    assert result.job_id is not None
    # Upstream refuses a query key on /api/jobs and /api/query_results: a run never goes there. Upstream also
    # refuses it the result of a run with other values than the saved ones: that one is read back from the cache.
    assert sum(1 for m, p in srv.requests_seen if (m, p) == ("POST", "/api/queries/2/results")) == 3
    assert not any(path.startswith(("/api/jobs/", "/api/query_results/")) for _, path in srv.requests_seen)


# Keys


def test_a_key_read_from_a_file_with_its_newline_works(server: LocalServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(server.user_api_key + "\n")
    with IWatchClient(server.url, key_file.read_text()) as client:
        assert client.get_query(1).id == 1


@pytest.mark.parametrize("bad", ["kéy-" + "x" * 20, "two words", "line\nbreak", "nul\x00byte", "tab\tkey"])
def test_a_key_that_cannot_go_into_a_header_is_refused_without_echo(bad: str) -> None:
    for build in (
        lambda: IWatchClient("http://127.0.0.1:9", bad),
        lambda: IWatchClient("http://127.0.0.1:9", query_api_keys={1: bad}),
        lambda: IWatchResource(base_url="http://127.0.0.1:9", api_key=bad),
    ):
        with pytest.raises(ConfigError, match="cannot be sent in an HTTP header") as caught:
            build()
        assert bad.strip() not in str(caught.value)


def test_a_literal_key_in_the_resource_warns_once_and_an_env_var_never(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_iwatch import resource as resource_module

    monkeypatch.setattr(resource_module, "_WARNED", set())
    with pytest.warns(IWatchSecurityWarning, match=r'dg\.EnvVar\("IWATCH_API_KEY"\)'):
        IWatchResource(base_url=server.url, api_key=server.user_api_key)
    monkeypatch.setattr(resource_module, "_WARNED", set())
    monkeypatch.setenv("IWATCH_TEST_KEY", server.user_api_key)

    @dg.asset
    def one(iwatch: IWatchResource) -> int:
        with iwatch.get_client() as client:
            return client.get_query(1).id

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        resource = IWatchResource(base_url=server.url, api_key=dg.EnvVar("IWATCH_TEST_KEY"))
        assert dg.materialize([one], resources={"iwatch": resource}).output_for_node("one") == 1
    assert [w for w in seen if issubclass(w.category, IWatchSecurityWarning)] == []


def test_every_form_of_a_key_in_a_server_echo_is_redacted(server: LocalServer) -> None:
    secret = f"scan/{uuid.uuid4().hex}+key="
    echo = f"rejected Key {secret} (as {quote(secret, safe='')} or {quote_plus(secret)}, api_key={secret})"
    with LocalServer(server.data_dir.parent / f"redact-{uuid.uuid4().hex}", user_api_key=secret) as srv:
        srv.inject_fault(status=400, method="GET", path_prefix="/api/queries/1", times=1, body={"message": echo})
        with IWatchClient(srv.url, secret) as client, pytest.raises(IWatchError) as caught:
            client.get_query(1)
    text = f"{caught.value} {caught.value!r} {caught.value.args} {vars(caught.value)}"
    for form in (secret, quote(secret, safe=""), quote_plus(secret)):
        assert form not in text
    assert "***" in text


# Deadlines


def test_timeout_is_a_deadline_when_polls_hang_and_the_cancel_is_confirmed(server: LocalServer, proxy: Proxy) -> None:
    proxy.plan("GET", "/api/queries/11/jobs/", "hang", times=100)
    started = time.monotonic()
    with (
        IWatchClient(proxy.url, server.user_api_key, poll_interval=0.05) as client,
        pytest.raises(JobTimeoutError) as c,
    ):
        client.execute(11, {"seconds": 30}, timeout=2)
    elapsed = time.monotonic() - started
    assert c.value.cancel_confirmed
    assert "confirmed its cancel" in str(c.value)
    # The hung poll is cut at the deadline; the cancel has its own short budget.
    assert elapsed < 2 + CANCEL_BUDGET_SECONDS
    job_id = c.value.job_id
    assert job_id is not None
    assert server.wait_for_job(job_id, CANCELLED, timeout=5) in CANCELLED


def test_a_cancel_that_fails_is_never_reported_as_done(server: LocalServer, proxy: Proxy) -> None:
    proxy.plan("GET", "/api/queries/11/jobs/", "hang", times=100)
    proxy.plan("DELETE", "/api/", "status", times=100, status=500)
    with (
        IWatchClient(proxy.url, server.user_api_key, poll_interval=0.05) as client,
        pytest.raises(JobTimeoutError) as c,
    ):
        client.execute(11, {"seconds": 3}, timeout=1)
    assert not c.value.cancel_confirmed
    assert "may still be running" in str(c.value)
    assert "was cancelled" not in str(c.value)


# Retries


def test_a_result_body_cut_off_by_a_reset_is_read_again(server: LocalServer, proxy: Proxy) -> None:
    proxy.plan("GET", "/api/queries/12/results/", "reset", times=1)
    with IWatchClient(proxy.url, server.user_api_key, poll_interval=0.02, backoff_factor=0.01) as client:
        result = client.execute(12)
    assert result.row_count == 5
    assert proxy.count("GET", "/api/queries/12/results/") == 2


def test_a_poll_answered_500_is_retried_and_the_healthy_job_kept(server: LocalServer, proxy: Proxy) -> None:
    proxy.plan("GET", "/api/queries/11/jobs/", "status", times=1, status=500)
    with IWatchClient(proxy.url, server.user_api_key, poll_interval=0.02, backoff_factor=0.01) as client:
        result = client.execute(11, {"seconds": 1})
    assert result.rows == [{"slept": 1}]
    assert proxy.count("DELETE", "/api/") == 0


def test_a_run_request_cut_off_mid_answer_is_never_sent_again(server: LocalServer, proxy: Proxy) -> None:
    proxy.plan("POST", "/api/queries/12/results", "reset", times=1)
    with IWatchClient(proxy.url, server.user_api_key, backoff_factor=0.01) as client, pytest.raises(TransportError):
        client.execute(12)
    assert proxy.count("POST", "/api/queries/12/results") == 1


def test_retries_stop_at_the_deadline(server: LocalServer, proxy: Proxy) -> None:
    proxy.plan("GET", "/api/queries/1", "status", times=100, status=503)
    started = time.monotonic()
    client = IWatchClient(proxy.url, server.user_api_key, max_retries=50, backoff_factor=0.2)
    with client, pytest.raises(APIError) as caught:
        client.execute(1, timeout=1.5)
    # Fifty retries with that backoff would take minutes: the last answer is raised before the deadline.
    assert caught.value.status == 503
    assert time.monotonic() - started < 1.5
    assert 3 <= proxy.count("GET", "/api/queries/1") < 50


# TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_proxy(server: LocalServer, ca: trustme.CA) -> Iterator[Proxy]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    with Proxy(server.url, tls_context=context) as p:
        yield p


def test_an_unknown_certificate_is_refused_by_default(server: LocalServer, tls_proxy: Proxy) -> None:
    client = IWatchClient(tls_proxy.url, server.user_api_key, max_retries=0)
    with client, pytest.raises(TransportError, match=r"SSL|certificate"):
        client.get_query(1)


def test_a_ca_bundle_verifies_whatever_the_environment_says(
    server: LocalServer, tls_proxy: Proxy, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other))
    with IWatchClient(tls_proxy.url, server.user_api_key, verify=str(bundle)) as client:
        assert client.get_query(1).id == 1

    @dg.asset
    def one(iwatch: IWatchResource) -> int:
        with iwatch.get_client() as client:
            return client.get_query(1).id

    monkeypatch.setenv("IWATCH_TEST_KEY", server.user_api_key)
    resource = IWatchResource(base_url=tls_proxy.url, api_key=dg.EnvVar("IWATCH_TEST_KEY"), ca_bundle=str(bundle))
    assert dg.materialize([one], resources={"iwatch": resource}).output_for_node("one") == 1


def test_verification_off_warns_once_and_is_not_overridden(
    server: LocalServer, tls_proxy: Proxy, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with IWatchClient(tls_proxy.url, server.user_api_key, verify=False) as client:
            for _ in range(3):
                assert client.get_query(1).id == 1
    assert [issubclass(w.category, IWatchSecurityWarning) for w in seen] == [True]
    assert not any(issubclass(w.category, urllib3.exceptions.InsecureRequestWarning) for w in seen)


def test_a_key_over_plain_http_to_another_host_warns() -> None:
    with pytest.warns(IWatchSecurityWarning, match="unencrypted"):
        IWatchClient("http://iwatch.example.com", "some-key").close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IWatchClient("http://127.0.0.1:5055", "some-key").close()
        IWatchClient("https://iwatch.example.com", "some-key").close()


def test_a_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA bundle"):
        IWatchClient("https://iwatch.example.com", "k", verify=str(tmp_path / "missing.pem"))


# Threads


def test_sixteen_threads_share_one_client_without_dropping_connections(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="urllib3")
    errors: list[BaseException] = []
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
        barrier = threading.Barrier(16)

        def work() -> None:
            try:
                barrier.wait()
                for _ in range(3):
                    assert client.get_query(1).id == 1
                assert client.execute(12, max_age=3600).row_count == 5
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert "Connection pool is full" not in caplog.text


# Settings name the right field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_poll_interval": 0}, "max_poll_interval"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"job_timeout": float("nan")}, "job_timeout"),
        ({"timeout": (0, 5)}, "connect"),
        ({"timeout": (5, 0)}, "read"),
        ({"pool_size": 0}, "pool_size"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_a_bad_setting_names_its_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        IWatchClient("http://127.0.0.1:9", "k", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [("request_timeout", 0), ("connect_timeout", -1), ("job_timeout", 0)])
def test_a_bad_resource_setting_names_its_field(field: str, value: float) -> None:
    resource = IWatchResource(base_url="http://127.0.0.1:9", **{field: value})
    with pytest.raises(ConfigError, match=field):
        resource.get_client()


# Malformed results

COLUMN = {"name": "a", "friendly_name": "a", "type": "integer"}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"columns": [{**COLUMN, "type": 5}], "rows": []}, "type"),
        ({"columns": [{**COLUMN, "type": ["integer"]}], "rows": []}, "type"),
        ({"columns": [{**COLUMN, "friendly_name": 7}], "rows": []}, "friendly_name"),
        ({"columns": [COLUMN, COLUMN], "rows": [{"a": 1}]}, "duplicate column names"),
        ({"columns": [COLUMN], "rows": [{"a": 1}, {"a": 2, "b": 3}]}, "not among the result's columns.*`b`"),
        ({"columns": [COLUMN], "rows": [[1]]}, "rows"),
    ],
)
def test_a_malformed_result_is_a_protocol_error_naming_the_call(
    server: LocalServer, data: dict[str, object], problem: str
) -> None:
    body = {"query_result": {"id": 1, "query_hash": "h", "data": data, "retrieved_at": "2024-01-01T00:00:00Z"}}
    server.inject_fault(status=200, method="GET", path_prefix="/api/queries/12/results/", times=1, body=body)
    client = IWatchClient(server.url, server.user_api_key, poll_interval=0.02)
    with client, pytest.raises(ProtocolError, match=problem) as caught:
        client.execute(12)
    assert "GET /api/queries/12/results/" in str(caught.value)


def test_a_query_keys_cache_hit_keeps_what_the_run_knows(server: LocalServer) -> None:
    with IWatchClient(server.url, server.user_api_key, poll_interval=0.02) as client:
        fresh = client.execute(1)
    with IWatchClient(server.url, server.query_api_key(1)) as client:
        cached = client.execute(1, max_age=3600)
    assert cached.from_cache
    assert cached.row_count == fresh.row_count
    # A query has no parameters here, so its own hash is the run's hash even where the server leaves it out.
    assert cached.query_hash == fresh.query_hash


def test_auth_errors_say_what_happened(server: LocalServer) -> None:
    with IWatchClient(server.url, "wrong-" + uuid.uuid4().hex) as client, pytest.raises(AuthError) as caught:
        client.get_query(1)
    assert "the server rejected the API key" in str(caught.value)
    with IWatchClient(server.url, server.user_api_key) as client, pytest.raises(NotFoundError) as missing:
        client.get_query(99999)
    assert str(missing.value).startswith("query 99999 does not exist or is not visible to this key")
