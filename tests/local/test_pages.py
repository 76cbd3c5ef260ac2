"""The read-only demo pages behind the links a Dagster UI shows for queries and dashboards."""

from __future__ import annotations

import requests

from dagster_iwatch.local import LocalServer

from .helpers import Api


def test_query_page(server: LocalServer, api: Api) -> None:
    r = requests.get(f"{server.url}/queries/4", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>Prices on day</h1>" in r.text
    assert "select day, token, price from prices where day = &#x27;{{ day }}&#x27; order by token" in r.text
    assert "<td>day</td><td>date</td><td>2024-02-29</td>" in r.text
    assert server.query_api_key(4) not in r.text
    job = api.execute(4, {"day": "2024-02-29"})
    page = requests.get(f"{server.url}/queries/4", timeout=5).text
    assert f"result {job['query_result_id']}" in page
    assert "<tr><th>day</th><th>token</th><th>price</th></tr>" in page
    assert page.count("<td>2024-02-29</td>") == 1 + 5  # the default, then the five rows


def test_query_page_without_result_and_unknown_query(server: LocalServer) -> None:
    assert "None yet" in requests.get(f"{server.url}/queries/16", timeout=5).text
    assert requests.get(f"{server.url}/queries/999", timeout=5).status_code == 404


def test_dashboard_page(server: LocalServer, redash_server: LocalServer) -> None:
    for srv, path in ((server, "/dashboard/chain-overview"), (redash_server, "/dashboards/1-chain-overview")):
        r = requests.get(f"{srv.url}{path}", timeout=5)
        assert r.status_code == 200
        assert "<h1>Chain overview</h1>" in r.text
        assert "CHART <b>Daily prices</b> of query <a href='/queries/15'>Daily prices</a>" in r.text
        assert "<a href='/queries/5'>Daily volume in period</a>" in r.text
        assert "## Chain overview" in r.text
    assert requests.get(f"{server.url}/dashboard/nope", timeout=5).status_code == 404
