"""A trigger's durable state and its state machine (kind `Trigger`).

Each read of the data point moves the state::

    ok ──condition──▶ pending ──condition still holds after `for`──▶ firing ──resolve──▶ ok
     ▲                  │                                              (event: firing)   (event: resolved)
     └──not condition───┘

With no `for` (or `for: 0s`) ``ok`` goes straight to ``firing``. While ``firing``, only `resolve`
(default: not `condition`) moves it back to ``ok``: a value between the two thresholds changes
nothing, so a flapping value raises one alert. ``pending`` that sees the condition fail goes back to
``ok`` without an event.

The state is one JSON document per trigger (:class:`TriggerState`), which the trigger's task keeps in
the Airflow Variable :func:`variable_key` (written through the Task SDK: workers have no database).
A transition is written ahead of its effects: the new state is saved with the event in ``outbox``,
then the event is delivered (to the Alert endpoint, idempotent by delivery id; to the people
notified), then ``outbox`` is cleared. A task that finds an event in ``outbox`` delivers it again
before it reads the data point: a crash after a delivery re-sends it (the endpoint answers
"duplicate"), a crash before one sends it late; no transition is repeated or lost.

Delivery ids are ``trigger-<id>-<epoch>-<sequence>-<status>``: ``sequence`` counts the trigger's
incidents (its firing and its resolving share it), ``epoch`` is when the state was first written, so
a state that is deleted and starts again never reuses the id of an earlier incident (which the
endpoint would take for a duplicate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autopilot_provider.definitions.models import TRIGGER_EVENT_FIELDS

STATE_VERSION = 1
#: The Airflow Variable holding a trigger's state is this prefix and the trigger's id.
VARIABLE_PREFIX = "autopilot_trigger__"
#: Largest value (as JSON) a trigger keeps and delivers.
MAX_VALUE_BYTES = 64 * 1024


def variable_key(trigger_id: str) -> str:
    return VARIABLE_PREFIX + trigger_id


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class StateError(ValueError):
    """A stored state that cannot be read (not this format, or a newer version)."""


class PendingEvent(BaseModel):
    """A transition whose effects are not all done yet (the outbox)."""

    model_config = ConfigDict(extra="forbid")

    delivery_id: str
    payload: dict[str, Any] = Field(description="The event, as delivered to the Alert endpoint.")
    alert_sent: bool = False
    notified: bool = False

    @property
    def status(self) -> str:
        return str(self.payload["status"])


class TriggerState(BaseModel):
    """What a trigger remembers between reads (version 1)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = STATE_VERSION
    epoch: str = Field(description="When this state was first written (compact UTC): part of delivery ids.")
    status: Literal["ok", "pending", "firing"] = "ok"
    since: str | None = Field(None, description="pending, firing: when the condition began to hold.")
    fired_at: str | None = Field(None, description="firing: when it fired.")
    sequence: int = Field(0, description="Incidents so far (the current one's number while firing).")
    value: Any = Field(None, description="The value last read.")
    checked_at: str | None = Field(None, description="When the data point was last read.")
    outbox: PendingEvent | None = None

    @classmethod
    def new(cls, now: datetime) -> TriggerState:
        return cls(epoch=now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))

    @classmethod
    def load(cls, stored: Any, now: datetime) -> TriggerState:
        """The state kept in the Variable (its JSON text, or None when there is none yet)."""
        if stored in (None, ""):
            return cls.new(now)
        try:
            data = json.loads(stored) if isinstance(stored, str) else stored
        except ValueError as exc:
            raise StateError(f"the stored state is not JSON: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("version"), int) and data["version"] > STATE_VERSION:
            raise StateError(f"the stored state has version {data['version']}; this Autopilot reads {STATE_VERSION}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise StateError(f"the stored state is not a trigger state: {exc}") from None

    def dump(self) -> str:
        return self.model_dump_json()


@dataclass(frozen=True)
class Reading:
    """One read of the data point: the value, whether `condition` and `resolve` hold, and when."""

    value: Any
    condition: bool
    resolve: bool
    at: datetime


@dataclass(frozen=True)
class TriggerInfo:
    """What an event says about its trigger."""

    id: str
    title: str
    owner: str | None


def delivery_id(trigger_id: str, state: TriggerState, status: str) -> str:
    return f"trigger-{trigger_id}-{state.epoch}-{state.sequence}-{status}"


def _event(info: TriggerInfo, state: TriggerState, status: str, at: datetime) -> PendingEvent:
    ident = delivery_id(info.id, state, status)
    payload = {
        "id": ident,
        "trigger": info.id,
        "status": status,
        "value": state.value,
        "since": state.since,
        "at": iso(at),
        "sequence": state.sequence,
        "title": info.title,
        "owner": info.owner,
    }
    assert tuple(payload) == TRIGGER_EVENT_FIELDS
    return PendingEvent(delivery_id=ident, payload=payload)


def advance(state: TriggerState, reading: Reading, *, hold: timedelta, info: TriggerInfo) -> TriggerState:
    """The state after ``reading``; a transition to ``firing`` or back to ``ok`` from ``firing`` puts
    its event in ``outbox`` (which must be empty: deliver a pending event first)."""
    if state.outbox is not None:
        raise ValueError("deliver the pending event before reading again")
    now = reading.at
    new = state.model_copy(update={"value": reading.value, "checked_at": iso(now)})

    def fire() -> TriggerState:
        fired = new.model_copy(update={"status": "firing", "fired_at": iso(now), "sequence": new.sequence + 1})
        return fired.model_copy(update={"outbox": _event(info, fired, "firing", now)})

    if state.status == "ok":
        if not reading.condition:
            return new
        new = new.model_copy(update={"since": iso(now)})
        return fire() if hold <= timedelta(0) else new.model_copy(update={"status": "pending"})
    if state.status == "pending":
        if not reading.condition:
            return new.model_copy(update={"status": "ok", "since": None})
        started = parse_iso(state.since) if state.since else now
        return fire() if now - started >= hold else new
    # firing
    if not reading.resolve:
        return new
    event = _event(info, new, "resolved", now)
    return new.model_copy(update={"status": "ok", "since": None, "fired_at": None, "outbox": event})


def value_problem(value: Any) -> str | None:
    """Why a value cannot be kept and delivered (too large), or None."""
    size = len(json.dumps(value, default=str))
    if size > MAX_VALUE_BYTES:
        return (
            f"the value is {size} bytes of JSON, more than the {MAX_VALUE_BYTES} a trigger keeps: pick the number "
            "it watches with `value:` (e.g. `response.body.used_percent`)"
        )
    return None
