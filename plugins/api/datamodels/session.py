"""Response models of ``/session`` and ``/schema``: who is calling and what they may do, and the
definition format's JSON Schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SessionOut(BaseModel):
    user: str = Field(description="The Airflow user name.")
    user_id: str
    can_edit_definitions: bool = Field(
        description="The designer permission ('Autopilot Definitions'): may save definitions in the designer."
    )
    can_author_code: bool = Field(
        description="The code-author permission ('Autopilot Code'): may add or change scripts that workers run."
    )
    can_trigger: bool = Field(
        description="May start runs: DAG-run create access, or the 'Autopilot Requests' permission with read "
        "access to runs."
    )
    can_read_alert_deliveries: bool = Field(
        False, description="May read the alert delivery log ('Autopilot Definitions' or 'Autopilot Alerts')."
    )
    can_replay_alerts: bool = Field(
        False, description="The alert-admin permission ('Autopilot Alerts'): may replay alert deliveries."
    )


class StepKindOut(BaseModel):
    kind: str
    supported: bool = Field(description="Whether this release compiles the kind (else it validates as 'not yet').")
    note: str | None = None


class SchemaOut(BaseModel):
    definition: dict[str, Any] = Field(description="JSON Schema of any definition file (dispatching on `kind`).")
    steps: dict[str, Any] = Field(description="Step kind → JSON Schema of its body.")
    step_kinds: list[StepKindOut]
