"""The dashboard endpoints, on both server flavors (by slug on Inverse Watch, by id on Redash v10+)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dagster_iwatch import _wire
from dagster_iwatch._args import MAX_PAGE_SIZE, check_id, flavor_miss, list_params, slug_part
from dagster_iwatch._config import is_int
from dagster_iwatch._endpoints import Endpoints
from dagster_iwatch.errors import APIError, ConfigError, NotFoundError
from dagster_iwatch.types import Dashboard

_DASHBOARD_FIELDS = frozenset({"name", "tags", "is_draft", "layout", "dashboard_filters_enabled", "options"})


class DashboardEndpoints(Endpoints):
    """Dashboards: ``/api/dashboards`` and ``/api/dashboards/<slug or id>``."""

    def list_dashboards(
        self, *, q: str | None = None, tags: Sequence[str] | None = None, page_size: int = 100
    ) -> Iterator[Dashboard]:
        """Iterate over dashboards, fetching pages as needed (list entries carry no widgets).

        Args:
            q: Full-text search.
            tags: Only dashboards with all of these tags.
            page_size: Dashboards per request (1-250).

        Returns:
            A lazy iterator over every matching dashboard.
        """
        credential = self._user()
        params = list_params(q, tags, page_size)
        call = "GET /api/dashboards"
        return (_wire.parse_dashboard(item, call) for item in self._pages("/api/dashboards", params, credential))

    def get_dashboard(self, slug_or_id: str | int) -> Dashboard:
        """Fetch a dashboard with its widgets, by slug or id, on either server flavor.

        Inverse Watch (like Redash up to v9) reads dashboards by slug; Redash v10+ by id, and by slug only
        with ``?legacy``. Both are tried as needed.

        Args:
            slug_or_id: The dashboard's slug (``str``) or id (``int``).

        Returns:
            The dashboard.

        Raises:
            NotFoundError: No such dashboard.
        """
        credential = self._user()
        if is_int(slug_or_id):
            dashboard_id = check_id(slug_or_id, "dashboard id")
            path = f"/api/dashboards/{dashboard_id}"
            try:
                return _wire.parse_dashboard(self._json("GET", path, credential, idempotent=False), f"GET {path}")
            except APIError as error:
                if not flavor_miss(error):
                    raise
            slug = next((d.slug for d in self.list_dashboards(page_size=MAX_PAGE_SIZE) if d.id == dashboard_id), None)
            if slug is None:
                raise NotFoundError(404, "GET", path, "No dashboard with this id.")
            return self.get_dashboard(slug)
        path = f"/api/dashboards/{slug_part(slug_or_id)}"
        try:
            # A probe: the other flavor answers this route 500, which is no passing trouble worth retrying.
            return _wire.parse_dashboard(self._json("GET", path, credential, idempotent=False), f"GET {path}")
        except APIError as error:
            if not flavor_miss(error):
                raise
        data = self._json("GET", path, credential, params={"legacy": ""})
        return _wire.parse_dashboard(data, f"GET {path}?legacy")

    def create_dashboard(self, name: str) -> Dashboard:
        """Create a dashboard (servers create it as a draft).

        Args:
            name: Its name; the server derives the slug.

        Returns:
            The new dashboard.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("create_dashboard: name must be a non-empty string")
        data = self._json("POST", "/api/dashboards", self._user(), json_body={"name": name})
        return _wire.parse_dashboard(data, "POST /api/dashboards")

    def update_dashboard(self, dashboard_id: int, **fields: Any) -> Dashboard:
        """Edit a dashboard.

        Args:
            dashboard_id: The dashboard's id.
            **fields: Any of name, tags, is_draft, layout, dashboard_filters_enabled, options, and
                ``version`` to fail with :class:`ConflictError` on a stale version.

        Returns:
            The dashboard as saved.
        """
        did = check_id(dashboard_id, "dashboard_id")
        credential = self._user()
        version = fields.pop("version", None)
        unknown = set(fields) - _DASHBOARD_FIELDS
        if unknown:
            raise ConfigError(
                f"update_dashboard: unknown fields {sorted(unknown)}; allowed: {sorted(_DASHBOARD_FIELDS)}"
            )
        body = dict(fields)
        if "tags" in body:
            body["tags"] = list(body["tags"])
        if version is not None:
            body["version"] = version
        path = f"/api/dashboards/{did}"
        return _wire.parse_dashboard(self._json("POST", path, credential, json_body=body), f"POST {path}")

    def archive_dashboard(self, slug_or_id: str | int) -> None:
        """Archive a dashboard, by slug or id, on either server flavor.

        Args:
            slug_or_id: The dashboard's slug (``str``) or id (``int``).
        """
        credential = self._user()
        first = str(check_id(slug_or_id, "dashboard id")) if is_int(slug_or_id) else slug_part(slug_or_id)
        try:
            self._json("DELETE", f"/api/dashboards/{first}", credential, idempotent=False)
            return
        except APIError as error:
            if not flavor_miss(error):
                raise
        dashboard = self.get_dashboard(slug_or_id)
        other = slug_part(dashboard.slug) if is_int(slug_or_id) else str(dashboard.id)
        self._json("DELETE", f"/api/dashboards/{other}", credential)
