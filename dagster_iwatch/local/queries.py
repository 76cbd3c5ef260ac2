"""Saved queries and their visualizations: create, read, edit, archive, list, tags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from dagster_iwatch.local import datasource, params
from dagster_iwatch.local.executor import iso_now
from dagster_iwatch.local.replies import (
    MSG_CONFLICT,
    USER_FULL,
    HTTPError,
    Reply,
    bad_request,
    internal_error,
    not_found,
)
from dagster_iwatch.local.state import LocalState
from dagster_iwatch.local.store import Doc, new_api_key

# Which keys a query object carries depends on who asks and how (as captured on Redash):
# "detail" a user's GET; "saved" a create or edit answer; "query_key" a query key's GET;
# "list" an item of a list; "widget" the query inside a dashboard widget.
View = Literal["detail", "saved", "query_key", "list", "widget"]


class Queries:
    """The saved queries of one local server."""

    def __init__(self, state: LocalState) -> None:
        self.state = state
        self.store = state.store

    def get_doc(self, query_id: int) -> Doc:
        """Return a stored query, or raise Flask's 404."""
        doc = self.store.get("queries", query_id)
        if doc is None:
            raise not_found()
        return doc

    def effective_hash(self, doc: Doc) -> str:
        """The hash a run with default values produces; computed, so folders saved by older versions agree."""
        return params.saved_query_hash(doc["query"], doc["options"].get("parameters") or [])

    def latest_result_summary(self, doc: Doc) -> Doc | None:
        """The newest result of a run with the default values (none for an archived query, as Redash)."""
        if doc["is_archived"]:
            return None
        return self.store.latest_result_summary(doc["data_source_id"], self.effective_hash(doc))

    def to_json(self, doc: Doc, view: View) -> dict[str, Any]:
        """Return a query as Redash serializes it for `view`."""
        latest = self.latest_result_summary(doc)
        out: dict[str, Any] = {"id": doc["id"], "latest_query_data_id": None if latest is None else latest["id"]}
        out.update((k, v) for k, v in doc.items() if not k.startswith("_") and k not in out)
        out["query_hash"] = self.effective_hash(doc)
        out["is_safe"] = params.is_safe(doc["options"].get("parameters") or [])
        out["user"] = dict(USER_FULL)
        if view == "list":
            out["last_modified_by_id"] = USER_FULL["id"]
            out["retrieved_at"] = None if latest is None else latest["retrieved_at"]
            out["runtime"] = None if latest is None else latest["runtime"]
        else:
            out["last_modified_by"] = dict(USER_FULL)
        if view in ("detail", "saved", "query_key"):
            out["visualizations"] = [
                _viz_json(v) for v in self.store.all("visualizations") if v["query_id"] == doc["id"]
            ]
        if view in ("detail", "saved", "list"):
            out["is_favorite"] = False
        if view in ("detail", "query_key"):
            out["can_edit"] = True
        return out

    def create(self, body: Mapping[str, Any]) -> Doc:
        """Create a draft query with its table visualization and return the stored document."""
        if "query" not in body or "name" not in body:
            raise bad_request()
        if body.get("data_source_id") != datasource.DATA_SOURCE_ID:
            raise internal_error()
        sql = str(body["query"])
        options = _checked_options(body.get("options"))
        now = iso_now()
        doc: Doc = {
            "id": 0,
            "name": str(body["name"]),
            "description": body.get("description"),
            "query": sql,
            "query_hash": params.saved_query_hash(sql, options["parameters"]),
            "schedule": body.get("schedule"),
            "api_key": new_api_key(),
            "is_archived": False,
            "is_draft": True,
            "updated_at": now,
            "created_at": now,
            "data_source_id": datasource.DATA_SOURCE_ID,
            "options": options,
            "version": 1,
            "tags": _checked_tags(body.get("tags")),
        }
        with self.state.write_lock, self.store.transaction():
            self.store.insert("queries", doc)
            self.create_visualization({"query_id": doc["id"], "type": "TABLE", "name": "Table", "options": {}})
        return doc

    def post(self, body: Any) -> Reply:
        """POST /api/queries: create a query."""
        if not isinstance(body, dict):
            raise bad_request()
        return Reply(200, self.to_json(self.create(body), "saved"))

    def get(self, query_id: int, *, by_query_key: bool) -> Reply:
        """GET /api/queries/<id>."""
        return Reply(200, self.to_json(self.get_doc(query_id), "query_key" if by_query_key else "detail"))

    def edit(self, query_id: int, body: Any) -> Reply:
        """POST /api/queries/<id>: edit; a ``version`` other than the stored one gives 409.

        As on Redash, an edit leaves ``version`` as it is, so a client may send the same version again.
        """
        if not isinstance(body, dict):
            raise bad_request()
        with self.state.write_lock:
            doc = self.get_doc(query_id)
            if "version" in body and body["version"] != doc["version"]:
                raise HTTPError(409, MSG_CONFLICT)
            if "options" in body:
                doc["options"] = _checked_options(body["options"])
            if "tags" in body:
                doc["tags"] = _checked_tags(body["tags"])
            for key in ("name", "description"):
                if key in body:
                    doc[key] = None if body[key] is None and key == "description" else str(body[key])
            for key in ("schedule", "is_draft"):
                if key in body:
                    doc[key] = body[key]
            if "query" in body:
                doc["query"] = str(body["query"])
            doc["query_hash"] = self.effective_hash(doc)
            doc["updated_at"] = iso_now()
            self.store.put("queries", doc)
        return Reply(200, self.to_json(doc, "saved"))

    def archive(self, query_id: int) -> Reply:
        """DELETE /api/queries/<id>: archive (GET still works)."""
        with self.state.write_lock:
            doc = self.get_doc(query_id)
            doc["is_archived"] = True
            doc["updated_at"] = iso_now()
            self.store.put("queries", doc)
        return Reply(200, None)

    def list_page(self, args: Mapping[str, list[str]], *, archived: bool = False) -> Reply:
        """GET /api/queries (or /api/queries/archive): paginated, searchable, filterable by tags."""
        docs = [d for d in self.store.all("queries") if bool(d["is_archived"]) == archived]
        page = paginate(search(docs, args, ("name", "description", "query")), args)
        page["results"] = [self.to_json(d, "list") for d in page["results"]]
        return Reply(200, page)

    def create_visualization(self, body: Mapping[str, Any]) -> Doc:
        """Create a visualization of a query and return the stored document."""
        query_id = body.get("query_id")
        if not isinstance(query_id, int) or self.store.get("queries", query_id) is None:
            raise internal_error()
        now = iso_now()
        doc: Doc = {
            "id": 0,
            "type": str(body.get("type") or "TABLE"),
            "name": str(body.get("name") or ""),
            "description": str(body.get("description") or ""),
            "options": body.get("options") or {},
            "updated_at": now,
            "created_at": now,
            "query_id": query_id,
        }
        self.store.insert("visualizations", doc)
        return doc

    def post_visualization(self, body: Any) -> Reply:
        """POST /api/visualizations."""
        if not isinstance(body, dict):
            raise bad_request()
        return Reply(200, _viz_json(self.create_visualization(body)))

    def visualization_json(self, viz_id: int) -> dict[str, Any] | None:
        """A visualization with its query, as a dashboard widget carries it; None when it is gone."""
        viz = self.store.get("visualizations", viz_id)
        if viz is None:
            return None
        out = _viz_json(viz)
        query = self.store.get("queries", int(viz["query_id"]))
        if query is not None:
            out["query"] = self.to_json(query, "widget")
        return out


