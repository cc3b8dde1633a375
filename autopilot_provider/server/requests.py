"""Requests: starting the run a form asks for (as the calling user) — now or at a later time —,
cancelling a request for later before it starts, and listing requests with their steps, approvals
and tickets — what the plugin's portal serves.

A request for later is Airflow's own mechanism: a manual run created ``queued`` with ``run_after`` at
the requested time. The scheduler starts only queued runs whose ``run_after`` has come
(``DagRun.get_queued_dag_runs_to_set_running``), so the run waits without a task, a worker slot or
anything of Autopilot's. Cancelling it marks the still-queued run ``failed`` (its steps ``skipped``)
through Airflow's own mark-as-failed, with a note naming who cancelled it: the run stays on record,
and a run that ended without ever starting is what *My requests* calls cancelled."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from autopilot_provider import config
from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import Refused
from autopilot_provider.hooks.choices import resolve_choices
from autopilot_provider.repository.contacts import ContactError, Directory
from autopilot_provider.repository.forms import (
    INTERNAL_TASKS,
    FieldError,
    FormInvalid,
    request_schema,
    sections,
    ui_schema,
    workflows,
)
from autopilot_provider.repository.scope import TICKET_XCOM_KEY
from autopilot_provider.server.approvals import Approvals, slot_state
from autopilot_provider.server.errors import Conflict, Forbidden, NotFound, Unprocessable


class RunNotPossible(Refused):
    """The workflow's DAG cannot take a run yet (not parsed, import errors): 409."""

    status = 409


def form_view(workflow: m.Workflow, project: Any, *, max_age: float | None = None) -> dict[str, Any]:
    """What a form renderer needs: ``schema`` (choices filled in), ``ui_schema`` and ``sections``."""
    choices = resolve_choices(workflow.form, project, max_age=max_age)
    return {
        "schema": request_schema(workflow.form, choices),
        "ui_schema": ui_schema(workflow.form, choices),
        "sections": sections(workflow.form),
    }


def run_url(dag_id: str, run_id: str) -> str:
    """The run in Airflow's grid view (absolute when ``[api] base_url`` is set)."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def check_requester(project: Any, values: Mapping[str, Any], user_name: str) -> None:
    """422 on the ``requester`` field when ``user_name`` names someone else there without being
    allowed to act on their behalf (``[autopilot] on_behalf_users``), or names nobody in the contacts:
    the rule the run's steps apply (``Directory.requester``), checked before a run exists."""

    try:
        Directory.from_project(project).requester(user_name, values.get("requester"))
    except ContactError as exc:  # refused, or a requester who is nobody in the contacts
        raise FormInvalid([FieldError("requester", str(exc))]) from None


def idempotent_run_id(user_name: str, key: str) -> str:
    """The run id a request with ``Idempotency-Key: key`` from ``user_name`` gets: the same key from
    the same user always names the same run, so a repeat (a client retrying a submission whose answer
    was lost) finds the first run instead of starting a second. Another user's key never collides."""
    digest = hashlib.sha256(f"{user_name}\x00{key}".encode()).hexdigest()[:32]
    return f"request__{digest}"


def check_start_at(start_at: datetime | None, *, now: datetime | None = None) -> datetime | None:
    """A request's ``start_at`` (None: start now) as an aware UTC time, else 422 on ``start_at``: a
    time zone is required, the time may not have passed and may be at most ``[autopilot]
    request_max_ahead_days`` ahead."""
    if start_at is None:
        return None
    if start_at.tzinfo is None or start_at.utcoffset() is None:
        raise Unprocessable(
            "start_at needs a time zone, e.g. 2030-01-31T09:00:00+01:00 or 2030-01-31T08:00:00Z", field="start_at"
        )
    now = now or datetime.now(UTC)
    start_at = start_at.astimezone(UTC)
    if start_at < now:
        raise Unprocessable(
            f"start_at {start_at.isoformat()} has passed (it is {now.replace(microsecond=0).isoformat()} now); "
            "leave it out to start now",
            field="start_at",
        )
    days = config.request_max_ahead_days()
    if start_at > now + timedelta(days=days):
        raise Unprocessable(
            f"start_at {start_at.isoformat()} is more than {days} days ahead ([autopilot] request_max_ahead_days)",
            field="start_at",
        )
    return start_at


