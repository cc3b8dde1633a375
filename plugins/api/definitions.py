"""``/api/v1/definitions``: list, read, validate, create, update and delete definition files, and
read their revision history.

Routes stay thin: each calls one :class:`autopilot_provider.server.definition_store.DefinitionStore` method and shapes
the result. Store errors become JSON responses in ``autopilot_plugin.app`` (``{"detail": {...}}`` with
``message`` and the ``field`` at fault).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from autopilot_plugin.api.deps import CanDesign, CanRead, GetUserDep, StoreDep, user_name
from autopilot_plugin.api.permissions import authorize_definition_change
from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, Field

from autopilot_provider.server.definition_store import (
    PENDING_REVIEW,
    DefinitionDetail,
    Revision,
    SaveResult,
    Validation,
    diagnostic_dict,
)

router = APIRouter(prefix="/definitions", tags=["Definitions"])
#: Changes waiting for a second person's review (four-eyes), across all paths.
reviews = APIRouter(prefix="/reviews", tags=["Definitions"])


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class DiagnosticOut(BaseModel):
    path: str = Field(description="File path relative to the definitions folder.")
    line: int
    column: int
    message: str
    text: str = Field(description="`path:line:column: message`")


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


class SaveOut(BaseModel):
    path: str
    action: str = Field(description="create, update or delete")
    revision: int = Field(description="The revision number recorded for this change.")
    version: str | None = Field(description="sha256 of the saved content (for delete: of the removed content).")
    kind: str | None
    id: str | None
    refreshed_bundles: list[str] = Field(description="Autopilot DAG bundles whose stubs were regenerated.")
    state: Literal["applied", "pending_review", "rejected"] = Field(
        "applied",
        description="`applied`: written; `pending_review` (status 202): stored as a revision that another "
        "user must approve before it is written; `rejected` (a review's answer).",
    )
    review_reasons: list[str] = Field(
        default_factory=list, description="Why it waits for review: `approvals` and/or `scripts`."
    )


class RevisionOut(BaseModel):
    number: int
    version: str | None
    author: str | None = Field(description="The Airflow user name that made the change.")
    created_at: datetime
    action: str = Field(description="create, update or delete")
    state: Literal["applied", "pending_review", "rejected"] = Field(
        "applied", description="`pending_review`: waits for another user's review; `rejected`: never written."
    )
    review_reasons: list[str] = Field(default_factory=list, description="`approvals` and/or `scripts`.")
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    review_comment: str | None = None


class PendingReviewOut(RevisionOut):
    path: str


class PendingReviewList(BaseModel):
    reviews: list[PendingReviewOut] = Field(description="Oldest first.")
    total_entries: int


class ReviewIn(BaseModel):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(None, max_length=10_000)


class RevisionList(BaseModel):
    path: str
    revisions: list[RevisionOut] = Field(description="Newest first.")
    total_entries: int


class RevisionDetailOut(RevisionOut):
    path: str
    content: str | None = Field(description="The content saved by this revision (for delete: the content removed).")


class ErrorDetail(BaseModel):
    message: str
    field: str | None = None
    current_version: str | None = None
    diagnostics: list[DiagnosticOut] | None = None


class ErrorOut(BaseModel):
    detail: ErrorDetail


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Invalid path or parameter (the `field` names it)",
        401: "Not authenticated",
        403: "Not allowed",
        404: "No such definition or revision",
        409: "Conflict: path exists, stale version (with `current_version`) or duplicate id",
        422: "Invalid content: `diagnostics` lists each `path:line:col: message`",
        503: "The Autopilot tables are missing: run `autopilot db migrate`",
    }
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


def _diagnostics(diagnostics) -> list[dict[str, Any]]:
    return [diagnostic_dict(d) for d in diagnostics]


def _detail(d: DefinitionDetail) -> DefinitionOut:
    return DefinitionOut(
        path=d.path,
        kind=d.kind,
        id=d.id,
        title=d.title,
        version=d.version,
        valid=d.valid,
        content=d.content,
        diagnostics=_diagnostics(d.diagnostics),
    )


def _validation(v: Validation) -> ValidationOut:
    return ValidationOut(
        path=v.path,
        kind=v.kind,
        id=v.id,
        valid=v.valid,
        error_count=len(v.diagnostics),
        diagnostics=_diagnostics(v.diagnostics),
    )


def _saved(s: SaveResult) -> SaveOut:
    return SaveOut(**vars(s))


def _revision(r: Revision) -> RevisionOut:
    return RevisionOut(**_revision_fields(r))


def _revision_fields(r: Revision) -> dict[str, Any]:
    return {
        "number": r.number,
        "version": r.version,
        "author": r.author,
        "created_at": r.created_at,
        "action": r.action,
        "state": r.state,
        "review_reasons": r.review_reasons.split(",") if r.review_reasons else [],
        "reviewer": r.reviewer,
        "reviewed_at": r.reviewed_at,
        "review_comment": r.review_comment,
    }


def _saved_or_pending(result: SaveResult, response: Response) -> SaveOut:
    """A change that waits for review answers 202 Accepted: stored, not yet in effect."""
    if result.state == PENDING_REVIEW:
        response.status_code = status.HTTP_202_ACCEPTED
    return _saved(result)


DefinitionPath = Annotated[str, Path(description="Relative to the definitions folder, e.g. `hello_world.yaml`.")]


# ---------------------------------------------------------------------------------------------
# Routes (the static ones and the /revisions ones come before the catch-all {path:path})
# ---------------------------------------------------------------------------------------------


@router.get(
    "",
    dependencies=[CanRead],
    operation_id="list_definitions",
    responses=_responses(400, 401, 403),
)
def list_definitions(
    store: StoreDep,
    kind: Annotated[
        str | None, Query(description="Only this kind: Workflow, Function, Contacts, Resources, Api.")
    ] = None,
) -> DefinitionList:
    """Every definition file with its kind, id, title, version and validity."""
    items = store.list(kind)
    return DefinitionList(definitions=[DefinitionSummaryOut(**vars(i)) for i in items], total_entries=len(items))


@router.post(
    "/validate",
    dependencies=[CanRead],
    operation_id="validate_definition",
    responses=_responses(400, 401, 403),
)
def validate_definition(body: ValidateRequest, store: StoreDep) -> ValidationOut:
    """Validate content as if saved at `path`, including id clashes with other files. Nothing is saved;
    invalid content is a 200 response with `valid: false`."""
    return _validation(store.validate(body.path, body.content))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanDesign],
    operation_id="create_definition",
    responses={202: {"description": "Stored as a revision waiting for review (`state: pending_review`)"}}
    | _responses(400, 401, 403, 409, 422, 503),
)
def create_definition(body: DefinitionCreate, store: StoreDep, user: GetUserDep, response: Response) -> SaveOut:
    """Create a definition file. The content is validated first; nothing is written if it is invalid.
    A workflow needs DAG edit access on its id; a definition with scripts needs the code-author permission."""
    authorize_definition_change(user, body.path, store.current_text(body.path), body.content)
    return _saved_or_pending(store.create(body.path, body.content, author=user_name(user)), response)


@router.delete(
    "",
    dependencies=[CanDesign],
    operation_id="delete_misnamed_definition",
    responses=_responses(400, 401, 403, 404, 409, 503),
)
def delete_misnamed_definition(
    store: StoreDep,
    user: GetUserDep,
    encoded: Annotated[
        str,
        Query(
            description="The `path` the listing shows for a file whose name is not allowed (its name "
            "percent-encoded); send it percent-encoded once more in the URL, as any query value."
        ),
    ],
    version: Annotated[str, Query(description="The current version of the file (from the listing).")],
) -> SaveOut:
    """Delete a definition file whose name is not allowed (such a file is never loaded, read or
    written as a definition; the listing shows it with `problem` set). A revision keeps its content."""
    authorize_definition_change(user, encoded, store.misnamed_text(encoded), None)
    return _saved(store.delete_misnamed(encoded, version, author=user_name(user)))


@router.get(
    "/{path:path}/revisions",
    dependencies=[CanRead],
    operation_id="list_definition_revisions",
    responses=_responses(400, 401, 403, 404, 503),
)
def list_revisions(path: DefinitionPath, store: StoreDep) -> RevisionList:
    """The revisions recorded for a path, newest first (kept after the file is deleted)."""
    revisions = store.revisions(path)
    return RevisionList(path=path, revisions=[_revision(r) for r in revisions], total_entries=len(revisions))


@router.get(
    "/{path:path}/revisions/{number}",
    dependencies=[CanRead],
    operation_id="get_definition_revision",
    responses=_responses(400, 401, 403, 404, 503),
)
def get_revision(path: DefinitionPath, number: Annotated[int, Path(ge=1)], store: StoreDep) -> RevisionDetailOut:
    """One revision with its content."""
    r = store.revision(path, number)
    return RevisionDetailOut(path=r.path, content=r.content, **_revision_fields(r))


@router.post(
    "/{path:path}/revisions/{number}/review",
    dependencies=[CanDesign],
    operation_id="review_definition_revision",
    responses=_responses(400, 401, 403, 404, 409, 422, 503),
)
def review_revision(
    path: DefinitionPath, number: Annotated[int, Path(ge=1)], body: ReviewIn, store: StoreDep, user: GetUserDep
) -> SaveOut:
    """Approve or reject a change waiting for review (four-eyes). Approved, it is written — 409 if the
    file changed since the change was proposed; rejected, nothing is written. 403: you wrote it, or
    you could not have saved it yourself (a script change needs the code-author permission), or, to
    reject it, you may not edit the workflows it changes (DAG edit access)."""
    proposed = store.revision(path, number)
    current = store.current_text(path)
    authorize_definition_change(user, path, current, proposed.content, code=body.decision == "approve")
    return _saved(store.review(path, number, body.decision, reviewer=user_name(user), comment=body.comment))


@reviews.get("", dependencies=[CanRead], operation_id="list_pending_reviews", responses=_responses(401, 403, 503))
def list_pending_reviews(store: StoreDep) -> PendingReviewList:
    """Every definition change waiting for review, oldest first."""
    pending = store.pending_reviews()
    return PendingReviewList(
        reviews=[PendingReviewOut(path=r.path, **_revision_fields(r)) for r in pending], total_entries=len(pending)
    )


@router.get(
    "/{path:path}",
    dependencies=[CanRead],
    operation_id="get_definition",
    responses=_responses(400, 401, 403, 404),
)
def get_definition(path: DefinitionPath, store: StoreDep) -> DefinitionOut:
    """One definition: its YAML text, version (for updates), kind, id and diagnostics."""
    return _detail(store.get(path))


@router.put(
    "/{path:path}",
    dependencies=[CanDesign],
    operation_id="update_definition",
    responses={202: {"description": "Stored as a revision waiting for review (`state: pending_review`)"}}
    | _responses(400, 401, 403, 404, 409, 422, 503),
)
def update_definition(
    path: DefinitionPath, body: DefinitionUpdate, store: StoreDep, user: GetUserDep, response: Response
) -> SaveOut:
    """Replace a definition's content. `version` must be the current version (optimistic concurrency).
    Adding or changing a script needs the code-author permission."""
    authorize_definition_change(user, path, store.current_text(path), body.content)
    return _saved_or_pending(store.update(path, body.content, body.version, author=user_name(user)), response)


@router.delete(
    "/{path:path}",
    dependencies=[CanDesign],
    operation_id="delete_definition",
    responses=_responses(400, 401, 403, 404, 409, 503),
)
def delete_definition(
    path: DefinitionPath,
    store: StoreDep,
    user: GetUserDep,
    version: Annotated[str, Query(description="The current version of the definition (from GET).")],
) -> SaveOut:
    """Delete a definition file. A revision recording the removed content is kept."""
    authorize_definition_change(user, path, store.current_text(path), None)
    return _saved(store.delete(path, version, author=user_name(user)))
