"""Where upstream Redash (HEAD) was seen to answer differently from the old local server, both flavors follow it.

Each test names the capture in shared/api/redash-captures it pins, or the fact of the issue that reported it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from dagster_iwatch.local import LocalServer
from dagster_iwatch.local.seed import SEED_QUERIES

from .helpers import Api

NO_CACHED = {"message": "No cached result found for this query."}
NOT_FOUND = {
    "message": "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
}
INTERNAL = {"message": "Internal Server Error"}
LOGIN = {"message": "Couldn't find resource. Please login and try again."}
USER_KEYS_FULL = {
    "id", "name", "email", "profile_image_url", "groups", "updated_at", "created_at", "disabled_at", "is_disabled",
    "active_at", "is_invitation_pending", "is_email_verified", "auth_type",
}  # fmt: skip
QUERY_KEYS = [
    "id", "latest_query_data_id", "name", "description", "query", "query_hash", "schedule", "api_key", "is_archived",
    "is_draft", "updated_at", "created_at", "data_source_id", "options", "version", "tags", "is_safe", "user",
    "last_modified_by", "visualizations",
]  # fmt: skip


def _captures() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "api" / "redash-captures"
        if candidate.is_dir():
            return candidate
    return None


def _capture(name: str) -> dict[str, Any]:
    folder = _captures()
    if folder is None:
        pytest.skip("the Redash captures (shared/api/redash-captures) are not beside this checkout")
    data: dict[str, Any] = json.loads((folder / name).read_text())
    return data


@pytest.fixture(params=["inverse-watch", "redash"])
def any_api(request: pytest.FixtureRequest, server: LocalServer, redash_server: LocalServer) -> Api:
    return Api(server if request.param == "inverse-watch" else redash_server)


@pytest.mark.parametrize(
    ("capture", "keys"),
    [
        ("007_queries_create_plain.json", [*QUERY_KEYS, "is_favorite"]),
        ("036_queries_get_plain.json", [*QUERY_KEYS, "is_favorite", "can_edit"]),
        ("192_auth_querykey_get_query_object.json", [*QUERY_KEYS, "can_edit"]),
    ],
)
def test_captured_query_key_lists(capture: str, keys: list[str]) -> None:
    # The lists the tests below expect are those of the real server.
    assert list(_capture(capture)["response"]["json"]) == keys


def test_query_objects_carry_upstreams_keys_per_view(any_api: Api) -> None:
    api = any_api
    created = api.post("/api/queries", json={"name": "keys", "query": "select 1 as one", "data_source_id": 1}).json()
    assert list(created) == [*QUERY_KEYS, "is_favorite"]
    edited = api.post(f"/api/queries/{created['id']}", json={"name": "keys 2"}).json()
    assert list(edited) == [*QUERY_KEYS, "is_favorite"]
    assert list(api.get("/api/queries/1").json()) == [*QUERY_KEYS, "is_favorite", "can_edit"]
    by_query_key = api.get("/api/queries/1", key=api.srv.query_api_key(1)).json()
    assert list(by_query_key) == [*QUERY_KEYS, "can_edit"]
    assert set(by_query_key["user"]) == USER_KEYS_FULL
    assert set(by_query_key["last_modified_by"]) == USER_KEYS_FULL
    listed = api.get("/api/queries", params={"page_size": 1}).json()["results"][0]
    assert set(listed["user"]) == USER_KEYS_FULL
    assert {"last_modified_by_id", "retrieved_at", "runtime", "is_favorite"} <= set(listed)
    api.delete(f"/api/queries/{created['id']}")


def test_query_key_reads_only_runs_with_default_values(any_api: Api) -> None:
    # Point 2: the query-scoped result route refuses a query key the result of a run with other values.
    api = any_api
    key = api.srv.query_api_key(2)
    other = api.execute(2, {"min_amount": 2222})["query_result_id"]
    r = api.get(f"/api/queries/2/results/{other}.json", key=key)
    assert (r.status_code, r.json()) == (404, NO_CACHED)
    assert api.get(f"/api/queries/2/results/{other}.json").status_code == 200
    default = api.execute(2, {"min_amount": 100})["query_result_id"]
    assert api.get(f"/api/queries/2/results/{default}.json", key=key).json()["query_result"]["id"] == default
    # Capture 204: a query key reads the query's latest result, that of the defaults.
    assert api.get("/api/queries/2/results", key=key).json()["query_result"]["id"] == default
    r = api.get("/api/queries/2/results/999999.json", key=key)
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_query_key_is_refused_on_unscoped_job_and_result_routes(any_api: Api) -> None:
    # Captures 190, 191, 196: the same 404 as a wrong key, on every release.
    api = any_api
    key = api.srv.query_api_key(1)
    job = api.post("/api/queries/1/results", json={"max_age": 0}, key=key).json()["job"]
    assert api.get(f"/api/jobs/{job['id']}", key=key).json() == LOGIN
    assert api.delete(f"/api/jobs/{job['id']}", key=key).json() == LOGIN
    done = api.wait_job(job["id"], path=f"/api/queries/1/jobs/{job['id']}")
    r = api.get(f"/api/query_results/{done['query_result_id']}", key=key)
    assert (r.status_code, r.json()) == (404, LOGIN)
    r = api.get(f"/api/query_results/{done['query_result_id']}.csv", key="", params={"api_key": key})
    assert (r.status_code, r.json()) == (404, LOGIN)


def test_trailing_slash_is_not_the_list(any_api: Api) -> None:
    # Point 5.
    r = any_api.get("/api/queries/")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    assert any_api.get("/api/queries").status_code == 200


@pytest.mark.parametrize("day", ["Feb 29 2024", "2024/02/29", "2024-02-29 ", "29 February 2024"])
def test_loose_dates_are_accepted_and_normalised(any_api: Api, day: str) -> None:
    # Point 6 (and the raw substitution of a date that passed the check).
    rows = any_api.run_rows(4, {"day": day})["data"]["rows"]
    assert [r["day"] for r in rows] == ["2024-02-29"] * 5


def test_loose_date_range(any_api: Api) -> None:
    rows = any_api.run_rows(5, {"period": {"start": "Mar 1 2024", "end": "2024/03/02"}})["data"]["rows"]
    assert {r["block_date"] for r in rows} == {"2024-03-01", "2024-03-02"}


def test_tsv_and_xlsx_downloads(any_api: Api) -> None:
    # Point 7, captures 075 and 076.
    api = any_api
    rid = api.execute(15)["query_result_id"]
    csv_text = api.get(f"/api/query_results/{rid}.csv").text
    r = api.get(f"/api/query_results/{rid}.tsv")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/tab-separated-values; charset=UTF-8"
    assert r.headers["Content-Disposition"].startswith(f"attachment; filename={rid}_")
    assert r.headers["Content-Disposition"].endswith(".tsv")
    assert r.text == csv_text.replace(",", "\t")
    assert r.text.split("\r\n")[1] == "01/01/24\tDAI\t" + r.text.split("\r\n")[1].split("\t")[2]
    r = api.get(f"/api/queries/15/results/{rid}.xlsx")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    with zipfile.ZipFile(io.BytesIO(r.content)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
    assert sheet.count("<row ") == 1 + 91 * 5
    assert "<t>token</t>" in strings
    assert "<t>2024-01-01</t>" in strings


def test_archived_query_has_no_latest_result(fresh_api: Api) -> None:
    # Point 8.
    api = fresh_api
    api.execute(15)
    assert api.get("/api/queries/15/results").status_code == 200
    api.delete("/api/queries/15")
    r = api.get("/api/queries/15/results")
    assert (r.status_code, r.json()) == (404, NO_CACHED)
    assert api.get("/api/queries/15").json()["latest_query_data_id"] is None


def test_archiving_with_a_query_key_is_forbidden_with_upstreams_message(any_api: Api) -> None:
    r = any_api.delete("/api/queries/1", key=any_api.srv.query_api_key(1))
    assert (r.status_code, r.json()) == (403, {"message": "You don't have permission to edit this resource."})
    assert any_api.get("/api/queries/1").json()["is_archived"] is False


@pytest.mark.parametrize("flavor", ["inverse-watch", "redash"])
def test_renaming_a_dashboard_changes_its_slug(tmp_path: Path, flavor: str) -> None:
    # Point 9.
    with LocalServer(tmp_path / "d", flavor=flavor) as srv, Api(srv) as api:
        dash = api.post("/api/dashboards", json={"name": "First Name"}).json()
        assert dash["slug"] == "first-name"
        renamed = api.post(f"/api/dashboards/{dash['id']}", json={"name": "Chain overview"}).json()
        # The seeded dashboard holds "chain-overview": the renamed one gets the next free slug.
        assert renamed["slug"] == "chain-overview-2"
        legacy = {"legacy": ""} if flavor == "redash" else {}
        assert api.get("/api/dashboards/chain-overview-2", params=legacy).json()["id"] == dash["id"]
        assert api.get("/api/dashboards/first-name", params=legacy).status_code == 404


def test_dashboard_and_widget_objects_carry_upstreams_keys(redash_api: Api) -> None:
    dash = redash_api.get("/api/dashboards/1").json()
    assert set(dash["user"]) == {"id", "name", "email", "profile_image_url"}
    widget = next(w for w in dash["widgets"] if "visualization" in w)
    assert list(widget) == [
        "id",
        "width",
        "options",
        "dashboard_id",
        "text",
        "updated_at",
        "created_at",
        "visualization",
    ]
    assert list(widget["visualization"]["query"]) == QUERY_KEYS[:-1]


def test_text_columns_are_untyped(any_api: Api) -> None:
    # Point 10, capture 085: the real data set's text columns (token, note, meta) come with type null.
    columns = any_api.run_rows(13)["data"]["columns"]
    types = {c["name"]: c["type"] for c in columns}
    assert (types["token"], types["note"], types["meta"]) == (None, None, None)
    captured = _capture("085_query_results_of_types.json")["response"]["json"]["query_result"]["data"]["columns"]
    assert {c["name"]: c["type"] for c in captured if c["name"] in ("token", "note", "meta")} == {
        "token": None,
        "note": None,
        "meta": None,
    }


def test_invalid_json_on_results_per_flavor(api: Api, redash_api: Api) -> None:
    # Capture 287: upstream reads invalid JSON posted to /results as {} and answers the cached result;
    # the inverse-watch flavor refuses it with upstream's 400 for bad JSON.
    first = redash_api.execute(12)["query_result_id"]
    r = redash_api.post("/api/queries/12/results", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.json()["query_result"]["id"] >= first
    r = api.post("/api/queries/12/results", data=b"{not json", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (
        400,
        {"message": "The browser (or proxy) sent a request that this server could not understand."},
    )
    assert _capture("287_results_post_invalid_json_body.json")["response"]["status"] == 200


def test_my_favorites_and_archive_lists(fresh_api: Api) -> None:
    # Captures 234, 236, 237, 271, 272: the user's own items (all of them here), no favorites, archived queries.
    api = fresh_api
    empty = {"count": 0, "page": 1, "page_size": 25, "results": []}
    assert api.get("/api/queries/favorites").json() == empty
    assert api.get("/api/dashboards/favorites").json() == empty
    assert api.get("/api/queries/my", params={"page_size": 2}).json()["count"] == len(SEED_QUERIES)
    assert api.get("/api/dashboards/my").json()["results"][0]["slug"] == "chain-overview"
    assert api.get("/api/queries/archive").json()["count"] == 0
    api.delete("/api/queries/14")
    archived = api.get("/api/queries/archive").json()
    assert [q["id"] for q in archived["results"]] == [14]
    assert api.get("/api/queries/my", params={"page_size": 250}).json()["count"] == len(SEED_QUERIES) - 1


def test_xlsx_without_the_extra_is_a_400_naming_the_formats(tmp_path: Path) -> None:
    # A fresh interpreter in which XlsxWriter cannot be imported, as in an install without the xlsx extra.
    code = (
        "import sys, json, requests; sys.modules['xlsxwriter'] = None\n"
        "from dagster_iwatch.local import LocalServer\n"
        f"with LocalServer({str(tmp_path / 'd')!r}) as srv:\n"
        "    h = {'Authorization': 'Key ' + srv.user_api_key}\n"
        "    r = requests.post(srv.url + '/api/query_results', json={'query': 'select 1 as a', 'data_source_id': 1},"
        " headers=h)\n"
        "    srv.wait_for_job(r.json()['job']['id'], (3,))\n"
        "    r = requests.get(srv.url + '/api/query_results/1.xlsx', headers=h)\n"
        "    print(json.dumps([r.status_code, r.json()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    status, body = json.loads(out.stdout)
    assert status == 400
    assert body["message"].endswith("supported formats here: json, csv, tsv")
    assert "pip install 'dagster-iwatch[xlsx]'" in body["message"]
