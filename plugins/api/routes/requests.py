"""``/api/v1/requests``: the runs of Autopilot workflows a user requested (or may read), newest first,
with their form values and each step's state; and cancelling one's own request before it starts.
Reading a run needs DAG-run read access on its DAG; cancelling needs DAG-run create access on it (what
requesting it took) and being its requester."""

from __future__ import annotations

from typing import Annotated

from autopilot_plugin.api.datamodels.requests import RequestList, RequestOut
from autopilot_plugin.api.datamodels.workflows import CancelOut
from autopilot_plugin.api.deps import GetUserDep, StoreDep, WorkflowId, requires_workflow, user_name
from autopilot_plugin.api.errors import ErrorDocs
from autopilot_plugin.api.permissions import may_dag, run_entity
from fastapi import APIRouter, Path, Query

from autopilot_provider.server import requests as requests_service

router = APIRouter(tags=["Workflows"])

errors = ErrorDocs(
    {
        403: "Not allowed: no DAG-run create access on the workflow, or someone else's request",
        404: "No such request of this workflow",
        409: "The request has started (or ended) already: too late to cancel it",
    }
)


@router.get("/requests", operation_id="list_requests", responses=errors(401))
def list_requests(
    store: StoreDep,
    user: GetUserDep,
    mine: Annotated[
        bool, Query(description="Only runs the caller started (false: every run the caller may read).")
    ] = True,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Runs to skip.")] = 0,
) -> RequestList:
    """Runs of Autopilot workflows, newest first, with their form values and each step's state;
    requests for later with the time they start (`scheduled_for`) and whether the caller may cancel them."""
    entity = run_entity()
    caller = user_name(user)
    page, total = requests_service.list_requests(
        store.project(),
        user_name=caller if mine else None,
        may_read=lambda dag_id: may_dag(user, "GET", dag_id, entity),
        caller=caller,
        limit=limit,
        offset=offset,
    )
    return RequestList(requests=[RequestOut(**r) for r in page], total_entries=total)


@router.post(
    "/requests/{workflow_id}/{run_id}/cancel",
    dependencies=[requires_workflow("POST", run=True)],
    operation_id="cancel_request",
    responses=errors(401, 403, 404, 409),
)
def cancel_request(
    workflow_id: WorkflowId,
    run_id: Annotated[str, Path(description="The run id of the request (its Airflow run id).")],
    user: GetUserDep,
) -> CancelOut:
    """Cancel the caller's own request before it starts (a request for later waiting for its time, or
    any request still queued): the run is marked `failed` with its steps `skipped` and a note saying
    who cancelled it, so it never starts. Only its requester may; a started run is a 409."""
    found = requests_service.cancel_request(workflow_id, run_id, user_name=user_name(user), user_id=str(user.get_id()))
    return CancelOut(**found)
