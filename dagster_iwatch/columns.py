"""A result's column: the one value type the Arrow conversion and the API's types share.

It lives apart so that :mod:`dagster_iwatch.arrow` needs nothing from :mod:`dagster_iwatch.types`, whose
``QueryResult.to_arrow`` calls the conversion: the dependency runs one way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Column"]


@dataclass(frozen=True)
class Column:
    """A result column: its name, display name and Redash type (``None`` when the server gave none)."""

    name: str
    friendly_name: str | None = None
    type: str | None = None
