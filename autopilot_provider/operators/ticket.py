"""A `ticket` step: create, update, comment on or close a ServiceNow ticket.

Thin on purpose: render the ticket reference, ``fields`` and ``note`` in the sandbox, find the ticket
(by default the run's first ticket from a ``create`` step), call :class:`ServiceNowHook`, and push the
step's outputs ``{number, sys_id, url, table, state}`` — also under the XCom key
:data:`TICKET_XCOM_KEY`, which the API server reads to show a request's tickets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from autopilot_provider.definitions.templating import render_value
from autopilot_provider.hooks.servicenow import RESOLUTIONS, ServiceNowError, ServiceNowHook, close_fields
from autopilot_provider.repository.scope import TICKET_XCOM_KEY, ScopeSpec, build_scope, first_ticket

ACTIONS = ("create", "update", "comment", "close")


class ServiceNowStepError(AirflowException):
    """ServiceNow could not be reached or answered a server error (after the retries); a task retry may help."""


class ServiceNowTicketOperator(BaseOperator):
    """``action`` a ServiceNow ticket of ``table`` through the connection ``connection``.

    * ``create``: insert a record with ``fields`` (and ``note`` as its first work note);
    * ``update``: set ``fields`` (and add ``note``) on ``ticket``;
    * ``comment``: add ``note`` to the work notes of ``ticket``;
    * ``close``: set the table's closing state for ``resolution`` (``completed``, ``rejected``,
      ``cancelled``), then ``fields``; ``note`` becomes a work note and the close notes.

    ``ticket`` is a number or a sys_id; when it is not given, the first ticket that one of the
    ``created_by`` tasks (the workflow's ``create`` steps, in order) opened in this run is used, and
    its table unless ``table`` is given.
    """

    template_fields: Sequence[str] = ("ticket", "fields", "note")
    template_fields_renderers = {"fields": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        action: str,
        table: str | None = None,
        ticket: str | None = None,
        fields: dict[str, Any] | None = None,
        note: str | None = None,
        resolution: str | None = None,
        connection: str = ServiceNowHook.default_conn_name,
        created_by: Sequence[str] = (),
        request_timeout: float = 60.0,
        http_retries: int = 3,
        backoff: float = 1.0,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if resolution is not None and resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}")
        self.action = action
        self.table = table
        self.ticket = ticket
        self.fields = fields or {}
        self.note = note
        self.resolution = resolution
        self.connection = connection
        self.created_by = list(created_by)
        self.request_timeout = request_timeout
        self.http_retries = http_retries
        self.backoff = backoff
        self.scope = scope or {}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # User text renders in Autopilot's sandbox with Autopilot's names, not Airflow's context.
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        self.ticket = render_value(self.ticket, scope)
        self.fields = render_value(self.fields, scope)
        self.note = render_value(self.note, scope)

    def hook(self) -> ServiceNowHook:
        return ServiceNowHook(
            self.connection, request_timeout=self.request_timeout, retries=self.http_retries, backoff=self.backoff
        )

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.hook()
        try:
            record, table = self._act(hook, context)
        except ServiceNowError as exc:
            if exc.permanent:
                raise AirflowFailException(str(exc)) from None
            raise ServiceNowStepError(str(exc)) from None
        outputs = {
            "number": record.get("number"),
            "sys_id": record.get("sys_id"),
            "url": hook.record_url(table, str(record.get("sys_id"))),
            "table": table,
            "state": record.get("state"),
        }
        self.log.info("Ticket %s (%s): %s", outputs["number"], self.action, outputs["url"])
        context["ti"].xcom_push(key=TICKET_XCOM_KEY, value=outputs)
        return outputs

    def _act(self, hook: ServiceNowHook, context: Any) -> tuple[dict[str, Any], str]:
        fields = {name: value for name, value in self.fields.items()}
        if self.action == "create":
            table = self.table or "sc_request"
            if self.note:
                fields["work_notes"] = self.note
            self.log.info("Opening a %s ticket (connection %s)", table, self.connection)
            return hook.create(table, fields), table
        table, sys_id = self._target(hook, context)
        if self.action == "close":
            resolution = self.resolution or "completed"
            closing = close_fields(table, resolution)
            if closing is None and "state" not in fields:
                raise AirflowFailException(
                    f"Autopilot does not know how to close a {table} record: give its closing `state` "
                    "(and any other fields) in the step's `fields`"
                )
            fields = {**(closing or {}), **fields}
            if self.note:
                fields.setdefault("close_notes", self.note)
        if self.note:
            fields["work_notes"] = self.note
        self.log.info(
            "%s %s %s (connection %s): %s", self.action.capitalize(), table, sys_id, self.connection, sorted(fields)
        )
        return hook.update(table, sys_id, fields), table

    def _target(self, hook: ServiceNowHook, context: Any) -> tuple[str, str]:
        """(table, sys_id) of the ticket to change."""
        reference = str(self.ticket).strip() if self.ticket not in (None, "") else ""
        if reference:
            table = self.table or "sc_request"
            return table, hook.sys_id_of(table, reference)
        opened = first_ticket(context["ti"], self.created_by)
        if opened:
            self.log.info("The run's ticket: %s", opened.get("number"))
            return self.table or opened["table"], opened["sys_id"]
        steps = ", ".join(self.created_by)
        raise AirflowFailException(
            "the step names no `ticket` and "
            + (
                f"none of the create steps ({steps}) opened one in this run"
                if steps
                else "the workflow has no create step"
            )
        )
