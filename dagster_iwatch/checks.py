"""Asset checks a query asset can switch on, evaluated in the same step as the materialization."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg

from dagster_iwatch._factory import check_names
from dagster_iwatch.errors import ConfigError

_DESCRIPTIONS: dict[str, str] = {
    "not_empty": "The query result has at least one row.",
    "schema_unchanged": "The result's columns and types match the previous materialization's.",
    "fresh": "The result was computed on the server recently enough (retrieved_at within the allowed age).",
}


def check_specs(key: dg.AssetKey, checks: Collection[str], max_result_age: timedelta | None) -> list[dg.AssetCheckSpec]:
    """The check specs for the checks named in ``checks``.

    Raises:
        ConfigError: ``checks`` is a string or names an unknown check, or ``fresh`` lacks ``max_result_age``.
    """
    names = check_names(checks, _DESCRIPTIONS)
    if "fresh" in names and max_result_age is None:
        raise ConfigError("the 'fresh' check needs max_result_age, e.g. max_result_age=timedelta(hours=6)")
    return [dg.AssetCheckSpec(name, asset=key, description=_DESCRIPTIONS[name]) for name in names]


def evaluate(
    key: dg.AssetKey,
    checks: Collection[str],
    *,
    row_count: int,
    schema: dg.TableSchema,
    previous_schema: dg.TableSchema | None,
    retrieved_at: datetime | None,
    max_result_age: timedelta | None,
) -> Iterator[dg.AssetCheckResult]:
    """Evaluate the switched-on checks against the result just materialized.

    ``previous_schema`` is the column schema of the materialization before this one (``None`` for the first).
    """
    if "not_empty" in checks:
        yield dg.AssetCheckResult(
            asset_key=key, check_name="not_empty", passed=row_count > 0, metadata={"row_count": row_count}
        )
    if "schema_unchanged" in checks:
        changes = _schema_changes(previous_schema, schema) if previous_schema is not None else []
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="schema_unchanged",
            passed=not changes,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "changes": dg.MetadataValue.json(changes),
                "first_materialization": previous_schema is None,
            },
        )
    if "fresh" in checks:
        assert max_result_age is not None
        age = (datetime.now(UTC) - retrieved_at).total_seconds() if retrieved_at else None
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="fresh",
            passed=age is not None and age <= max_result_age.total_seconds(),
            metadata={
                "result_age_seconds": age if age is not None else "unknown",
                "max_result_age_seconds": max_result_age.total_seconds(),
            },
        )


def latest_schema(context: dg.AssetExecutionContext, key: dg.AssetKey) -> dg.TableSchema | None:
    """The column schema recorded by the asset's latest materialization, if any."""
    event = context.instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        return None
    value = materialization.metadata.get("dagster/column_schema")
    schema = getattr(value, "value", None)
    return schema if isinstance(schema, dg.TableSchema) else None


def _schema_changes(before: dg.TableSchema, after: dg.TableSchema) -> list[str]:
    old = {c.name: c.type for c in before.columns}
    new = {c.name: c.type for c in after.columns}
    changes = [f"removed {name} ({kind})" for name, kind in old.items() if name not in new]
    changes += [f"added {name} ({kind})" for name, kind in new.items() if name not in old]
    changes += [f"{name}: {old[name]} -> {kind}" for name, kind in new.items() if name in old and old[name] != kind]
    return changes
