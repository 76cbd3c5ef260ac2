"""Python values to Redash parameter values, checked against a saved query's declared parameters.

Accepted values, by parameter type, and what is sent:

- ``number``: ``int``, finite ``float``, ``Decimal`` or a numeric string (never ``bool``) -> a JSON number.
- ``text``: ``str`` -> the string.
- ``date``: ``date``, a ``datetime`` at midnight, or an ISO date string -> ``"YYYY-MM-DD"``.
- ``datetime-local``: ``datetime``, ``date`` or an ISO string -> ``"YYYY-MM-DD HH:MM"``.
- ``datetime-with-seconds``: as ``datetime-local`` -> ``"YYYY-MM-DD HH:MM:SS"``.
- ``date-range``, ``datetime-range``, ``datetime-range-with-seconds``: a ``(start, end)`` tuple or list, or a
  ``{"start": ..., "end": ...}`` mapping, each end as for the single type -> ``{"start": ..., "end": ...}`` in
  the single type's format.
- ``enum``: a ``str`` among the options, or several for a multi-value enum -> a string, or a list of them (a
  single string for a multi-value enum goes as a list of one).
- ``query``: ``str`` or ``int``, or several for a multi-value one -> a string, or a list of them.

Aware datetimes are converted to UTC before formatting (Redash's datetime parameters carry no zone). A
value that would lose precision in the target format (seconds for ``datetime-local``, microseconds, a
time of day for ``date``) is refused rather than rounded. Parameters not given take the query's stored
default, checked the same way. The allowed values of a ``query`` parameter come from another query's
result, which the client does not fetch, so only their shape is checked here; the server checks the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dagster_iwatch.errors import NO_VALUE, ParameterError
from dagster_iwatch.types import Parameter, Query

__all__ = ["serialize_parameter", "serialize_parameters"]

_DATE_FORMAT = "%Y-%m-%d"
_MINUTE_FORMAT = "%Y-%m-%d %H:%M"
_SECOND_FORMAT = "%Y-%m-%d %H:%M:%S"

_SINGLE_FORMATS = {"date": _DATE_FORMAT, "datetime-local": _MINUTE_FORMAT, "datetime-with-seconds": _SECOND_FORMAT}
_RANGE_FORMATS = {
    "date-range": _DATE_FORMAT,
    "datetime-range": _MINUTE_FORMAT,
    "datetime-range-with-seconds": _SECOND_FORMAT,
}
_FORMAT_NAMES = {
    _DATE_FORMAT: "a date (datetime.date or 'YYYY-MM-DD')",
    _MINUTE_FORMAT: "a datetime to the minute (datetime or 'YYYY-MM-DD HH:MM')",
    _SECOND_FORMAT: "a datetime to the second (datetime or 'YYYY-MM-DD HH:MM:SS')",
}


def serialize_parameters(query: Query, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check parameter values against a query's declared parameters and serialize them for the API.

    Args:
        query: The saved query, whose ``parameters`` declare names, types, options and defaults.
        values: Values by parameter name; parameters left out take the query's default.

    Returns:
        The ``parameters`` object to send, with a value for every declared parameter.

    Raises:
        ParameterError: A name is not declared, a value is missing with no default, has the wrong type,
            does not parse, is not among the allowed options, or a range starts after it ends.
    """
    given = dict(values or {})
    declared = {parameter.name: parameter for parameter in query.parameters}
    for name, value in given.items():
        if name not in declared:
            names = ", ".join(repr(n) for n in declared) or "none"
            raise ParameterError(
                str(name), value, f"one of the query's parameters ({names})", problem="unknown parameter, value"
            )
    serialized: dict[str, Any] = {}
    for name, parameter in declared.items():
        if name in given:
            serialized[name] = serialize_parameter(parameter, given[name])
        elif parameter.value is not None:
            try:
                serialized[name] = serialize_parameter(parameter, parameter.value)
            except ParameterError as error:
                raise ParameterError(
                    name,
                    parameter.value,
                    f"{error.expected}; pass a value",
                    problem="the query's default is not usable:",
                ) from error
        else:
            raise ParameterError(name, NO_VALUE, _expected(parameter), problem="no value given and no default")
    return serialized


def serialize_parameter(parameter: Parameter, value: Any) -> Any:
    """Check one value against its declared parameter and serialize it.

    Args:
        parameter: The declared parameter.
        value: The Python value.

    Returns:
        The value as the API expects it.

    Raises:
        ParameterError: The value does not suit the parameter.
    """
    kind = parameter.type
    if kind == "number":
        return _number(parameter, value)
    if kind == "text":
        if not isinstance(value, str):
            raise ParameterError(parameter.name, value, _expected(parameter), problem="not a string:")
        return value
    if kind in _SINGLE_FORMATS:
        return _moment(parameter, value, _SINGLE_FORMATS[kind])
    if kind in _RANGE_FORMATS:
        return _range(parameter, value, _RANGE_FORMATS[kind])
    if kind == "enum":
        return _choice(parameter, value, parameter.enum_options)
    if kind == "query":
        return _choice(parameter, value, None)
    raise ParameterError(parameter.name, value, "a known parameter type", problem=f"unsupported type {kind!r} for")


