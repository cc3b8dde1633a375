"""A `wait` step in time: until a moment, for a duration, or until a maintenance window is open —
deferred to Airflow's own ``DateTimeTrigger``, so no worker slot is held while it waits.

The moment is worked out once, on the worker, and travels in the trigger's row (and in the
deferral's ``kwargs``), so a restart of the scheduler or the triggerer loses nothing. For `until` and
`for` it is also kept in Airflow's task state store (``context["task_state_store"]``, which
retries of the task share), so a retry waits for the same moment: `for` counts from the step's first
start. A window is looked for again after each resume: when the triggerer was down for the whole
window, the step waits for the next one rather than running outside it.

Outputs: ``at`` (the moment waited for, ISO 8601 in UTC; for a window the opening of the window the
step passed in) and, for a window, ``window_end`` and ``window`` (which one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.moments import next_window, parse_moment
from autopilot_provider.definitions.templating import render_value
from autopilot_provider.repository.folder import Project
from autopilot_provider.repository.scope import ScopeSpec, build_scope
from autopilot_provider.repository.windows import WindowError, resolve_windows

#: The key of the moment in the task state store (shared by the tries of one task instance).
STATE_KEY = "autopilot_wait_at"
#: How long the stored moment outlives the wait (Airflow's cleanup removes it afterwards).
KEEP_AFTER = timedelta(days=7)
#: A moment this close is waited for on the worker. A trigger that fires before the scheduler has
#: processed the executor's report on the deferring process makes Airflow 3.3 fail the resumed task
#: ("finished with state success, but the task instance's state attribute is queued"); a few seconds
#: of a worker slot cost less than that race.
INLINE_WAIT = timedelta(seconds=10)


class TimeWaitOperator(BaseOperator):
    """Wait ``until`` a moment (an ISO 8601 date-time, templated), ``duration`` seconds from the
    step's first start, or for a ``window`` (a ``WindowSpec`` as a dict), in Airflow's triggerer."""

    template_fields: Sequence[str] = ("until", "window")
    template_fields_renderers = {"window": "json"}
    ui_color = "#e8f1fa"

    def __init__(
        self,
        *,
        until: str | None = None,
        duration: float | None = None,
        window: dict[str, Any] | None = None,
        timezone: str | None = None,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        given = [
            name for name, value in (("until", until), ("duration", duration), ("window", window)) if value is not None
        ]
        if len(given) != 1:
            raise ValueError(f"{type(self).__name__} needs exactly one of until, duration, window (got {given})")
        self.until = until
        self.duration = duration
        self.window = window
        self.timezone = timezone
        self.scope = scope or {}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        if self.until is None and self.window is None:
            return
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        if self.until is not None:
            self.until = render_value(self.until, scope)
        if self.window is not None:
            self.window = render_value(self.window, scope)

    # -- waiting --------------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        if self.window is not None:
            return self._wait_for_window(now)
        store = context.get("task_state_store")
        at = self._stored(store)
        if at is not None:
            self.log.info("Waiting for %s, worked out by an earlier try", at.isoformat())
        else:
            at = self._moment(now)
            if store is not None:
                store.set(STATE_KEY, at.isoformat(), retention=max(at - now, timedelta(0)) + KEEP_AFTER)
        return self._wait_until(at, now)

    def _moment(self, now: datetime) -> datetime:
        if self.duration is not None:
            return now + timedelta(seconds=self.duration)
        try:
            return parse_moment(self.until, self.timezone)
        except ValueError as exc:
            raise AirflowFailException(f"until: {exc}") from None

    def _stored(self, store: Any) -> datetime | None:
        if store is None:
            return None
        value = store.get(STATE_KEY)
        if not isinstance(value, str):
            return None
        try:
            return parse_moment(value)
        except ValueError:
            return None

    def _wait_until(self, at: datetime, now: datetime) -> dict[str, Any]:
        if at <= now:
            self.log.info("%s has passed: nothing to wait for", at.isoformat())
            return {"at": at.isoformat()}
        if at - now <= INLINE_WAIT:
            self.log.info("Waiting until %s (%s from now) here", at.isoformat(), _span(at - now))
            _sleep_until(at)
            return {"at": at.isoformat()}
        self.log.info("Waiting until %s (%s from now), in the triggerer", at.isoformat(), _span(at - now))
        self.defer(
            trigger=DateTimeTrigger(moment=at),
            method_name="execute_complete",
            kwargs={"at": at.isoformat()},
        )
        raise AssertionError("defer() returns only by raising")  # pragma: no cover

    def _wait_for_window(self, now: datetime) -> dict[str, Any]:
        try:
            spec = m.WindowSpec.model_validate(self.window)
            folder = self.scope.get("definitions")
            windows = resolve_windows(spec, Project(Path(folder)) if folder else None, self.timezone)
        except (WindowError, ValueError) as exc:
            raise AirflowFailException(f"window: {exc}") from None
        found = next_window(windows, now)
        if found is None:
            labels = ", ".join(w.label for w in windows)
            raise AirflowFailException(f"window: {labels} never opens")
        start, end, window = found
        outputs = {"at": start.isoformat(), "window_end": end.isoformat(), "window": window.label}
        if start <= now < end:
            self.log.info("Inside %s (open from %s until %s): go", window.label, start.isoformat(), end.isoformat())
            return outputs
        if start - now <= INLINE_WAIT:
            self.log.info("Waiting for %s to open at %s (%s from now) here", window.label, start, _span(start - now))
            _sleep_until(start)
            return outputs
        self.log.info(
            "Waiting for %s to open at %s (%s from now; it closes at %s), in the triggerer",
            window.label,
            start.isoformat(),
            _span(start - now),
            end.isoformat(),
        )
        self.defer(
            trigger=DateTimeTrigger(moment=start),
            method_name="execute_complete",
            kwargs={"at": start.isoformat(), "window_end": end.isoformat()},
        )
        raise AssertionError("defer() returns only by raising")  # pragma: no cover

    def execute_complete(
        self, context: Any, event: Any = None, at: str | None = None, window_end: str | None = None
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        if self.window is not None:
            # resumed late (the triggerer was down through the window)? wait for the next one
            return self._wait_for_window(now)
        assert at is not None
        self.log.info("%s reached", at)
        return {"at": parse_moment(at).isoformat()}


def _sleep_until(moment: datetime) -> None:
    while (left := (moment - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(left, 1.0))


def _span(delta: timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    return str(timedelta(seconds=seconds)) if seconds >= 60 else f"{seconds}s"
