"""The saved-query endpoints: list, read, create, edit, archive."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dagster_iwatch import _wire
from dagster_iwatch._args import check_id, list_params, query_options
from dagster_iwatch._endpoints import Endpoints
from dagster_iwatch.errors import ConfigError
from dagster_iwatch.types import Parameter, Query

_QUERY_FIELDS = frozenset(
    {"name", "query", "description", "data_source_id", "options", "parameters", "tags", "schedule", "is_draft"}
)


class QueryEndpoints(Endpoints):
    """Saved queries: ``/api/queries`` and ``/api/queries/<id>``."""

    def list_queries(
        self,
        *,
        q: str | None = None,
        tags: Sequence[str] | None = None,
        page_size: int = 100,
        order: str | None = None,
    ) -> Iterator[Query]:
        """Iterate over saved queries, fetching pages as needed.

        Args:
            q: Full-text search.
            tags: Only queries with all of these tags.
            page_size: Queries per request (1-250).
            order: Sort order, e.g. ``"name"`` or ``"-created_at"``.

        Returns:
            A lazy iterator over every matching query, across all pages.

        Raises:
            ConfigError: No key, or a bad page size (before any request).
        """
        credential = self._user()
        params = list_params(q, tags, page_size)
        if order:
            params["order"] = order
        call = "GET /api/queries"
        return (_wire.parse_query(item, call) for item in self._pages("/api/queries", params, credential))

    def get_query(self, query_id: int) -> Query:
        """Fetch a saved query.

        Args:
            query_id: The query's id.

        Returns:
            The query, with its declared parameters.

        Raises:
            NotFoundError: No such query, or the key cannot see it.
            AuthError: The key was refused.
        """
        qid = check_id(query_id, "query_id")
        path = f"/api/queries/{qid}"
        return _wire.parse_query(self._json("GET", path, self._for_query(qid)), f"GET {path}")

    def create_query(
        self,
        *,
        name: str,
        query: str,
        data_source_id: int,
        description: str | None = None,
        parameters: Sequence[Parameter | Mapping[str, Any]] | None = None,
        tags: Sequence[str] | None = None,
        schedule: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Query:
        """Create a saved query (servers create it as a draft).

        Args:
            name: The query's name.
            query: Its SQL, with ``{{ name }}`` placeholders for parameters.
            data_source_id: The data source it runs on.
            description: Its description.
            parameters: Declared parameters, as :class:`Parameter` or Redash's JSON shape.
            tags: Its tags.
            schedule: Redash's schedule object.
            options: Other query options; ``parameters`` are stored in them as ``options.parameters``.

        Returns:
            The new query.
        """
        body: dict[str, Any] = {
            "name": name,
            "query": query,
            "data_source_id": check_id(data_source_id, "data_source_id"),
            "description": description,
            "options": query_options(options, parameters),
            "tags": list(tags or ()),
            "schedule": dict(schedule) if schedule is not None else None,
        }
        data = self._json("POST", "/api/queries", self._user(), json_body=body)
        return _wire.parse_query(data, "POST /api/queries")

    def update_query(self, query_id: int, **fields: Any) -> Query:
        """Edit a saved query.

        Pass ``version=query.version`` to make the edit fail with :class:`ConflictError` if someone changed
        the query since you read it. ``parameters`` replaces the declared parameters and keeps the query's
        other options.

        Args:
            query_id: The query's id.
            **fields: Any of name, query, description, data_source_id, options, parameters, tags, schedule,
                is_draft, version.

        Returns:
            The query as saved.

        Raises:
            ConfigError: An unknown field.
            ConflictError: ``version`` is stale.
        """
        qid = check_id(query_id, "query_id")
        credential = self._user()
        version = fields.pop("version", None)
        unknown = set(fields) - _QUERY_FIELDS
        if unknown:
            raise ConfigError(f"update_query: unknown fields {sorted(unknown)}; allowed: {sorted(_QUERY_FIELDS)}")
        body = dict(fields)
        path = f"/api/queries/{qid}"
        if "parameters" in body:
            parameters = body.pop("parameters")
            current = body.get("options")
            if current is None:
                current = self.get_query(qid).raw.get("options")
            body["options"] = query_options(current or {}, parameters)
        if version is not None:
            body["version"] = version
        return _wire.parse_query(self._json("POST", path, credential, json_body=body), f"POST {path}")

    def archive_query(self, query_id: int) -> None:
        """Archive a saved query (it can still be read).

        Args:
            query_id: The query's id.
        """
        qid = check_id(query_id, "query_id")
        self._json("DELETE", f"/api/queries/{qid}", self._user())
