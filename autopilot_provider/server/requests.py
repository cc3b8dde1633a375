"""Requests: starting the run a form asks for (as the calling user), and listing requests with their
steps, approvals and tickets — what the plugin's portal serves."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

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


def start_run(
    workflow: m.Workflow,
    conf: dict[str, Any],
    *,
    user_name: str,
    user_id: str | None = None,
    note: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Create a manual run of the workflow's DAG with ``conf`` (validated values), triggered by
    ``user_name`` — Airflow's own ``trigger_dag``, as the REST API's trigger endpoint does it. The
    scheduler picks it up like any other run. Raises :class:`RunNotPossible` when the DAG is not
    parsed yet or has import errors.

    With ``run_id`` the start is idempotent: when that run exists already (a repeat, or a concurrent
    request that won the race) it is returned with ``created: False`` and nothing is started; when it
    exists with other values, :class:`IdempotencyConflict` (409)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists, ParamValidationError
    from airflow.models import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy.exc import IntegrityError

    dag_id = workflow.id
    # A repeated run id needs no look-up of its own: trigger_dag looks for it (DagRun.find_duplicate)
    # and raises DagRunAlreadyExists, answered below with the run that exists — one transaction per
    # start, as Airflow's own POST dagRuns.
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
            return {
                "dag_id": dag_id,
                "run_id": dag_run.run_id,
                "state": str(getattr(dag_run.state, "value", dag_run.state)),
                "url": run_url(dag_id, dag_run.run_id),
                "created": True,
            }
    except (DagRunAlreadyExists, IntegrityError):
        if run_id is None:
            raise
        # a concurrent request with the same run id inserted it first: answer with that run
        existing = _existing_run(dag_id, run_id, conf)
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


def _existing_run(dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any] | None:
    """The run ``run_id`` of ``dag_id`` as :func:`start_run` returns it (``created: False``), None
    when there is none; :class:`IdempotencyConflict` when it was started with other values."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dag_run is None:
            return None
        found = {
            "dag_id": dag_id,
            "run_id": dag_run.run_id,
            "state": str(getattr(dag_run.state, "value", dag_run.state)),
            "url": run_url(dag_id, dag_run.run_id),
            "created": False,
        }
        if (dag_run.conf or {}) != (conf or {}):
            raise IdempotencyConflict(
                f"this request repeats the idempotency key of run {run_id!r} of '{dag_id}' with other values; "
                "use a new key for a new request",
                field="Idempotency-Key",
                run=found,
            )
        return found


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
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Runs of the project's workflows, newest first: ``user_name``'s only, or everybody's when
    ``None``; only of DAGs for which ``may_read(dag_id)`` is true. Returns (page, total)."""
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
                    "state": str(getattr(run.state, "value", run.state)),
                    "requester": run.triggering_user_name,
                    "created_at": run.created_at or run.queued_at or run.run_after,
                    "form": dict(run.conf or {}),
                    "steps": run_steps(workflow, tis.get((run.dag_id, run.run_id), [])),
                    "url": run_url(run.dag_id, run.run_id),
                    **extras[(run.dag_id, run.run_id)],
                }
            )
    return page, total
