"""How a Dagster partition becomes query parameter values.

Dagster time windows are half-open, ``[start, end)``. Redash date and datetime ranges are inclusive: the range
2020-01-01 to 2020-12-31 is the year 2020. So by default (``range_end="inclusive"``) a window fills a range
parameter with its start and the last instant inside it in the parameter's own unit: a daily partition gives the
same day as start and end, a monthly one the first and last day of the month, and a datetime range ends one
minute (``datetime-range``) or one second (``datetime-range-with-seconds``) before the window's end. With
``range_end="exclusive"`` the range ends at the window's end, for SQL written as ``< {{ period.end }}``.

Datetimes are passed as wall-clock times in the partitions definition's timezone, which is how Inverse Watch
reads a parameter typed in its UI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeAlias

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from dagster_iwatch.errors import NO_VALUE, ConfigError, ParameterError
from dagster_iwatch.types import Parameter, Query

RangeEnd: TypeAlias = Literal["inclusive", "exclusive"]

PartitionParameter: TypeAlias = str | Mapping[str, str] | Callable[[dg.AssetExecutionContext], Mapping[str, Any]]
"""A parameter name, a ``{dimension: parameter}`` mapping for multi-partitions, or a callable of the context."""

# The smallest step of each datetime range type: an inclusive range ends one step before the window's end.
_DATETIME_RANGE_STEP = {
    "datetime-range": timedelta(minutes=1),
    "datetime-range-with-seconds": timedelta(seconds=1),
}
_RANGE_TYPES = ("date-range", *_DATETIME_RANGE_STEP)
_POINT_TYPES = ("date", "datetime-local", "datetime-with-seconds")


#: Why a callable partition parameter cannot serve a run over a partition range.
RANGE_WITH_CALLABLE = (
    "a callable partition_parameter receives the run's context, which names a whole partition range, not one "
    "partition; name the parameter instead, or drop backfill_policy so each run covers one partition"
)


def check_partition_parameter(
    partitions_def: dg.PartitionsDefinition | None, partition_parameter: PartitionParameter | None
) -> None:
    """Check at definition time that a partition mapping fits its partitions definition.

    Raises:
        ConfigError: The mapping is missing, unexpected, or names dimensions the definition does not have.
    """
    if partitions_def is None:
        if partition_parameter is not None:
            raise ConfigError("partition_parameter is set but the asset has no partitions_def; give both or neither")
        return
    if partition_parameter is None:
        raise ConfigError(
            "a partitioned query asset needs partition_parameter: the name of the query parameter each "
            "partition fills, a {dimension: parameter} mapping, or a callable returning parameter values"
        )
    if callable(partition_parameter):
        return
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        if isinstance(partition_parameter, str):
            raise ConfigError(
                "a multi-partitioned asset needs partition_parameter as a {dimension: parameter} mapping, "
                f"for dimensions {partitions_def.partition_dimension_names}"
            )
        unknown = set(partition_parameter) - set(partitions_def.partition_dimension_names)
        if unknown:
            raise ConfigError(
                f"partition_parameter names unknown dimensions {sorted(unknown)}; "
                f"the dimensions are {partitions_def.partition_dimension_names}"
            )
    elif not isinstance(partition_parameter, str):
        raise ConfigError("partition_parameter must be a parameter name for a single-dimension partitions_def")


def partition_parameters(
    context: dg.AssetExecutionContext,
    query: Query,
    partition_parameter: PartitionParameter,
    range_end: RangeEnd = "inclusive",
    key: str | None = None,
) -> dict[str, Any]:
    """The parameter values that a partition fills, typed by the query's declared parameters.

    ``key`` is the partition (one of a run's range); by default the run's only partition.

    Raises:
        ParameterError: The query declares no such parameter, or the partition cannot fill its type.
    """
    if callable(partition_parameter):
        if key is not None:
            raise ConfigError(RANGE_WITH_CALLABLE)
        return dict(partition_parameter(context))
    partitions_def = context.assets_def.partitions_def
    key = context.partition_key if key is None else key
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        assert isinstance(partition_parameter, Mapping)
        multi_key = key if isinstance(key, dg.MultiPartitionKey) else partitions_def.get_partition_key_from_str(key)
        keys = multi_key.keys_by_dimension
        return {
            name: _value(
                _declared(query, name),
                keys[dimension],
                partitions_def.get_partitions_def_for_dimension(dimension),
                range_end,
            )
            for dimension, name in partition_parameter.items()
        }
    if not isinstance(partition_parameter, str) or partitions_def is None:
        raise ConfigError("partition_parameter does not fit the asset's partitions_def")
    return {partition_parameter: _value(_declared(query, partition_parameter), key, partitions_def, range_end)}


def window_values(parameter_type: str, start: datetime, end: datetime, range_end: RangeEnd = "inclusive") -> Any:
    """The value a time window ``[start, end)`` gives a parameter of ``parameter_type``.

    Returns ``None`` when the type takes no time value (text, enum, number, query).
    """
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    inclusive = range_end == "inclusive"
    if parameter_type == "date-range":
        last_day = (end - timedelta(microseconds=1)).date() if inclusive else end.date()
        return {"start": start.date(), "end": last_day}
    step = _DATETIME_RANGE_STEP.get(parameter_type)
    if step is not None:
        return {"start": start, "end": max(end - step, start) if inclusive else end}
    if parameter_type == "date":
        return start.date()
    if parameter_type in _POINT_TYPES:
        return start
    return None


def _declared(query: Query, name: str) -> Parameter:
    parameter = query.parameter(name)
    if parameter is None:
        declared = [p.name for p in query.parameters] or "none"
        raise ParameterError(
            name,
            NO_VALUE,
            f"partition_parameter to name one of the query's parameters: {declared}",
            problem="the partition would fill a parameter the query does not declare",
        )
    return parameter


def _value(parameter: Parameter, key: str, partitions_def: dg.PartitionsDefinition, range_end: RangeEnd) -> Any:
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        window = partitions_def.time_window_for_partition_key(key)
        value = window_values(parameter.type, window.start, window.end, range_end)
        if value is not None:
            return value
        return key
    if parameter.type in _RANGE_TYPES:
        raise ParameterError(
            parameter.name,
            key,
            "a time-window partition (daily, weekly, monthly...) to fill a range; map static partitions to "
            "text or enum parameters, or pass a callable partition_parameter",
            problem="a static partition cannot fill a range parameter with",
        )
    return _as_date(key) if parameter.type == "date" else key


def _as_date(key: str) -> date | str:
    try:
        return date.fromisoformat(key)
    except ValueError:
        return key


def range_parameter(query: Query, name: str, start: datetime, end: datetime, range_end: RangeEnd) -> dict[str, Any]:
    """The value of a date-range or datetime-range parameter covering ``[start, end)``, several windows at once.

    Raises:
        ParameterError: The query does not declare ``name``, or declares it with a type that is not a range.
    """
    parameter = _declared(query, name)
    if parameter.type not in _RANGE_TYPES:
        raise ParameterError(
            name,
            NO_VALUE,
            f"one of {list(_RANGE_TYPES)} to query a whole partition range at once (it is {parameter.type!r}); "
            "drop range_query_column to query each partition on its own",
            problem="one query over a partition range needs a range parameter",
        )
    return {name: window_values(parameter.type, start, end, range_end)}


def split_by_window(
    table: pa.Table, column: str, windows: Mapping[str, dg.TimeWindow]
) -> tuple[dict[str, pa.Table], int]:
    """The rows of ``table`` whose ``column`` falls in each window ``[start, end)``, and how many fell in none.

    A date column is compared with the windows' days; a timestamp column with their instants (wall-clock times in
    the partitions' timezone when the column has no timezone).

    Raises:
        ConfigError: The table has no such column, or it holds neither dates nor timestamps.
    """
    if column not in table.column_names:
        raise ConfigError(f"range_query_column {column!r} is not a column of the result: {table.column_names}")
    values = table.column(column)
    kind = values.type
    if pa.types.is_date(kind):

        def bound(instant: datetime) -> pa.Scalar:
            return pa.scalar(instant.date(), kind)
    elif pa.types.is_timestamp(kind):

        def bound(instant: datetime) -> pa.Scalar:
            return pa.scalar(instant if kind.tz else instant.replace(tzinfo=None), kind)
    else:
        raise ConfigError(f"range_query_column {column!r} holds {kind}, not dates or timestamps")
    parts: dict[str, pa.Table] = {}
    kept = 0
    for key, window in windows.items():
        inside = pc.and_(pc.greater_equal(values, bound(window.start)), pc.less(values, bound(window.end)))
        parts[key] = table.filter(inside)
        kept += parts[key].num_rows
    return parts, table.num_rows - kept
