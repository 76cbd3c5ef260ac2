"""A thin HTTP wrapper for the local server's tests."""

from __future__ import annotations

import time
from typing import Any

import requests

from dagster_iwatch.local import LocalServer

FINAL = (3, 4, 5)


class Api:
    """Plain `requests` calls against one server with one key (header auth unless told otherwise)."""

    def __init__(self, srv: LocalServer, key: str | None = None) -> None:
        self.srv = srv
        self.key = srv.user_api_key if key is None else key
        self.session = requests.Session()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        use_key = self.key if key is None else key
        if use_key:
            headers.setdefault("Authorization", f"Key {use_key}")
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, f"{self.srv.url}{path}", headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def wait_job(self, job_id: str, *, path: str | None = None, timeout: float = 15.0) -> dict[str, Any]:
        """Poll a job until it is final and return it."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(path or f"/api/jobs/{job_id}")
            assert r.status_code == 200, r.text
            job: dict[str, Any] = r.json()["job"]
            if job["status"] in FINAL:
                return job
            assert time.monotonic() < deadline, f"job {job_id} not finished: {job}"
            time.sleep(0.01)

    def execute(self, query_id: int, parameters: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
        """Run a saved query with max_age 0 and return the finished job."""
        payload = {"max_age": 0, **body}
        if parameters is not None:
            payload["parameters"] = parameters
        r = self.post(f"/api/queries/{query_id}/results", json=payload)
        assert r.status_code == 200, r.text
        return self.wait_job(r.json()["job"]["id"])

    def result(self, result_id: int) -> dict[str, Any]:
        r = self.get(f"/api/query_results/{result_id}")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()["query_result"]
        return out

    def run_rows(self, query_id: int, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a query to success and return its result object."""
        job = self.execute(query_id, parameters)
        assert job["status"] == 3, job
        return self.result(job["query_result_id"])
