"""``/api/v1/workflows`` and ``/api/v1/requests``: the request portal's API — which workflows a user
may request, their forms (JSON Schema + uiSchema, dynamic choices filled in), starting a run from a
validated form as the calling user, and the runs a user has requested.

Routes stay thin: the work is :mod:`autopilot_provider.repository.forms` (the same code the DAG factory and the
``_check_form`` task use). Permissions are Airflow's, per DAG (a workflow's DAG id is its id):
listing and reading a form need DAG read access, starting a run needs DAG-run create access (as
Airflow's own trigger endpoint; each workflow says whether the caller has it, ``can_request``),
listing requests needs DAG-run read access. Errors are
``{"detail": {"message", ...}}``: a 422 lists ``errors`` as ``{field, message}`` (``field`` is a
dotted path such as ``disks[0].size``), a 502 names the ``field`` whose choices could not be fetched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from autopilot_plugin.api.deps import GetUserDep, StoreDep, user_name
from autopilot_plugin.api.permissions import may_dag, run_entity
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from autopilot_provider.definitions.errors import suggest
from autopilot_provider.hooks import choices as form_choices
from autopilot_provider.repository import forms
from autopilot_provider.server import requests as requests_service

router = APIRouter(tags=["Workflows"])


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


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


class RunOut(BaseModel):
    dag_id: str
    run_id: str
    state: str
    url: str = Field(description="The run in Airflow's grid view.")


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


class FieldErrorOut(BaseModel):
    field: str = Field(description="Dotted path of the field, e.g. `hostname` or `disks[0].size`.")
    message: str


class ErrorDetail(BaseModel):
    message: str
    field: str | None = None
    errors: list[FieldErrorOut] | None = None


class ErrorOut(BaseModel):
    detail: ErrorDetail


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "Not authenticated",
        403: "Not allowed",
        404: "No such workflow",
        409: "The workflow's DAG is not parsed by Airflow yet, or has import errors",
        422: "Invalid form values: `errors` lists each field and what is wrong; no run was created",
        502: "A field's choices could not be fetched from its API (`field` names it)",
    }
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


# ---------------------------------------------------------------------------------------------
# Permissions and lookups
# ---------------------------------------------------------------------------------------------


def _summary(workflow: Any, user: Any) -> WorkflowOut:
    return WorkflowOut(**forms.workflow_summary(workflow), can_request=may_dag(user, "POST", workflow.id, run_entity()))


WorkflowId = Annotated[str, Path(description="The workflow id (its Airflow DAG id).")]


def _requires(method: str, run: bool = False):
    """A dependency: the caller may do ``method`` on the workflow's DAG (runs, with ``run``), else 403."""

    def check(workflow_id: WorkflowId, user: GetUserDep) -> None:
        if not may_dag(user, method, workflow_id, run_entity() if run else None):
            what = "start runs of" if run and method == "POST" else "read"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail={"message": f"you may not {what} workflow '{workflow_id}'"}
            )

    return Depends(check)


def _workflow(project: Any, workflow_id: str):
    workflow = forms.find_workflow(project, workflow_id)
    if workflow is None:
        hint = suggest(workflow_id, project.ids("Workflow"))
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"message": f"no valid workflow '{workflow_id}'{hint}", "field": "id"},
        )
    return workflow


def _fail(exc: forms.FormInvalid | form_choices.ChoicesUnavailable | requests_service.RunNotPossible) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.as_dict())


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


@router.get("/workflows", operation_id="list_workflows", responses=_responses(401))
def list_workflows(
    store: StoreDep,
    user: GetUserDep,
    q: Annotated[str | None, Query(description="Words that must all appear in the id, title or description.")] = None,
    tag: Annotated[str | None, Query(description="Only workflows with this tag (case-insensitive).")] = None,
) -> WorkflowList:
    """The valid workflows whose DAG the caller may read, by id."""
    found = [
        _summary(w, user)
        for w in forms.workflows(store.project())
        if forms.matches(w, q, tag) and may_dag(user, "GET", w.id)
    ]
    return WorkflowList(workflows=found, total_entries=len(found))


@router.get(
    "/workflows/{workflow_id}/form",
    dependencies=[_requires("GET")],
    operation_id="get_workflow_form",
    responses=_responses(401, 403, 404, 502),
)
def get_form(workflow_id: WorkflowId, store: StoreDep, user: GetUserDep) -> FormOut:
    """The workflow's request form: JSON Schema with the current choices of dynamic fields (inventory
    items; API answers, cached for 30 s), a react-jsonschema-form uiSchema, and the sections."""
    project = store.project()
    workflow = _workflow(project, workflow_id)
    try:
        view = requests_service.form_view(workflow, project)
    except form_choices.ChoicesUnavailable as exc:
        raise _fail(exc) from None
    return FormOut(workflow=_summary(workflow, user), **view)


@router.post(
    "/workflows/{workflow_id}/runs",
    status_code=status.HTTP_201_CREATED,
    dependencies=[_requires("POST", run=True)],
    operation_id="start_workflow_run",
    responses=_responses(401, 403, 404, 409, 422, 502),
)
def start_run(workflow_id: WorkflowId, body: RunRequest, store: StoreDep, user: GetUserDep) -> RunOut:
    """Validate the form (types, required fields, formats, ranges, choices — unknown fields are
    errors) and start a run with the values (defaults applied) as its conf, triggered by the caller.
    Nothing is created when the form is invalid."""
    project = store.project()
    workflow = _workflow(project, workflow_id)
    try:
        choices = form_choices.resolve_choices(workflow.form, project)
        values = forms.validate_form(workflow.form, body.form, choices)
        requests_service.check_requester(project, values, user_name(user))
        run = requests_service.start_run(
            workflow, values, user_name=user_name(user), user_id=str(user.get_id()), note=body.note
        )
    except (forms.FormInvalid, form_choices.ChoicesUnavailable, requests_service.RunNotPossible) as exc:
        raise _fail(exc) from None
    return RunOut(**run)


@router.get("/requests", operation_id="list_requests", responses=_responses(401))
def list_requests(
    store: StoreDep,
    user: GetUserDep,
    mine: Annotated[
        bool, Query(description="Only runs the caller started (false: every run the caller may read).")
    ] = True,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Runs to skip.")] = 0,
) -> RequestList:
    """Runs of Autopilot workflows, newest first, with their form values and each step's state."""
    entity = run_entity()
    page, total = requests_service.list_requests(
        store.project(),
        user_name=user_name(user) if mine else None,
        may_read=lambda dag_id: may_dag(user, "GET", dag_id, entity),
        limit=limit,
        offset=offset,
    )
    return RequestList(requests=[RequestOut(**r) for r in page], total_entries=total)
