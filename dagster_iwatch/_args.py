"""Checks and shapes of the client's arguments, done before any request is sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from dagster_iwatch._config import is_int
from dagster_iwatch._transport import check_key
from dagster_iwatch.errors import APIError, AuthError, ConfigError, NotFoundError
from dagster_iwatch.types import Parameter

MAX_PAGE_SIZE = 250


def check_id(value: Any, name: str) -> int:
    """``value`` if it is a positive ``int``, else a :class:`ConfigError` naming ``name``."""
    if not is_int(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def job_id_part(value: Any) -> str:
    """A job id, quoted for a path."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"job_id must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def slug_part(value: Any) -> str:
    """A dashboard slug, quoted for a path."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"a dashboard slug must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def validate_base_url(base_url: Any, name: str = "base_url") -> str:
    """The URL without a trailing slash; never echoes what is wrong with it (it may hold a credential)."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigError(f"{name} must be a URL such as https://app.inverse.watch")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host, such as https://app.inverse.watch")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{name} must not carry credentials, a query string or a fragment; pass api_key instead")
    try:
        parts.port  # noqa: B018 - evaluating it validates the port
    except ValueError:
        raise ConfigError(f"{name} has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def validate_query_keys(keys: Mapping[Any, Any] | None) -> dict[int, str]:
    """Query keys by integer query id, each checked like ``api_key``."""
    result: dict[int, str] = {}
    for raw_id, key in (keys or {}).items():
        if isinstance(raw_id, str) and raw_id.strip().isdigit():
            query_id = int(raw_id)
        elif is_int(raw_id):
            query_id = raw_id
        else:
            # Never echo it: with the mapping written the wrong way round, it is a key.
            raise ConfigError("query_api_keys: one of its keys is not a query id; map query ids to API keys")
        checked = check_key(f"query_api_keys[{query_id}]", key)
        if checked is None:
            raise ConfigError(f"query_api_keys[{query_id}] must be a non-empty string")
        result[query_id] = checked
    return result


def list_params(q: str | None, tags: Sequence[str] | None, page_size: int) -> dict[str, Any]:
    """The query string of a list call."""
    if not is_int(page_size) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ConfigError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
    if isinstance(tags, str):
        raise ConfigError("tags must be a list of strings, not one string")
    params: dict[str, Any] = {"page_size": page_size}
    if q:
        params["q"] = q
    if tags:
        params["tags"] = list(tags)
    return params


def flavor_miss(error: APIError) -> bool:
    """Whether a dashboard lookup failed the way the other server flavor's route fails."""
    return not isinstance(error, AuthError) and (isinstance(error, NotFoundError) or error.status >= 500)


def query_options(options: Mapping[str, Any] | None, parameters: Sequence[Any] | None) -> dict[str, Any]:
    """A query's ``options`` with its declared parameters in Redash's JSON shape."""
    merged = dict(options or {})
    if parameters is not None:
        merged["parameters"] = [parameter_json(p) for p in parameters]
    merged.setdefault("parameters", [])
    return merged


def parameter_json(parameter: Parameter | Mapping[str, Any]) -> dict[str, Any]:
    """A declared parameter in Redash's JSON shape."""
    if isinstance(parameter, Mapping):
        return dict(parameter)
    if not isinstance(parameter, Parameter):
        raise ConfigError(f"parameters must be Parameter objects or mappings, got {type(parameter).__name__}")
    data: dict[str, Any] = {
        "name": parameter.name,
        "title": parameter.title or parameter.name,
        "type": parameter.type,
        "value": parameter.value,
    }
    if parameter.enum_options is not None:
        data["enumOptions"] = "\n".join(parameter.enum_options)
    if parameter.query_id is not None:
        data["queryId"] = parameter.query_id
    if parameter.multi_values is not None:
        data["multiValuesOptions"] = dataclasses.asdict(parameter.multi_values)
    return data
