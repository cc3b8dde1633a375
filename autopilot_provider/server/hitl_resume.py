"""Answering an Airflow human-in-the-loop request as Autopilot, and resuming its task.

A copy of what Airflow's own HITL PATCH route does — ``update_hitl_detail`` in
``airflow/api_fastapi/core_api/routes/public/hitl.py`` (Airflow 3.3): lock the task instance, then
the ``hitl_detail`` row; record the response; hand the task its answer with
``airflow.models.trigger.handle_event_submit`` — minus that route's per-user check, which the
quorum replaces. Keep it in step with that route when Airflow changes it. Runs in the caller's
database transaction, so the vote, the outcome and the resume commit together. API server only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from autopilot_provider import config
from autopilot_provider.repository.hitl import AUTOPILOT_USER, AUTOPILOT_USER_ID
from autopilot_provider.server.approval_records import as_uuid, aware
from autopilot_provider.server.errors import Conflict


def resume_grace() -> timedelta:
    """How long a task must have been waiting before an answer resumes it at once (see :func:`resume`)."""
    return timedelta(seconds=config.get_float("resume_grace_seconds"))


def answer_hitl(session, ti_id: str, chosen: list[str], params_input: dict[str, Any]) -> None:
    """Answer the HITL request as Autopilot and resume the task — what Airflow's HITL PATCH route
    does (same lock order: task instance, then the HITL row), minus its per-user check, which the
    quorum replaces."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI

    key = as_uuid(ti_id)
    ti = session.get(TI, key, with_for_update={"of": TI})
    hitl = session.execute(select(HITLDetail).where(HITLDetail.ti_id == key).with_for_update(of=HITLDetail)).scalar()
    if hitl is None or hitl.response_received:
        raise Conflict("the task is no longer waiting for this answer", field="id")
    hitl.responded_by = dict(AUTOPILOT_USER)
    hitl.responded_at = datetime.now(UTC)
    hitl.chosen_options = chosen
    hitl.params_input = params_input
    session.add(hitl)
    if ti is not None:
        resume(session, ti, hitl)


def resume(session, ti: Any, hitl: Any) -> bool:
    """Move a waiting task back to ``scheduled`` with its answer — unless it started waiting less than
    ``[autopilot] resume_grace_seconds`` (default 15) ago. Then the sweep resumes it a moment later
    (:func:`resume_answered`): the worker process that parked it may not have exited yet, and
    Airflow's scheduler fails a task that is queued again before it has seen that process's exit (it
    happens with Airflow's own HITL answers too)."""
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.state import TaskInstanceState

    if ti.state not in (TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED):
        return False
    waiting_since = aware(ti.updated_at)
    if waiting_since is not None and datetime.now(UTC) - waiting_since < resume_grace():
        return False
    handle_event_submit(TriggerEvent(hitl.as_resume_event_payload()), task_instance=ti, session=session)
    return True


def resume_answered(session_factory) -> int:
    """Resume the tasks Autopilot answered within the grace period of their parking (:func:`resume`)."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.state import TaskInstanceState

    resumed = 0
    with session_factory() as session:
        waiting = session.scalars(
            select(TI.id)
            .join(HITLDetail, HITLDetail.ti_id == TI.id)
            .where(TI.state == TaskInstanceState.AWAITING_INPUT, HITLDetail.responded_at.is_not(None))
        ).all()
    for ti_id in waiting:
        with session_factory() as session:
            ti = session.get(TI, ti_id, with_for_update={"of": TI})
            hitl = session.get(HITLDetail, ti_id)
            if ti is None or hitl is None or (hitl.responded_by or {}).get("id") != AUTOPILOT_USER_ID:
                continue
            resumed += resume(session, ti, hitl)
    return resumed
