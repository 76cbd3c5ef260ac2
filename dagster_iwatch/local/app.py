"""The local server's resources over one data folder, independent of HTTP."""

from __future__ import annotations

from pathlib import Path

from dagster_iwatch.local import seed
from dagster_iwatch.local.dashboards import Dashboards
from dagster_iwatch.local.queries import Queries
from dagster_iwatch.local.results import Results
from dagster_iwatch.local.state import LocalState


class LocalApp:
    """Queries, results and jobs, dashboards and widgets over one data folder (seeded when new)."""

    def __init__(
        self, data_dir: Path, *, flavor: str, workers: int, user_api_key: str | None, job_ttl: float = 600.0
    ) -> None:
        self.state = LocalState(data_dir, flavor=flavor, workers=workers, user_api_key=user_api_key, job_ttl=job_ttl)
        self.queries = Queries(self.state)
        self.results = Results(self.state, self.queries)
        self.dashboards = Dashboards(self.state, self.queries)
        try:
            if self.state.store.get_meta("seeded") is None:
                seed.seed_metadata(self.state, self.queries, self.dashboards)
        except BaseException:
            self.state.close()
            raise

    @property
    def flavor(self) -> str:
        """``"inverse-watch"`` or ``"redash"``."""
        return self.state.flavor

    @property
    def user_api_key(self) -> str:
        """The admin user's API key."""
        return self.state.user_api_key

    def close(self) -> None:
        """Stop the workers and close the store."""
        self.state.close()

    def query_api_key(self, query_id: int) -> str:
        """Return a query's own API key; KeyError when there is no such query."""
        doc = self.state.store.get("queries", query_id)
        if doc is None:
            raise KeyError(f"no query {query_id}")
        return str(doc["api_key"])

    def query_keys(self) -> list[tuple[int, str, str]]:
        """Return ``(id, name, api_key)`` of every saved query that is not archived."""
        return [
            (int(d["id"]), str(d["name"]), str(d["api_key"]))
            for d in self.state.store.all("queries")
            if not d["is_archived"]
        ]

    def job_status(self, job_id: str) -> int:
        """Return a job's status code; KeyError when unknown."""
        job = self.state.executor.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job.status