def start_run(
    workflow: m.Workflow,
    conf: dict[str, Any],
    *,
    user_name: str,
    user_id: str | None = None,
    note: str | None = None,
    run_id: str | None = None,
    start_at: datetime | None = None,
) -> dict[str, Any]:
    """Create a manual run of the workflow's DAG with ``conf`` (validated values), triggered by
    ``user_name`` — Airflow's own ``trigger_dag``, as the REST API's trigger endpoint does it. The
    scheduler picks it up like any other run; with ``start_at`` (checked by :func:`check_start_at`)
    it is the run's ``run_after``, before which the scheduler does not start it. Raises
    :class:`RunNotPossible` when the DAG is not parsed yet or has import errors.

    With ``run_id`` the start is idempotent: when that run exists already (a repeat, or a concurrent
    request that won the race) it is returned with ``created: False`` and nothing is started; when it
    exists with other values (or another ``start_at``), :class:`IdempotencyConflict` (409)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists, ParamValidationError
    from airflow.models import DagModel, DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy.exc import IntegrityError

    dag_id = workflow.id
    # A repeated run id needs no look-up of its own: trigger_dag looks for it (DagRun.find_duplicate)
    # and raises DagRunAlreadyExists, answered below with the run that exists — one transaction per
    # start, as Airflow's own POST dagRuns.
    if run_id is None and start_at is not None:
        # Airflow names a manual run after its run_after: two requests for the same minute would
        # collide, so a request for later gets Airflow's id with a random suffix
        run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=None, run_after=start_at)
    try:
        with create_session() as session:
            model = session.get(DagModel, dag_id)
            if model is None or model.is_stale:
                raise RunNotPossible(
                    f"workflow '{dag_id}' has no DAG in Airflow yet: the dag-processor has not parsed it "
                    "(new or renamed definitions appear within a minute); try again shortly"
                )
            if model.has_import_errors:
                raise RunNotPossible(
                    f"workflow '{dag_id}': Airflow reports an import error for its DAG (see Airflow's import errors)"
                )
            try:
                dag_run = trigger_dag(
                    dag_id,
                    run_id=run_id,
                    triggered_by=DagRunTriggeredByType.REST_API,
                    triggering_user_name=user_name,
                    conf=conf,
                    # set on the new run as it is built (DagRun's note proxy takes (content, user_id)),
                    # not afterwards, which would load the empty note first
                    note=None if not note else (note if user_id is None else (note, user_id)),  # type: ignore[arg-type]
                    run_after=start_at,
                    session=session,
                )
            except DagNotFound:
                raise RunNotPossible(
                    f"workflow '{dag_id}' is not serialized in Airflow yet: the dag-processor has not parsed it; "
                    "try again shortly"
                ) from None
            except ParamValidationError as exc:
                # Airflow checked the values against the DAG Airflow knows, which can be older than the
                # definition: the portal's validation passed, Airflow's did not.
                raise FormInvalid([FieldError(_param_name(str(exc)), str(exc))]) from None
            if dag_run is None:  # pragma: no cover - trigger_dag returns the run or raises
                raise RunNotPossible(f"workflow '{dag_id}': Airflow created no run")
            session.flush()
            return {**_run_answer(dag_run), "created": True}
    except (DagRunAlreadyExists, IntegrityError):
        if run_id is None:
            raise
        # a concurrent request with the same run id inserted it first: answer with that run
        existing = _existing_run(dag_id, run_id, conf, start_at)
        if existing is None:  # pragma: no cover - the row that collided is committed before we read
            raise RunNotPossible(f"workflow '{dag_id}': run {run_id!r} collided but cannot be read") from None
        return existing


class IdempotencyConflict(Refused):
    """A repeated idempotency key with other values than the run it started: 409. ``run`` is that
    run, as :func:`start_run` returns it (``created: False``)."""

    status = 409

    def __init__(self, message: str, *, field: str, run: dict[str, Any]):
        super().__init__(message, field=field)
        self.run = run


def _existing_run(
    dag_id: str, run_id: str, conf: dict[str, Any], start_at: datetime | None = None
) -> dict[str, Any] | None:
    """The run ``run_id`` of ``dag_id`` as :func:`start_run` returns it (``created: False``), None
    when there is none; :class:`IdempotencyConflict` when it was started with other values or, for a
    request for later, at another time."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dag_run is None:
            return None
        found = {**_run_answer(dag_run), "created": False}
        if (dag_run.conf or {}) != (conf or {}) or scheduled_for(dag_run) != start_at:
            raise IdempotencyConflict(
                f"this request repeats the idempotency key of run {run_id!r} of '{dag_id}' with other values; "
                "use a new key for a new request",
                field="Idempotency-Key",
                run=found,
            )
        return found


