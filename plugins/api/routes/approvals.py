"""``/api/v1/approvals``: the approvals inbox and mid-flow form requests — list, read, vote, answer,
the decision history — and the signed links from approval mails.

Who may do what:

* every route needs an authenticated Airflow user (401 otherwise);
* reading a request needs read access to its DAG's human-in-the-loop details, voting or answering
  edit access to them (Airflow's own ``HITL_DETAIL`` permission, checked through the auth manager;
  under FAB that includes edit access to the DAG) or the ``Autopilot Approvals`` permission with read
  access (:func:`~autopilot_plugin.api.permissions.require_hitl`);
* on top, Autopilot's rules (``autopilot_provider.server.approvals``): only the people asked may answer, one
  vote per person, one member decides for their group, never the requester on their own request.

The confirmation page that mail links open is :mod:`autopilot_plugin.api.routes.confirm_page`: it
records nothing by itself — the page asks you to confirm, then calls ``POST /approvals/links/redeem``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from autopilot_plugin.api.datamodels.approvals import (
    ApprovalList,
    ApprovalOut,
    History,
    HistoryEntry,
    LinkIn,
    ResponseIn,
    VoteIn,
)
from autopilot_plugin.api.deps import ApprovalsDep, GetUserDep, StoreDep, user_name
from autopilot_plugin.api.errors import ErrorDocs
from autopilot_plugin.api.permissions import hitl_entity, may_answer, may_dag, require_hitl
from autopilot_plugin.api.services.approvals import answer_schema, approval_out, asked, needs_choices
from fastapi import APIRouter, Body, Path, Query, status

from autopilot_provider.server.errors import Unprocessable

router = APIRouter(prefix="/approvals", tags=["Approvals"])

errors = ErrorDocs(
    {
        403: "Not allowed: no access to the DAG's human-in-the-loop details, not one of the people asked, "
        "or your own request",
        404: "No such request",
        409: "Already decided, or already answered",
        410: "The link is forged, expired or used",
        422: "Invalid answer (the `field` names it; a form's `errors` lists each field)",
    }
)


@router.get("", operation_id="list_approvals", responses=errors(401))
def list_approvals(
    user: GetUserDep,
    approvals: ApprovalsDep,
    store: StoreDep,
    state: Annotated[
        Literal["pending", "decided", "all"], Query(description="`pending`, `decided` (any final state) or `all`.")
    ] = "pending",
    mine: Annotated[bool, Query(description="Only requests that ask me (or my groups).")] = True,
    dag_id: Annotated[str | None, Query(max_length=250)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ApprovalList:
    """Approval and form requests, newest first, of the DAGs whose human-in-the-loop details you may read."""
    approvals.sync_if_stale()
    username = user_name(user)
    found = approvals.list(state=None if state == "all" else state, dag_ids=[dag_id] if dag_id else None)
    readable: dict[str, bool] = {}
    selected = []
    for request in found:
        dag = request.row.dag_id
        if dag not in readable:
            readable[dag] = may_dag(user, "GET", dag, hitl_entity())
        if readable[dag] and (not mine or asked(request, username)):
            selected.append(request)
    page = selected[offset : offset + limit]
    # the definitions are read once per page, and only when a form on it offers choices from an API
    project = store.project() if any(needs_choices(r) for r in page) else None
    answerable = {dag: may_answer(user, dag) for dag in {r.row.dag_id for r in page}}
    return ApprovalList(
        approvals=[approval_out(r, username, project=project, may_answer=answerable[r.row.dag_id]) for r in page],
        total_entries=len(selected),
    )


@router.get("/history", operation_id="approval_history", responses=errors(401))
def approval_history(user: GetUserDep, approvals: ApprovalsDep) -> History:
    """Your own decisions and answers, newest first."""
    entries = [
        HistoryEntry(
            approval_id=request.id,
            dag_id=request.row.dag_id,
            run_id=request.row.run_id,
            step_id=request.hitl.step_id or request.row.task_id,
            subject=request.hitl.subject,
            decision=vote.decision,
            comment=vote.comment,
            slot=vote.slot_label,
            at=vote.at,
            state=request.row.state,
        )
        for request, vote in approvals.history(user_name(user))
        if may_dag(user, "GET", request.row.dag_id, hitl_entity())
    ]
    return History(votes=entries, total_entries=len(entries))


@router.get("/{approval_id}", operation_id="get_approval", responses=errors(401, 403, 404))
def get_approval(
    user: GetUserDep, approvals: ApprovalsDep, approval_id: Annotated[str, Path(max_length=80)]
) -> ApprovalOut:
    """One request with its slots, votes and the trail of events (asked, reminded, escalated, …)."""
    request = approvals.get(approval_id)
    dag = request.row.dag_id
    require_hitl(user, dag, "GET")
    return approval_out(
        request, user_name(user), events=approvals.events(approval_id), may_answer=may_answer(user, dag)
    )


@router.post(
    "/{approval_id}/votes",
    status_code=status.HTTP_201_CREATED,
    operation_id="vote",
    responses=errors(401, 403, 404, 409, 422),
)
def vote(
    user: GetUserDep,
    approvals: ApprovalsDep,
    approval_id: Annotated[str, Path(max_length=80)],
    body: Annotated[VoteIn, Body()],
) -> ApprovalOut:
    """Approve or reject. 403: you are not asked, or it is your own request; 409: already decided or
    already voted; 422: a rejection without the required comment."""
    request = approvals.get(approval_id)
    require_hitl(user, request.row.dag_id, "PUT")
    username = user_name(user)
    decided = approvals.vote(approval_id, username, body.decision, body.comment, slot=body.slot)
    return approval_out(decided, username)


@router.post(
    "/{approval_id}/responses",
    status_code=status.HTTP_201_CREATED,
    operation_id="respond",
    responses=errors(401, 403, 404, 409, 422, 502),
)
def respond(
    user: GetUserDep,
    approvals: ApprovalsDep,
    store: StoreDep,
    approval_id: Annotated[str, Path(max_length=80)],
    body: Annotated[ResponseIn, Body()],
) -> ApprovalOut:
    """Answer a mid-flow form. 422 names the field at fault (all of them in `errors`); the choices of
    fields whose options come from an API are fetched again and the answer must be one of them."""
    request = approvals.get(approval_id)
    require_hitl(user, request.row.dag_id, "PUT")
    username = user_name(user)
    schema = answer_schema(request, store)
    return approval_out(approvals.respond(approval_id, username, body.values, schema=schema), username)


@router.get("/links/{token}", operation_id="inspect_link", responses=errors(401, 403, 410))
def inspect_link(
    user: GetUserDep, approvals: ApprovalsDep, token: Annotated[str, Path(max_length=2000)]
) -> ApprovalOut:
    """What a link from a mail is for (410 if it is forged, expired or used). Records nothing."""
    request = approvals.check_link(token)
    dag = request.row.dag_id
    require_hitl(user, dag, "GET")
    return approval_out(request, user_name(user), may_answer=may_answer(user, dag))


@router.post(
    "/links/redeem",
    status_code=status.HTTP_201_CREATED,
    operation_id="redeem_link",
    responses=errors(401, 403, 409, 410, 422),
)
def redeem_link(user: GetUserDep, approvals: ApprovalsDep, body: Annotated[LinkIn, Body()]) -> ApprovalOut:
    """Vote through a link, as the logged-in user (who must be entitled to vote). The link is spent
    with the vote; a refused vote leaves it unspent."""
    request = approvals.check_link(body.token)
    require_hitl(user, request.row.dag_id, "PUT")
    if body.decision is None:
        raise Unprocessable("decision is required: 'approve' or 'reject'", field="decision")
    username = user_name(user)
    return approval_out(approvals.redeem_link(body.token, username, body.decision, body.comment), username)
