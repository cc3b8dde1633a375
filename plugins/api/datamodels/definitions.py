"""Request and response models of ``/definitions`` and ``/reviews``: definition files, their
validation, saves and revisions (with the four-eyes review of a change)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from autopilot_plugin.api.datamodels.common import DiagnosticOut
from pydantic import BaseModel, Field

from autopilot_provider.server.definition_store import DefinitionDetail, DefinitionSummary, diagnostic_dict
from autopilot_provider.server.revisions import Revision, SaveResult, Validation

ReviewState = Literal["applied", "pending_review", "rejected"]


def _diagnostics(diagnostics) -> list[dict[str, Any]]:
    return [diagnostic_dict(d) for d in diagnostics]


class DefinitionSummaryOut(BaseModel):
    path: str = Field(description="Relative to the definitions folder, e.g. `functions/check_host.yaml`.")
    kind: str | None
    id: str | None
    title: str | None
    version: str = Field(description="sha256 of the file content; send it back to update or delete.")
    valid: bool
    error_count: int
    problem: str | None = Field(
        None,
        description="Set for a file whose name is not allowed: it is not loaded, `path` is its name "
        "percent-encoded, and it can only be deleted (`DELETE /definitions?encoded=<path>&version=...`).",
    )

    @classmethod
    def of(cls, summary: DefinitionSummary) -> DefinitionSummaryOut:
        return cls(**vars(summary))


class DefinitionList(BaseModel):
    definitions: list[DefinitionSummaryOut]
    total_entries: int


class DefinitionOut(BaseModel):
    path: str
    kind: str | None
    id: str | None
    title: str | None
    version: str
    valid: bool
    content: str = Field(description="The YAML text.")
    diagnostics: list[DiagnosticOut]

    @classmethod
    def of(cls, d: DefinitionDetail) -> DefinitionOut:
        return cls(
            path=d.path,
            kind=d.kind,
            id=d.id,
            title=d.title,
            version=d.version,
            valid=d.valid,
            content=d.content,
            diagnostics=_diagnostics(d.diagnostics),
        )


class DefinitionCreate(BaseModel):
    path: str = Field(description="Where to save, relative to the definitions folder; must end in .yaml or .yml.")
    content: str = Field(description="The YAML text.")


class DefinitionUpdate(BaseModel):
    content: str = Field(description="The new YAML text.")
    version: str = Field(description="The version the change is based on (from GET); 409 if it is stale.")


class ValidateRequest(BaseModel):
    path: str = Field(description="The path the content would be saved at (used for ids and messages).")
    content: str


class ValidationOut(BaseModel):
    path: str
    kind: str | None
    id: str | None
    valid: bool
    error_count: int
    diagnostics: list[DiagnosticOut]

    @classmethod
    def of(cls, v: Validation) -> ValidationOut:
        return cls(
            path=v.path,
            kind=v.kind,
            id=v.id,
            valid=v.valid,
            error_count=len(v.diagnostics),
            diagnostics=_diagnostics(v.diagnostics),
        )


class SaveOut(BaseModel):
    path: str
    action: str = Field(description="create, update or delete")
    revision: int = Field(description="The revision number recorded for this change.")
    version: str | None = Field(description="sha256 of the saved content (for delete: of the removed content).")
    kind: str | None
    id: str | None
    refreshed_bundles: list[str] = Field(description="Autopilot DAG bundles whose stubs were regenerated.")
    state: ReviewState = Field(
        "applied",
        description="`applied`: written; `pending_review` (status 202): stored as a revision that another "
        "user must approve before it is written; `rejected` (a review's answer).",
    )
    review_reasons: list[str] = Field(
        default_factory=list, description="Why it waits for review: `approvals` and/or `scripts`."
    )

    @classmethod
    def of(cls, s: SaveResult) -> SaveOut:
        return cls(**vars(s))


class RevisionOut(BaseModel):
    number: int
    version: str | None
    author: str | None = Field(description="The Airflow user name that made the change.")
    created_at: datetime
    action: str = Field(description="create, update or delete")
    state: ReviewState = Field(
        "applied", description="`pending_review`: waits for another user's review; `rejected`: never written."
    )
    review_reasons: list[str] = Field(default_factory=list, description="`approvals` and/or `scripts`.")
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    review_comment: str | None = None

    @classmethod
    def of(cls, r: Revision, **more: Any) -> RevisionOut:
        """The revision's fields, and ``more`` (``path``, ``content``) for the subclasses that have them."""
        return cls(
            number=r.number,
            version=r.version,
            author=r.author,
            created_at=r.created_at,
            action=r.action,
            state=r.state,
            review_reasons=r.review_reasons.split(",") if r.review_reasons else [],
            reviewer=r.reviewer,
            reviewed_at=r.reviewed_at,
            review_comment=r.review_comment,
            **more,
        )


class RevisionList(BaseModel):
    path: str
    revisions: list[RevisionOut] = Field(description="Newest first.")
    total_entries: int


class RevisionDetailOut(RevisionOut):
    path: str
    content: str | None = Field(description="The content saved by this revision (for delete: the content removed).")


class PendingReviewOut(RevisionOut):
    path: str


class PendingReviewList(BaseModel):
    reviews: list[PendingReviewOut] = Field(description="Oldest first.")
    total_entries: int


class ReviewIn(BaseModel):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(None, max_length=10_000)
