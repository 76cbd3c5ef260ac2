"""Saved queries over HTTP: lists, search, paging errors, create, edit, archive."""

from __future__ import annotations

import pytest

from dagster_iwatch.local.seed import SEED_QUERIES

from .helpers import Api

NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)

SEED_NAMES = [
    "All transfers",
    "Transfers above min amount",
    "Transfers by token (text)",
    "Prices on day",
    "Daily volume in period",
    "Transfers since datetime",
    "Transfers by token (enum)",
    "Counts for tokens (multi enum)",
    "Transfers for listed token",
    "Broken query",
    "Slow query",
    "Token list",
    "All column types",
    "Empty result",
    "Daily prices",
    "Transfers in window",
    "Generated rows",
]


def test_seeded_queries_have_fixed_ids_and_names(api: Api) -> None:
    for qid, name in enumerate(SEED_NAMES, start=1):
        q = api.get(f"/api/queries/{qid}").json()
        assert (q["id"], q["name"], q["is_draft"], q["is_archived"]) == (qid, name, False, False)


def test_query_object_has_the_captured_fields(api: Api) -> None:
    q = api.get("/api/queries/2").json()
    for key in (
        "id", "latest_query_data_id", "name", "description", "query", "query_hash", "schedule", "api_key",
        "is_archived", "is_draft", "updated_at", "created_at", "data_source_id", "options", "version", "tags",
        "is_safe", "user", "last_modified_by", "visualizations", "is_favorite", "can_edit",
    ):  # fmt: skip
        assert key in q
    assert q["options"]["parameters"] == [{"name": "min_amount", "title": "Min amount", "type": "number", "value": 100}]
    assert q["is_safe"] is True
    assert q["visualizations"][0]["type"] == "TABLE"
    assert q["created_at"].endswith("Z")
    assert api.get("/api/queries/3").json()["is_safe"] is False


def test_query_hash_follows_redash(api: Api) -> None:
    # Same text as capture 007, whose hash is known.
    r = api.post("/api/query_results", json={"query": "select * from transfers order by id", "data_source_id": 1})
    assert r.status_code == 200
    assert api.get("/api/queries/1").json()["query_hash"] == "1a7f307b27d78758d86374fde31b6367"


def test_list_default_page(api: Api) -> None:
    body = api.get("/api/queries").json()
    assert set(body) == {"count", "page", "page_size", "results"}
    assert body["page"] == 1
    assert body["page_size"] == 25
    assert body["count"] >= 17
    ids = [q["id"] for q in body["results"]]
    assert ids == sorted(ids, reverse=True)
    item = body["results"][-1]
    assert {"retrieved_at", "runtime", "last_modified_by_id", "api_key"} <= set(item)
    assert "visualizations" not in item


def test_list_paging(api: Api) -> None:
    first = api.get("/api/queries", params={"page": 1, "page_size": 3}).json()
    second = api.get("/api/queries", params={"page": 2, "page_size": 3}).json()
    assert (second["page"], second["page_size"], len(second["results"])) == (2, 3, 3)
    assert not {q["id"] for q in first["results"]} & {q["id"] for q in second["results"]}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"page": 999}, "Page is out of range."),
        ({"page": 0}, "Page must be positive integer."),
        ({"page_size": 300}, "Page size is out of range (1-250)."),
        ({"page_size": 0}, "Page size is out of range (1-250)."),
    ],
)
def test_list_paging_errors(api: Api, query: dict[str, int], message: str) -> None:
    for path in ("/api/queries", "/api/dashboards"):
        r = api.get(path, params=query)
        assert (r.status_code, r.json()) == (400, {"message": message})


def test_list_non_integer_page_is_page_one(api: Api) -> None:
    body = api.get("/api/queries", params={"page": "abc"}).json()
    assert body["page"] == 1


