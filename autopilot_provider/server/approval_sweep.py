"""The approvals sweep: every few seconds the API server records new requests, asks their people,
reminds, escalates, times out, sends failed messages again and resumes tasks answered too early
(``plugins/app.py`` runs :func:`sweep` every ``[autopilot] approval_sweep_seconds``).

Every change claims its row first (a conditional UPDATE), so several API server workers never send
the same mail twice. API server only.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update

from autopilot_provider import config
from autopilot_provider.repository.hitl import load_request
from autopilot_provider.repository.quorum import PENDING
from autopilot_provider.server.approval_messages import Notifier
from autopilot_provider.server.approval_records import A, aware
from autopilot_provider.server.approvals import Approvals

#: How many times a failed delivery is tried again before it is given up (and recorded as such).
MAX_REDELIVERIES = 5


def sweep_interval() -> float:
    """Seconds between two sweeps: ``[autopilot] approval_sweep_seconds`` (0: no sweep here)."""
    return config.get_float("approval_sweep_seconds")


def redeliver_delay(attempt: int) -> timedelta:
    """The wait before re-delivery ``attempt`` (1, 2, …): ``[autopilot] redeliver_seconds``, doubling."""
    return timedelta(seconds=config.get_float("redeliver_seconds") * 2 ** (attempt - 1))


def sweep(approvals: Approvals, notifier: Notifier | None = None) -> dict[str, int]:
    """One round: record and ask new requests, remind, escalate, time out. Returns counts."""
    notifier = notifier or Notifier(approvals)
    counts = {"asked": 0, "reminded": 0, "escalated": 0, "timed_out": 0}
    counts["resumed"] = approvals.resume_answered()
    approvals.sync()
    now = approvals._now()
    with approvals._session() as session:
        unasked = list(session.scalars(select(A.c.id).where(A.c.state == PENDING, A.c.asked_at.is_(None))))
    for approval_id in unasked:
        with approvals._session() as session:
            claimed = session.execute(
                update(A).where(A.c.id == approval_id, A.c.asked_at.is_(None)).values(asked_at=now)
            )
        if claimed.rowcount:
            _deliver(approvals, notifier, approval_id, "request")
            counts["asked"] += 1
    with approvals._session() as session:
        due = list(
            session.execute(
                select(A.c.id, A.c.deadline, A.c.escalated_at, A.c.next_reminder_at, A.c.spec).where(
                    A.c.state == PENDING
                )
            )
        )
    for approval_id, deadline, escalated_at, next_reminder_at, spec_text in due:
        hitl = load_request(spec_text)
        deadline, next_reminder_at = aware(deadline), aware(next_reminder_at)
        if deadline is not None and deadline <= now:
            if hitl.on_timeout == "escalate" and escalated_at is None and hitl.kind == "approval":
                if _escalate(approvals, approval_id, [s.label for s in hitl.escalate_to], hitl.timeout_seconds):
                    _deliver(approvals, notifier, approval_id, "escalation")
                    counts["escalated"] += 1
            elif _time_out(approvals, approval_id, notifier):
                counts["timed_out"] += 1
            continue
        if next_reminder_at is not None and next_reminder_at <= now and hitl.remind_every_seconds:
            interval = timedelta(seconds=hitl.remind_every_seconds)
            with approvals._session() as session:
                claimed = session.execute(
                    update(A)
                    .where(A.c.id == approval_id, A.c.state == PENDING, A.c.next_reminder_at == next_reminder_at)
                    .values(next_reminder_at=now + interval)
                )
            if claimed.rowcount:
                _deliver(approvals, notifier, approval_id, "reminder")
                counts["reminded"] += 1
    counts["redelivered"] = _redeliver(approvals, notifier)
    return counts


def _deliver(
    approvals: Approvals,
    notifier: Notifier,
    approval_id: str,
    reason: str,
    *,
    only: list[str] | None = None,
    attempt: int = 0,
) -> None:
    """Ask (or remind, escalate, tell) and, when some deliveries failed (the mail server or Slack
    was down), schedule those again — after ``[autopilot] redeliver_seconds`` (default 60),
    doubling, at most :data:`MAX_REDELIVERIES` times."""
    failed = notifier.ask(approval_id, reason=reason, only=only)
    if not failed or attempt >= MAX_REDELIVERIES:
        if failed:
            with approvals._session() as session:
                approvals._event(session, approval_id, "delivery_abandoned", {"reason": reason, "to": failed})
        return
    job = {"reason": reason, "to": failed, "attempt": attempt + 1}
    with approvals._session() as session:
        session.execute(
            update(A)
            .where(A.c.id == approval_id)
            .values(redeliver_at=approvals._now() + redeliver_delay(attempt + 1), redeliver=json.dumps(job))
        )


def _redeliver(approvals: Approvals, notifier: Notifier) -> int:
    """Deliveries that failed, tried again when due (claimed row by row, like every sweep change).
    A request that was decided meanwhile needs no more asking; its timeout notice still goes."""
    now = approvals._now()
    with approvals._session() as session:
        due = list(
            session.execute(
                select(A.c.id, A.c.redeliver_at, A.c.redeliver, A.c.state).where(
                    A.c.redeliver_at.is_not(None), A.c.redeliver_at <= now
                )
            )
        )
    done = 0
    for approval_id, at, data, state in due:
        with approvals._session() as session:
            claimed = session.execute(
                update(A).where(A.c.id == approval_id, A.c.redeliver_at == at).values(redeliver_at=None, redeliver=None)
            )
        job = json.loads(data or "{}")
        if not claimed.rowcount or not job.get("to") or (job["reason"] != "timeout" and state != PENDING):
            continue
        _deliver(approvals, notifier, approval_id, job["reason"], only=job["to"], attempt=job["attempt"])
        done += 1
    return done


def _escalate(approvals: Approvals, approval_id: str, to: list[str], timeout_seconds: float | None) -> bool:
    """Claim the escalation of a request whose deadline passed: a new window of the same length."""
    now = approvals._now()
    window = timedelta(seconds=timeout_seconds or 0)
    with approvals._session() as session:
        claimed = session.execute(
            update(A)
            .where(A.c.id == approval_id, A.c.state == PENDING, A.c.escalated_at.is_(None))
            .values(escalated_at=now, deadline=now + window)
        )
        if claimed.rowcount:
            approvals._event(session, approval_id, "escalated", {"to": to})
        return bool(claimed.rowcount)


def _time_out(approvals: Approvals, approval_id: str, notifier: Notifier) -> bool:
    with approvals._session() as session:
        record = approvals._load(session, approval_id, lock=True)
        if record.row.state != PENDING:
            return False
        if record.row.kind == "form":
            return False  # Airflow's scheduler fails an unanswered form at its response timeout
        hitl = record.hitl
        approved = hitl.on_timeout == "approve" and not record.escalated
        approvals._event(session, approval_id, "timed_out", {"approved": approved})
        approvals._decide(session, record, "timed_out", approved=approved)
    if hitl.escalate_to and hitl.on_timeout != "escalate":
        _deliver(approvals, notifier, approval_id, "timeout")
    return True
