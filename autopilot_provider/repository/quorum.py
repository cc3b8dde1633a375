"""Who may answer a human-in-the-loop request, and when its answers decide it: the quorum and the
eligibility rules, pure functions over a :class:`~autopilot_provider.repository.hitl.HitlRequest`
and its votes. The approvals service (API server) applies them to a vote; the plugin's inbox asks
the same functions whether, and why not, the caller may answer.

A request has one *slot* per contact reference in ``from``: one member's vote decides for a group.
After an escalation the escalation contacts decide as one more slot (:data:`ESCALATION_SLOT`), alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from autopilot_provider import config
from autopilot_provider.repository.hitl import HitlRequest

#: The states of a recorded request: pending until decided, closed when its task moved on unanswered.
PENDING = "pending"
DECIDED = ("approved", "rejected", "timed_out", "answered")
STATES = (PENDING, *DECIDED, "closed")
#: The slot an escalation contact votes for.
ESCALATION_SLOT = -1


@dataclass(frozen=True)
class Vote:
    username: str
    slot: int
    slot_label: str
    decision: str  # approve | reject | answer (a form)
    comment: str | None
    at: datetime
    via: str  # api | link
    answer: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {
            "user": self.username,
            "slot": self.slot_label,
            "decision": self.decision,
            "comment": self.comment,
            "at": self.at.isoformat(),
            "via": self.via,
        }
        if self.answer is not None:
            data["answer"] = self.answer
        return data


def needed(quorum: str | int, slots: int) -> int:
    """How many approvers must approve."""
    if quorum == "all":
        return slots
    if quorum == "any":
        return 1
    return int(quorum)


def slot_decisions(votes: Iterable[Vote]) -> dict[int, Vote]:
    """The deciding vote of each slot (its first vote)."""
    decided: dict[int, Vote] = {}
    for vote in sorted(votes, key=lambda v: v.at):
        decided.setdefault(vote.slot, vote)
    return decided


def tally(request: HitlRequest, votes: Iterable[Vote]) -> str | None:
    """``approved``, ``rejected`` or None (still open). An escalation contact's vote decides alone;
    otherwise approved once the quorum approves, rejected once it no longer can."""
    decided = slot_decisions(votes)
    if ESCALATION_SLOT in decided:
        return "approved" if decided[ESCALATION_SLOT].decision == "approve" else "rejected"
    slots = len(request.slots)
    approvals = sum(1 for slot, vote in decided.items() if slot >= 0 and vote.decision == "approve")
    still_open = slots - sum(1 for slot in decided if slot >= 0)
    need = needed(request.quorum, slots)
    if approvals >= need:
        return "approved"
    if approvals + still_open < need:
        return "rejected"
    return None


def is_requester(request: HitlRequest, username: str) -> bool:
    return bool(username) and request.requester.username == username


def requester_may_approve(request: HitlRequest) -> bool:
    """Whether the requester counts as an approver of this request: never, unless the workflow says
    ``exclude_requester: false`` *and* the deployment allows it (``[autopilot] allow_self_approval``)."""
    return request.exclude_requester is False and config.allow_self_approval()


def entitled_slots(request: HitlRequest, username: str, escalated: bool) -> list[int]:
    """The slots ``username`` may decide: groups they belong to, themselves as a person; after an
    escalation, the escalation contacts too."""
    slots = [i for i, slot in enumerate(request.slots) if username in slot.usernames()]
    if escalated and any(username in slot.usernames() for slot in request.escalate_to):
        slots.append(ESCALATION_SLOT)
    return slots


_DECIDED_AS = {"approve": "approved", "reject": "rejected", "answer": "answered"}


def slot_state(votes: Iterable[Vote], slot: int) -> dict[str, Any]:
    """``{"state": open|approved|rejected|answered, "decided_by": user or None}`` of one slot."""
    vote = slot_decisions(votes).get(slot)
    if vote is None:
        return {"state": "open", "decided_by": None}
    return {"state": _DECIDED_AS[vote.decision], "decided_by": vote.username}


def slot_label(request: HitlRequest, slot: int) -> str:
    return "escalation" if slot == ESCALATION_SLOT else request.slots[slot].label


@dataclass(frozen=True)
class Refusal:
    """Why someone may not answer: ``reason`` for the inbox ("you have already answered"),
    ``detail`` for a refused vote (naming who or which), ``status`` the HTTP status of that refusal
    (403 not theirs to answer, 409 no longer open to them, 422 a slot that does not exist)."""

    reason: str
    detail: str
    status: Literal[403, 409, 422]
    field: str


@dataclass(frozen=True)
class Eligibility:
    """Whether ``username`` may answer now: the slot their answer counts for, or the refusal."""

    slot: int | None
    refusal: Refusal | None = None

    @property
    def why_not(self) -> str | None:
        return self.refusal.reason if self.refusal else None


def eligibility(
    request: HitlRequest,
    votes: Sequence[Vote],
    username: str,
    *,
    state: str,
    escalated: bool,
    slot: str | int | None = None,
) -> Eligibility:
    """Whether ``username`` may answer the request (in ``state``, with ``votes`` so far) now, and for
    which slot: ``slot`` when they name one of theirs, else the escalation slot when they are an
    escalation contact, else their first open slot in the order listed. Refused: a request no longer
    pending, the requester on their own approval (see :func:`requester_may_approve`), a second
    answer from one person, someone not asked, a group that has already answered."""

    def refuse(reason: str, detail: str, status: Literal[403, 409, 422], field: str) -> Eligibility:
        return Eligibility(None, Refusal(reason, detail, status, field))

    if state != PENDING:
        said = state.replace("_", " ")
        return refuse(f"the request is {said}", f"this request is already {said}", 409, "id")
    if request.kind == "approval" and is_requester(request, username) and not requester_may_approve(request):
        return refuse(
            "you cannot approve your own request",
            "you requested this: you cannot approve your own request",
            403,
            "user",
        )
    if any(v.username == username for v in votes):
        return refuse("you have already answered", "you have already answered this request", 409, "user")
    mine = entitled_slots(request, username, escalated)
    if not mine:
        who = ", ".join(s.label for s in request.slots)
        return refuse(
            "you are not one of the people asked", f"you are not one of the people asked ({who})", 403, "user"
        )
    decided = slot_decisions(votes)
    if slot is not None:
        wanted = slot_index(request, slot)
        if wanted is None:
            refs = ", ".join(s.ref for s in request.slots)
            return refuse(f"there is no slot {slot!r}", f"unknown slot {slot!r}: one of {refs}", 422, "slot")
        if wanted not in mine:
            return refuse(f"you cannot answer for {slot!r}", f"you cannot answer for {slot!r}", 403, "slot")
        if wanted in decided:
            by = decided[wanted].username
            return refuse(f"{slot!r} has already decided", f"{slot!r} has already decided (by {by})", 409, "slot")
        return Eligibility(wanted)
    open_slots = [i for i in mine if i not in decided]
    if not open_slots:
        by = ", ".join(sorted({decided[i].username for i in mine}))
        return refuse("your group has already answered", f"your group has already answered (by {by})", 409, "slot")
    # escalation contacts decide as such; otherwise the first open slot in the order listed
    return Eligibility(ESCALATION_SLOT if ESCALATION_SLOT in open_slots else open_slots[0])


def slot_index(request: HitlRequest, slot: str | int) -> int | None:
    """The slot named by its index, its contact reference or label, or ``escalation``; None if none."""
    if isinstance(slot, int) or (isinstance(slot, str) and slot.lstrip("-").isdigit()):
        return int(slot)
    if slot == "escalation":
        return ESCALATION_SLOT
    for i, s in enumerate(request.slots):
        if slot in (s.ref, s.label):
            return i
    return None
