"""The glue behind ``/approvals``: an approval or form request as the calling user sees it — its slots,
votes, whether they may answer and why not, and a mid-flow form with its choices fetched now.

The rules (who is asked, one vote per person, never the requester on their own request) are
:mod:`autopilot_provider.repository.quorum`; this module only reads them for one user.
"""

from __future__ import annotations

import json
from typing import Any

from autopilot_plugin.api.datamodels.approvals import ApprovalOut, EventOut, SlotOut, VoteOut
from autopilot_plugin.api.permissions import ANSWER_NEEDS

from autopilot_provider.hooks import choices as form_choices
from autopilot_provider.repository.quorum import ESCALATION_SLOT, PENDING, Vote, eligibility, entitled_slots
from autopilot_provider.server.approval_records import ApprovalRecord as HumanRequest
from autopilot_provider.server.approvals import slot_state
from autopilot_provider.server.definition_store import DefinitionStore


def why_not(request: HumanRequest, username: str) -> str | None:
    """Why ``username`` may not answer ``request`` now, ``None`` when they may (the rules a vote is
    checked by: :func:`autopilot_provider.repository.quorum.eligibility`)."""
    return eligibility(
        request.hitl, request.votes, username, state=request.row.state, escalated=request.escalated
    ).why_not


def form_view(request: HumanRequest, project: Any = None) -> dict[str, Any] | None:
    """A mid-flow form as the inbox renders it: ``schema`` and ``ui_schema``, with the choices of
    fields whose options come from an API fetched now while it waits for an answer; ``error`` names
    the field when they cannot be fetched."""
    form = request.hitl.form
    if form is None:
        return None
    view = {"schema": form.json_schema, "ui_schema": form.ui_schema}
    if request.row.kind != "form" or not needs_choices(request):
        return view
    try:
        return form_choices.resolve_step_form(
            form.as_dict(), project if project is not None else DefinitionStore().project()
        )
    except form_choices.ChoicesUnavailable as exc:
        return {**view, "error": exc.as_dict()}


def needs_choices(request: HumanRequest) -> bool:
    """Whether the request is a pending form with choices fetched from an API."""
    return request.row.state == PENDING and request.hitl.form is not None and bool(request.hitl.form.dynamic)


def approval_out(
    request: HumanRequest,
    username: str,
    *,
    events: list[dict] | None = None,
    project: Any = None,
    may_answer: bool = True,
) -> ApprovalOut:
    """``request`` as ``username`` sees it; ``events`` (single reads) adds its trail; ``project`` is the
    definitions folder to fetch a form's choices from (read here when needed and not given);
    ``may_answer`` is false when the user lacks the permission to answer requests of its workflow
    (:func:`autopilot_plugin.api.permissions.may_answer`), which ``can_vote`` and ``why_not`` then say."""
    hitl, row = request.hitl, request.row
    slots = [SlotOut(ref=slot.ref, label=slot.label, **slot_state(request, i)) for i, slot in enumerate(hitl.slots)]
    if request.escalated and slot_state(request, ESCALATION_SLOT)["decided_by"]:
        slots.append(SlotOut(ref="escalation", label="escalation", **slot_state(request, ESCALATION_SLOT)))
    why = why_not(request, username)
    if why is None and not may_answer:
        why = f"you may not answer requests of '{row.dag_id}': that needs {ANSWER_NEEDS}"
    return ApprovalOut(
        id=row.id,
        kind=row.kind,
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        step_id=hitl.step_id or row.task_id,
        workflow_title=hitl.workflow_title,
        subject=hitl.subject,
        body=hitl.body,
        state=row.state,
        quorum=hitl.quorum if row.kind == "approval" else None,
        requester=hitl.requester.username,
        requester_name=hitl.requester.name,
        created_at=row.created_at,
        deadline=row.deadline,
        escalated=request.escalated,
        decided_at=row.decided_at,
        slots=slots,
        votes=[VoteOut(**_vote_dict(v)) for v in request.votes],
        can_vote=why is None,
        why_not=why,
        form=form_view(request, project),
        request=hitl.request,
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


def asked(request: HumanRequest, username: str) -> bool:
    """Whether ``request`` asks ``username`` (or one of their groups)."""
    return bool(entitled_slots(request.hitl, username, request.escalated))


def answer_schema(request: HumanRequest, store: DefinitionStore) -> dict[str, Any] | None:
    """The schema an answer to a form with choices from an API must fit, with the choices fetched
    again now (502 when they cannot be); ``None`` when the stored form is all there is."""
    if not needs_choices(request):
        return None
    assert request.hitl.form is not None  # needs_choices
    return form_choices.resolve_step_form(request.hitl.form.as_dict(), store.project())["schema"]
