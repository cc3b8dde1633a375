"""Response models of ``/requests``: the runs users requested, with their form values and each
step's state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StepOut(BaseModel):
    id: str = Field(description="The step id (or `_check_form` / `_notify_start`).")
    task_id: str = Field(description="The Airflow task id, or task group id for a function call.")
    title: str
    state: str | None = Field(description="Airflow's task state; one state for a task group. Null: not started.")
    start_date: datetime | None
    end_date: datetime | None


class RequestOut(BaseModel):
    # Features that know more about a run (approvals, tickets) add keys through requests_service.request_extras.
    model_config = ConfigDict(extra="allow")

    dag_id: str
    run_id: str
    title: str
    state: str
    requester: str | None = Field(description="The Airflow user who started the run.")
    created_at: datetime | None
    form: dict[str, Any] = Field(description="The run's form values (its conf).")
    scheduled_for: datetime | None = Field(
        None, description="A request for later: when it was asked to start (the run waits `queued` until then)."
    )
    start_date: datetime | None = Field(None, description="When the run started; null: not yet (or never).")
    cancelled: bool = Field(False, description="Ended without ever starting: cancelled before it started.")
    cancellable: bool = Field(
        False, description="The caller may cancel it now: their own request, not started yet (`queued`)."
    )
    steps: list[StepOut]
    url: str


class RequestList(BaseModel):
    requests: list[RequestOut] = Field(description="Newest first.")
    total_entries: int
