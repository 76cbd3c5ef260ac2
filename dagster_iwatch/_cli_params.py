"""``-p name=value`` options read by the query's declared parameter types, and defaults shown the same way.

On the command line a range is ``start..end`` and a multi-value parameter ``a,b`` (or the option repeated);
every other value is its text, which :mod:`dagster_iwatch.parameters` parses (numbers, ISO dates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagster_iwatch.errors import ParameterError
from dagster_iwatch.parameters import serialize_parameter
from dagster_iwatch.types import Parameter, Query

__all__ = ["describe_type", "format_value", "parse_parameter_options"]

RANGE_SEPARATOR = ".."
# Each range type and the single type of its two ends.
_RANGE_TYPES = {
    "date-range": "date",
    "datetime-range": "datetime-local",
    "datetime-range-with-seconds": "datetime-with-seconds",
}
_MOMENTS = {
    "date": "a date YYYY-MM-DD",
    "datetime-local": "a datetime 'YYYY-MM-DD HH:MM'",
    "datetime-with-seconds": "a datetime 'YYYY-MM-DD HH:MM:SS'",
}


def parse_parameter_options(query: Query, options: Iterable[str]) -> dict[str, Any]:
    """Parameter values from ``name=value`` texts, checked against the query's declared parameters.

    Args:
        query: The saved query.
        options: The texts given with ``-p``, in order.

    Returns:
        Values by name, as :func:`dagster_iwatch.parameters.serialize_parameters` takes them.

    Raises:
        ParameterError: A text has no ``=``, names no declared parameter, is given twice for a single-value
            parameter, or does not suit the parameter's type; the message says what the command line accepts.
    """
    values: dict[str, Any] = {}
    for option in options:
        name, sep, text = option.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(name or option, option, "name=value, e.g. -p day=2024-02-29", problem="not a")
        parameter = query.parameter(name)
        if parameter is None:
            names = ", ".join(p.name for p in query.parameters) or "none"
            raise ParameterError(
                name, text, f"one of query {query.id}'s parameters ({names})", problem="unknown parameter, value"
            )
        value = _parse(parameter, text)
        if name in values:
            if parameter.multi_values is None:
                raise ParameterError(name, text, describe_type(parameter), problem="given twice, again with")
            value = [*values[name], *value]
        values[name] = value
    return values


def _parse(parameter: Parameter, text: str) -> Any:
    value: Any = text
    if parameter.type in _RANGE_TYPES:
        start, sep, end = text.partition(RANGE_SEPARATOR)
        if not sep:
            raise ParameterError(parameter.name, text, describe_type(parameter), problem="not a range:")
        value = (start.strip(), end.strip())
    elif parameter.multi_values is not None:
        value = [item.strip() for item in text.split(",") if item.strip()]
    try:
        serialize_parameter(parameter, value)
    except ParameterError as error:
        raise ParameterError(parameter.name, text, describe_type(parameter), problem=error.problem) from None
    return value


def describe_type(parameter: Parameter) -> str:
    """What the command line accepts for ``parameter``, e.g. ``START..END, each a date YYYY-MM-DD``."""
    kind = parameter.type
    if kind == "number":
        return "a number"
    if kind == "text":
        return "any text"
    if kind in _MOMENTS:
        return _MOMENTS[kind]
    if kind in _RANGE_TYPES:
        return f"START..END, each {_MOMENTS[_RANGE_TYPES[kind]]}"
    many = parameter.multi_values is not None
    if kind == "enum":
        options = ", ".join(parameter.enum_options or ())
        return f"one or more of {options}, separated by commas" if many else f"one of {options}"
    if kind == "query":
        source = f"query {parameter.query_id}" if parameter.query_id is not None else "another query"
        return f"{'values' if many else 'a value'} from the first column of {source}'s result"
    return f"a {kind} value"


def format_value(parameter: Parameter, value: Any) -> str:
    """A parameter value (such as its default) written as ``-p`` takes it."""
    if value is None:
        return ""
    if parameter.type in _RANGE_TYPES and isinstance(value, Mapping):
        return f"{value.get('start', '')}{RANGE_SEPARATOR}{value.get('end', '')}"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)
