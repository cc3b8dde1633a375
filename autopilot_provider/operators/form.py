"""The mid-flow ``form`` step: one of the named people fills in fields while the run waits (an Airflow
human-in-the-loop task answered through the Autopilot inbox; see
:mod:`autopilot_provider.operators.approval` for what it shares with approvals). Worker runtime (and
DAG parsing).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from autopilot_provider.operators.approval import HitlStepOperator
from autopilot_provider.repository.hitl import SUBMIT

__all__ = ["AutopilotFormOperator"]


class AutopilotFormOperator(HitlStepOperator):
    """A mid-flow ``form`` step: one of the named people fills the fields; the answers (validated
    server-side against the fields' JSON Schema) are the step's outputs, plus ``answered_by``."""

    kind = "form"
    ui_color = "#eef0fb"

    def __init__(self, *, form: dict[str, Any], **kwargs: Any) -> None:
        timeout = kwargs.get("timeout_seconds")
        if timeout:
            kwargs["response_timeout"] = timedelta(seconds=timeout)
        super().__init__(options=[SUBMIT], **kwargs)
        self.form = form  # autopilot_provider.repository.forms.step_form: schema, ui_schema, dynamic (API choices)

    @property
    def schema(self) -> dict[str, Any]:
        return self.form["schema"]

    def request_fields(self, context: Any, scope: dict[str, Any]) -> dict[str, Any]:
        return {"form": self.form}

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if "error" in event:
            self.process_trigger_event_error(event)
        self.check_responder(event)
        values = dict(event.get("params_input") or {})
        answered_by = values.pop("_answered_by", None)
        self.log.info("Answered by %s", answered_by)
        return {**values, "answered_by": answered_by}
