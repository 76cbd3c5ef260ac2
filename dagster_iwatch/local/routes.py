"""The HTTP routes of the local server: each declares the access it needs, then calls one resource method."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from dagster_iwatch.local import datasource, pages
from dagster_iwatch.local.app import LocalApp
from dagster_iwatch.local.faults import Fault, Faults
from dagster_iwatch.local.queries import paginate, tags
from dagster_iwatch.local.replies import (
    MSG_BAD_REQUEST,
    MSG_EDIT_FORBIDDEN,
    MSG_FORBIDDEN,
    MSG_INTERNAL,
    MSG_METHOD,
    MSG_NOT_FOUND,
    MSG_TOO_LARGE,
    HTTPError,
    LocalServerError,
    Principal,
    Reply,
    bad_request,
    internal_error,
    login_required,
    to_int,
)

LOG = logging.getLogger("dagster_iwatch.local")


class Access(Enum):
    """Who may call a route."""

    NONE = "none"  # anyone: the read-only demo pages
    USER = "user"  # the user key only
    QUERY = "query"  # the user key, or the key of the query named by ``{qid}`` in the path


class Body(Enum):
    """Whether a route reads a JSON body, and what bad JSON gives."""

    NONE = "none"
    STRICT = "strict"  # empty or invalid JSON: 400
    LENIENT = "lenient"  # empty: {}; invalid: {} in the redash flavor (as captured), 400 in inverse-watch


@dataclass(frozen=True)
class Call:
    """One authorized request as a handler sees it."""

    app: LocalApp
    faults: Faults
    principal: Principal | None
    params: dict[str, str]
    args: dict[str, list[str]]
    body: Any
    job_fault: str | None

    @property
    def caller(self) -> Principal:
        """The authenticated caller (every route but the demo pages has one)."""
        return self.principal or Principal()

    def qid(self) -> int:
        """The ``{qid}`` path parameter as an int (500 when it is not one, as Redash)."""
        return to_int(self.params["qid"])

    def ref(self, name: str) -> tuple[int, str]:
        """A ``<id>[.<ext>]`` path parameter as id and format (``json`` by default)."""
        raw_id, _, ext = self.params[name].partition(".")
        return to_int(raw_id), ext or "json"


Handler = Callable[[Call], Reply | Response]


@dataclass(frozen=True)
class Endpoint:
    """A route: method, path, who may call it, how it reads its body, and what it does."""

    method: str
    path: str
    access: Access
    handler: Handler
    body: Body = Body.NONE
    # What a valid query key gets on a user-only route, when Redash answers more than "login".
    query_key_reply: Reply | None = None


def _cancel_scoped(call: Call) -> Reply:
    # Redash routes this to a handler that does not take the query id: a 500, and the job keeps running.
    raise internal_error()


def _admin_faults(call: Call) -> Reply:
    if call.body is not None:
        specs = call.body if isinstance(call.body, list) else [call.body]
        try:
            planned = [Fault.from_json(spec) for spec in specs]
        except (LocalServerError, TypeError) as exc:
            raise bad_request(str(exc)) from None
        for fault in planned:
            call.faults.add(fault)
    return Reply(200, {"faults": [f.to_json() for f in call.faults.pending()]})


def _admin_clear(call: Call) -> Reply:
    call.faults.clear()
    return Reply(200, {"faults": []})


def _data_sources() -> Reply:
    source = {
        "id": datasource.DATA_SOURCE_ID,
        "name": "local (sqlite)",
        "type": "sqlite",
        "syntax": "sql",
        "paused": 0,
        "pause_reason": None,
        "supports_auto_limit": True,
        "view_only": False,
    }
    return Reply(200, [source])


def _forbidden(message: str) -> Reply:
    return Reply(403, {"message": message})


U, Q = Access.USER, Access.QUERY
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/queries", U, lambda c: c.app.queries.list_page(c.args)),
    Endpoint("POST", "/api/queries", U, lambda c: c.app.queries.post(c.body), Body.STRICT),
    Endpoint("GET", "/api/queries/tags", U, lambda c: tags(c.app.state.store.all("queries"))),
    Endpoint("GET", "/api/queries/archive", U, lambda c: c.app.queries.list_page(c.args, archived=True)),
    Endpoint("GET", "/api/queries/my", U, lambda c: c.app.queries.list_page(c.args)),
    Endpoint("GET", "/api/queries/favorites", U, lambda c: Reply(200, paginate([], c.args))),
    Endpoint("GET", "/api/queries/{qid}/results", Q, lambda c: c.app.results.latest(c.qid(), "json")),
    Endpoint("GET", "/api/queries/{qid}/results.{ext}", Q, lambda c: c.app.results.latest(c.qid(), c.params["ext"])),
    Endpoint(
        "POST",
        "/api/queries/{qid}/results",
        Q,
        lambda c: c.app.results.run_query(c.qid(), c.body, c.caller, c.job_fault),
        Body.LENIENT,
    ),
    Endpoint(
        "GET", "/api/queries/{qid}/results/{rid}", Q, lambda c: c.app.results.scoped(c.qid(), *c.ref("rid"), c.caller)
    ),
    Endpoint("GET", "/api/queries/{qid}/jobs/{jid}", Q, lambda c: c.app.results.job(c.params["jid"])),
    Endpoint("DELETE", "/api/queries/{qid}/jobs/{jid}", Q, _cancel_scoped),
    Endpoint("GET", "/api/queries/{qid}", Q, lambda c: c.app.queries.get(c.qid(), by_query_key=not c.caller.is_user)),
    Endpoint(
        "POST",
        "/api/queries/{qid}",
        U,
        lambda c: c.app.queries.edit(c.qid(), c.body),
        Body.STRICT,
        _forbidden(MSG_FORBIDDEN),
    ),
    Endpoint(
        "DELETE",
        "/api/queries/{qid}",
        U,
        lambda c: c.app.queries.archive(c.qid()),
        query_key_reply=_forbidden(MSG_EDIT_FORBIDDEN),
    ),
    Endpoint("GET", "/api/jobs/{jid}", U, lambda c: c.app.results.job(c.params["jid"])),
    Endpoint("DELETE", "/api/jobs/{jid}", U, lambda c: c.app.results.cancel(c.params["jid"])),
    Endpoint("GET", "/api/query_results/{rid}", U, lambda c: c.app.results.by_id(*c.ref("rid"))),
    Endpoint("POST", "/api/query_results", U, lambda c: c.app.results.run_adhoc(c.body, c.job_fault), Body.STRICT),
    Endpoint("GET", "/api/dashboards", U, lambda c: c.app.dashboards.list_page(c.args)),
    Endpoint("POST", "/api/dashboards", U, lambda c: c.app.dashboards.post(c.body), Body.STRICT),
    Endpoint("GET", "/api/dashboards/tags", U, lambda c: tags(c.app.state.store.all("dashboards"))),
    Endpoint("GET", "/api/dashboards/my", U, lambda c: c.app.dashboards.list_page(c.args)),
    Endpoint("GET", "/api/dashboards/favorites", U, lambda c: Reply(200, paginate([], c.args))),
    Endpoint("GET", "/api/dashboards/{ref}", U, lambda c: c.app.dashboards.get(c.params["ref"], c.args)),
    Endpoint("POST", "/api/dashboards/{ref}", U, lambda c: c.app.dashboards.edit(c.params["ref"], c.body), Body.STRICT),
    Endpoint("DELETE", "/api/dashboards/{ref}", U, lambda c: c.app.dashboards.archive(c.params["ref"])),
    Endpoint("POST", "/api/widgets", U, lambda c: c.app.dashboards.post_widget(c.body), Body.STRICT),
    Endpoint("DELETE", "/api/widgets/{wid}", U, lambda c: c.app.dashboards.delete_widget(to_int(c.params["wid"]))),
    Endpoint("POST", "/api/visualizations", U, lambda c: c.app.queries.post_visualization(c.body), Body.STRICT),
    Endpoint("GET", "/api/data_sources", U, lambda c: _data_sources()),
    Endpoint("GET", "/queries/{qid}", Access.NONE, lambda c: pages.query_page(c.app, c.qid())),
    Endpoint("GET", "/dashboard/{ref}", Access.NONE, lambda c: pages.dashboard_page(c.app, c.params["ref"])),
    Endpoint("GET", "/dashboards/{ref}", Access.NONE, lambda c: pages.dashboard_page(c.app, c.params["ref"])),
    Endpoint("GET", "/__local/faults", U, _admin_faults),
    Endpoint("POST", "/__local/faults", U, _admin_faults, Body.STRICT),
    Endpoint("DELETE", "/__local/faults", U, _admin_clear),
)


def api_key_of(request: Request) -> str | None:
    """The key a request carries: ``?api_key=`` first, then ``Authorization`` with an optional ``Key`` prefix."""
    from_args = request.query_params.get("api_key")
    if from_args:
        return from_args
    header = request.headers.get("authorization", "").strip()
    if not header:
        return None
    return header[4:].strip() if header.startswith("Key ") else header


def to_response(reply: Reply | Response) -> Response:
    """Encode a reply (JSON unless its body is text or bytes with another content type)."""
    if isinstance(reply, Response):
        return reply
    if isinstance(reply.body, bytes):
        payload = reply.body
    elif isinstance(reply.body, str) and not reply.content_type.startswith("application/json"):
        payload = reply.body.encode("utf-8")
    else:
        payload = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
    return Response(payload, reply.status, reply.headers, reply.content_type)


class RouteContext:
    """What every route needs: the resources, the faults and the body limit."""

    def __init__(self, app: LocalApp, faults: Faults, max_body: int) -> None:
        self.app = app
        self.faults = faults
        self.max_body = max_body

    def endpoint(self, spec: Endpoint) -> Callable[[Request], Any]:
        """The Starlette endpoint of `spec`: authorize, read the body, run the handler off the event loop."""

        async def serve(request: Request) -> Response:
            try:
                principal = self._authorize(spec, request)
                body = await self._body(spec, request)
                call = Call(
                    app=self.app,
                    faults=self.faults,
                    principal=principal,
                    params={k: str(v) for k, v in request.path_params.items()},
                    args={k: request.query_params.getlist(k) for k in request.query_params},
                    body=body,
                    job_fault=request.scope.get("iwatch.job_fault"),
                )
                reply = await run_in_threadpool(spec.handler, call)
            except HTTPError as exc:
                reply = exc.reply
            except ClientDisconnect:
                # Nobody is left to answer; uvicorn drops the connection.
                return Response(status_code=400)
            except Exception:  # a bad request must never take the server down, and its cause must be seen
                LOG.exception("500 on %s %s", request.method, request.url.path)
                reply = Reply(500, {"message": MSG_INTERNAL})
            return to_response(reply)

        return serve

    def _authorize(self, spec: Endpoint, request: Request) -> Principal | None:
        if spec.access is Access.NONE:
            return None
        principal = self.app.state.authenticate(api_key_of(request))
        if principal is None:
            raise login_required()
        if principal.is_user:
            return principal
        if spec.access is Access.USER:
            if spec.query_key_reply is not None:
                raise HTTPError(spec.query_key_reply.status, body=spec.query_key_reply.body)
            raise login_required()
        if str(principal.query_id) != request.path_params.get("qid"):
            raise login_required()
        return principal

    async def _body(self, spec: Endpoint, request: Request) -> Any:
        if spec.body is Body.NONE:
            return None
        raw = await self._read_bounded(request)
        if not raw.strip():
            if spec.body is Body.LENIENT:
                return {}
            raise bad_request()
        try:
            body = json.loads(raw)
            # JSON may escape lone surrogates, which could then be neither stored nor sent back as UTF-8.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except ValueError:
            if spec.body is Body.LENIENT and self.app.flavor == "redash":
                return {}
            raise bad_request() from None
        return body

    async def _read_bounded(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise bad_request()
            if int(declared) > self.max_body:
                raise HTTPError(413, MSG_TOO_LARGE)
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise HTTPError(413, MSG_TOO_LARGE)
            parts.append(chunk)
        return b"".join(parts)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: MSG_NOT_FOUND, 405: MSG_METHOD, 400: MSG_BAD_REQUEST}.get(status, MSG_INTERNAL)
    return to_response(Reply(status, {"message": message}))


def build_routes_app(app: LocalApp, faults: Faults, max_body: int) -> Starlette:
    """The Starlette application serving every endpoint of :data:`ENDPOINTS`."""
    context = RouteContext(app, faults, max_body)
    routes = [Route(e.path, context.endpoint(e), methods=[e.method]) for e in ENDPOINTS]
    starlette = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    # Flask does not redirect "/api/queries/" to "/api/queries": it is another URL, and not the list.
    starlette.router.redirect_slashes = False
    return starlette