def tags(docs: list[Doc]) -> Reply:
    """Each tag of live documents with its count (GET /api/queries/tags, /api/dashboards/tags)."""
    counts: dict[str, int] = {}
    for doc in docs:
        if not doc["is_archived"]:
            for tag in doc.get("tags") or []:
                counts[tag] = counts.get(tag, 0) + 1
    return Reply(200, {"tags": [{"name": k, "count": counts[k]} for k in sorted(counts)]})


def search(docs: list[Doc], args: Mapping[str, list[str]], fields: Sequence[str]) -> list[Doc]:
    """Filter by ``q`` (substring of `fields`) and every ``tags``, then sort by ``order``."""
    term = (args.get("q") or [""])[0].strip().lower()
    if term:
        docs = [d for d in docs if any(term in str(d.get(f) or "").lower() for f in fields)]
    wanted = args.get("tags") or []
    if wanted:
        docs = [d for d in docs if set(wanted).issubset(set(d.get("tags") or []))]
    order = (args.get("order") or ["-created_at"])[0]
    key_name = order.lstrip("-")
    if key_name not in ("name", "created_at", "updated_at", "id"):
        key_name, order = "created_at", "-created_at"

    def sort_key(d: Doc) -> tuple[Any, int]:
        return (d.get(key_name) or "", int(d["id"]))

    return sorted(docs, key=sort_key, reverse=order.startswith("-"))


def paginate(items: list[Doc], args: Mapping[str, list[str]]) -> dict[str, Any]:
    """Redash's page object, with its messages for pages out of range."""
    page = _first_int(args, "page", 1)
    page_size = _first_int(args, "page_size", 25)
    if page < 1:
        raise bad_request("Page must be positive integer.")
    if not 1 <= page_size <= 250:
        raise bad_request("Page size is out of range (1-250).")
    start = (page - 1) * page_size
    if page > 1 and start >= len(items):
        raise bad_request("Page is out of range.")
    return {"count": len(items), "page": page, "page_size": page_size, "results": items[start : start + page_size]}


def checked_tags(tags: Any) -> list[str]:
    """Tags as a list of strings; anything but a list (or null) is a bad request."""
    return _checked_tags(tags)


def _checked_options(options: Any) -> dict[str, Any]:
    # Stored definitions are read by every later list and run: refuse shapes that would break them.
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise bad_request()
    defs = options.get("parameters")
    if defs is None:
        defs = []
    if not isinstance(defs, list) or not all(
        isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("type"), str) for d in defs
    ):
        raise bad_request()
    return {**options, "parameters": defs}


def _checked_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise bad_request()
    return [str(t) for t in tags]


def _viz_json(doc: Doc) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "query_id"}


def _first_int(args: Mapping[str, list[str]], name: str, default: int) -> int:
    try:
        return int(args.get(name, [str(default)])[0])
    except ValueError:
        return default
