"""Moments and windows in time, as `wait` steps and schedules write them: ISO 8601 date-times read in
a time zone, IANA zone names, and maintenance windows (a cron that opens a window, a duration that
closes it). Pure functions of their arguments (``now`` is passed in), so validation, the operator
and the tests agree; no Airflow."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from autopilot_provider.definitions.durations import parse_duration

#: How far ahead a window's next opening is looked for (a cron such as `0 0 30 2 *` never fires).
HORIZON = timedelta(days=366 * 5)


def zone(name: str | None) -> tzinfo:
    """The IANA time zone ``name`` (UTC when None); ValueError naming it when unknown."""
    if name is None or name == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown timezone {name!r} (an IANA name such as 'Europe/Paris' or 'UTC')") from None


def zone_problem(name: str | None) -> str | None:
    try:
        zone(name)
    except ValueError as exc:
        return str(exc)
    return None


def parse_moment(text: object, timezone: str | None = None) -> datetime:
    """An ISO 8601 date-time (or date: midnight) as an aware UTC datetime; one without an offset is
    read in ``timezone`` (UTC when None). ValueError saying what was expected otherwise."""
    value = text.strip() if isinstance(text, str) else text
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None  # type: ignore[assignment]
        if moment is None:
            raise ValueError(
                f"{_short(value)} is not an ISO 8601 date-time such as 2030-01-31T09:00:00 or 2030-01-31T09:00:00+01:00"
            )
    else:
        raise ValueError(f"{_short(value)} is not an ISO 8601 date-time such as 2030-01-31T09:00:00")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(timezone))
    return moment.astimezone(UTC)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


def cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not a cron expression croniter (and Airflow) reads, or None."""
    from croniter import croniter

    try:
        valid = croniter.is_valid(cron)
    except Exception:  # noqa: BLE001 - croniter raises several kinds on odd input
        valid = False
    if not valid:
        return f"invalid cron expression {cron!r}: five fields, minute hour day-of-month month day-of-week, e.g. '0 22 * * 6'"
    if Window(cron, timedelta(hours=1)).around(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        return f"cron expression {cron!r} never fires"
    return None


@dataclass(frozen=True)
class Window:
    """One recurring window: it opens when ``cron`` fires (in ``timezone``) and lasts ``duration``."""

    cron: str
    duration: timedelta
    timezone: str | None = None
    label: str = ""

    @classmethod
    def of(cls, cron: str, duration: str, timezone: str | None = None, label: str = "") -> Window:
        return cls(cron=cron, duration=parse_duration(duration), timezone=timezone, label=label)

    def around(self, now: datetime) -> tuple[datetime, datetime] | None:
        """(opening, closing) of the window open at ``now``, else of the next one to open; None
        when the cron never fires within :data:`HORIZON`. Both aware, in UTC."""
        from croniter import CroniterBadDateError, croniter

        local = now.astimezone(zone(self.timezone))
        # the first opening after now - duration: if it is not after now, now is inside that window
        try:
            start = croniter(self.cron, local - self.duration).get_next(datetime)
        except CroniterBadDateError:  # croniter gave up looking: it never fires
            return None
        if start - local > HORIZON:
            return None
        start_utc = start.astimezone(UTC)
        return start_utc, start_utc + self.duration


def next_window(windows: Iterable[Window], now: datetime) -> tuple[datetime, datetime, Window] | None:
    """The window open at ``now`` (the one that closes last) or, when none is, the one that opens
    first: (opening, closing, window). None when no window ever opens."""
    best: tuple[datetime, datetime, Window] | None = None
    for window in windows:
        found = window.around(now)
        if found is None:
            continue
        start, end = found
        inside = start <= now < end
        if best is None:
            best = (start, end, window)
            continue
        best_inside = best[0] <= now < best[1]
        if (inside and (not best_inside or end > best[1])) or (not inside and not best_inside and start < best[0]):
            best = (start, end, window)
    return best
