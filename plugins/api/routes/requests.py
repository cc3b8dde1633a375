"""``/api/v1/requests``: the runs of Autopilot workflows a user requested (or may read), newest first,
with their form values and each step's state. Reading a run needs DAG-run read access on its DAG."""

from __future__ import annotations

from typing import Annotated

from autopilot_plugin.api.datamodels.requests import RequestList, RequestOut
from autopilot_plugin.api.deps import GetUserDep, StoreDep, user_name
from autopilot_plugin.api.errors import ErrorDocs
from autopilot_plugin.api.permissions import may_dag, run_entity
from fastapi import APIRouter, Query

from autopilot_provider.server import requests as requests_service

router = APIRouter(tags=["Workflows"])

errors = ErrorDocs()


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