def _expected(parameter: Parameter) -> str:
    kind = parameter.type
    if kind == "number":
        return "a number (int, float or Decimal; not bool)"
    if kind == "text":
        return "a string"
    if kind in _SINGLE_FORMATS:
        return _FORMAT_NAMES[_SINGLE_FORMATS[kind]]
    if kind in _RANGE_FORMATS:
        return f"a (start, end) pair or {{'start', 'end'}} mapping of {_FORMAT_NAMES[_RANGE_FORMATS[kind]]}"
    if kind == "enum":
        options = ", ".join(parameter.enum_options or ())
        if parameter.multi_values is not None:
            return f"one or more of: {options}"
        return f"one of: {options}"
    if kind == "query":
        source = f"query {parameter.query_id}" if parameter.query_id is not None else "another query"
        many = "one or more values" if parameter.multi_values is not None else "a value"
        return f"{many} from the first column of {source}'s result"
    return "a value the server accepts"


def _number(parameter: Parameter, value: Any) -> int | float:
    if isinstance(value, bool):
        raise ParameterError(parameter.name, value, _expected(parameter), problem="a bool is not a number:")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(parameter.name, value, _expected(parameter), problem="not a finite number:")
        return value
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ParameterError(parameter.name, value, _expected(parameter), problem="not a number:") from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ParameterError(parameter.name, value, _expected(parameter), problem="not a finite number:")
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        if Decimal(repr(as_float)) != value:
            raise ParameterError(parameter.name, value, _expected(parameter), problem="no JSON number holds exactly")
        return as_float
    raise ParameterError(parameter.name, value, _expected(parameter), problem="not a number:")


def _moment(parameter: Parameter, value: Any, fmt: str) -> str:
    """A date or datetime in ``fmt``, refusing any precision ``fmt`` would drop."""
    expected = _expected(parameter)
    moment: date
    if isinstance(value, date):
        moment = value
    elif isinstance(value, str):
        moment = _parse_moment(parameter, value, fmt, expected)
    else:
        raise ParameterError(parameter.name, value, expected, problem="not a date or datetime:")
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        lost = {
            _DATE_FORMAT: moment.time() != datetime.min.time(),
            _MINUTE_FORMAT: moment.second != 0 or moment.microsecond != 0,
            _SECOND_FORMAT: moment.microsecond != 0,
        }[fmt]
        if lost:
            raise ParameterError(parameter.name, value, expected, problem="more precise than the format allows:")
    return moment.strftime(fmt)


def _parse_moment(parameter: Parameter, text: str, fmt: str, expected: str) -> date:
    stripped = text.strip()
    try:
        if fmt == _DATE_FORMAT and len(stripped) <= 10:
            return date.fromisoformat(stripped)
        return datetime.fromisoformat(stripped)
    except ValueError:
        raise ParameterError(parameter.name, text, expected, problem="cannot parse") from None


def _range(parameter: Parameter, value: Any, fmt: str) -> dict[str, str]:
    expected = _expected(parameter)
    if isinstance(value, Mapping):
        if set(value) != {"start", "end"}:
            raise ParameterError(parameter.name, value, expected, problem="needs exactly 'start' and 'end', got")
        start, end = value["start"], value["end"]
    elif isinstance(value, tuple | list) and len(value) == 2:
        start, end = value
    else:
        raise ParameterError(parameter.name, value, expected, problem="not a range:")
    if start is None or end is None:
        raise ParameterError(parameter.name, value, expected, problem="a range needs both ends, got")
    start_text = _moment(parameter, start, fmt)
    end_text = _moment(parameter, end, fmt)
    # Same fixed-width format on both ends, so text order is time order.
    if start_text > end_text:
        raise ParameterError(parameter.name, value, expected, problem="start is after end in")
    return {"start": start_text, "end": end_text}


def _choice(parameter: Parameter, value: Any, options: tuple[str, ...] | None) -> str | list[str]:
    expected = _expected(parameter)
    multi = parameter.multi_values is not None
    if isinstance(value, list | tuple | set | frozenset):
        if not multi:
            raise ParameterError(parameter.name, value, expected, problem="takes one value, not a list:")
        # Sets have no order: sort them for a stable value (and cache key), by text so mixed types cannot crash.
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if not items:
            raise ParameterError(parameter.name, value, expected, problem="needs at least one value, got")
    else:
        items = [value]
    texts = [_option_text(parameter, item, expected) for item in items]
    if options is not None:
        refused = [text for text in texts if text not in options]
        if refused:
            shown = refused[0] if len(refused) == 1 and not multi else refused
            raise ParameterError(parameter.name, shown, expected, problem="value not allowed:")
    # A multi-value parameter given one string still goes as a list: as a bare string Redash would
    # substitute it without the declared quoting.
    return texts if multi else texts[0]


def _option_text(parameter: Parameter, item: Any, expected: str) -> str:
    if isinstance(item, str):
        return item
    if parameter.type == "query" and isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    raise ParameterError(parameter.name, item, expected, problem="not a string:")