def test_list_search_and_tags(fresh_api: Api) -> None:
    api = fresh_api
    names = {q["name"] for q in api.get("/api/queries", params={"q": "token list"}).json()["results"]}
    assert "Token list" in names
    sql_hit = api.get("/api/queries", params={"q": "sleep("}).json()["results"]
    assert [q["id"] for q in sql_hit] == [11]
    both = api.get("/api/queries", params=[("tags", "param"), ("tags", "enum")]).json()
    assert {q["id"] for q in both["results"]} == {7, 8}
    assert api.get("/api/queries", params={"tags": "nope"}).json() == {
        "count": 0,
        "page": 1,
        "page_size": 25,
        "results": [],
    }


def test_list_order_by_name(api: Api) -> None:
    names = [q["name"] for q in api.get("/api/queries", params={"order": "name", "page_size": 250}).json()["results"]]
    assert names == sorted(names)


def test_get_errors(api: Api) -> None:
    r = api.get("/api/queries/999999")
    assert (r.status_code, r.json()) == (404, {"message": NOT_FOUND})
    r = api.get("/api/queries/abc")
    assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
    assert api.delete("/api/queries/999999").status_code == 404
    assert api.post("/api/queries/999999", json={"name": "x"}).status_code == 404


def test_create_edit_archive(fresh_api: Api) -> None:
    api = fresh_api
    r = api.post(
        "/api/queries",
        json={"name": "Temp", "query": "select 1 as one", "data_source_id": 1, "tags": ["t"], "options": {}},
    )
    assert r.status_code == 200
    q = r.json()
    assert (q["id"], q["is_draft"], q["version"], q["options"]) == (len(SEED_QUERIES) + 1, True, 1, {"parameters": []})
    assert q["api_key"] != api.srv.user_api_key

    r = api.post(f"/api/queries/{q['id']}", json={"name": "Temp 2", "is_draft": False, "version": 1})
    assert r.status_code == 200
    edited = r.json()
    assert (edited["name"], edited["is_draft"], edited["version"]) == ("Temp 2", False, 1)

    # As upstream (captures 037, 038, 052): edits keep the version, so only a version never held conflicts.
    r = api.post(f"/api/queries/{q['id']}", json={"name": "Temp 3", "version": 1})
    assert (r.status_code, r.json()["version"]) == (200, 1)
    r = api.post(f"/api/queries/{q['id']}", json={"name": "stale", "version": 2})
    assert r.status_code == 409
    assert r.json()["message"].startswith("A conflict happened")

    r = api.post(f"/api/queries/{q['id']}", json={"query": "select 2 as two"})
    assert r.json()["query_hash"] != q["query_hash"]

    assert (api.delete(f"/api/queries/{q['id']}").status_code, api.delete(f"/api/queries/{q['id']}").text) == (
        200,
        "null",
    )
    archived = api.get(f"/api/queries/{q['id']}").json()
    assert archived["is_archived"] is True
    listed = {x["id"] for x in api.get("/api/queries", params={"page_size": 250}).json()["results"]}
    assert q["id"] not in listed


def test_create_errors(fresh_api: Api) -> None:
    api = fresh_api
    r = api.post("/api/queries", data=b"", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["message"]) == (
        400,
        "The browser (or proxy) sent a request that this server could not understand.",
    )
    r = api.post("/api/queries", json={"name": "x", "query": "select 1"})
    assert (r.status_code, r.json()) == (500, {"message": "Internal Server Error"})
    r = api.post("/api/queries", json={"name": "x", "query": "select 1", "data_source_id": 7})
    assert r.status_code == 500
    assert api.get("/api/queries", params={"page_size": 250}).json()["count"] == len(SEED_QUERIES)


def test_tags(fresh_api: Api) -> None:
    api = fresh_api
    tags = {t["name"]: t["count"] for t in api.get("/api/queries/tags").json()["tags"]}
    assert tags["enum"] == 2
    assert tags["param"] >= 10
    assert {"name": "chain", "count": 1} in api.get("/api/dashboards/tags").json()["tags"]


def test_data_sources(api: Api) -> None:
    r = api.get("/api/data_sources")
    assert r.status_code == 200
    (source,) = r.json()
    assert set(source) == {"id", "name", "type", "syntax", "paused", "pause_reason", "supports_auto_limit", "view_only"}
    assert (source["id"], source["syntax"], source["paused"]) == (1, "sql", 0)
