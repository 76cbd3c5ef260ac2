"""Redash query parameters on the server side: validation and ``{{ }}`` substitution."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from numbers import Number
from typing import Any

from dateutil.parser import ParserError
from dateutil.parser import parse as parse_date

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s#^/!>&]+?)\s*\}\}")
_COMMENTS = re.compile(r"/\*.*?\*/", re.DOTALL)

DATE_TYPES = ("date", "datetime-local", "datetime-with-seconds")
RANGE_TYPES = ("date-range", "datetime-range", "datetime-range-with-seconds")

OptionsLookup = Callable[[int], Sequence[str]]


class InvalidParameters(Exception):
    """Some parameter values do not fit their definitions (or are not defined)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        super().__init__(
            "The following parameter values are incompatible with their definitions: " + ", ".join(self.names)
        )


def query_hash(sql: str) -> str:
    """Return Redash's hash of a SQL text: md5 of the text without comments and whitespace."""
    text = "".join(_COMMENTS.sub("", sql).split())
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def placeholders(sql: str) -> list[str]:
    """Return the placeholder names used in `sql`, in order of first appearance (``period.start`` kept)."""
    out: list[str] = []
    for m in _PLACEHOLDER.finditer(sql):
        if m.group(1) not in out:
            out.append(m.group(1))
    return out


def is_safe(definitions: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a query may run through a query key: it has no ``text`` parameter."""
    return all(d.get("type") != "text" for d in definitions)


def validate(
    definitions: Sequence[Mapping[str, Any]], values: Mapping[str, Any], options_for_query: OptionsLookup
) -> None:
    """Raise InvalidParameters naming every value that does not fit its definition, in request order."""
    if not definitions:
        return
    by_name = {str(d.get("name")): d for d in definitions}
    bad = [name for name, value in values.items() if not _fits(by_name.get(name), value, options_for_query)]
    if bad:
        raise InvalidParameters(bad)


def missing(sql: str, values: Mapping[str, Any]) -> list[str]:
    """Return the placeholders of `sql` that `values` does not provide, as Redash names them."""
    given: set[str] = set()
    for key, value in values.items():
        if isinstance(value, dict):
            given.update(f"{key}.{inner}" for inner in value)
        else:
            given.add(key)
    return [name for name in placeholders(sql) if name not in given]


def render(sql: str, definitions: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> str:
    """Substitute parameter values into `sql` as Redash's mustache rendering does (no escaping).

    Dates are substituted normalised (``"Feb 1 2024"`` -> ``2024-02-01``): Redash passes them raw to a database
    that parses them loosely, while SQLite compares text.
    """
    by_name = {str(d.get("name")): d for d in definitions}

    def value_text(value: Any, definition: Mapping[str, Any] | None) -> str:
        kind = (definition or {}).get("type")
        if kind in DATE_TYPES or kind in RANGE_TYPES:
            return normalise_date(value, str(kind))
        if isinstance(value, list):
            opts = (definition or {}).get("multiValuesOptions") or {}
            prefix, suffix = str(opts.get("prefix", "")), str(opts.get("suffix", ""))
            return str(opts.get("separator", ",")).join(f"{prefix}{v}{suffix}" for v in value)
        if value is None:
            return ""
        return str(value)

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in values:
            return value_text(values[name], by_name.get(name))
        base, _, inner = name.partition(".")
        outer = values.get(base)
        if inner and isinstance(outer, dict) and inner in outer:
            return value_text(outer[inner], by_name.get(base))
        return ""

    return _PLACEHOLDER.sub(substitute, sql)


def render_defaults(sql: str, definitions: Sequence[Mapping[str, Any]]) -> str:
    """Return `sql` with each parameter's default value, or unchanged when a placeholder has none."""
    defaults = {str(d.get("name")): d.get("value") for d in definitions if d.get("value") is not None}
    if not definitions or missing(sql, defaults):
        return sql
    return render(sql, definitions, defaults)


def saved_query_hash(sql: str, definitions: Sequence[Mapping[str, Any]]) -> str:
    """Return the hash Redash gives a saved query: that of its text rendered with the default values.

    A run with the defaults then produces the query's "latest result" (Redash v10.1.0 hashed the raw text).
    """
    return query_hash(render_defaults(sql, definitions))


def normalise_date(value: Any, kind: str) -> str:
    """Return a date or datetime value as ISO text (date types keep a time only when it is not midnight)."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        moment = _parse_date(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    has_time = moment != datetime(moment.year, moment.month, moment.day)
    if kind in ("date", "date-range") and not has_time:
        return moment.strftime("%Y-%m-%d")
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
    if "seconds" not in kind and text.endswith(":00"):
        text = text[:-3]
    return text


def _parse_date(value: str) -> datetime:
    text = value.strip()
    if not text:
        raise ValueError("empty date")
    try:
        moment: datetime = parse_date(text)
    except (ParserError, OverflowError) as exc:
        raise ValueError(str(exc)) from None
    return moment


def _fits(definition: Mapping[str, Any] | None, value: Any, options_for_query: OptionsLookup) -> bool:
    try:
        return _valid(definition, value, options_for_query)
    except Exception:  # as Redash: a definition or source query that cannot be checked makes the value invalid
        return False


def _valid(definition: Mapping[str, Any] | None, value: Any, options_for_query: OptionsLookup) -> bool:
    if definition is None:
        return False
    kind = definition.get("type")
    if kind == "text":
        return isinstance(value, str)
    if kind == "number":
        return _is_number(value)
    if kind in DATE_TYPES:
        return _is_date(value)
    if kind in RANGE_TYPES:
        return isinstance(value, dict) and _is_date(value.get("start")) and _is_date(value.get("end"))
    allow_list = isinstance(definition.get("multiValuesOptions"), dict)
    if kind == "enum":
        options = definition.get("enumOptions") or ""
        allowed = options.split("\n") if isinstance(options, str) else [str(o) for o in options]
        return _within(value, allowed, allow_list)
    if kind == "query":
        return _within(value, list(options_for_query(int(definition.get("queryId") or 0))), allow_list)
    return False


def _is_number(value: Any) -> bool:
    if isinstance(value, Number):
        return True
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_date(value: Any) -> bool:
    # As Redash: anything dateutil can read ("Feb 1 2024", "2024/02/01") is a date.
    if not isinstance(value, str):
        return False
    try:
        _parse_date(value)
    except ValueError:
        return False
    return True


def _within(value: Any, allowed: Sequence[str], allow_list: bool) -> bool:
    if isinstance(value, list):
        return allow_list and {str(v) for v in value}.issubset(set(allowed))
    return str(value) in allowed
