"""``/api/v1/approvals``: the approvals inbox and mid-flow form requests — list, read, vote, answer,
the decision history — and the signed links from approval mails.

Who may do what:

* every route needs an authenticated Airflow user (401 otherwise);
* reading a request needs read access to its DAG's human-in-the-loop details, voting or answering
  edit access (Airflow's own ``HITL_DETAIL`` permission, checked through the auth manager);
* on top, Autopilot's rules (``autopilot_provider.server.approvals``): only the people asked may answer, one
  vote per person, one member decides for their group, never the requester on their own request.

The confirmation page for links (``/autopilot/approvals/confirm?token=…``) is served by ``pages``: it
needs the Airflow login (it sends you to the login page first) and records nothing by itself — the
page asks you to confirm, then calls ``POST /approvals/links/redeem``.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from autopilot_plugin.api.deps import GetUserDep, StoreDep, user_name
from autopilot_plugin.api.permissions import hitl_entity, may_dag
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from autopilot_provider.hooks import choices as form_choices
from autopilot_provider.repository.quorum import ESCALATION_SLOT, PENDING, Vote, eligibility, entitled_slots
from autopilot_provider.server.approval_links import approval_public_key
from autopilot_provider.server.approval_records import ApprovalRecord as HumanRequest
from autopilot_provider.server.approvals import Approvals, slot_state
from autopilot_provider.server.definition_store import DefinitionStore
from autopilot_provider.server.errors import Forbidden, Unprocessable

router = APIRouter(prefix="/approvals", tags=["Approvals"])
pages = APIRouter(include_in_schema=False)
keys = APIRouter(prefix="/keys", tags=["Approvals"])


class PublicKey(BaseModel):
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key: str = Field(description="The raw public key, base64.")


@keys.get("/approvals", operation_id="get_approval_public_key")
def get_approval_public_key() -> PublicKey:
    """The key that verifies approval decisions signed by this server. Public, so no login: workers
    fetch it to check, before a step an approval guards runs, that the approvers decided it."""
    import base64

    return PublicKey(public_key=base64.b64encode(approval_public_key()).decode())


def get_approvals() -> Approvals:
    return Approvals()


ApprovalsDep = Annotated[Approvals, Depends(get_approvals)]


# ---------------------------------------------------------------------------------------------
# Permissions
# ---------------------------------------------------------------------------------------------


def _require(user: Any, request: HumanRequest, method: Literal["GET", "PUT"]) -> None:
    if not may_dag(user, method, request.row.dag_id, hitl_entity()):
        what = "read" if method == "GET" else "answer"
        raise Forbidden(f"you may not {what} human-in-the-loop requests of '{request.row.dag_id}'", field="dag_id")


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


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


def _why_not(request: HumanRequest, username: str) -> str | None:
    return eligibility(
        request.hitl, request.votes, username, state=request.row.state, escalated=request.escalated
    ).why_not


def form_view(request: HumanRequest, project: Any = None) -> dict[str, Any] | None:
    """A mid-flow form as the inbox renders it: ``schema`` and ``ui_schema``, with the choices of
    fields whose options come from an API fetched now while it waits for an answer; ``error`` names
    the field when they cannot be fetched."""
    form = request.spec.get("form")
    if not form:
        return None
    view = {"schema": form.get("schema") or {}, "ui_schema": form.get("ui_schema") or {}}
    if request.row.kind != "form" or not _needs_choices(request):
        return view
    try:
        return form_choices.resolve_step_form(form, project if project is not None else DefinitionStore().project())
    except form_choices.ChoicesUnavailable as exc:
        return {**view, "error": exc.as_dict()}


def _needs_choices(request: HumanRequest) -> bool:
    return request.row.state == PENDING and bool((request.spec.get("form") or {}).get("dynamic"))


def approval_out(
    request: HumanRequest, username: str, *, events: list[dict] | None = None, project: Any = None
) -> ApprovalOut:
    spec, row = request.spec, request.row
    slots = [
        SlotOut(ref=slot["ref"], label=slot["label"], **slot_state(request, i))
        for i, slot in enumerate(spec.get("slots", []))
    ]
    if request.escalated and slot_state(request, ESCALATION_SLOT)["decided_by"]:
        slots.append(SlotOut(ref="escalation", label="escalation", **slot_state(request, ESCALATION_SLOT)))
    why = _why_not(request, username)
    requester = spec.get("requester") or {}
    return ApprovalOut(
        id=row.id,
        kind=row.kind,
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        step_id=spec.get("step_id") or row.task_id,
        workflow_title=spec.get("workflow_title"),
        subject=spec.get("subject"),
        body=spec.get("body"),
        state=row.state,
        quorum=spec.get("quorum") if row.kind == "approval" else None,
        requester=requester.get("username"),
        requester_name=requester.get("name"),
        created_at=row.created_at,
        deadline=row.deadline,
        escalated=request.escalated,
        decided_at=row.decided_at,
        slots=slots,
        votes=[VoteOut(**_vote_dict(v)) for v in request.votes],
        can_vote=why is None,
        why_not=why,
        form=form_view(request, project),
        request=spec.get("request") or {},
        outcome=json.loads(row.outcome) if row.outcome else None,
        events=[EventOut(**e) for e in events] if events is not None else None,
    )


def _vote_dict(vote: Vote) -> dict[str, Any]:
    return {
        "user": vote.username,
        "slot": vote.slot_label,
        "decision": vote.decision,
        "comment": vote.comment,
        "at": vote.at,
        "via": vote.via,
        "answer": vote.answer,
    }


def _asked(request: HumanRequest, username: str) -> bool:
    return bool(entitled_slots(request.hitl, username, request.escalated))


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


@router.get("", operation_id="list_approvals", responses={401: {"description": "Not authenticated"}})
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
        if readable[dag] and (not mine or _asked(request, username)):
            selected.append(request)
    page = selected[offset : offset + limit]
    # the definitions are read once per page, and only when a form on it offers choices from an API
    project = store.project() if any(_needs_choices(r) for r in page) else None
    return ApprovalList(
        approvals=[approval_out(r, username, project=project) for r in page], total_entries=len(selected)
    )


@router.get("/history", operation_id="approval_history", responses={401: {"description": "Not authenticated"}})
def approval_history(user: GetUserDep, approvals: ApprovalsDep) -> History:
    """Your own decisions and answers, newest first."""
    entries = [
        HistoryEntry(
            approval_id=request.id,
            dag_id=request.row.dag_id,
            run_id=request.row.run_id,
            step_id=request.spec.get("step_id") or request.row.task_id,
            subject=request.spec.get("subject"),
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


@router.get(
    "/{approval_id}",
    operation_id="get_approval",
    responses={401: {"description": "Not authenticated"}, 403: {}, 404: {}},
)
def get_approval(
    user: GetUserDep, approvals: ApprovalsDep, approval_id: Annotated[str, Path(max_length=80)]
) -> ApprovalOut:
    """One request with its slots, votes and the trail of events (asked, reminded, escalated, …)."""
    request = approvals.get(approval_id)
    _require(user, request, "GET")
    return approval_out(request, user_name(user), events=approvals.events(approval_id))


@router.post(
    "/{approval_id}/votes",
    status_code=status.HTTP_201_CREATED,
    operation_id="vote",
    responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}},
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
    _require(user, request, "PUT")
    username = user_name(user)
    decided = approvals.vote(approval_id, username, body.decision, body.comment, slot=body.slot)
    return approval_out(decided, username)


@router.post(
    "/{approval_id}/responses",
    status_code=status.HTTP_201_CREATED,
    operation_id="respond",
    responses={
        401: {},
        403: {},
        404: {},
        409: {},
        422: {},
        502: {"description": "A field's choices could not be fetched from its API (`field` names it)"},
    },
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
    _require(user, request, "PUT")
    username = user_name(user)
    schema = None
    form = request.spec.get("form") or {}
    if _needs_choices(request):
        try:
            schema = form_choices.resolve_step_form(form, store.project())["schema"]
        except form_choices.ChoicesUnavailable as exc:
            raise HTTPException(status_code=exc.status, detail=exc.as_dict()) from None
    return approval_out(approvals.respond(approval_id, username, body.values, schema=schema), username)


@router.get("/links/{token}", operation_id="inspect_link", responses={401: {}, 403: {}, 410: {}})
def inspect_link(
    user: GetUserDep, approvals: ApprovalsDep, token: Annotated[str, Path(max_length=2000)]
) -> ApprovalOut:
    """What a link from a mail is for (410 if it is forged, expired or used). Records nothing."""
    request = approvals.check_link(token)
    _require(user, request, "GET")
    return approval_out(request, user_name(user))


@router.post(
    "/links/redeem",
    status_code=status.HTTP_201_CREATED,
    operation_id="redeem_link",
    responses={401: {}, 403: {}, 409: {}, 410: {}, 422: {}},
)
def redeem_link(user: GetUserDep, approvals: ApprovalsDep, body: Annotated[LinkIn, Body()]) -> ApprovalOut:
    """Vote through a link, as the logged-in user (who must be entitled to vote). The link is spent
    with the vote; a refused vote leaves it unspent."""
    request = approvals.check_link(body.token)
    _require(user, request, "PUT")
    if body.decision is None:
        raise Unprocessable("decision is required: 'approve' or 'reject'", field="decision")
    username = user_name(user)
    return approval_out(approvals.redeem_link(body.token, username, body.decision, body.comment), username)


# ---------------------------------------------------------------------------------------------
# The confirmation page behind mail links
# ---------------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Autopilot — confirm your decision</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f7f8fa;color:#1a202c;margin:0}}
main{{max-width:640px;margin:48px auto;background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:28px}}
h1{{font-size:20px;margin:0 0 12px}} dl{{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px}}
dt{{color:#4a5568}} textarea{{width:100%;min-height:80px;font:inherit}}
button{{font:inherit;padding:8px 16px;border-radius:6px;border:1px solid #2b6cb0;background:#3182ce;color:#fff;cursor:pointer}}
button.reject{{background:#c53030;border-color:#9b2c2c}} #result{{margin-top:16px;font-weight:600}}
</style></head><body><main>
<h1>Confirm your decision</h1>
<div id="details">Loading…</div>
<form id="vote" hidden>
<p><label>Decision:
<select id="decision"><option value="approve">Approve</option><option value="reject">Reject</option></select></label></p>
<p><label>Comment<br><textarea id="comment" maxlength="10000"></textarea></label></p>
<p><button type="submit" id="submit">Confirm</button></p>
</form>
<div id="result" role="status"></div>
</main>
<script>
const token = {token};
const preset = {decision};
const api = "../api/v1/approvals/links";
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}})[c]);
async function load() {{
  const r = await fetch(api + "/" + encodeURIComponent(token), {{credentials: "same-origin"}});
  const body = await r.json().catch(() => ({{}}));
  if (!r.ok) {{ document.getElementById("details").textContent = (body.detail && (body.detail.message || body.detail)) || r.statusText; return; }}
  const a = body;
  const rows = [["Request", a.subject], ["Workflow", a.workflow_title || a.dag_id], ["Requested by", a.requester_name || a.requester],
    ["Approvers", a.slots.map(s => s.label + " (" + s.state + ")").join(", ")], ["State", a.state]]
    .concat(Object.entries(a.request || {{}}).map(([k, v]) => [k, v]));
  document.getElementById("details").innerHTML = "<dl>" + rows.map(([k, v]) => "<dt>" + esc(k) + "</dt><dd>" + esc(v) + "</dd>").join("") + "</dl>"
    + (a.body ? "<p>" + esc(a.body) + "</p>" : "");
  if (!a.can_vote) {{ document.getElementById("result").textContent = "You cannot answer this request: " + a.why_not + "."; return; }}
  if (a.kind !== "approval") {{ document.getElementById("result").innerHTML = 'Answer this form in the <a href="../ui/approvals">Autopilot inbox</a>.'; return; }}
  document.getElementById("decision").value = preset === "reject" ? "reject" : "approve";
  document.getElementById("vote").hidden = false;
}}
document.getElementById("vote").addEventListener("submit", async ev => {{
  ev.preventDefault();
  document.getElementById("submit").disabled = true;
  const r = await fetch(api + "/redeem", {{method: "POST", credentials: "same-origin",
    headers: {{"Content-Type": "application/json", "X-Autopilot-Request": "1"}},
    body: JSON.stringify({{token, decision: document.getElementById("decision").value, comment: document.getElementById("comment").value}})}});
  const body = await r.json().catch(() => ({{}}));
  document.getElementById("result").textContent = r.ok ? "Recorded: the request is now " + body.state + "." :
    ((body.detail && (body.detail.message || body.detail)) || r.statusText);
  if (!r.ok) document.getElementById("submit").disabled = false; else document.getElementById("vote").hidden = true;
}});
load();
</script></body></html>
"""


@pages.get("/approvals/confirm", response_class=HTMLResponse)
async def confirm_page(
    request: Request,
    token: Annotated[str, Query(max_length=2000)],
    decision: Annotated[Literal["approve", "reject"] | None, Query()] = None,
):
    """The page a mail link opens. Not logged in → Airflow's login page, then back here."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import HTTPException
    from fastapi.security import HTTPAuthorizationCredentials

    header = request.headers.get("authorization", "")
    bearer = (
        HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
        if header.lower().startswith("bearer ")
        else None
    )
    try:
        await get_user(request=request, _oauth_token=None, bearer_credentials=bearer)
    except HTTPException:
        here = str(request.url.path) + "?" + str(request.url.query)
        # Airflow's login page, under its base_url path when it has one (this app is mounted at
        # <base path>/autopilot)
        airflow_root = request.scope.get("root_path", "").rstrip("/").removesuffix("/autopilot")
        return RedirectResponse(
            f"{airflow_root}/auth/login?next={quote(here, safe='')}", status_code=status.HTTP_303_SEE_OTHER
        )
    page = _PAGE.format(token=json.dumps(html.escape(token)), decision=json.dumps(decision or ""))
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
