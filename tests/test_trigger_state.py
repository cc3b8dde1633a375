"""A trigger's state machine and its deliveries' signatures, without Airflow: what each read does to
the state, which reads raise an event, and that what a trigger signs is what the alert endpoint
accepts (the schemes are written once, in definitions/signatures.py)."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.signatures import sign, signature_problem
from autopilot_provider.hooks.alerts import encode
from autopilot_provider.repository.trigger_state import (
    Reading,
    StateError,
    TriggerInfo,
    TriggerState,
    advance,
    value_problem,
)

pytestmark = pytest.mark.db_independent

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
INFO = TriggerInfo(id="disk", title="Disk almost full", owner="group:storage")


def run(values, *, hold: timedelta = timedelta(minutes=5), every: timedelta = timedelta(minutes=2)):
    """Read ``values`` one after another (``every`` apart) with condition ≥ 90 and resolve < 70;
    the status after each read and the events raised, delivered at once."""
    state = TriggerState.new(START)
    statuses, events = [], []
    for i, value in enumerate(values):
        reading = Reading(value=value, condition=value >= 90, resolve=value < 70, at=START + i * every)
        state = advance(state, reading, hold=hold, info=INFO)
        if state.outbox is not None:
            events.append(state.outbox)
            state = state.model_copy(update={"outbox": None})
        statuses.append(state.status)
    return statuses, events


def test_the_condition_must_hold_for_the_duration_before_firing():
    statuses, events = run([50, 95, 95, 95, 95, 95])  # every 2 minutes, for 5 minutes
    assert statuses == ["ok", "pending", "pending", "pending", "firing", "firing"]
    [fired] = events
    assert fired.payload["status"] == "firing" and fired.payload["value"] == 95 and fired.payload["sequence"] == 1
    assert fired.payload["since"] == "2026-12-07T10:02:00Z" and fired.payload["at"] == "2026-12-07T10:08:00Z"
    assert fired.delivery_id == "trigger-disk-20261207T100000Z-1-firing" == fired.payload["id"]
    assert tuple(fired.payload) == m.TRIGGER_EVENT_FIELDS


def test_a_value_that_stops_holding_while_pending_raises_nothing():
    statuses, events = run([95, 60, 95, 60, 95])
    assert statuses == ["pending", "ok", "pending", "ok", "pending"] and events == []


def test_a_flapping_value_raises_one_alert_and_one_resolve():
    statuses, events = run([95, 95, 95, 92, 85, 91, 75, 93, 69, 95], hold=timedelta(minutes=1))
    assert statuses == [
        "pending",
        "firing",
        "firing",
        "firing",
        "firing",
        "firing",
        "firing",
        "firing",
        "ok",
        "pending",
    ]
    assert [(e.payload["status"], e.payload["value"], e.payload["sequence"]) for e in events] == [
        ("firing", 95, 1),
        ("resolved", 69, 1),
    ]
    fired, resolved = events
    assert resolved.payload["since"] == fired.payload["since"]
    assert resolved.delivery_id.endswith("-1-resolved")


def test_without_a_duration_the_first_read_that_holds_fires_and_incidents_are_numbered():
    statuses, events = run([95, 50, 95], hold=timedelta(0))
    assert statuses == ["firing", "ok", "firing"]
    assert [e.delivery_id.rsplit("-", 2)[1:] for e in events] == [["1", "firing"], ["1", "resolved"], ["2", "firing"]]


def test_a_pending_event_must_be_delivered_before_reading_again():
    state = advance(
        TriggerState.new(START),
        Reading(95, True, False, START),
        hold=timedelta(0),
        info=INFO,
    )
    assert state.outbox is not None
    with pytest.raises(ValueError, match="deliver the pending event"):
        advance(state, Reading(96, True, False, START), hold=timedelta(0), info=INFO)


def test_the_state_survives_its_variable_and_refuses_what_it_cannot_read():
    state = advance(TriggerState.new(START), Reading(95, True, False, START), hold=timedelta(0), info=INFO)
    again = TriggerState.load(state.dump(), START + timedelta(days=1))
    assert again == state and again.outbox is not None and again.outbox.payload["value"] == 95
    assert TriggerState.load(None, START).epoch == "20261207T100000Z"  # no Variable yet: a new state
    with pytest.raises(StateError, match="version 2"):
        TriggerState.load(json.dumps({"version": 2}), START)
    with pytest.raises(StateError, match="not JSON"):
        TriggerState.load("{", START)


def test_a_huge_value_is_refused():
    assert value_problem(91.5) is None
    assert "pick the number" in value_problem({"rows": ["x" * 1000] * 100})


@pytest.mark.parametrize("scheme", m.ALERT_SCHEMES)
def test_what_a_trigger_signs_the_endpoint_accepts(scheme):
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode() if scheme == "standard" else "s3cret-value"
    auth = m.AlertAuth(scheme=scheme, connection="alert_x")
    body = encode({"id": "trigger-disk-1-firing", "status": "firing", "value": 95})
    now = int(START.timestamp())
    headers = {k.lower(): v for k, v in sign(scheme, secret, body, delivery_id="d-1", timestamp=now).items()}
    assert signature_problem(auth, secret, headers, body, now=now) is None
    assert signature_problem(auth, secret, headers, body + b" ", now=now) is not None or scheme == "bearer"
    other = "whsec_" + base64.b64encode(b"another key 24 bytes....").decode() if scheme == "standard" else "other"
    assert signature_problem(auth, other, headers, body, now=now) is not None


def test_a_body_is_the_same_bytes_every_time():
    assert encode({"b": 1, "a": [1, 2]}) == encode({"a": [1, 2], "b": 1}) == b'{"a":[1,2],"b":1}'
