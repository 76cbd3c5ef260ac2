"""Keys: user key everywhere, query keys only on their own query's routes, wrong or missing keys refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_iwatch.local import LocalServer

from .helpers import Api

LOGIN = {"message": "Couldn't find resource. Please login and try again."}
FORBIDDEN = {
    "message": "You don't have the permission to access the requested resource. It is either read-protected "
    "or not readable by the server."
}
UNSAFE = (
    "This query contains potentially unsafe parameters and cannot be executed on a shared dashboard or an "
    "embedded visualization."
)


@pytest.fixture
def q1(server: LocalServer) -> Api:
    return Api(server, key=server.query_api_key(1))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/queries"),
        ("GET", "/api/queries/1"),
        ("GET", "/api/queries/1/results"),
        ("POST", "/api/queries/1/results"),
        ("GET", "/api/query_results/1.csv"),
        ("GET", "/api/dashboards"),
        ("GET", "/api/jobs/x"),
    ],
)
@pytest.mark.parametrize("key", ["", "wrongwrongwrong"])
def test_missing_or_wrong_key(api: Api, method: str, path: str, key: str) -> None:
    r = api.request(method, path, key=key, headers={} if key else {"Authorization": ""})
    assert (r.status_code, r.json()) == (404, LOGIN)


def test_key_forms(api: Api) -> None:
    key = api.srv.user_api_key
    base = "/api/queries"
    assert api.get(base, key="", headers={"Authorization": f"Key {key}"}).status_code == 200
    assert api.get(base, key="", headers={"Authorization": key}).status_code == 200
    assert api.get(base, key="", params={"api_key": key}).status_code == 200
    assert api.get(base, key="", headers={"Authorization": f"Bearer {key}"}).json() == LOGIN


def test_query_key_allowed_routes(q1: Api, api: Api) -> None:
    job = api.execute(1)
    rid = job["query_result_id"]
    assert q1.get("/api/queries/1").json()["id"] == 1
    assert q1.get("/api/queries/1/results").status_code == 200
    r = q1.get("/api/queries/1/results.csv", key="", params={"api_key": q1.key})
    assert r.text.startswith("id,block_number")
    assert q1.get(f"/api/queries/1/results/{rid}.json").json()["query_result"]["id"] == rid
    cached = q1.post("/api/queries/1/results", json={"max_age": 86400}).json()
    assert set(cached["query_result"]) == {"data", "retrieved_at"}
    fresh = q1.post("/api/queries/1/results", json={"max_age": 0}).json()["job"]
    done = q1.wait_job(fresh["id"], path=f"/api/queries/1/jobs/{fresh['id']}")
    assert done["status"] == 3


def test_query_key_runs_safe_parameterized_query_through_scoped_routes(server: LocalServer) -> None:
    q2 = Api(server, key=server.query_api_key(2))
    job = q2.post("/api/queries/2/results", json={"parameters": {"min_amount": 100}, "max_age": 0}).json()["job"]
    done = q2.wait_job(job["id"], path=f"/api/queries/2/jobs/{job['id']}")
    r = q2.get(f"/api/queries/2/results/{done['query_result_id']}.json")
    assert r.json()["query_result"]["data"]["rows"][0]["amount"] >= 100


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/queries"),
        ("GET", "/api/queries/12"),
        ("GET", "/api/queries/12/results"),
        ("POST", "/api/queries/12/results"),
        ("GET", "/api/query_results/1"),
        ("GET", "/api/dashboards"),
        ("GET", "/api/dashboards/chain-overview"),
        ("POST", "/api/query_results"),
        ("GET", "/api/data_sources"),
    ],
)
def test_query_key_refused_elsewhere(q1: Api, method: str, path: str) -> None:
    r = q1.request(method, path, json={})
    assert (r.status_code, r.json()) == (404, LOGIN)


def test_query_key_refused_on_jobs_route_and_other_querys_route(q1: Api, api: Api) -> None:
    job = q1.post("/api/queries/1/results", json={"max_age": 0}).json()["job"]
    assert q1.get(f"/api/jobs/{job['id']}").json() == LOGIN
    assert q1.get(f"/api/queries/12/jobs/{job['id']}").json() == LOGIN
    q1.wait_job(job["id"], path=f"/api/queries/1/jobs/{job['id']}")


def test_query_key_follows_a_job_someone_else_started_for_the_same_sql(server: LocalServer, api: Api) -> None:
    # Redash scopes a query key by the query in the URL, not by who started the job; the same SQL shares a job.
    adhoc = api.post(
        "/api/query_results", json={"query": "select sleep(2.4) as slept", "data_source_id": 1, "max_age": 0}
    ).json()["job"]
    q11 = Api(server, key=server.query_api_key(11))
    job = q11.post("/api/queries/11/results", json={"parameters": {"seconds": 2.4}, "max_age": 0}).json()["job"]
    assert job["id"] == adhoc["id"]
    assert q11.get(f"/api/queries/11/jobs/{job['id']}").json()["job"]["id"] == job["id"]
    assert q11.get(f"/api/jobs/{job['id']}").json() == LOGIN
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 200
    assert q11.get(f"/api/queries/11/jobs/{job['id']}").json()["job"]["status"] == 5


def test_query_key_cannot_edit_or_archive(q1: Api) -> None:
    r = q1.post("/api/queries/1", json={"name": "All transfers"})
    assert (r.status_code, r.json()) == (403, FORBIDDEN)
    assert q1.delete("/api/queries/1").status_code == 403


def test_query_key_cannot_run_unsafe_query(server: LocalServer) -> None:
    q3 = Api(server, key=server.query_api_key(3))
    r = q3.post("/api/queries/3/results", json={"parameters": {"token": "ETH"}, "max_age": 0})
    assert (r.status_code, r.json()) == (403, {"job": {"status": 4, "error": UNSAFE}})


def test_user_key_is_stable_and_can_be_given(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with LocalServer(data) as srv:
        first = srv.user_api_key
        q1 = srv.query_api_key(1)
    with LocalServer(data) as srv:
        assert srv.user_api_key == first
        assert srv.query_api_key(1) == q1
    with LocalServer(data, user_api_key="given-key") as srv:
        assert srv.user_api_key == "given-key"
        assert Api(srv).get("/api/queries").status_code == 200
        assert Api(srv, key=first).get("/api/queries").json() == LOGIN
