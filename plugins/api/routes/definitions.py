"""``/api/v1/definitions``: list, read, validate, create, update and delete definition files, read
their revision history and review a change waiting for a second person.

Each route checks what saving needs beyond its dependency
(:func:`~autopilot_plugin.api.permissions.authorize_definition_change`), calls one
:class:`~autopilot_provider.server.definition_store.DefinitionStore` method and shapes the result.
Refusals become responses in :mod:`autopilot_plugin.api.errors`.
"""

from __future__ import annotations

from typing import Annotated

from autopilot_plugin.api.datamodels.definitions import (
    DefinitionCreate,
    DefinitionList,
    DefinitionOut,
    DefinitionSummaryOut,
    DefinitionUpdate,
    ReviewIn,
    RevisionDetailOut,
    RevisionList,
    RevisionOut,
    SaveOut,
    ValidateRequest,
    ValidationOut,
)
from autopilot_plugin.api.deps import CanDesign, CanRead, GetUserDep, StoreDep, user_name
from autopilot_plugin.api.errors import ErrorDocs
from autopilot_plugin.api.permissions import authorize_definition_change
from fastapi import APIRouter, Path, Query, Response, status

from autopilot_provider.server.revisions import PENDING_REVIEW, SaveResult

router = APIRouter(prefix="/definitions", tags=["Definitions"])

errors = ErrorDocs(
    {
        400: "Invalid path or parameter (the `field` names it)",
        404: "No such definition or revision",
        409: "Conflict: path exists, stale version (with `current_version`) or duplicate id",
        422: "Invalid content: `diagnostics` lists each `path:line:col: message`",
    }
)
ACCEPTED = {202: {"description": "Stored as a revision waiting for review (`state: pending_review`)"}}

DefinitionPath = Annotated[str, Path(description="Relative to the definitions folder, e.g. `hello_world.yaml`.")]


def _saved_or_pending(result: SaveResult, response: Response) -> SaveOut:
    """A change that waits for review answers 202 Accepted: stored, not yet in effect."""
    if result.state == PENDING_REVIEW:
        response.status_code = status.HTTP_202_ACCEPTED
    return SaveOut.of(result)


# The static routes and the /revisions ones come before the catch-all {path:path}.


@router.get("", dependencies=[CanRead], operation_id="list_definitions", responses=errors(400, 401, 403))
def list_definitions(
    store: StoreDep,
    kind: Annotated[
        str | None, Query(description="Only this kind: Workflow, Function, Contacts, Resources, Api, Alert, Trigger.")
    ] = None,
) -> DefinitionList:
    """Every definition file with its kind, id, title, version and validity."""
    items = store.list(kind)
    return DefinitionList(definitions=[DefinitionSummaryOut.of(i) for i in items], total_entries=len(items))


@router.post("/validate", dependencies=[CanRead], operation_id="validate_definition", responses=errors(400, 401, 403))
def validate_definition(body: ValidateRequest, store: StoreDep) -> ValidationOut:
    """Validate content as if saved at `path`, including id clashes with other files. Nothing is saved;
    invalid content is a 200 response with `valid: false`."""
    return ValidationOut.of(store.validate(body.path, body.content))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanDesign],
    operation_id="create_definition",
    responses=ACCEPTED | errors(400, 401, 403, 409, 422, 503),
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
    responses=errors(400, 401, 403, 404, 409, 503),
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
    return SaveOut.of(store.delete_misnamed(encoded, version, author=user_name(user)))


@router.get(
    "/{path:path}/revisions",
    dependencies=[CanRead],
    operation_id="list_definition_revisions",
    responses=errors(400, 401, 403, 404, 503),
)
def list_revisions(path: DefinitionPath, store: StoreDep) -> RevisionList:
    """The revisions recorded for a path, newest first (kept after the file is deleted)."""
    revisions = store.revisions(path)
    return RevisionList(path=path, revisions=[RevisionOut.of(r) for r in revisions], total_entries=len(revisions))


@router.get(
    "/{path:path}/revisions/{number}",
    dependencies=[CanRead],
    operation_id="get_definition_revision",
    responses=errors(400, 401, 403, 404, 503),
)
def get_revision(path: DefinitionPath, number: Annotated[int, Path(ge=1)], store: StoreDep) -> RevisionDetailOut:
    """One revision with its content."""
    r = store.revision(path, number)
    return RevisionDetailOut.of(r, path=r.path, content=r.content)


@router.post(
    "/{path:path}/revisions/{number}/review",
    dependencies=[CanDesign],
    operation_id="review_definition_revision",
    responses=errors(400, 401, 403, 404, 409, 422, 503),
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
    return SaveOut.of(store.review(path, number, body.decision, reviewer=user_name(user), comment=body.comment))


@router.get("/{path:path}", dependencies=[CanRead], operation_id="get_definition", responses=errors(400, 401, 403, 404))
def get_definition(path: DefinitionPath, store: StoreDep) -> DefinitionOut:
    """One definition: its YAML text, version (for updates), kind, id and diagnostics."""
    return DefinitionOut.of(store.get(path))


@router.put(
    "/{path:path}",
    dependencies=[CanDesign],
    operation_id="update_definition",
    responses=ACCEPTED | errors(400, 401, 403, 404, 409, 422, 503),
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
    responses=errors(400, 401, 403, 404, 409, 503),
)
def delete_definition(
    path: DefinitionPath,
    store: StoreDep,
    user: GetUserDep,
    version: Annotated[str, Query(description="The current version of the definition (from GET).")],
) -> SaveOut:
    """Delete a definition file. A revision recording the removed content is kept."""
    authorize_definition_change(user, path, store.current_text(path), None)
    return SaveOut.of(store.delete(path, version, author=user_name(user)))
