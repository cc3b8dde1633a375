"""Request and response models of ``/approvals``: approval and form requests as the calling user sees
them, votes, answers, signed links and the decision history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class SlotOut(BaseModel):
    ref: str = Field(description="The contact reference from the definition, e.g. `group:storage`.")
    label: str
    state: Literal["open", "approved", "rejected", "answered"]
    decided_by: str | None = None


class VoteOut(BaseModel):
    user: str
    slot: str = Field(description="Who the vote counted for (a slot's label, or `escalation`).")
    decision: Literal["approve", "reject", "answer"]
    comment: str | None = None
    at: datetime
    via: Literal["api", "link"]
    answer: dict[str, Any] | None = None


class EventOut(BaseModel):
    event: str
    detail: Any = None
    at: datetime


class ApprovalOut(BaseModel):
    id: str
    kind: Literal["approval", "form"]
    dag_id: str
    run_id: str
    task_id: str
    step_id: str
    workflow_title: str | None
    subject: str | None
    body: str | None
    state: Literal["pending", "approved", "rejected", "timed_out", "answered", "closed"]
    quorum: str | int | None
    requester: str | None
    requester_name: str | None
    created_at: datetime
    deadline: datetime | None
    escalated: bool
    decided_at: datetime | None
    slots: list[SlotOut]
    votes: list[VoteOut]
    can_vote: bool = Field(description="Whether the calling user may answer now.")
    why_not: str | None = Field(None, description="Why the calling user may not answer, when they may not.")
    form: dict[str, Any] | None = Field(
        None,
        description="Mid-flow forms: `schema` (JSON Schema of the fields) and `ui_schema` (react-jsonschema-form), "
        "choices from an API fetched now; `error` (`field`, `message`) when a field's choices cannot be fetched.",
    )
    request: dict[str, Any] = Field(description="The run's request form values.")
    outcome: dict[str, Any] | None = Field(None, description="What the step received once decided.")
    events: list[EventOut] | None = Field(None, description="The request's trail (in single reads).")


class ApprovalList(BaseModel):
    approvals: list[ApprovalOut]
    total_entries: int


class VoteIn(BaseModel):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(None, max_length=10_000)
    slot: str | int | None = Field(None, description="Which of your groups you vote for (default: the first open one).")


class ResponseIn(BaseModel):
    values: dict[str, Any] = Field(description="The form step's field values.")


class LinkIn(BaseModel):
    token: str = Field(max_length=2_000)
    decision: Literal["approve", "reject"] | None = Field(None, description="Approvals only.")
    comment: str | None = Field(None, max_length=10_000)


class HistoryEntry(BaseModel):
    approval_id: str
    dag_id: str
    run_id: str
    step_id: str
    subject: str | None
    decision: str
    comment: str | None
    slot: str
    at: datetime
    state: str


class History(BaseModel):
    votes: list[HistoryEntry]
    total_entries: int
