"""``/api/v1/workflows``: the request portal's catalog — which workflows a user may request, their
forms (JSON Schema + uiSchema, dynamic choices filled in), and starting a run from a validated form as
the calling user.

Permissions are Airflow's, per DAG (a workflow's DAG id is its id): listing and reading a form need
DAG read access, starting a run needs DAG-run create access (as Airflow's own trigger endpoint; each
workflow says whether the caller has it, ``can_request``). Refusals are ``{"detail": {"message",
...}}``: a 422 lists ``errors`` as ``{field, message}`` (``field`` is a dotted path such as
``disks[0].size``), a 502 names the ``field`` whose choices could not be fetched.
"""

from __future__ import annotations

import re
from typing import Annotated

from autopilot_plugin.api.datamodels.workflows import FormOut, RunOut, RunRequest, WorkflowList
from autopilot_plugin.api.deps import GetUserDep, StoreDep, WorkflowId, requires_workflow, user_name
from autopilot_plugin.api.errors import ErrorDocs
from autopilot_plugin.api.permissions import may_dag
from autopilot_plugin.api.services import workflows as service
from fastapi import APIRouter, Header, Query, Response, status

from autopilot_provider.repository import forms
from autopilot_provider.server import requests as requests_service
from autopilot_provider.server.errors import InvalidInput

router = APIRouter(tags=["Workflows"])

#: What an Idempotency-Key may be: printable ASCII, as HTTP header values are.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}")

errors = ErrorDocs(
    {
        404: "No such workflow",
        409: "The workflow's DAG is not parsed by Airflow yet, or has import errors",
        422: "Invalid form values (`errors` lists each field and what is wrong) or `start_at` (`field`); no run "
        "was created",
    }
)


@router.get("/workflows", operation_id="list_workflows", responses=errors(401))
def list_workflows(
    store: StoreDep,
    user: GetUserDep,
    q: Annotated[str | None, Query(description="Words that must all appear in the id, title or description.")] = None,
    tag: Annotated[str | None, Query(description="Only workflows with this tag (case-insensitive).")] = None,
) -> WorkflowList:
    """The valid workflows whose DAG the caller may read, by id."""
    found = [
        service.summary(w, user)
        for w in forms.workflows(store.project())
        if forms.matches(w, q, tag) and may_dag(user, "GET", w.id)
    ]
    return WorkflowList(workflows=found, total_entries=len(found))


@router.get(
    "/workflows/{workflow_id}/form",
    dependencies=[requires_workflow("GET")],
    operation_id="get_workflow_form",
    responses=errors(401, 403, 404, 502),
)
def get_form(workflow_id: WorkflowId, store: StoreDep, user: GetUserDep) -> FormOut:
    """The workflow's request form: JSON Schema with the current choices of dynamic fields (inventory
    items; API answers, cached for 30 s), a react-jsonschema-form uiSchema, and the sections."""
    project = store.project()
    workflow = service.find(project, workflow_id)
    view = requests_service.form_view(workflow, project)
    return FormOut(workflow=service.summary(workflow, user), **view)


@router.post(
    "/workflows/{workflow_id}/runs",
    status_code=status.HTTP_201_CREATED,
    dependencies=[requires_workflow("POST", run=True)],
    operation_id="start_workflow_run",
    responses={
        200: {
            "description": "A repeat of an earlier request with the same `Idempotency-Key`: its run, nothing started"
        },
        **errors(400, 401, 403, 404, 409, 422, 502),
    },
)
def start_run(
    workflow_id: WorkflowId,
    body: RunRequest,
    store: StoreDep,
    user: GetUserDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="A key the client makes for this submission (e.g. a UUID) and sends again when it retries "
            "it: the same key from the same user always answers with the run the first request started (200), "
            "for as long as that run is kept; the same key with other values is a 409.",
        ),
    ] = None,
) -> RunOut:
    """Validate the form (types, required fields, formats, ranges, choices — unknown fields are
    errors) and start a run with the values (defaults applied) as its conf, triggered by the caller —
    now, or with `start_at` at that time (the run waits queued until then; its requester may cancel it
    with `POST /requests/{workflow_id}/{run_id}/cancel`). Nothing is created
    when the form or `start_at` is invalid."""
    project = store.project()
    workflow = service.find(project, workflow_id)
    run_id = None
    if idempotency_key is not None:
        if not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters", field="Idempotency-Key")
        run_id = requests_service.idempotent_run_id(user_name(user), idempotency_key)
    run = service.start_run(
        workflow,
        project,
        body.form,
        user_name=user_name(user),
        user_id=str(user.get_id()),
        note=body.note,
        run_id=run_id,
        start_at=body.start_at,
    )
    if not run["created"]:
        response.status_code = status.HTTP_200_OK
    return RunOut(**run)
