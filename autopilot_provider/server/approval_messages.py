"""The messages that ask people for their decision: approval requests, reminders, escalations and
timeout notices by e-mail and Slack, each recipient with their own signed single-use links. Used by
the approvals sweep (:mod:`autopilot_provider.server.approval_sweep`) on the API server.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

from autopilot_provider import config
from autopilot_provider.definitions.templating import slack_escape, text_to_html
from autopilot_provider.notifications.autopilot import Message, post_slack, send_email
from autopilot_provider.repository.hitl import Person, Slot
from autopilot_provider.repository.quorum import requester_may_approve, slot_decisions
from autopilot_provider.server.approval_records import ApprovalRecord, ApprovalRecords, aware

log = logging.getLogger(__name__)

#: How long a link stays valid when the request has no deadline.
DEFAULT_LINK_TTL = timedelta(days=7)

#: The heading of each kind of message: (for an approval, for a form).
_REASONS = {
    "request": ("Approval needed", "Your input is needed"),
    "reminder": ("Reminder: approval needed", "Reminder: your input is needed"),
    "escalation": ("Escalated: approval needed", "Escalated: your input is needed"),
    "timeout": ("Timed out", "Timed out"),
}


class Notifier:
    """Sends approval requests, reminders and escalations. Each recipient gets their own single-use
    links; a failed delivery is recorded as an event and logged, never lost silently."""

    def __init__(self, approvals: ApprovalRecords):
        self.approvals = approvals

    def _audience(self, record: ApprovalRecord, reason: str) -> list[Person]:
        voted = {v.username for v in record.votes}
        requester = None if requester_may_approve(record.hitl) else record.hitl.requester.username
        people: dict[str, Person] = {}
        for slot in self._slots(record, reason):
            for person in slot.members:
                if person.username in voted or (requester and person.username == requester):
                    continue
                people.setdefault(recipient_key(person), person)
        return list(people.values())

    def _channels(self, record: ApprovalRecord, reason: str) -> list[Slot]:
        """The Slack channels of the groups being asked (a notice without links: each member has their
        own links, and the channel sees that the group is asked)."""
        if reason not in ("request", "reminder", "escalation") or "slack" not in record.hitl.via:
            return []
        return [s for s in self._slots(record, reason) if s.kind == "group" and s.slack]

    def _slots(self, record: ApprovalRecord, reason: str) -> list[Slot]:
        if reason in ("escalation", "timeout"):
            return list(record.hitl.escalate_to)
        decided = slot_decisions(record.votes)
        return [s for i, s in enumerate(record.hitl.slots) if i not in decided]

    def ask(self, approval_id: str, *, reason: str, only: Collection[str] | None = None) -> list[str]:
        """Send ``reason``'s message to the people (and their groups' Slack channels) concerned —
        only to the recipient keys in ``only`` when given (a re-delivery). Returns the keys whose
        delivery failed."""

        approvals = self.approvals
        record = approvals.get(approval_id)
        hitl = record.hitl
        people = [p for p in self._audience(record, reason) if only is None or recipient_key(p) in only]
        channels = [c for c in self._channels(record, reason) if only is None or f"channel:{c.slack}" in only]
        via = hitl.via or ["email"]
        expires = aware(record.row.deadline) or (approvals._now() + DEFAULT_LINK_TTL)
        if reason == "escalation" and hitl.timeout_seconds:
            expires = approvals._now() + timedelta(seconds=hitl.timeout_seconds)
        heading = _REASONS[reason][0 if record.row.kind == "approval" else 1]
        subject = f"[Autopilot] {heading}: {hitl.headline}"
        base_url = config.api_base_url()
        sent: dict[str, list[str]] = {"email": [], "slack": []}
        failures: list[str] = []
        failed: list[str] = []
        for person in people:
            links: dict[str, str] = {}
            if reason != "timeout":
                with approvals._session() as session:
                    token = approvals.issue_link(session, record, recipient_key(person), expires)
                confirm = f"{base_url}/autopilot/approvals/confirm?token={token}"
                links = (
                    {"approve": confirm + "&decision=approve", "reject": confirm + "&decision=reject"}
                    if record.row.kind == "approval"
                    else {"open": confirm}
                )
            text = message_text(record, heading, reason, links)
            message = Message(
                subject=subject,
                text=text,
                html=text_to_html(text),
                slack=message_text(record, heading, reason, links, slack=True),
            )
            try:
                if "email" in via and person.email:
                    send_email(
                        config.smtp_conn_id(),
                        [person.email],
                        message,
                        headers={"X-Autopilot-Approval": record.id, "X-Autopilot-Reason": reason},
                    )
                    sent["email"].append(person.email)
                if "slack" in via and person.slack:
                    post_slack(config.slack_conn_id(), [person.slack], message.slack)
                    sent["slack"].append(person.slack)
            except Exception as exc:  # noqa: BLE001 - recorded, logged and delivered again later
                log.exception("Could not notify %s about %s", person.name, record.id)
                failures.append(f"{person.name}: {exc}")
                failed.append(recipient_key(person))
        inbox = f"{base_url}/autopilot/ui/approvals"
        for slot in channels:
            notice = message_text(record, heading, reason, {}, slack=True)
            notice += f"\n{slack_escape(slot.label)} is asked: each member has their own link, or answer in <{inbox}|the Autopilot inbox>.\n"
            try:
                post_slack(config.slack_conn_id(), [slot.slack], notice)
                sent["slack"].append(slot.slack)
            except Exception as exc:  # noqa: BLE001 - as above
                log.exception("Could not post to %s about %s", slot.slack, record.id)
                failures.append(f"{slot.slack}: {exc}")
                failed.append(f"channel:{slot.slack}")
        with approvals._session() as session:
            approvals._event(session, record.id, f"{reason}_sent", {**sent, "failed": failures})
        return failed


def recipient_key(person: Person) -> str:
    """Who a message or link is for: the Airflow user name, else the address, else the name."""
    return person.username or person.email or person.name or ""


def message_text(
    record: ApprovalRecord, heading: str, reason: str, links: Mapping[str, str], *, slack: bool = False
) -> str:
    """The message to an approver. ``slack``: Slack's markup, with every text that came from the
    request (the form's values, the rendered subject and body, names) escaped, so a requester cannot
    slip a live link or an ``<!channel>`` into it; only the real links are links."""

    esc: Any = slack_escape if slack else str
    hitl = record.hitl
    requester = hitl.requester
    lines = [f"{heading}: {esc(hitl.headline)}", ""]
    lines.append(f"Workflow: {esc(hitl.workflow_title or record.row.dag_id)} (run {esc(record.row.run_id)})")
    lines.append(f"Requested by: {esc(requester.name or requester.username or 'unknown')}")
    if hitl.body:
        lines += ["", esc(str(hitl.body).strip())]
    if hitl.request:
        lines += ["", "Request:"] + [f"  {esc(k)}: {esc(v)}" for k, v in hitl.request.items()]
    if record.row.kind == "approval":
        approvers = ", ".join(esc(s.label) for s in hitl.slots)
        lines += ["", f"Approvers: {approvers} (quorum: {hitl.quorum})"]
    if reason == "timeout":
        outcome = "approved" if hitl.on_timeout == "approve" else "rejected"
        lines += ["", f"Nobody decided in time: the request was {outcome} automatically."]
    if record.row.deadline is not None and reason != "timeout":
        lines += ["", f"Please answer by {aware(record.row.deadline).strftime('%Y-%m-%d %H:%M UTC')}."]
    for name, url in links.items():
        lines += ["", f"<{url}|{name.capitalize()}>" if slack else f"{name.capitalize()}: {url}"]
    if links:
        lines += ["", "Each link works once and opens a confirmation page; you sign in to Airflow first."]
    return "\n".join(lines) + "\n"
