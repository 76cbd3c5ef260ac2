"""A local server that speaks Inverse Watch's (Redash's) REST API, for trying the project and for tests.

Starlette routes served by uvicorn; it never imports the client or Dagster.
"""

from dagster_iwatch.local.replies import LocalServerError
from dagster_iwatch.local.server import LocalServer

__all__ = ["LocalServer", "LocalServerError"]
