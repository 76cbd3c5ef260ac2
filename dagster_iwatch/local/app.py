"""What the local server does for each endpoint, independent of HTTP: Redash's shapes, codes and messages."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster_iwatch.local import datasource, params, seed
from dagster_iwatch.local.executor import CANCELLED, FAILURE, Executor, iso_now
from dagster_iwatch.local.store import Doc, Store, new_api_key

MSG_NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)
MSG_LOGIN = "Couldn't find resource. Please login and try again."
MSG_FORBIDDEN = (
    "You don't have the permission to access the requested resource. It is either read-protected or not "
    "readable by the server."
)
MSG_BAD_REQUEST = "The browser (or proxy) sent a request that this server could not understand."
MSG_CONFLICT = (
    "A conflict happened while processing the request. The resource might have been modified while the "
    "request was being processed."
)
MSG_INTERNAL = "Internal Server Error"
MSG_NO_CACHED = "No cached result found for this query."
MSG_UNSAFE = (
    "This query contains potentially unsafe parameters and cannot be executed on a shared dashboard or an "
    "embedded visualization."
)

FLAVORS = ("inverse-watch", "redash")

_USER = {
    "id": 1,
    "name": "Admin",
    "email": "admin@localhost",
    "profile_image_url": "https://www.gravatar.com/avatar/00000000000000000000000000000000?s=40&d=identicon",
}


@dataclass
class Reply:
    """An HTTP answer: status, body (JSON-serializable, or ``str`` with its own content type), headers."""

    status: int
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class HTTPError(Exception):
    """Abort the request with this reply."""

    def __init__(self, status: int, message: str | None = None, body: Any = None) -> None:
        super().__init__(message or str(status))
        self.reply = Reply(status, body if body is not None else {"message": message or MSG_INTERNAL})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin user (user key) or one query (its query key)."""

    query_id: int | None = None

    @property
    def is_user(self) -> bool:
        """Whether this is the user key, which may do everything."""
        return self.query_id is None


def not_found() -> HTTPError:
    """Flask's generic 404."""
    return HTTPError(404, MSG_NOT_FOUND)


def login_required() -> HTTPError:
    """What Redash answers to a missing or wrong key, or a query key used out of its scope."""
    return HTTPError(404, MSG_LOGIN)


def internal_error() -> HTTPError:
    """Redash's bare 500."""
    return HTTPError(500, MSG_INTERNAL)


