"""A local server that speaks Inverse Watch's (Redash's) REST API, for trying the project and for tests.

It uses only the standard library and never imports the client or Dagster.
"""

from dagster_iwatch.local.server import LocalServer

__all__ = ["LocalServer"]