def _run_answer(dag_run: Any) -> dict[str, Any]:
    """A run as the start and cancel routes answer with it."""
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "state": _state(dag_run),
        "url": run_url(dag_run.dag_id, dag_run.run_id),
        "scheduled_for": scheduled_for(dag_run),
    }


def _state(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def scheduled_for(dag_run: Any) -> datetime | None:
    """When a request for later asked to start (its ``run_after``); None for a run requested to start
    at once. Airflow sets an immediate manual run's ``run_after`` to the moment it is triggered,
    before the row's ``created_at``; only a run asked for later has it after."""
    run_after, created = _utc(dag_run.run_after), _utc(dag_run.created_at)
    if dag_run.run_type != "manual" or run_after is None or created is None or run_after <= created:
        return None
    return run_after


def cancelled(dag_run: Any) -> bool:
    """A run that ended without ever starting: cancelled before it started (by
    :func:`cancel_request`, or marked failed in Airflow while it was queued)."""
    return _state(dag_run) == "failed" and dag_run.start_date is None


class NotCancellable(Conflict):
    """The request has started (or ended) already: too late to cancel it (409)."""


def cancel_request(dag_id: str, run_id: str, *, user_name: str, user_id: str | None = None) -> dict[str, Any]:
    """Cancel ``user_name``'s own request before it starts: the run must still be ``queued`` (a
    request for later waiting for its time, or one the scheduler has not started yet). It is marked
    ``failed`` with Airflow's own mark-as-failed (its steps ``skipped``, Airflow's listeners told)
    and a note saying who cancelled it. The queued → failed change is one conditional UPDATE, so a
    scheduler starting the run at the same moment and this cancellation cannot both win: whichever
    commits first decides (409 when the scheduler did). 404 for no such run, 403 for someone else's."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DagRunMutableStates
    from airflow.api_fastapi.core_api.services.public.dag_run import patch_dag_run_state
    from airflow.models import DagRun
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    with create_session() as session:
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dag_run is None:
            raise NotFound(f"workflow '{dag_id}' has no request {run_id!r}", field="run_id")
        if dag_run.triggering_user_name != user_name:
            raise Forbidden(
                f"request {run_id!r} of '{dag_id}' is not yours: only its requester may cancel it", field="run_id"
            )
        if _state(dag_run) != "queued":
            raise NotCancellable(_too_late(dag_run), field="run_id")
        claimed = session.execute(
            update(DagRun)
            .where(DagRun.id == dag_run.id, DagRun._state == "queued")
            .values({DagRun._state: "failed", DagRun.end_date: datetime.now(UTC)})
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:  # the scheduler started it between the read and the update
            raise NotCancellable(f"request {run_id!r} of '{dag_id}' has just started: too late to cancel it")
        session.refresh(dag_run)
        dag = DBDagBag().get_dag_for_run(dag_run, session=session)
        if dag is not None:  # the steps skipped and Airflow's listeners told, as Airflow's own "mark failed"
            patch_dag_run_state(dag=dag, dag_run=dag_run, state=DagRunMutableStates.FAILED, session=session)
        when = (scheduled_for(dag_run) or dag_run.run_after).replace(microsecond=0).isoformat()
        text = f"Cancelled by {user_name} before it started (it was to start at {when})."
        if dag_run.dag_run_note is None:
            dag_run.note = (text, user_id)
        else:  # the request's own note stays, under the cancellation (as Airflow's note route updates one)
            dag_run.dag_run_note.content = f"{text}\n\n{dag_run.dag_run_note.content or ''}".rstrip()
            dag_run.dag_run_note.user_id = user_id
        session.flush()
        return {**_run_answer(dag_run), "cancelled": True, "cancelled_by": user_name}


def _too_late(dag_run: Any) -> str:
    state = _state(dag_run)
    what = f"request {dag_run.run_id!r} of '{dag_run.dag_id}'"
    if cancelled(dag_run):
        return f"{what} is cancelled already"
    if state in ("success", "failed"):
        return f"{what} has ended ({state}): only a request that has not started can be cancelled"
    return f"{what} has started ({state}): only a request that has not started can be cancelled"


def _param_name(message: str) -> str:
    marker = "Invalid input for param "
    if marker in message:
        return message.split(marker, 1)[1].split(":", 1)[0]
    return ""


_RUNNING = {"running", "queued", "scheduled", "deferred", "up_for_retry", "up_for_reschedule", "restarting"}


def combined_state(states: list[str | None]) -> str | None:
    """One state for a step that is several task instances (a function call, a mapped task)."""
    if not states:
        return None
    distinct = set(states)
    if len(distinct) == 1:
        return states[0]
    if distinct & _RUNNING:
        return "running"
    for state in ("failed", "upstream_failed"):
        if state in distinct:
            return state
    if None in distinct:
        return "running" if distinct - {None} else None
    return "success" if "success" in distinct else sorted(s for s in distinct if s)[0]


def _step(step_id: str, title: str, tis: list[Any]) -> dict[str, Any]:
    starts = [ti["start_date"] for ti in tis if ti["start_date"] is not None]
    ends = [ti["end_date"] for ti in tis if ti["end_date"] is not None]
    state = combined_state([ti["state"] for ti in tis])
    done = state in ("success", "failed", "skipped", "upstream_failed", "removed")
    return {
        "id": step_id,
        "task_id": step_id,
        "title": title,
        "state": state,
        "start_date": min(starts) if starts else None,
        "end_date": max(ends) if ends and done else None,
    }


def run_steps(workflow: m.Workflow | None, tis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's progress by step: the factory's own first tasks, then the workflow's steps in
    order (a `use` step is its TaskGroup: one state for all its tasks)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append(ti)
    steps = [_step(task, title, by_task[task]) for task, title in INTERNAL_TASKS.items() if task in by_task]
    if workflow is None:
        return steps + [_step(t, t, group) for t, group in by_task.items() if t not in INTERNAL_TASKS]
    for step in workflow.steps:
        if step.use is not None:
            group = [ti for t, items in by_task.items() if t.startswith(step.id + ".") for ti in items]
        else:
            group = by_task.get(step.id, [])
        steps.append(_step(step.id, step.title or step.id, group))
    return steps


def request_extras(runs: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Extra keys for each request of a ``GET /requests`` page (merged into it), by (dag_id, run_id):
    what other features know about a run. ``approvals``: the run's approval and mid-flow form
    requests, pending and decided, with who decided what. ``tickets``: the numbers of the ServiceNow
    tickets its ticket steps opened or changed, in order (``ticket_links``: the same with their
    ``url`` and ``table``). One batch of queries per page, not per run."""

    found = Approvals().for_runs((r.dag_id, r.run_id) for r in runs)
    tickets = run_tickets(runs)
    return {
        key: {
            "approvals": [
                {
                    "id": request.id,
                    "kind": request.row.kind,
                    "step_id": request.hitl.step_id or request.row.task_id,
                    "subject": request.hitl.subject,
                    "state": request.row.state,
                    "slots": [{"label": s.label, **slot_state(request, i)} for i, s in enumerate(request.hitl.slots)],
                    "votes": [v.as_dict() for v in request.votes],
                }
                for request in requests
            ],
            "tickets": [t["number"] for t in tickets.get(key, [])],
            "ticket_links": tickets.get(key, []),
        }
        for key, requests in found.items()
    }


def run_tickets(runs: list[Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The tickets each run's ticket steps touched (``{number, url, table}``, first seen first, once
    each), from the XCom every ticket step pushes (``TICKET_XCOM_KEY``) — one query for all the runs."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    by_id = {r.id: (r.dag_id, r.run_id) for r in runs if getattr(r, "id", None) is not None}
    if not by_id:
        return {}
    found: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    with create_session() as session:
        rows = session.scalars(
            select(XComModel)
            .where(XComModel.key == TICKET_XCOM_KEY, XComModel.dag_run_id.in_(list(by_id)))
            .order_by(XComModel.timestamp, XComModel.task_id)
        ).all()
        for row in rows:
            value = XComModel.deserialize_value(row)
            if not isinstance(value, dict) or not value.get("number"):
                continue
            tickets = found.setdefault(by_id[row.dag_run_id], {})
            tickets.setdefault(
                str(value["number"]),
                {"number": str(value["number"]), "url": value.get("url"), "table": value.get("table")},
            )
    return {key: list(tickets.values()) for key, tickets in found.items()}


def list_requests(
    project: Any,
    *,
    user_name: str | None,
    may_read: Any,
    caller: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Runs of the project's workflows, newest first: ``user_name``'s only, or everybody's when
    ``None``; only of DAGs for which ``may_read(dag_id)`` is true. Returns (page, total). Each says
    when it was asked to start (``scheduled_for``, requests for later), when it started, whether it
    was cancelled before it started and whether ``caller`` may still cancel it (their own, queued)."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    loaded = {w.id: w for w in workflows(project)}
    dag_ids = [d for d in sorted(set(project.ids("Workflow"))) if may_read(d)]
    if not dag_ids:
        return [], 0
    where = [DagRun.dag_id.in_(dag_ids)]
    if user_name is not None:
        where.append(DagRun.triggering_user_name == user_name)
    with create_session() as session:
        total = session.scalar(select(func.count()).select_from(DagRun).where(*where)) or 0
        runs = list(
            session.scalars(
                select(DagRun)
                .where(*where)
                .order_by(DagRun.created_at.desc(), DagRun.id.desc())
                .offset(offset)
                .limit(limit)
            )
        )
        rows = (
            session.execute(
                select(
                    TaskInstance.dag_id,
                    TaskInstance.run_id,
                    TaskInstance.task_id,
                    TaskInstance.state,
                    TaskInstance.start_date,
                    TaskInstance.end_date,
                ).where(
                    TaskInstance.dag_id.in_({r.dag_id for r in runs}),
                    TaskInstance.run_id.in_({r.run_id for r in runs}),
                )
            ).all()
            if runs
            else []
        )
        tis: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            state = getattr(row.state, "value", row.state)
            tis.setdefault((row.dag_id, row.run_id), []).append(
                {"task_id": row.task_id, "state": state, "start_date": row.start_date, "end_date": row.end_date}
            )
        extras = request_extras(runs)
        page = []
        for run in runs:
            workflow = loaded.get(run.dag_id)
            page.append(
                {
                    "dag_id": run.dag_id,
                    "run_id": run.run_id,
                    "title": (workflow.title or workflow.id) if workflow else run.dag_id,
                    "state": _state(run),
                    "requester": run.triggering_user_name,
                    "created_at": run.created_at or run.queued_at or run.run_after,
                    "scheduled_for": scheduled_for(run),
                    "start_date": run.start_date,
                    "cancelled": cancelled(run),
                    "cancellable": caller is not None
                    and run.triggering_user_name == caller
                    and _state(run) == "queued",
                    "form": dict(run.conf or {}),
                    "steps": run_steps(workflow, tis.get((run.dag_id, run.run_id), [])),
                    "url": run_url(run.dag_id, run.run_id),
                    **extras[(run.dag_id, run.run_id)],
                }
            )
    return page, total