def slugify(name: str) -> str:
    """Return a URL slug for a dashboard name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "dashboard"


class LocalApp:
    """The server's state and endpoint logic over a data folder."""

    def __init__(
        self, data_dir: Path, *, flavor: str, workers: int, user_api_key: str | None, job_ttl: float = 600.0
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        if user_api_key is not None and not user_api_key.strip():
            raise ValueError("user_api_key must not be empty")
        self.flavor = flavor
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_path = data_dir / "datasource.sqlite"
        fresh = not self.data_path.exists()
        if fresh:
            tmp = data_dir / "datasource.sqlite.tmp"
            tmp.unlink(missing_ok=True)
            seed.build_data_source(tmp)
            tmp.replace(self.data_path)
        self.store = Store(data_dir / "metadata.sqlite")
        self._write_lock = threading.RLock()
        stored_key = self.store.get_meta("user_api_key")
        if user_api_key is not None and user_api_key != stored_key:
            self.store.set_meta("user_api_key", user_api_key)
        elif stored_key is None:
            self.store.set_meta("user_api_key", new_api_key())
        self.user_api_key = str(self.store.get_meta("user_api_key"))
        if self.store.get_meta("seeded") is None:
            self._seed()
        self.executor = Executor(
            self.data_path,
            self.store,
            workers=workers,
            cancelled_status=CANCELLED if flavor == "inverse-watch" else FAILURE,
            job_ttl=job_ttl,
        )

    def close(self) -> None:
        """Stop the workers and close the store."""
        self.executor.stop()
        self.store.close()

    def authenticate(self, key: str | None) -> Principal | None:
        """Return who owns `key`, or None when it is nobody's."""
        if not key:
            return None
        if key == self.user_api_key:
            return Principal()
        for doc in self.store.all("queries"):
            if doc.get("api_key") == key:
                return Principal(query_id=int(doc["id"]))
        return None

    def query_api_key(self, query_id: int) -> str:
        """Return a query's own API key."""
        doc = self.store.get("queries", query_id)
        if doc is None:
            raise KeyError(f"no query {query_id}")
        return str(doc["api_key"])

    def query_keys(self) -> list[tuple[int, str, str]]:
        """Return ``(id, name, api_key)`` of every saved query that is not archived."""
        return [
            (int(d["id"]), str(d["name"]), str(d["api_key"])) for d in self.store.all("queries") if not d["is_archived"]
        ]

    def _seed(self) -> None:
        # One transaction, so that a crash half-way leaves no queries behind to be seeded twice.
        with self._write_lock, self.store.transaction():
            for name, sql, defs, tags, description in seed.SEED_QUERIES:
                q = self.create_query(
                    {
                        "name": name,
                        "query": sql,
                        "data_source_id": datasource.DATA_SOURCE_ID,
                        "description": description,
                        "options": {"parameters": defs},
                        "tags": tags,
                    }
                )
                q["is_draft"] = False
                self.store.put("queries", q)
            dash = self.create_dashboard({"name": seed.DASHBOARD_NAME})
            dash.update(is_draft=False, tags=["chain", "overview"])
            self.store.put("dashboards", dash)
            prices_viz = self.create_visualization(
                {
                    "query_id": 15,
                    "type": "CHART",
                    "name": "Daily prices",
                    "options": {"globalSeriesType": "line", "columnMapping": {"day": "x", "price": "y"}},
                }
            )
            volume_viz = self.create_visualization(
                {
                    "query_id": 5,
                    "type": "CHART",
                    "name": "Daily volume",
                    "options": {"globalSeriesType": "column", "columnMapping": {"block_date": "x", "total": "y"}},
                }
            )
            for viz_id, text, pos in (
                (prices_viz["id"], "", {"col": 0, "row": 0, "sizeX": 3, "sizeY": 8}),
                (volume_viz["id"], "", {"col": 3, "row": 0, "sizeX": 3, "sizeY": 8}),
                (None, seed.DASHBOARD_TEXT, {"col": 0, "row": 8, "sizeX": 6, "sizeY": 2}),
            ):
                self.create_widget(
                    {
                        "dashboard_id": dash["id"],
                        "visualization_id": viz_id,
                        "options": {"position": pos},
                        "width": 1,
                        "text": text,
                    }
                )
            self.store.set_meta("seeded", iso_now())

    def _query(self, query_id: int) -> Doc:
        doc = self.store.get("queries", query_id)
        if doc is None:
            raise not_found()
        return doc

    def _query_json(self, doc: Doc, *, detail: bool) -> dict[str, Any]:
        defs = doc["options"].get("parameters") or []
        # Looked up, not stored in the document: a result landing during an edit must not be lost.
        latest = self.store.latest_result_summary(doc["data_source_id"], doc["query_hash"])
        out: dict[str, Any] = {"id": doc["id"], "latest_query_data_id": None if latest is None else latest["id"]}
        out.update((k, v) for k, v in doc.items() if not k.startswith("_") and k not in out)
        out["is_safe"] = params.is_safe(defs)
        out["user"] = dict(_USER)
        out["is_favorite"] = False
        if detail:
            out["last_modified_by"] = dict(_USER)
            out["visualizations"] = [
                _viz_json(v) for v in self.store.all("visualizations") if v["query_id"] == doc["id"]
            ]
            out["can_edit"] = True
        else:
            out["last_modified_by_id"] = _USER["id"]
            out["retrieved_at"] = None if latest is None else latest["retrieved_at"]
            out["runtime"] = None if latest is None else latest["runtime"]
        return out

    def create_query(self, body: Mapping[str, Any]) -> Doc:
        """Create a draft query with its table visualization and return the stored document."""
        if "query" not in body or "name" not in body:
            raise HTTPError(400, MSG_BAD_REQUEST)
        if body.get("data_source_id") != datasource.DATA_SOURCE_ID:
            raise internal_error()
        sql = str(body["query"])
        now = iso_now()
        options = _checked_options(body.get("options"))
        tags = _checked_tags(body.get("tags"))
        doc: Doc = {
            "id": 0,
            "name": str(body["name"]),
            "description": body.get("description"),
            "query": sql,
            "query_hash": params.query_hash(sql),
            "schedule": body.get("schedule"),
            "api_key": new_api_key(),
            "is_archived": False,
            "is_draft": True,
            "updated_at": now,
            "created_at": now,
            "data_source_id": datasource.DATA_SOURCE_ID,
            "options": options,
            "version": 1,
            "tags": tags,
        }
        with self._write_lock:
            self.store.insert("queries", doc)
            self.create_visualization({"query_id": doc["id"], "type": "TABLE", "name": "Table", "options": {}})
        return doc

    def _latest_result(self, doc: Doc) -> Doc | None:
        return self.store.latest_result(doc["data_source_id"], doc["query_hash"], None)

    def post_queries(self, body: Any) -> Reply:
        """POST /api/queries: create a query."""
        if not isinstance(body, dict):
            raise HTTPError(400, MSG_BAD_REQUEST)
        return Reply(200, self._query_json(self.create_query(body), detail=True))

    def get_query(self, query_id: int) -> Reply:
        """GET /api/queries/<id>."""
        return Reply(200, self._query_json(self._query(query_id), detail=True))

    def edit_query(self, query_id: int, body: Any) -> Reply:
        """POST /api/queries/<id>: edit; a stale ``version`` gives 409."""
        if not isinstance(body, dict):
            raise HTTPError(400, MSG_BAD_REQUEST)
        with self._write_lock:
            doc = self._query(query_id)
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
            if "query" in body and body["query"] != doc["query"]:
                doc["query"] = str(body["query"])
                doc["query_hash"] = params.query_hash(doc["query"])
            doc["version"] += 1
            doc["updated_at"] = iso_now()
            self.store.put("queries", doc)
        return Reply(200, self._query_json(doc, detail=True))

    def archive_query(self, query_id: int) -> Reply:
        """DELETE /api/queries/<id>: archive (GET still works)."""
        with self._write_lock:
            doc = self._query(query_id)
            doc["is_archived"] = True
            doc["updated_at"] = iso_now()
            self.store.put("queries", doc)
        return Reply(200, None)

    def list_queries(self, args: Mapping[str, list[str]]) -> Reply:
        """GET /api/queries: paginated, searchable, filterable by tags."""
        docs = [d for d in self.store.all("queries") if not d["is_archived"]]
        docs = _search(docs, args, ("name", "description", "query"))
        page = _paginate(docs, args)
        page["results"] = [self._query_json(d, detail=False) for d in page["results"]]
        return Reply(200, page)

    def _result_json(self, row: Doc, *, public: bool = False) -> bytes:
        # The stored data is already JSON: splice it in rather than parse and re-encode large results.
        if public:
            head = json.dumps({"retrieved_at": row["retrieved_at"]})
            return f'{{"query_result": {{"data": {row["data"]}, {head[1:]}}}'.encode()
        first = json.dumps({"id": row["id"], "query_hash": row["query_hash"], "query": row["query"]})
        rest = json.dumps(
            {"data_source_id": row["data_source_id"], "runtime": row["runtime"], "retrieved_at": row["retrieved_at"]}
        )
        return f'{{"query_result": {first[:-1]}, "data": {row["data"]}, {rest[1:]}}}'.encode()

    def _download(self, row: Doc, fmt: str, stem: str) -> Reply:
        day = datetime.now(UTC).strftime("%Y_%m_%d")
        if fmt == "csv":
            data = json.loads(row["data"])
            return Reply(
                200,
                _to_csv(data),
                "text/csv; charset=UTF-8",
                {"Content-Disposition": f"attachment; filename={stem}_{day}.csv"},
            )
        if fmt != "json":
            raise internal_error()
        return Reply(
            200,
            self._result_json(row),
            headers={"Content-Disposition": f"attachment; filename={stem}_{day}.json"},
        )

    def get_query_latest_result(self, query_id: int, fmt: str) -> Reply:
        """GET /api/queries/<id>/results[.json|.csv]: the latest result of a query without parameters."""
        doc = self._query(query_id)
        row = None if doc["options"].get("parameters") else self._latest_result(doc)
        if row is None:
            raise HTTPError(404, MSG_NO_CACHED)
        return self._download(row, fmt, _file_stem(doc["name"]))

    def get_query_result_scoped(self, query_id: int, result_id: int, fmt: str, principal: Principal) -> Reply:
        """GET /api/queries/<id>/results/<result_id>[.ext]: any result, or for a query key one this query produced."""
        doc = self._query(query_id)
        row = self.store.get_result(result_id)
        if row is None:
            raise not_found()
        if not principal.is_user and row["query_hash"] != doc["query_hash"] and row["query_id"] != query_id:
            raise HTTPError(404, MSG_NO_CACHED)
        return self._download(row, fmt, _file_stem(doc["name"]))

    def get_result(self, result_id: int, fmt: str) -> Reply:
        """GET /api/query_results/<id>[.json|.csv]."""
        row = self.store.get_result(result_id)
        if row is None:
            raise not_found()
        return self._download(row, fmt, str(result_id))

    def _dropdown_values(self, query_id: int) -> list[str]:
        doc = self.store.get("queries", query_id)
        if doc is None:
            raise LookupError(query_id)
        row = self._latest_result(doc)
        if row is not None:
            data = json.loads(row["data"])
        else:
            conn = datasource.connect(self.data_path, lambda: None)
            try:
                data = datasource.run_sql(conn, doc["query"], {})
            finally:
                conn.close()
        names = [c["name"] for c in data["columns"]]
        if not names:
            return []
        # As Redash: the values are the column named "value" (any case) when there is one, else the first column.
        column = next((n for n in names if n.lower() == "value"), names[0])
        return [str(r[column]) for r in data["rows"]]

    def run_query(self, query_id: int, body: Any, principal: Principal) -> Reply:
        """POST /api/queries/<id>/results: a cached result young enough, or a job."""
        body = body if isinstance(body, dict) else {}
        values = body.get("parameters") or {}
        max_age_raw = body.get("max_age", -1)
        try:
            max_age = -1 if max_age_raw is None else int(max_age_raw)
        except (TypeError, ValueError):
            raise internal_error() from None
        doc = self._query(query_id)
        defs = doc["options"].get("parameters") or []
        if not principal.is_user and not params.is_safe(defs):
            raise HTTPError(403, body={"job": {"status": 4, "error": MSG_UNSAFE}})
        if not isinstance(values, dict):
            raise HTTPError(400, MSG_BAD_REQUEST)
        try:
            params.validate(defs, values, self._dropdown_values)
        except params.InvalidParameters as exc:
            raise HTTPError(400, str(exc)) from None
        missing = params.missing(doc["query"], values)
        if missing:
            error = "Missing parameter value for: " + ", ".join(missing)
            raise HTTPError(400, body={"job": {"status": 4, "error": error}})
        sql = params.render(doc["query"], defs, values)
        if body.get("apply_auto_limit"):
            sql = datasource.apply_auto_limit(sql)
        return self._run_or_cached(sql, query_id, max_age, public=not principal.is_user)

    def run_adhoc(self, body: Any) -> Reply:
        """POST /api/query_results: run SQL text that is not a saved query."""
        if not isinstance(body, dict):
            raise HTTPError(400, MSG_BAD_REQUEST)
        if body.get("data_source_id") is None:
            raise HTTPError(401, body={"job": {"status": 4, "error": "Please select data source to run this query."}})
        if body.get("data_source_id") != datasource.DATA_SOURCE_ID or "query" not in body:
            raise internal_error()
        try:
            max_age = int(body.get("max_age", -1) if body.get("max_age") is not None else -1)
        except (TypeError, ValueError):
            raise internal_error() from None
        return self._run_or_cached(str(body["query"]), None, max_age, public=False)

    def _run_or_cached(self, sql: str, query_id: int | None, max_age: int, *, public: bool) -> Reply:
        qhash = params.query_hash(sql)
        if max_age != 0:
            # Only -1 means "any age"; other negative ages are never young enough (as Redash's get_latest).
            min_ts = None if max_age == -1 else time.time() - max_age
            row = self.store.latest_result(datasource.DATA_SOURCE_ID, qhash, min_ts)
            if row is not None:
                return Reply(200, self._result_json(row, public=public))
        return Reply(200, {"job": self.executor.submit(sql, qhash, datasource.DATA_SOURCE_ID, query_id)})

    def get_job(self, job_id: str) -> Reply:
        """GET /api/jobs/<id> (or the query-scoped route, which Redash serves for any job)."""
        job = self.executor.get(job_id)
        if job is None:
            raise internal_error()
        return Reply(200, {"job": job.to_json()})

    def cancel_job(self, job_id: str) -> Reply:
        """DELETE /api/jobs/<id>: cancel a pending or running job."""
        if not self.executor.cancel(job_id):
            raise internal_error()
        return Reply(200, None)

    def job_status(self, job_id: str) -> int:
        """Return a job's status code; KeyError when unknown."""
        job = self.executor.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job.status

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
            raise HTTPError(400, MSG_BAD_REQUEST)
        return Reply(200, _viz_json(self.create_visualization(body)))

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
            raise HTTPError(400, MSG_BAD_REQUEST)
        return Reply(200, self._widget_json(self.create_widget(body)))

    def delete_widget(self, widget_id: int) -> Reply:
        """DELETE /api/widgets/<id>: remove a widget from its dashboard (unknown id: 500, as captured)."""
        with self._write_lock:
            if self.store.get("widgets", widget_id) is None:
                raise internal_error()
            self.store.delete("widgets", widget_id)
        return Reply(200, None)

    def _widget_json(self, doc: Doc) -> dict[str, Any]:
        out = {k: v for k, v in doc.items() if k != "visualization_id"}
        viz_id = doc.get("visualization_id")
        if viz_id is not None:
            viz = self.store.get("visualizations", int(viz_id))
            if viz is not None:
                query = self.store.get("queries", int(viz["query_id"]))
                out["visualization"] = _viz_json(viz)
                if query is not None:
                    q = self._query_json(query, detail=True)
                    q.pop("visualizations", None)
                    q.pop("can_edit", None)
                    out["visualization"]["query"] = q
        return out

    def create_dashboard(self, body: Mapping[str, Any]) -> Doc:
        """Create a draft dashboard with a unique slug and return the stored document."""
        if "name" not in body:
            raise HTTPError(400, MSG_BAD_REQUEST)
        name = str(body["name"])
        with self._write_lock:
            taken = {d["slug"] for d in self.store.all("dashboards")}
            base = slug = slugify(name)
            n = 2
            while slug in taken:
                slug = f"{base}-{n}"
                n += 1
            now = iso_now()
            doc: Doc = {
                "id": 0,
                "slug": slug,
                "name": name,
                "user_id": _USER["id"],
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

    def _dashboard_json(self, doc: Doc, *, with_widgets: bool) -> dict[str, Any]:
        out = dict(doc)
        out["user"] = dict(_USER)
        out["is_favorite"] = False
        out["widgets"] = (
            [self._widget_json(w) for w in self.store.all("widgets") if w["dashboard_id"] == doc["id"]]
            if with_widgets
            else None
        )
        order = (
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
        return {k: out[k] for k in order}

    def post_dashboards(self, body: Any) -> Reply:
        """POST /api/dashboards: create."""
        if not isinstance(body, dict):
            raise HTTPError(400, MSG_BAD_REQUEST)
        return Reply(200, self._dashboard_json(self.create_dashboard(body), with_widgets=False))

    def list_dashboards(self, args: Mapping[str, list[str]]) -> Reply:
        """GET /api/dashboards: paginated, searchable by name, filterable by tags."""
        docs = [d for d in self.store.all("dashboards") if not d["is_archived"]]
        docs = _search(docs, args, ("name",))
        page = _paginate(docs, args)
        page["results"] = [self._dashboard_json(d, with_widgets=False) for d in page["results"]]
        return Reply(200, page)

    def _dashboard_by_ref(self, ref: str, *, legacy: bool) -> Doc:
        if self.flavor == "inverse-watch" or legacy:
            doc = next((d for d in self.store.all("dashboards") if d["slug"] == ref), None)
            if doc is not None:
                return doc
            if self.flavor == "redash" or not ref.isdigit():
                raise not_found()
        if not ref.isdigit():
            raise internal_error()
        doc = self.store.get("dashboards", int(ref))
        if doc is None:
            raise not_found()
        return doc

    def get_dashboard(self, ref: str, args: Mapping[str, list[str]]) -> Reply:
        """GET /api/dashboards/<slug> (Inverse Watch) or /<id> (Redash; slug with ``?legacy``)."""
        doc = self._dashboard_by_ref(ref, legacy="legacy" in args)
        return Reply(200, {**self._dashboard_json(doc, with_widgets=True), "can_edit": True})

    def edit_dashboard(self, ref: str, body: Any) -> Reply:
        """POST /api/dashboards/<id>: edit name, tags, is_draft; a stale ``version`` gives 409."""
        if not ref.isdigit():
            raise internal_error()
        if not isinstance(body, dict):
            raise HTTPError(400, MSG_BAD_REQUEST)
        with self._write_lock:
            doc = self.store.get("dashboards", int(ref))
            if doc is None:
                raise internal_error()
            if "version" in body and body["version"] != doc["version"]:
                raise HTTPError(409, MSG_CONFLICT)
            if "name" in body:
                # Stored names are sorted and searched by every later list: keep them strings.
                doc["name"] = str(body["name"])
            for key in ("is_draft", "dashboard_filters_enabled", "options", "layout"):
                if key in body:
                    doc[key] = body[key]
            if "tags" in body:
                doc["tags"] = _checked_tags(body["tags"])
            doc["version"] += 1
            doc["updated_at"] = iso_now()
            self.store.put("dashboards", doc)
        return Reply(200, self._dashboard_json(doc, with_widgets=True))

    def archive_dashboard(self, ref: str) -> Reply:
        """DELETE /api/dashboards/<slug or id>: archive (Redash: by id only)."""
        with self._write_lock:
            doc: Doc | None = None
            if self.flavor == "inverse-watch":
                doc = next((d for d in self.store.all("dashboards") if d["slug"] == ref), None)
            if doc is None and ref.isdigit():
                doc = self.store.get("dashboards", int(ref))
            if doc is None:
                raise not_found() if self.flavor == "inverse-watch" else internal_error()
            doc["is_archived"] = True
            doc["version"] += 1
            doc["updated_at"] = iso_now()
            self.store.put("dashboards", doc)
        return Reply(200, self._dashboard_json(doc, with_widgets=True))

    def tags(self, kind: str) -> Reply:
        """GET /api/queries/tags or /api/dashboards/tags: each tag of live documents with its count."""
        counts: dict[str, int] = {}
        for doc in self.store.all(kind):
            if not doc["is_archived"]:
                for tag in doc.get("tags") or []:
                    counts[tag] = counts.get(tag, 0) + 1
        return Reply(200, {"tags": [{"name": k, "count": counts[k]} for k in sorted(counts)]})

    def list_data_sources(self) -> Reply:
        """GET /api/data_sources: the one SQLite data source."""
        return Reply(
            200,
            [
                {
                    "id": datasource.DATA_SOURCE_ID,
                    "name": "local (sqlite)",
                    "type": "sqlite",
                    "syntax": "sql",
                    "paused": 0,
                    "pause_reason": None,
                    "supports_auto_limit": True,
                    "view_only": False,
                }
            ],
        )


def _checked_options(options: Any) -> dict[str, Any]:
    # Stored definitions are read by every later list and run: refuse shapes that would break them.
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise HTTPError(400, MSG_BAD_REQUEST)
    defs = options.get("parameters")
    if defs is None:
        defs = []
    if not isinstance(defs, list) or not all(
        isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("type"), str) for d in defs
    ):
        raise HTTPError(400, MSG_BAD_REQUEST)
    return {**options, "parameters": defs}


def _checked_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise HTTPError(400, MSG_BAD_REQUEST)
    return [str(t) for t in tags]


def _viz_json(doc: Doc) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "query_id"}


def _file_stem(name: str) -> str:
    return re.sub(r"\W+", "_", name).strip("_") or "query"


def _first_int(args: Mapping[str, list[str]], name: str, default: int) -> int:
    try:
        return int(args.get(name, [str(default)])[0])
    except ValueError:
        return default


def _search(docs: list[Doc], args: Mapping[str, list[str]], fields: Sequence[str]) -> list[Doc]:
    term = (args.get("q") or [""])[0].strip().lower()
    if term:
        docs = [d for d in docs if any(term in str(d.get(f) or "").lower() for f in fields)]
    tags = args.get("tags") or []
    if tags:
        docs = [d for d in docs if set(tags).issubset(set(d.get("tags") or []))]
    order = (args.get("order") or ["-created_at"])[0]
    key_name = order.lstrip("-")
    if key_name not in ("name", "created_at", "updated_at", "id"):
        key_name, order = "created_at", "-created_at"

    def sort_key(d: Doc) -> tuple[Any, int]:
        return (d.get(key_name) or "", int(d["id"]))

    return sorted(docs, key=sort_key, reverse=order.startswith("-"))


def _paginate(items: list[Doc], args: Mapping[str, list[str]]) -> dict[str, Any]:
    page = _first_int(args, "page", 1)
    page_size = _first_int(args, "page_size", 25)
    if page < 1:
        raise HTTPError(400, "Page must be positive integer.")
    if not 1 <= page_size <= 250:
        raise HTTPError(400, "Page size is out of range (1-250).")
    start = (page - 1) * page_size
    if page > 1 and start >= len(items):
        raise HTTPError(400, "Page is out of range.")
    return {"count": len(items), "page": page, "page_size": page_size, "results": items[start : start + page_size]}


def _csv_value(value: Any, col_type: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if col_type == "datetime" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%d/%m/%y %H:%M")
        except ValueError:
            return value
    if col_type == "date" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%d/%m/%y")
        except ValueError:
            return value
    return str(value)


def _to_csv(data: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    columns = data["columns"]
    writer.writerow([c["name"] for c in columns])
    for row in data["rows"]:
        writer.writerow([_csv_value(row.get(c["name"]), c["type"]) for c in columns])
    return buf.getvalue()
