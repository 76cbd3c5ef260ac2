"""Running queries, their results and their jobs: execute, cached results, downloads, poll, cancel."""

from __future__ import annotations

import json
import time
from typing import Any

from dagster_iwatch.local import datasource, params
from dagster_iwatch.local.downloads import download, file_stem, result_json
from dagster_iwatch.local.queries import Queries
from dagster_iwatch.local.replies import (
    MSG_NO_CACHED,
    MSG_UNSAFE,
    HTTPError,
    Principal,
    Reply,
    bad_request,
    internal_error,
    not_found,
)
from dagster_iwatch.local.state import LocalState


class Results:
    """Executions of saved and ad-hoc queries, the results they store and the jobs that run them."""

    def __init__(self, state: LocalState, queries: Queries) -> None:
        self.state = state
        self.store = state.store
        self.executor = state.executor
        self.queries = queries

    def run_query(self, query_id: int, body: Any, principal: Principal, fault: str | None = None) -> Reply:
        """POST /api/queries/<id>/results: a cached result young enough, or a job.

        Args:
            query_id: The saved query.
            body: The parsed JSON body (``{}`` when there was none).
            principal: Who asks; a query key may not run a query with a text parameter.
            fault: ``"hang"`` or ``"fail"`` for an injected job fault.
        """
        body = body if isinstance(body, dict) else {}
        values = body.get("parameters") or {}
        max_age = _max_age(body)
        doc = self.queries.get_doc(query_id)
        defs = doc["options"].get("parameters") or []
        if not principal.is_user and not params.is_safe(defs):
            raise HTTPError(403, body={"job": {"status": 4, "error": MSG_UNSAFE}})
        if not isinstance(values, dict):
            raise bad_request()
        try:
            params.validate(defs, values, self._dropdown_values)
        except params.InvalidParameters as exc:
            raise bad_request(str(exc)) from None
        missing = params.missing(doc["query"], values)
        if missing:
            error = "Missing parameter value for: " + ", ".join(missing)
            raise HTTPError(400, body={"job": {"status": 4, "error": error}})
        sql = params.render(doc["query"], defs, values)
        if body.get("apply_auto_limit"):
            sql = datasource.apply_auto_limit(sql)
        return self._run_or_cached(sql, query_id, max_age, public=not principal.is_user, fault=fault)

    def run_adhoc(self, body: Any, fault: str | None = None) -> Reply:
        """POST /api/query_results: run SQL text that is not a saved query."""
        if not isinstance(body, dict):
            raise bad_request()
        if body.get("data_source_id") is None:
            raise HTTPError(401, body={"job": {"status": 4, "error": "Please select data source to run this query."}})
        if body.get("data_source_id") != datasource.DATA_SOURCE_ID or "query" not in body:
            raise internal_error()
        return self._run_or_cached(str(body["query"]), None, _max_age(body), public=False, fault=fault)

    def _run_or_cached(self, sql: str, query_id: int | None, max_age: int, *, public: bool, fault: str | None) -> Reply:
        qhash = params.query_hash(sql)
        if max_age != 0:
            # Only -1 means "any age"; other negative ages are never young enough (as Redash's get_latest).
            min_ts = None if max_age == -1 else time.time() - max_age
            row = self.store.latest_result(datasource.DATA_SOURCE_ID, qhash, min_ts)
            if row is not None:
                return Reply(200, result_json(row, public=public))
        job = self.executor.submit(sql, qhash, datasource.DATA_SOURCE_ID, query_id, fault=fault)
        return Reply(200, {"job": job})

    def latest(self, query_id: int, fmt: str) -> Reply:
        """GET /api/queries/<id>/results[.ext]: the result of the latest run with the default values."""
        doc = self.queries.get_doc(query_id)
        summary = self.queries.latest_result_summary(doc)
        row = None if summary is None else self.store.get_result(int(summary["id"]))
        if row is None:
            raise HTTPError(404, MSG_NO_CACHED)
        return download(row, fmt, file_stem(doc["name"]))

    def scoped(self, query_id: int, result_id: int, fmt: str, principal: Principal) -> Reply:
        """GET /api/queries/<id>/results/<result_id>[.ext].

        A user key reads any result; a query key only those of runs with the query's default values, whose
        hash is the query's (so a run with other values is "No cached result" to it, as on Redash).
        """
        doc = self.queries.get_doc(query_id)
        row = self.store.get_result(result_id)
        if row is None:
            raise not_found()
        if not principal.is_user and row["query_hash"] != self.queries.effective_hash(doc):
            raise HTTPError(404, MSG_NO_CACHED)
        return download(row, fmt, file_stem(doc["name"]))

    def by_id(self, result_id: int, fmt: str) -> Reply:
        """GET /api/query_results/<id>[.ext]."""
        row = self.store.get_result(result_id)
        if row is None:
            raise not_found()
        return download(row, fmt, str(result_id))

    def job(self, job_id: str) -> Reply:
        """GET /api/jobs/<id> or /api/queries/<qid>/jobs/<id> (Redash serves any job on the latter)."""
        job = self.executor.get(job_id)
        if job is None:
            raise internal_error()
        return Reply(200, {"job": job.to_json()})

    def cancel(self, job_id: str) -> Reply:
        """DELETE /api/jobs/<id>: cancel a pending or running job."""
        if not self.executor.cancel(job_id):
            raise internal_error()
        return Reply(200, None)

    def _dropdown_values(self, query_id: int) -> list[str]:
        doc = self.store.get("queries", query_id)
        if doc is None:
            raise LookupError(query_id)
        row = self.store.latest_result(doc["data_source_id"], self.queries.effective_hash(doc), None)
        if row is not None:
            data = json.loads(row["data"])
        else:
            conn = datasource.connect(self.state.data_path, lambda: None)
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


def _max_age(body: dict[str, Any]) -> int:
    raw = body.get("max_age", -1)
    try:
        return -1 if raw is None else int(raw)
    except (TypeError, ValueError):
        raise internal_error() from None
