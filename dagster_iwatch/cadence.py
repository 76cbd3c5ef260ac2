"""A query's refresh schedule in Inverse Watch as a Dagster cadence: a cron, an automation condition, a schedule.

Inverse Watch (like Redash) refreshes a query every ``interval`` seconds; a daily or longer interval runs at
``time`` (``HH:MM``, UTC), a weekly one on ``day_of_week``; ``until`` is the last day. An interval that no cron
expresses exactly (say 90 minutes) gives no cadence, and a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from dagster_iwatch.state import ScheduleRecord

_LOGGER = logging.getLogger("dagster_iwatch.cadence")

_MINUTE, _HOUR, _DAY, _WEEK = 60, 3600, 86400, 604800
_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


@dataclass(frozen=True)
class Cadence:
    """A refresh schedule as a cron (UTC) and a short name for jobs and schedules (``every_6_hours``...)."""

    cron: str
    label: str


def cadence(schedule: ScheduleRecord | None, today: date | None = None) -> Cadence | None:
    """The cadence of a query's schedule, or ``None`` (no schedule, past its ``until``, or not a cron).

    Args:
        schedule: The query's schedule from a snapshot.
        today: The day against which ``until`` is compared (default: today, UTC).
    """
    if schedule is None:
        return None
    if schedule.until:
        try:
            until = date.fromisoformat(schedule.until[:10])
        except ValueError:
            _LOGGER.warning("Inverse Watch schedule: until %r is not a date; ignored", schedule.until)
        else:
            if until < (today or datetime.now(UTC).date()):
                return None
    interval = schedule.interval
    if interval < _DAY:
        return _sub_daily(interval)
    hour, minute = _time(schedule.time)
    at = f"{hour:02d}{minute:02d}"
    if interval % _WEEK == 0 and interval == _WEEK:
        day = (schedule.day_of_week or "sunday").strip().lower()
        if day not in _WEEKDAYS:
            _LOGGER.warning("Inverse Watch schedule: day_of_week %r is not a weekday; no cadence", day)
            return None
        return Cadence(f"{minute} {hour} * * {_WEEKDAYS.index(day)}", f"weekly_{day}_at_{at}")
    if interval % _DAY == 0 and interval < _WEEK:
        days = interval // _DAY
        if days == 1:
            return Cadence(f"{minute} {hour} * * *", f"daily_at_{at}")
        return Cadence(f"{minute} {hour} */{days} * *", f"every_{days}_days_at_{at}")
    _LOGGER.warning("Inverse Watch schedule: an interval of %s seconds has no cron; no cadence", interval)
    return None


def _sub_daily(interval: int) -> Cadence | None:
    if interval % _HOUR == 0 and _DAY % interval == 0:
        hours = interval // _HOUR
        if hours == 1:
            return Cadence("0 * * * *", "hourly")
        return Cadence(f"0 */{hours} * * *", f"every_{hours}_hours")
    if interval % _MINUTE == 0 and _HOUR % interval == 0:
        minutes = interval // _MINUTE
        if minutes == 1:
            return Cadence("* * * * *", "every_minute")
        return Cadence(f"*/{minutes} * * * *", f"every_{minutes}_minutes")
    _LOGGER.warning("Inverse Watch schedule: an interval of %s seconds has no cron; no cadence", interval)
    return None


def _time(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 0
    try:
        hour, minute = (int(part) for part in text.split(":")[:2])
    except ValueError:
        _LOGGER.warning("Inverse Watch schedule: time %r is not HH:MM; using 00:00", text)
        return 0, 0
    return hour % 24, minute % 60


def automation_condition(found: Cadence) -> dg.AutomationCondition[Any]:
    """Materialize on the cron tick once the asset's dependencies are updated (``on_cron``), in UTC."""
    return dg.AutomationCondition.on_cron(found.cron, "UTC")


def schedules(assets: Iterable[tuple[dg.AssetKey, Cadence]], prefix: str = "iwatch") -> Sequence[dg.ScheduleDefinition]:
    """One asset job and schedule per cadence, each selecting the assets refreshed on it.

    Args:
        assets: The asset keys and their cadences.
        prefix: The start of the job and schedule names (``<prefix>_<label>_job``, ``<prefix>_<label>``).
    """
    grouped: dict[Cadence, list[dg.AssetKey]] = {}
    for key, found in assets:
        grouped.setdefault(found, []).append(key)
    return [
        dg.ScheduleDefinition(
            name=f"{prefix}_{found.label}",
            cron_schedule=found.cron,
            execution_timezone="UTC",
            job=dg.define_asset_job(f"{prefix}_{found.label}_job", selection=keys),
            description=f"Refreshes the Inverse Watch query assets scheduled {found.label.replace('_', ' ')}.",
        )
        for found, keys in sorted(grouped.items(), key=lambda item: item[0].label)
    ]
