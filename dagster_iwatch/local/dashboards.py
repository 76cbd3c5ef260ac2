"""Dashboards and their widgets: create, read by slug or id, edit, archive, list."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dagster_iwatch.local.executor import iso_now
from dagster_iwatch.local.queries import Queries, checked_tags, paginate, search
from dagster_iwatch.local.replies import (
    MSG_CONFLICT,
    USER_SHORT,
    HTTPError,
    Reply,
    bad_request,
    internal_error,
    not_found,
)
from dagster_iwatch.local.state import LocalState
from dagster_iwatch.local.store import Doc

_ORDER = (
    "id",
    "slug",
    "name",
    "user_id",
    "user",
    "layout",
    "dashboard_filters_enabled",
    "widgets",
    "options",
    "is_archived",
    "is_draft",
    "tags",
    "updated_at",
    "created_at",
    "version",
    "is_favorite",
)


def slugify(name: str) -> str:
    """Return a URL slug for a dashboard name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "dashboard"


class Dashboards:
    """The dashboards of one local server and the widgets on them."""

    def __init__(self, state: LocalState, queries: Queries) -> None:
        self.state = state
        self.store = state.store
        self.queries = queries

    def _free_slug(self, name: str, own_id: int | None = None) -> str:
        taken = {d["slug"] for d in self.store.all("dashboards") if d["id"] != own_id}
        base = slug = slugify(name)
        n = 2
        while slug in taken:
            slug = f"{base}-{n}"
            n += 1
        return slug

    def create(self, body: Mapping[str, Any]) -> Doc:
        """Create a draft dashboard with a unique slug and return the stored document."""
        if "name" not in body:
            raise bad_request()
        name = str(body["name"])
        with self.state.write_lock:
            now = iso_now()
            doc: Doc = {
                "id": 0,
                "slug": self._free_slug(name),
                "name": name,
                "user_id": USER_SHORT["id"],
                "layout": [],
                "dashboard_filters_enabled": False,
                "options": {},
                "is_archived": False,
                "is_draft": True,
                "tags": [],
                "updated_at": now,
                "created_at": now,
                "version": 1,
            }
            self.store.insert("dashboards", doc)
        return doc

    def to_json(self, doc: Doc, *, with_widgets: bool) -> dict[str, Any]:
        """Return a dashboard as Redash serializes it (widgets only when read one by one)."""
        out = dict(doc)
        out["user"] = dict(USER_SHORT)
        out["is_favorite"] = False
        out["widgets"] = self.widgets_of(doc["id"]) if with_widgets else None
        return {k: out[k] for k in _ORDER}

    def widgets_of(self, dashboard_id: int) -> list[dict[str, Any]]:
        """The widgets of a dashboard, each with its visualization and query."""
        return [self._widget_json(w) for w in self.store.all("widgets") if w["dashboard_id"] == dashboard_id]

    def post(self, body: Any) -> Reply:
        """POST /api/dashboards: create."""
        if not isinstance(body, dict):
            raise bad_request()
        return Reply(200, self.to_json(self.create(body), with_widgets=False))

    def list_page(self, args: Mapping[str, list[str]]) -> Reply:
        """GET /api/dashboards: paginated, searchable by name, filterable by tags."""
        docs = [d for d in self.store.all("dashboards") if not d["is_archived"]]
        page = paginate(search(docs, args, ("name",)), args)
        page["results"] = [self.to_json(d, with_widgets=False) for d in page["results"]]
        return Reply(200, page)

    def by_slug(self, slug: str) -> Doc | None:
        """The dashboard with this slug, or None."""
        return next((d for d in self.store.all("dashboards") if d["slug"] == slug), None)

    def _by_ref(self, ref: str, *, legacy: bool) -> Doc:
        if self.state.flavor == "inverse-watch" or legacy:
            doc = self.by_slug(ref)
            if doc is not None:
                return doc
            if self.state.flavor == "redash" or not ref.isdigit():
                raise not_found()
        if not ref.isdigit():
            raise internal_error()
        doc = self.store.get("dashboards", int(ref))
        if doc is None:
            raise not_found()
        return doc

    def get(self, ref: str, args: Mapping[str, list[str]]) -> Reply:
        """GET /api/dashboards/<slug> (Inverse Watch) or /<id> (Redash; slug with ``?legacy``)."""
        doc = self._by_ref(ref, legacy="legacy" in args)
        return Reply(200, {**self.to_json(doc, with_widgets=True), "can_edit": True})

    def edit(self, ref: str, body: Any) -> Reply:
        """POST /api/dashboards/<id>: edit; a renamed dashboard gets a new slug, a stale ``version`` 409."""
        if not ref.isdigit():
            raise internal_error()
        if not isinstance(body, dict):
            raise bad_request()
        with self.state.write_lock:
            doc = self.store.get("dashboards", int(ref))
            if doc is None:
                raise internal_error()
            if "version" in body and body["version"] != doc["version"]:
                raise HTTPError(409, MSG_CONFLICT)
            if "name" in body:
                # Stored names are sorted and searched by every later list: keep them strings.
                doc["name"] = str(body["name"])
                doc["slug"] = self._free_slug(doc["name"], own_id=doc["id"])
            for key in ("is_draft", "dashboard_filters_enabled", "options", "layout"):
                if key in body:
                    doc[key] = body[key]
            if "tags" in body:
                doc["tags"] = checked_tags(body["tags"])
            doc["version"] += 1
            doc["updated_at"] = iso_now()
            self.store.put("dashboards", doc)
        return Reply(200, self.to_json(doc, with_widgets=True))

    def archive(self, ref: str) -> Reply:
        """DELETE /api/dashboards/<slug or id>: archive (Redash: by id only)."""
        with self.state.write_lock:
            doc: Doc | None = None
            if self.state.flavor == "inverse-watch":
                doc = self.by_slug(ref)
            if doc is None and ref.isdigit():
                doc = self.store.get("dashboards", int(ref))
            if doc is None:
                raise not_found() if self.state.flavor == "inverse-watch" else internal_error()
            doc["is_archived"] = True
            doc["version"] += 1
            doc["updated_at"] = iso_now()
            self.store.put("dashboards", doc)
        return Reply(200, self.to_json(doc, with_widgets=True))

    def create_widget(self, body: Mapping[str, Any]) -> Doc:
        """Create a widget (a visualization or text) on a dashboard and return the stored document."""
        dash_id = body.get("dashboard_id")
        viz_id = body.get("visualization_id")
        if not isinstance(dash_id, int) or self.store.get("dashboards", dash_id) is None:
            raise internal_error()
        if viz_id is not None and (not isinstance(viz_id, int) or self.store.get("visualizations", viz_id) is None):
            raise internal_error()
        now = iso_now()
        doc: Doc = {
            "id": 0,
            "width": body.get("width", 1),
            "options": body.get("options") or {},
            "dashboard_id": dash_id,
            "text": str(body.get("text") or ""),
            "updated_at": now,
            "created_at": now,
            "visualization_id": viz_id,
        }
        self.store.insert("widgets", doc)
        return doc

    def post_widget(self, body: Any) -> Reply:
        """POST /api/widgets."""
        if not isinstance(body, dict):
            raise bad_request()
        return Reply(200, self._widget_json(self.create_widget(body)))

    def delete_widget(self, widget_id: int) -> Reply:
        """DELETE /api/widgets/<id>: remove a widget from its dashboard (unknown id: 500, as captured)."""
        with self.state.write_lock:
            if self.store.get("widgets", widget_id) is None:
                raise internal_error()
            self.store.delete("widgets", widget_id)
        return Reply(200, None)

    def _widget_json(self, doc: Doc) -> dict[str, Any]:
        out = {k: v for k, v in doc.items() if k != "visualization_id"}
        viz_id = doc.get("visualization_id")
        if viz_id is not None:
            viz = self.queries.visualization_json(int(viz_id))
            if viz is not None:
                out["visualization"] = viz
        return out
