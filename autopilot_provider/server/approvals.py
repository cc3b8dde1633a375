"""The approvals service on the API server: votes on approvals, answers to mid-flow forms, and the
decision they lead to.

The task side (:mod:`autopilot_provider.operators.approval`, :mod:`autopilot_provider.operators.form`)
parks an Airflow HITL request assigned to Autopilot and hands over a
:class:`~autopilot_provider.repository.hitl.HitlRequest` in the XCom ``autopilot_request``. Everything
here runs where the metadata database is reachable — the API server (the plugin's routes and its
background sweep) — never on a worker:

* :meth:`Approvals.sync` (:mod:`~autopilot_provider.server.approval_records`) records new HITL
  requests of Autopilot steps with the rules of the DAG version the run started with (not those of
  a definition edited since); the sweep (:mod:`~autopilot_provider.server.approval_sweep`) asks the
  approvers (e-mail/Slack with signed links: :mod:`~autopilot_provider.server.approval_links`),
  reminds, escalates and applies timeouts;
* :meth:`Approvals.vote` / :meth:`Approvals.respond` record a vote or a form answer after checking
  who may vote (:func:`autopilot_provider.repository.quorum.eligibility`: group membership, the
  requester rule — never on their own request unless ``[autopilot] allow_self_approval`` — one vote
  per person, the slot still open);
* once the quorum decides, the same database transaction answers the HITL request as Autopilot and
  moves the task instance back to ``scheduled`` (:mod:`~autopilot_provider.server.hitl_resume`,
  what Airflow's own HITL PATCH does), so the vote, the outcome and the resume commit together or
  not at all.

A vote trail is never rewritten: votes have one row per (request, person) and events are append-only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, update

from autopilot_provider.definitions.bounded import linear_time
from autopilot_provider.operators.guard import SEAL_KEY
from autopilot_provider.repository.hitl import APPROVE, REJECT, SUBMIT
from autopilot_provider.repository.quorum import Refusal, Vote, eligibility, is_requester, slot_label, tally
from autopilot_provider.repository.quorum import slot_state as slot_state_of
from autopilot_provider.server.approval_links import link_key, seal, unsign
from autopilot_provider.server.approval_records import A, ApprovalRecord, ApprovalRecords, L, V
from autopilot_provider.server.errors import Conflict, Forbidden, Gone, Refused, Unprocessable
from autopilot_provider.server.hitl_resume import answer_hitl, resume_answered

log = logging.getLogger(__name__)

_REFUSALS: dict[int, type[Refused]] = {403: Forbidden, 409: Conflict, 422: Unprocessable}


def slot_state(record: ApprovalRecord, slot: int) -> dict[str, Any]:
    """``{"state": open|approved|rejected|answered, "decided_by": user or None}`` of one slot."""
    return slot_state_of(record.votes, slot)


def refused(refusal: Refusal) -> Refused:
    """The error a refused vote or answer is answered with."""
    return _REFUSALS[refusal.status](refusal.detail, field=refusal.field)


class Approvals(ApprovalRecords):
    """The approvals service: :class:`ApprovalRecords` (reading, recording) plus votes, answers and
    decisions. Each public method runs in one database transaction."""

    # -- voting ---------------------------------------------------------------------------------

    def vote(
        self,
        approval_id: str,
        username: str,
        decision: str,
        comment: str | None = None,
        *,
        slot: str | int | None = None,
        via: str = "api",
    ) -> ApprovalRecord:
        with self._session() as session:
            self._cast(session, approval_id, username, decision, comment, slot=slot, via=via)
        return self.get(approval_id)

    def _cast(
        self,
        session,
        approval_id: str,
        username: str,
        decision: str,
        comment: str | None,
        *,
        slot: str | int | None,
        via: str,
    ) -> None:
        if decision not in ("approve", "reject"):
            raise Unprocessable("decision must be 'approve' or 'reject'", field="decision")
        comment = (comment or "").strip() or None
        record = self._load(session, approval_id, lock=True)
        hitl = record.hitl
        if record.row.kind != "approval":
            raise Conflict("this is a form request: answer it with its fields (responses)", field="id")
        chosen = self._eligible_slot(record, username, slot)
        if decision == "reject" and hitl.comment_required_on_reject and not comment:
            raise Unprocessable("a comment is required to reject", field="comment")
        vote = Vote(username, chosen, slot_label(hitl, chosen), decision, comment, self._now(), via)
        self._insert_vote(session, approval_id, vote)
        if is_requester(hitl, username):
            log.warning(
                "%s voted on their own request %s ([autopilot] allow_self_approval is on and the step says "
                "exclude_requester: false)",
                username,
                approval_id,
            )
            self._event(session, approval_id, "self_approval", {"user": username, "decision": decision})
        record.votes.append(vote)
        outcome = tally(hitl, record.votes)
        if outcome is not None:
            self._decide(session, record, outcome)

    def respond(
        self,
        approval_id: str,
        username: str,
        values: Mapping[str, Any],
        *,
        via: str = "api",
        schema: Mapping[str, Any] | None = None,
    ) -> ApprovalRecord:
        """Answer a mid-flow form: any one of its people; the values must fit the fields (``schema``:
        the fields with their API choices fetched, when some come from an API)."""
        with self._session() as session:
            record = self._load(session, approval_id, lock=True)
            if record.row.kind != "form":
                raise Conflict("this is an approval: vote on it (votes)", field="id")
            chosen = self._eligible_slot(record, username, None)
            answer = validate_answer(schema or (record.hitl.form.json_schema if record.hitl.form else {}), values)
            vote = Vote(username, chosen, slot_label(record.hitl, chosen), "answer", None, self._now(), via, answer)
            self._insert_vote(session, approval_id, vote)
            record.votes.append(vote)
            self._decide(session, record, "answered")
        return self.get(approval_id)

    def _eligible_slot(self, record: ApprovalRecord, username: str, slot: str | int | None) -> int:
        """The slot ``username``'s answer counts for; refused (403/409/422) when they may not answer."""
        allowed = eligibility(
            record.hitl, record.votes, username, state=record.row.state, escalated=record.escalated, slot=slot
        )
        if allowed.refusal is not None:
            raise refused(allowed.refusal)
        assert allowed.slot is not None
        return allowed.slot

    def _insert_vote(self, session, approval_id: str, vote: Vote) -> None:
        session.execute(
            insert(V).values(
                approval_id=approval_id,
                username=vote.username,
                slot=vote.slot,
                slot_label=vote.slot_label,
                decision=vote.decision,
                comment=vote.comment,
                answer=json.dumps(vote.answer) if vote.answer is not None else None,
                via=vote.via,
                created_at=vote.at,
            )
        )
        self._event(
            session, approval_id, "voted", {"user": vote.username, "decision": vote.decision, "slot": vote.slot_label}
        )

    def _decide(self, session, record: ApprovalRecord, outcome: str, *, approved: bool | None = None) -> None:
        """Close the request with ``outcome`` and answer the HITL request as Autopilot, in this
        transaction."""
        votes = [v.as_dict() for v in sorted(record.votes, key=lambda v: v.at)]
        if record.row.kind == "form":
            answer = dict(record.votes[-1].answer or {})
            answer["_answered_by"] = record.votes[-1].username
            chosen, params_input = [SUBMIT], answer
        else:
            if approved is None:
                approved = outcome == "approved"
            deciding = next((v for v in reversed(record.votes) if v.decision == "reject"), None)
            params_input = {
                "outcome": outcome,
                "approved": approved,
                "votes": votes,
                "rejected_by": deciding.username if deciding and not approved else None,
                "comment": deciding.comment if deciding and not approved else None,
            }
            chosen = [APPROVE if approved else REJECT]
        now = self._now()
        if record.row.kind == "approval":
            params_input[SEAL_KEY] = seal(session, record.row, outcome, approved, now)
        session.execute(
            update(A)
            .where(A.c.id == record.id)
            .values(state=outcome, decided_at=now, outcome=json.dumps(params_input, default=str))
        )
        self._event(session, record.id, "decided", {"outcome": outcome, "options": chosen})
        answer_hitl(session, record.row.ti_id, chosen, params_input)

    # -- links ----------------------------------------------------------------------------------

    def redeem_link(self, token: str, username: str, decision: str, comment: str | None = None) -> ApprovalRecord:
        """Vote through a link: the link must be genuine, unexpired, unused and sent to the logged-in
        user, who must be entitled to vote; the link is spent in the same transaction as the vote."""
        record = self.check_link(token, username)
        with self._session() as session:
            payload = unsign(link_key(session), token)
            spent = session.execute(
                update(L)
                .where(L.c.jti == payload["j"], L.c.used_at.is_(None), L.c.expires_at > self._now())
                .values(used_at=self._now(), used_by=username)
            )
            if spent.rowcount != 1:
                raise Gone("this link has already been used", field="token")
            # the link is spent in the vote's transaction: a refused vote leaves it unspent
            self._cast(session, record.id, username, decision, comment, slot=None, via="link")
        return self.get(record.id)

    def resume_answered(self) -> int:
        """Resume the tasks whose answer came within the grace period of their parking."""
        return resume_answered(self._session)


def validate_answer(schema: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A form step's answer checked against its fields' JSON Schema; 422 naming the first field at
    fault (all of them in ``errors``)."""
    import jsonschema

    if not isinstance(values, Mapping):
        raise Unprocessable("values must be an object", field="values")
    answer = {name: values.get(name, prop.get("default")) for name, prop in schema.get("properties", {}).items()}
    answer.update({k: v for k, v in values.items() if k not in answer})
    answer = {k: v for k, v in answer.items() if v is not None}
    # patterns the workflow's author wrote run on RE2 (linear time) against what an approver typed
    validator = linear_time(jsonschema.Draft202012Validator)(dict(schema), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(answer), key=lambda e: list(e.absolute_path))
    if errors:
        fields = []
        for error in errors:
            path = ".".join(str(p) for p in error.absolute_path)
            if error.validator == "required":
                path = error.message.split("'")[1] if "'" in error.message else path
            elif error.validator == "additionalProperties":
                path = ", ".join(sorted(set(answer) - set(schema.get("properties", {}))))
            fields.append({"field": path or "values", "message": error.message})
        raise Unprocessable(f"{fields[0]['field']}: {fields[0]['message']}", field=fields[0]["field"], errors=fields)
    return answer
