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
    steps: list[StepOut]
    url: str


class RequestList(BaseModel):
    requests: list[RequestOut] = Field(description="Newest first.")
    total_entries: int
