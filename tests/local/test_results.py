"""Running saved queries: parameters, caching, result shapes, column types and downloads."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .helpers import Api

INCOMPATIBLE = "The following parameter values are incompatible with their definitions: "
NO_CACHED = {"message": "No cached result found for this query."}


def _post(api: Api, qid: int, body: Any) -> tuple[int, Any]:
    r = api.post(f"/api/queries/{qid}/results", json=body)
    return r.status_code, r.json()


def test_job_then_result_shapes(api: Api) -> None:
    status, body = _post(api, 15, {"max_age": 0})
    assert status == 200
    job = body["job"]
    assert job == {"id": job["id"], "updated_at": 0, "status": 1, "error": "", "result": None, "query_result_id": None}
    done = api.wait_job(job["id"])
    assert done["status"] == 3
    assert done["error"] == ""
    assert done["result"] == done["query_result_id"]
    result = api.result(done["query_result_id"])
    assert set(result) == {"id", "query_hash", "query", "data", "data_source_id", "runtime", "retrieved_at"}
    assert result["query"] == "select day, token, price from prices order by day, token"
    assert result["data_source_id"] == 1
    assert result["retrieved_at"].endswith("Z")
    assert result["data"]["columns"] == [
        {"name": "day", "friendly_name": "day", "type": "date"},
        {"name": "token", "friendly_name": "token", "type": None},
        {"name": "price", "friendly_name": "price", "type": "float"},
    ]
    assert len(result["data"]["rows"]) == 91 * 5
    assert result["data"]["rows"][0]["day"] == "2024-01-01"


def test_all_column_types(api: Api) -> None:
    result = api.run_rows(13)
    types = {c["name"]: c["type"] for c in result["data"]["columns"]}
    assert types == {
        "id": "integer",
        "amount": "float",
        "amount_usd": "float",
        "is_contract": "boolean",
        "block_date": "date",
        "block_time": "datetime",
        "token": None,
        "note": None,
        "meta": None,
    }
    rows = result["data"]["rows"]
    assert isinstance(rows[0]["meta"], dict)
    assert rows[0]["block_time"].endswith("Z")
    assert "T" in rows[0]["block_time"]
    assert {type(r["is_contract"]) for r in rows} <= {bool, type(None)}
    for col in ("amount_usd", "is_contract", "note", "meta"):
        assert any(r[col] is None for r in rows), col


def test_transfers_seed_is_deterministic_and_complete(api: Api) -> None:
    rows = api.run_rows(1)["data"]["rows"]
    assert len(rows) == 3000
    assert rows[0]["block_time"] >= "2024-01-01T00:00:00Z"
    assert rows[-1]["block_date"] <= "2024-03-31"
    assert {r["token"] for r in rows} == {"ETH", "USDC", "WBTC", "DAI", "LINK"}
    assert any(r["amount_usd"] is None for r in rows)


def test_empty_result_keeps_columns(api: Api) -> None:
    result = api.run_rows(14)
    assert result["data"]["rows"] == []
    assert [c["name"] for c in result["data"]["columns"]][:3] == ["id", "block_number", "block_time"]


def test_generated_rows(api: Api) -> None:
    result = api.run_rows(17, {"n": 250})
    assert len(result["data"]["rows"]) == 250
    types = {c["name"]: c["type"] for c in result["data"]["columns"]}
    assert types["is_contract"] == "boolean"
    assert types["block_time"] == "datetime"


def test_failed_query_carries_database_error(api: Api) -> None:
    job = api.execute(10)
    assert job["status"] == 4
    assert "syntax error" in job["error"]
    assert job["query_result_id"] is None


def test_cache_and_max_age(fresh_api: Api) -> None:
    api = fresh_api
    _, body = _post(api, 12, {"max_age": 3600})
    assert "job" in body
    first = api.wait_job(body["job"]["id"])["query_result_id"]
    for request in ({"max_age": 3600}, {}, {"max_age": None}, None):
        r = api.post("/api/queries/12/results", json=request)
        assert r.json()["query_result"]["id"] == first
    assert "job" in _post(api, 12, {"max_age": 0})[1]
    assert "job" in _post(api, 12, {"max_age": -5})[1]
    assert _post(api, 12, {"max_age": "abc"}) == (500, {"message": "Internal Server Error"})


def test_max_age_honours_age(fresh_api: Api) -> None:
    api = fresh_api
    api.execute(12)
    assert "query_result" in _post(api, 12, {"max_age": 1})[1]
    deadline = time.monotonic() + 5
    while "query_result" in _post(api, 12, {"max_age": 1})[1]:
        assert time.monotonic() < deadline, "a result older than max_age was still served"
        time.sleep(0.05)


def test_latest_result_of_plain_query(fresh_api: Api) -> None:
    api = fresh_api
    assert api.get("/api/queries/15/results").json() == NO_CACHED
    assert api.get("/api/queries/15").json()["latest_query_data_id"] is None
    job = api.execute(15)
    q = api.get("/api/queries/15").json()
    assert q["latest_query_data_id"] == job["query_result_id"]
    r = api.get("/api/queries/15/results")
    assert r.json()["query_result"]["id"] == job["query_result_id"]
    assert r.headers["Content-Disposition"].startswith("attachment; filename=Daily_prices_")
    assert api.get("/api/queries/15/results.json").json() == r.json()
    listed = {x["id"]: x for x in api.get("/api/queries", params={"page_size": 250}).json()["results"]}
    assert listed[15]["retrieved_at"] is not None


def test_parameterized_query_latest_result_is_the_run_with_defaults(fresh_api: Api) -> None:
    # Redash HEAD hashes a saved query with its default values (capture 114; v10.1.0 answered 404 here).
    api = fresh_api
    api.execute(2, {"min_amount": 1500})
    r = api.get("/api/queries/2/results")
    assert (r.status_code, r.json()) == (404, NO_CACHED)
    assert api.get("/api/queries/2").json()["latest_query_data_id"] is None
    job = api.execute(2, {"min_amount": 100})
    r = api.get("/api/queries/2/results")
    assert (r.status_code, r.json()["query_result"]["id"]) == (200, job["query_result_id"])
    q = api.get("/api/queries/2").json()
    assert q["latest_query_data_id"] == job["query_result_id"]
    assert q["query_hash"] == r.json()["query_result"]["query_hash"]


def test_rerun_while_running_returns_same_job(fresh_api: Api) -> None:
    api = fresh_api
    first = _post(api, 11, {"parameters": {"seconds": 2}, "max_age": 0})[1]["job"]
    second = _post(api, 11, {"parameters": {"seconds": 2}, "max_age": 0})[1]["job"]
    assert second["id"] == first["id"]
    assert api.delete(f"/api/jobs/{first['id']}").status_code == 200


def test_auto_limit(api: Api) -> None:
    job = api.execute(1, apply_auto_limit=True)
    result = api.result(job["query_result_id"])
    assert result["query"] == "select * from transfers order by id LIMIT 1000"
    assert result["query_hash"] == "bc5cd4fa551398584fa0b0d1f229bbd3"
    assert len(result["data"]["rows"]) == 1000


@pytest.mark.parametrize(
    ("qid", "parameters", "first_row_check"),
    [
        (2, {"min_amount": 100}, lambda r: r["amount"] >= 100),
        (2, {"min_amount": "2000.5"}, lambda r: r["amount"] >= 2000.5),
        (2, {"min_amount": " 12 "}, lambda r: r["amount"] >= 12),
        (3, {"token": "WBTC"}, lambda r: r["token"] == "WBTC"),
        (4, {"day": "2024-02-29"}, lambda r: r["day"] == "2024-02-29"),
        (5, {"period": {"start": "2024-03-01", "end": "2024-03-05"}}, lambda r: r["block_date"] >= "2024-03-01"),
        (6, {"since": "2024-03-15 08:30"}, lambda r: r["block_time"] >= "2024-03-15T08:30"),
        (7, {"token": "DAI"}, lambda r: r["token"] == "DAI"),
        (8, {"tokens": ["ETH", "WBTC", "LINK"]}, lambda r: r["token"] in ("ETH", "WBTC", "LINK")),
        (9, {"token": "LINK"}, lambda r: r["token"] == "LINK"),
        (
            16,
            {"window": {"start": "2024-02-01 00:00", "end": "2024-02-01T06:00:00Z"}},
            lambda r: "2024-02-01T00:00" <= r["block_time"] <= "2024-02-01T06:00:00Z",
        ),
    ],
)
def test_parameter_types_run(api: Api, qid: int, parameters: dict[str, Any], first_row_check: Any) -> None:
    rows = api.run_rows(qid, parameters)["data"]["rows"]
    assert rows
    assert all(first_row_check(r) for r in rows)


def test_daterange_is_inclusive_and_takes_datetime_strings(api: Api) -> None:
    rows = api.run_rows(5, {"period": {"start": "2024-03-01", "end": "2024-03-02"}})["data"]["rows"]
    assert {r["block_date"] for r in rows} == {"2024-03-01", "2024-03-02"}
    job = api.execute(5, {"period": {"start": "2024-03-01 00:00", "end": "2024-03-02T00:00:00Z"}})
    assert job["status"] == 3


def test_multi_enum_given_single_string_is_rendered_raw(api: Api) -> None:
    # As in capture 154: the value is not quoted, so the database rejects it.
    job = api.execute(8, {"tokens": "USDC"})
    assert job["status"] == 4
    assert "USDC" in job["error"]


def test_number_given_bool_is_accepted(api: Api) -> None:
    status, body = _post(api, 2, {"parameters": {"min_amount": True}, "max_age": 0})
    assert status == 200
    assert "job" in body


@pytest.mark.parametrize(
    ("qid", "parameters", "names"),
    [
        (2, {"min_amount": "abc"}, "min_amount"),
        (2, {"min_amount": None}, "min_amount"),
        (2, {"min_amount": [1, 2]}, "min_amount"),
        (2, {"min_amount": 1, "bogus": 2}, "bogus"),
        (3, {"token": 5}, "token"),
        (4, {"day": "notadate"}, "day"),
        (5, {"period": {"start": "2024-03-01"}}, "period"),
        (5, {"period": "2024-03-01"}, "period"),
        (5, {"period": {"start": "x", "end": "2024-03-05"}}, "period"),
        (7, {"token": "DOGE"}, "token"),
        (7, {"token": ["DAI"]}, "token"),
        (8, {"tokens": ["ETH", "DOGE"]}, "tokens"),
        (9, {"token": "DOGE"}, "token"),
        (17, {"n": "x", "other": 1}, "n, other"),
    ],
)
def test_invalid_parameters(api: Api, qid: int, parameters: dict[str, Any], names: str) -> None:
    assert _post(api, qid, {"parameters": parameters, "max_age": 0}) == (400, {"message": INCOMPATIBLE + names})


def test_query_parameter_takes_the_value_column(fresh_api: Api) -> None:
    api = fresh_api
    source = api.post(
        "/api/queries",
        json={"name": "options", "query": "select 'Ether' as name, 'ETH' as Value", "data_source_id": 1},
    ).json()
    q = api.post(
        "/api/queries",
        json={
            "name": "picked",
            "query": "select '{{ v }}' as v",
            "data_source_id": 1,
            "options": {"parameters": [{"name": "v", "title": "v", "type": "query", "queryId": source["id"]}]},
        },
    ).json()
    assert api.run_rows(q["id"], {"v": "ETH"})["data"]["rows"] == [{"v": "ETH"}]
    assert _post(api, q["id"], {"parameters": {"v": "Ether"}, "max_age": 0}) == (400, {"message": INCOMPATIBLE + "v"})


@pytest.mark.parametrize(
    "definition",
    [
        {"type": "query", "queryId": 10},
        {"type": "query", "queryId": 999999},
        {"type": "enum", "enumOptions": "a\nb", "multiValuesOptions": None},
        {"type": "no-such-type"},
    ],
)
def test_values_that_cannot_be_checked_are_incompatible(fresh_api: Api, definition: dict[str, Any]) -> None:
    q = fresh_api.post(
        "/api/queries",
        json={
            "name": "odd parameter",
            "query": "select '{{ v }}' as v",
            "data_source_id": 1,
            "options": {"parameters": [{"name": "v", "title": "v", "value": "a", **definition}]},
        },
    ).json()
    assert _post(fresh_api, q["id"], {"parameters": {"v": ["a"]}, "max_age": 0}) == (
        400,
        {"message": INCOMPATIBLE + "v"},
    )


@pytest.mark.parametrize(
    ("qid", "body", "names"),
    [
        (2, {"parameters": {}, "max_age": 0}, "min_amount"),
        (2, {"max_age": 0}, "min_amount"),
        (5, {"parameters": {}, "max_age": 0}, "period.start, period.end"),
        (16, {"max_age": 0}, "window.start, window.end"),
    ],
)
def test_missing_parameters(api: Api, qid: int, body: dict[str, Any], names: str) -> None:
    assert _post(api, qid, body) == (400, {"job": {"status": 4, "error": f"Missing parameter value for: {names}"}})


def test_unneeded_parameters_on_plain_query_are_ignored(api: Api) -> None:
    status, body = _post(api, 12, {"parameters": {"foo": 1}, "max_age": 0})
    assert status == 200
    assert "job" in body


def test_nonexistent_query(api: Api) -> None:
    r = api.post("/api/queries/999999/results", json={"max_age": 0})
    assert r.status_code == 404


def test_downloads(api: Api) -> None:
    job = api.execute(13)
    rid = job["query_result_id"]
    r = api.get(f"/api/query_results/{rid}.csv")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=UTF-8"
    assert r.headers["Content-Disposition"].startswith(f"attachment; filename={rid}_")
    lines = r.text.split("\r\n")
    assert lines[0] == "id,amount,amount_usd,is_contract,block_date,block_time,token,note,meta"
    assert lines[1].startswith("1,")
    r = api.get(f"/api/query_results/{rid}.json")
    assert r.headers["Content-Disposition"].endswith(".json")
    assert r.json() == api.get(f"/api/query_results/{rid}").json()
    r = api.get(f"/api/query_results/{rid}.pdf")
    assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
    r = api.get("/api/query_results/999999")
    assert r.status_code == 404


def test_query_scoped_result_and_job_routes(api: Api) -> None:
    job = api.execute(2, {"min_amount": 2500})
    rid = job["query_result_id"]
    assert api.get(f"/api/queries/2/jobs/{job['id']}").json()["job"]["query_result_id"] == rid
    r = api.get(f"/api/queries/2/results/{rid}.json")
    assert r.json()["query_result"]["id"] == rid
    assert api.get(f"/api/queries/2/results/{rid}.csv").text.startswith("id,block_time,token,amount")
    other = api.execute(12)["query_result_id"]
    # Redash checks that the result belongs to the query only for query keys (capture 188).
    assert api.get(f"/api/queries/2/results/{other}.json").json()["query_result"]["id"] == other
    r = api.get(f"/api/queries/2/results/{other}.csv", key=api.srv.query_api_key(2))
    assert (r.status_code, r.json()) == (404, NO_CACHED)


def test_adhoc_query(api: Api) -> None:
    r = api.post("/api/query_results", json={"query": "select 1 as a, 'x' as b", "data_source_id": 1, "max_age": 0})
    job = api.wait_job(r.json()["job"]["id"])
    data = api.result(job["query_result_id"])["data"]
    assert data["columns"] == [
        {"name": "a", "friendly_name": "a", "type": "integer"},
        {"name": "b", "friendly_name": "b", "type": "string"},
    ]
    r = api.post("/api/query_results", json={"query": "select 1", "max_age": 0})
    assert (r.status_code, r.json()) == (
        401,
        {"job": {"status": 4, "error": "Please select data source to run this query."}},
    )
