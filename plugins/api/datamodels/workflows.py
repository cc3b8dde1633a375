"""Request and response models of ``/workflows``: the workflows a user may request, their forms and
starting a run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WorkflowOut(BaseModel):
    id: str
    title: str
    description: str | None
    tags: list[str]
    owner: str | None
    has_form: bool = Field(description="Whether the workflow asks for anything before it runs.")
    dag_id: str = Field(description="The Airflow DAG id (the workflow id).")
    can_request: bool = Field(
        description="Whether the caller may start runs of it (DAG-run create access); the catalog lists the "
        "workflows the caller may read, some of which they may only look at."
    )


class WorkflowList(BaseModel):
    workflows: list[WorkflowOut]
    total_entries: int


class SectionOut(BaseModel):
    title: str | None = Field(description="The `section` of its fields; null for fields without one.")
    fields: list[str]


class FormOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    workflow: WorkflowOut
    schema_: dict[str, Any] = Field(
        alias="schema",
        serialization_alias="schema",
        description="JSON Schema of the submission (type object): titles, descriptions, defaults, formats, "
        "and every dynamic choice as `enum`.",
    )
    ui_schema: dict[str, Any] = Field(
        description="react-jsonschema-form uiSchema: `ui:order`, per field `ui:widget` (textarea, password, "
        "hidden), `ui:enumNames` (labels of the enum values) and `ui:description` (markdown)."
    )
    sections: list[SectionOut] = Field(description="Fields grouped by `section`, in order.")


class RunRequest(BaseModel):
    form: Any = Field(default_factory=dict, description="Field name → value (a JSON object).")
    note: str | None = Field(None, description="A note on the run (Airflow's run note).")
    start_at: datetime | None = Field(
        None,
        description="Start the run at this time instead of now (ISO 8601 with a time zone, e.g. "
        "`2030-01-31T09:00:00+01:00`): the form is validated now, the run waits queued until then and its "
        "requester may cancel it before it starts. Not in the past, at most `[autopilot] request_max_ahead_days` "
        "ahead.",
    )


class RunOut(BaseModel):
    dag_id: str
    run_id: str
    state: str
    url: str = Field(description="The run in Airflow's grid view.")
    created: bool = Field(
        True, description="False when an earlier request with the same Idempotency-Key started this run."
    )
    scheduled_for: datetime | None = Field(
        None, description="A request for later: when it starts (the run's `run_after`); null: it starts now."
    )


class CancelOut(BaseModel):
    dag_id: str
    run_id: str
    state: str = Field(description="`failed`: Airflow's state of a run cancelled before it started.")
    url: str = Field(description="The run in Airflow's grid view.")
    scheduled_for: datetime | None = Field(description="When the request was to start.")
    cancelled: bool = True
    cancelled_by: str = Field(description="Who cancelled it (its requester).")
