"""Dashboards, widgets and visualizations in both flavors."""

from __future__ import annotations

import threading

from dagster_iwatch.local import LocalServer

from .helpers import Api

NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)
INTERNAL = {"message": "Internal Server Error"}


def test_seeded_dashboard_by_slug(api: Api) -> None:
    r = api.get("/api/dashboards/chain-overview")
    assert r.status_code == 200
    dash = r.json()
    assert (dash["id"], dash["slug"], dash["name"], dash["is_draft"]) == (1, "chain-overview", "Chain overview", False)
    assert dash["can_edit"] is True
    widgets = dash["widgets"]
    assert len(widgets) == 3
    queries = [w["visualization"]["query"]["id"] for w in widgets if "visualization" in w]
    assert queries == [15, 5]
    assert widgets[0]["visualization"]["type"] == "CHART"
    assert widgets[1]["visualization"]["query"]["options"]["parameters"][0]["type"] == "date-range"
    assert widgets[2]["text"].startswith("## ")
    assert "visualization" not in widgets[2]


def test_dashboard_list(api: Api) -> None:
    body = api.get("/api/dashboards").json()
    assert body["count"] >= 1
    item = next(d for d in body["results"] if d["slug"] == "chain-overview")
    assert item["widgets"] is None
    assert item["tags"] == ["chain", "overview"]
    assert api.get("/api/dashboards", params={"q": "chain"}).json()["count"] >= 1
    assert api.get("/api/dashboards", params={"tags": "nope"}).json()["count"] == 0


def test_inverse_watch_dashboard_errors(api: Api) -> None:
    r = api.get("/api/dashboards/no-such-board")
    assert (r.status_code, r.json()) == (404, {"message": NOT_FOUND})


def test_redash_flavor_dashboards(redash_api: Api) -> None:
    api = redash_api
    assert api.get("/api/dashboards/1").json()["slug"] == "chain-overview"
    r = api.get("/api/dashboards/chain-overview")
    assert (r.status_code, r.json()) == (500, INTERNAL)
    assert api.get("/api/dashboards/chain-overview", params={"legacy": ""}).json()["id"] == 1
    assert api.get("/api/dashboards/1", params={"legacy": ""}).status_code == 404
    assert api.get("/api/dashboards/999999").status_code == 404
    assert api.post("/api/dashboards/chain-overview", json={"name": "x"}).json() == INTERNAL
    assert api.post("/api/dashboards/999999", json={"name": "x"}).json() == INTERNAL
    assert api.delete("/api/dashboards/chain-overview").json() == INTERNAL
    assert api.delete("/api/dashboards/999999").json() == INTERNAL


def test_build_edit_archive_dashboard_over_http(fresh_api: Api) -> None:
    api = fresh_api
    dash = api.post("/api/dashboards", json={"name": "Prices Board"}).json()
    assert (dash["slug"], dash["is_draft"], dash["version"], dash["widgets"]) == ("prices-board", True, 1, None)
    again = api.post("/api/dashboards", json={"name": "Prices Board"}).json()
    assert again["slug"] != dash["slug"]

    viz = api.post(
        "/api/visualizations",
        json={"query_id": 4, "type": "CHART", "name": "Prices", "description": "", "options": {}},
    ).json()
    assert set(viz) == {"id", "type", "name", "description", "options", "updated_at", "created_at"}
    w = api.post(
        "/api/widgets",
        json={"dashboard_id": dash["id"], "visualization_id": viz["id"], "options": {}, "width": 1, "text": ""},
    ).json()
    assert w["visualization"]["query"]["id"] == 4
    t = api.post(
        "/api/widgets",
        json={"dashboard_id": dash["id"], "visualization_id": None, "options": {}, "width": 1, "text": "hi"},
    ).json()
    assert "visualization" not in t

    edited = api.post(
        f"/api/dashboards/{dash['id']}", json={"is_draft": False, "tags": ["prices"], "version": 1}
    ).json()
    assert (edited["is_draft"], edited["tags"], edited["version"]) == (False, ["prices"], 2)
    r = api.post(f"/api/dashboards/{dash['id']}", json={"name": "x", "version": 1})
    assert r.status_code == 409

    got = api.get("/api/dashboards/prices-board").json()
    assert [x["id"] for x in got["widgets"]] == [w["id"], t["id"]]
    assert api.delete(f"/api/widgets/{t['id']}").status_code == 200
    assert [x["id"] for x in api.get("/api/dashboards/prices-board").json()["widgets"]] == [w["id"]]
    assert api.get("/api/dashboards", params={"tags": "prices"}).json()["count"] == 1

    deleted = api.delete("/api/dashboards/prices-board").json()
    assert deleted["is_archived"] is True
    assert api.get("/api/dashboards/prices-board").json()["is_archived"] is True
    assert api.get("/api/dashboards", params={"tags": "prices"}).json()["count"] == 0
    assert api.delete(f"/api/dashboards/{again['id']}").json()["is_archived"] is True


def test_odd_dashboard_name_does_not_break_the_list(fresh_api: Api) -> None:
    api = fresh_api
    api.post("/api/dashboards", json={"name": "Second"})
    assert api.post("/api/dashboards/1", json={"name": 5}).json()["name"] == "5"
    r = api.get("/api/dashboards", params={"order": "name"})
    assert r.status_code == 200
    assert [d["name"] for d in r.json()["results"]] == ["5", "Second"]


def test_widget_and_visualization_errors(fresh_api: Api) -> None:
    api = fresh_api
    assert api.post("/api/widgets", json={"dashboard_id": 999, "visualization_id": None}).json() == INTERNAL
    assert api.post("/api/visualizations", json={"query_id": 999, "type": "TABLE"}).json() == INTERNAL
    assert api.delete("/api/widgets/999999").json() == INTERNAL


def test_archive_racing_edits_loses_none(fresh_server: LocalServer) -> None:
    with Api(fresh_server) as api:
        dash = api.post("/api/dashboards", json={"name": "Raced"}).json()
    edits = 0
    stop = threading.Event()

    def edit() -> None:
        nonlocal edits
        with Api(fresh_server) as editor:
            while True:
                assert editor.post(f"/api/dashboards/{dash['id']}", json={"name": f"Raced {edits}"}).status_code == 200
                edits += 1
                if stop.is_set():
                    return

    editor = threading.Thread(target=edit)
    editor.start()
    try:
        with Api(fresh_server) as api:
            for _ in range(30):
                assert api.delete(f"/api/dashboards/{dash['id']}").status_code == 200
    finally:
        stop.set()
        editor.join()
    with Api(fresh_server) as api:
        final = api.get(f"/api/dashboards/{dash['id']}").json()
    # Every edit and every archive bumps the version once; a lost update shows as a smaller version.
    assert (final["is_archived"], final["version"], final["name"]) == (True, 1 + edits + 30, f"Raced {edits - 1}")
