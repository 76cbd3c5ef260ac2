"""Read-only HTML pages for a query and a dashboard, so that links to the local server open something."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from starlette.responses import HTMLResponse

from dagster_iwatch.local.app import LocalApp
from dagster_iwatch.local.replies import not_found, to_int

MAX_ROWS = 100

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
    "pre{background:#f4f4f4;padding:1em;overflow:auto}.meta{color:#666}"
)


def _page(title: str, body: str) -> HTMLResponse:
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}"
        "<p class='meta'>Inverse Watch local server: a read-only page; the API is under /api.</p></body></html>"
    )
    return HTMLResponse(html)


def _table(data: dict[str, Any], limit: int = MAX_ROWS) -> str:
    names = [str(c["name"]) for c in data["columns"]]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for row in data["rows"][:limit]:
        cells = "".join(f"<td>{escape(_text(row.get(n)))}</td>" for n in names)
        rows.append(f"<tr>{cells}</tr>")
    more = len(data["rows"]) - limit
    tail = f"<p class='meta'>{more} more rows not shown.</p>" if more > 0 else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{tail}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def query_page(app: LocalApp, query_id: int) -> HTMLResponse:
    """``/queries/<id>``: name, description, SQL, parameters and the latest result with the default values."""
    doc = app.queries.get_doc(query_id)
    defs = doc["options"].get("parameters") or []
    params = "".join(
        f"<tr><td>{escape(str(d.get('name')))}</td><td>{escape(str(d.get('type')))}</td>"
        f"<td>{escape(_text(d.get('value')))}</td></tr>"
        for d in defs
    )
    parts = [
        f"<h1>{escape(str(doc['name']))}</h1>",
        f"<p>{escape(str(doc.get('description') or ''))}</p>",
        "<p class='meta'>archived</p>" if doc["is_archived"] else "",
        f"<pre>{escape(str(doc['query']))}</pre>",
        f"<h2>Parameters</h2><table><tr><th>name</th><th>type</th><th>default</th></tr>{params}</table>"
        if defs
        else "",
    ]
    summary = app.queries.latest_result_summary(doc)
    row = None if summary is None else app.state.store.get_result(int(summary["id"]))
    if row is None:
        parts.append("<h2>Latest result</h2><p>None yet: run the query with its default values.</p>")
    else:
        parts.append(
            f"<h2>Latest result</h2><p class='meta'>result {row['id']}, retrieved at"
            f" {escape(str(row['retrieved_at']))}</p>{_table(json.loads(row['data']))}"
        )
    return _page(str(doc["name"]), "".join(parts))


def dashboard_page(app: LocalApp, ref: str) -> HTMLResponse:
    """``/dashboard/<slug>`` (or ``/dashboards/<id>[-slug]``): the dashboard's widgets, each linking its query."""
    doc = app.dashboards.by_slug(ref)
    if doc is None:
        head = ref.split("-", 1)[0]
        doc = app.state.store.get("dashboards", to_int(head)) if head.isdigit() else None
    if doc is None:
        raise not_found()
    items = []
    for widget in app.dashboards.widgets_of(int(doc["id"])):
        viz = widget.get("visualization")
        if viz is None:
            items.append(f"<li><pre>{escape(str(widget.get('text') or ''))}</pre></li>")
            continue
        query = viz.get("query") or {}
        items.append(
            f"<li>{escape(str(viz.get('type')))} <b>{escape(str(viz.get('name')))}</b> of query"
            f" <a href='/queries/{int(query.get('id') or 0)}'>{escape(str(query.get('name')))}</a></li>"
        )
    body = f"<h1>{escape(str(doc['name']))}</h1><ul>{''.join(items)}</ul>"
    return _page(str(doc["name"]), body)
