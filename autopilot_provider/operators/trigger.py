"""A trigger's one task: read the data point, move the trigger's state, deliver its transitions.

Each run: (1) load the state from its Airflow Variable and, when an event is still in its outbox,
deliver it first; (2) read the REST operation (:class:`OpenApiHook`, the request built and checked
from the OpenAPI document like a `task` step's) and compute `value`, `condition` and `resolve` in the
sandbox; (3) advance the state machine (:mod:`autopilot_provider.repository.trigger_state`); (4) on
a transition, save the state with the event in its outbox *before* delivering it — to the Alert
(:class:`AlertHook`, idempotent by delivery id) and to the people notified — then clear the outbox.
A failed delivery fails the try; Airflow's retry (or the next run) sends it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.templating import render_value
from autopilot_provider.hooks.alerts import AlertDeliveryError, AlertHook, AlertRejected
from autopilot_provider.hooks.openapi import OpenApiAuthError, OpenApiError, OpenApiHook
from autopilot_provider.notifications.autopilot import AutopilotNotifier
from autopilot_provider.openapi.request import RequestValidationError, build_request, evaluate_outputs
from autopilot_provider.openapi.request import condition as expression_holds
from autopilot_provider.operators.task import OpenApiStepError, check_status, load_operation
from autopilot_provider.repository.folder import Project
from autopilot_provider.repository.scope import ScopeSpec, build_scope
from autopilot_provider.repository.trigger_state import (
    PendingEvent,
    Reading,
    StateError,
    TriggerInfo,
    TriggerState,
    advance,
    value_problem,
    variable_key,
)


def load_alert(definitions: str | None, alert_id: str) -> m.Alert:
    """The valid Alert ``alert_id`` of the definitions folder; fails the task clearly."""
    if not definitions:
        raise AirflowFailException("the trigger has no definitions folder to find its alert in")
    project = Project(definitions)
    rel = project.find("Alert", alert_id)
    if rel is None:
        raise AirflowFailException(f"unknown alert '{alert_id}' (no Alert definition with this id in {definitions})")
    loaded = project.load(rel)
    if not loaded.ok or not isinstance(loaded.definition, m.Alert):
        raise AirflowFailException(
            f"alert '{alert_id}' has errors: " + "; ".join(str(d) for d in loaded.diagnostics[:3])
        )
    return loaded.definition


class TriggerOperator(BaseOperator):
    """Read a trigger's data point (``operation`` of ``api``) and deliver its transitions.

    ``value`` is an expression over ``response``; ``condition`` and ``resolve`` (default: not
    ``condition``) over ``value`` and ``response``; ``hold`` (seconds) is how long ``condition`` must
    hold before the trigger fires. Firing and resolving go to the Alert ``alert`` and to ``notify``
    (``AutopilotNotifier`` arguments). The XCom is ``{status, value, condition, event}``.
    """

    template_fields: Sequence[str] = ("parameters",)
    template_fields_renderers = {"parameters": "json"}
    ui_color = "#fdecea"

    def __init__(
        self,
        *,
        trigger_id: str,
        api: str,
        operation: str,
        condition: str,
        value: str = "response.body",
        resolve: str | None = None,
        hold: float = 0.0,
        alert: str | None = None,
        notify: dict[str, Any] | None = None,
        title: str | None = None,
        owner: str | None = None,
        parameters: dict[str, Any] | None = None,
        connection: str | None = None,
        request_timeout: float = 60.0,
        http_retries: int = 3,
        backoff: float = 1.0,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if alert is None and notify is None:
            raise ValueError("a trigger needs an alert or a notification")
        self.trigger_id = trigger_id
        self.api = api
        self.operation = operation
        self.condition = condition
        self.value = value
        self.resolve = resolve
        self.hold = hold
        self.alert = alert
        self.notify = notify
        self.title = title
        self.owner = owner
        self.parameters = parameters or {}
        self.connection = connection
        self.request_timeout = request_timeout
        self.http_retries = http_retries
        self.backoff = backoff
        self.scope = scope or {}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # User text renders in Autopilot's sandbox with Autopilot's names, not Airflow's context.
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        self.parameters = render_value(self.parameters, scope)

    @property
    def info(self) -> TriggerInfo:
        return TriggerInfo(id=self.trigger_id, title=self.title or self.trigger_id, owner=self.owner)

    # -- the state, in its Airflow Variable ------------------------------------------------------

    def load_state(self) -> TriggerState:
        stored = Variable.get(variable_key(self.trigger_id), default=None)
        try:
            return TriggerState.load(stored, datetime.now(UTC))
        except StateError as exc:
            raise AirflowFailException(
                f"Variable {variable_key(self.trigger_id)}: {exc} (delete the Variable to start the trigger afresh)"
            ) from None

    def save_state(self, state: TriggerState) -> None:
        Variable.set(
            variable_key(self.trigger_id),
            state.dump(),
            description=f"Autopilot trigger '{self.trigger_id}': its state (written by its DAG; do not edit)",
        )

    # -- a run ---------------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        state = self.load_state()
        if state.outbox is not None:
            self.log.info("Delivering the pending event %s first", state.outbox.delivery_id)
            state = self.deliver(state, context)
        reading = self.read()
        new = advance(state, reading, hold=timedelta(seconds=self.hold), info=self.info)
        self.log.info(
            "value %s, condition %s, resolve %s: %s → %s",
            reading.value,
            reading.condition,
            reading.resolve,
            state.status,
            new.status,
        )
        event = new.outbox.payload if new.outbox is not None else None
        self.save_state(new)  # with the event in its outbox: written before anything is sent
        if new.outbox is not None:
            new = self.deliver(new, context)
        return {"status": new.status, "value": reading.value, "condition": reading.condition, "event": event}

    def read(self) -> Reading:
        at = datetime.now(UTC)
        api_definition, spec, operation = load_operation(self.scope.get("definitions"), self.api, self.operation)
        try:
            request = build_request(spec, operation, self.parameters, None)
        except RequestValidationError as exc:
            raise AirflowFailException(str(exc)) from None
        hook = OpenApiHook(
            self.connection or api_definition.connection,
            spec=spec,
            request_timeout=self.request_timeout,
            retries=self.http_retries,
            backoff=self.backoff,
        )
        self.log.info("%s: %s %s (connection %s)", operation.id, operation.method, operation.path, hook.openapi_conn_id)
        try:
            response = hook.run(operation, request)
        except OpenApiAuthError as exc:
            raise AirflowFailException(str(exc)) from None
        except OpenApiError as exc:
            raise OpenApiStepError(str(exc)) from None
        check_status(self.log, operation, response)
        try:
            value = evaluate_outputs({"value": self.value}, response, {})["value"]
            holds = expression_holds(self.condition, response, {"value": value})
            resolves = expression_holds(self.resolve, response, {"value": value}) if self.resolve else not holds
        except Exception as exc:  # noqa: BLE001 - an undefined key, a sandbox limit: say which expression
            raise AirflowFailException(f"trigger '{self.trigger_id}': {exc}") from None
        problem = value_problem(value)
        if problem:
            raise AirflowFailException(f"trigger '{self.trigger_id}': {problem}")
        return Reading(value=value, condition=holds, resolve=resolves, at=at)

    # -- delivering a transition -------------------------------------------------------------------

    def deliver(self, state: TriggerState, context: Any) -> TriggerState:
        """Deliver the event in ``state.outbox`` (what is not done yet), save each step, clear it."""
        pending = state.outbox
        assert pending is not None
        rejected = None
        if self.alert is not None and not pending.alert_sent:
            try:
                self.send_alert(pending)
            except AlertRejected as exc:
                # delivered, and refused for good (its delivery log says why): sending it again cannot help
                rejected = str(exc)
                self.log.error("Alert '%s' refused %s: %s", self.alert, pending.delivery_id, exc)
            except AlertDeliveryError as exc:
                raise AirflowException(
                    f"could not deliver {pending.delivery_id} to alert '{self.alert}' (it stays pending and is sent "
                    f"again by the next try or run): {exc}"
                ) from None
            pending = pending.model_copy(update={"alert_sent": True})
            if self.notify is not None:
                self.save_state(state.model_copy(update={"outbox": pending}))
        if self.notify is not None and not pending.notified:
            self.send_notification(pending, context)
        state = state.model_copy(update={"outbox": None})
        self.save_state(state)
        if rejected is not None:
            raise AirflowFailException(f"alert '{self.alert}' refused {pending.delivery_id}: {rejected}")
        return state

    def send_alert(self, pending: PendingEvent) -> None:
        alert = load_alert(self.scope.get("definitions"), self.alert or "")
        hook = AlertHook(alert.auth.connection, scheme=alert.auth.scheme)
        header = alert.delivery_id.header if alert.delivery_id is not None else None
        self.log.info("Delivering %s to %s", pending.delivery_id, hook.url(alert.id))
        answer = hook.deliver(alert.id, pending.payload, delivery_id=pending.delivery_id, delivery_header=header)
        runs = [f"{r.get('workflow')}:{r.get('run_id')}" for r in answer.get("runs") or [] if isinstance(r, dict)]
        self.log.info(
            "Alert '%s' answered %s for %s%s",
            alert.id,
            answer.get("status"),
            pending.delivery_id,
            f"; runs: {', '.join(runs)}" if runs else "",
        )

    def send_notification(self, pending: PendingEvent, context: Any) -> None:
        assert self.notify is not None
        notifier = AutopilotNotifier(**self.notify, scope=self.scope)
        event = pending.payload
        word = "fired" if pending.status == "firing" else "resolved"
        subject = f"[Autopilot] {event['title']}: {word} (value {event['value']})"
        body = (
            f"Trigger {event['trigger']} {word} at {event['at']}: value {event['value']}"
            + (f", the condition held since {event['since']}" if event.get("since") else "")
            + ".\n"
        )
        notifier.send(context, values={"trigger": event}, defaults=(subject, body))
