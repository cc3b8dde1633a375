"""The recorded approvals and form requests (``autopilot_approval`` and its votes, events and links):
how a parked HITL request of an Autopilot step becomes a record, with the rules of the DAG version
its run started with, and how records are read back. API server only.

:class:`ApprovalRecords` is the base of the approvals service
(:class:`autopilot_provider.server.approvals.Approvals`, which adds votes and answers); the sweep
(:mod:`autopilot_provider.server.approval_sweep`) and the messages
(:mod:`autopilot_provider.server.approval_messages`) use it too.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from autopilot_provider import config
from autopilot_provider.repository.contacts import ContactError
from autopilot_provider.repository.hitl import (
    APPROVE,
    AUTOPILOT_USER_ID,
    BACKSTOP,
    REJECT,
    REQUEST_XCOM_KEY,
    RULES_FIELD,
    HitlRequest,
    HitlRules,
    load_request,
    resolve_slots,
)
from autopilot_provider.repository.quorum import PENDING, Vote
from autopilot_provider.server.approval_links import issue_link, link_key, unsign
from autopilot_provider.server.errors import Forbidden, Gone, NotFound
from autopilot_provider.server.tables import approval_event_table, approval_table, link_table, vote_table

log = logging.getLogger(__name__)

A, V, L, E = approval_table, vote_table, link_table, approval_event_table


def now_utc() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """A database timestamp as an aware UTC datetime (SQLite returns naive ones)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def as_uuid(value: str) -> uuid.UUID:
    """A task instance id as Airflow's tables key it (Autopilot's tables keep it as text)."""
    return uuid.UUID(str(value))


@dataclass
class ApprovalRecord:
    """One row of ``autopilot_approval`` with its request and votes."""

    row: Any
    hitl: HitlRequest
    votes: list[Vote]

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def escalated(self) -> bool:
        return self.row.escalated_at is not None


class ApprovalRecords:
    """Reading and recording requests. Each public method runs in one database transaction (a session
    of Airflow's ORM, so Autopilot's rows and Airflow's HITL/TI rows commit together)."""

    def __init__(self, session_factory=None, *, now=now_utc):
        if session_factory is None:
            from airflow.utils.session import create_session

            session_factory = create_session
        self._session = session_factory
        self._now = now

    # -- reading ------------------------------------------------------------------------------

    def _load(self, session, approval_id: str, *, lock: bool = False) -> ApprovalRecord:
        if lock:
            # Bump the revision first: a row lock on PostgreSQL, the write lock on SQLite, so votes on
            # one request are applied one after another.
            bumped = session.execute(update(A).where(A.c.id == approval_id).values(revision=A.c.revision + 1))
            if bumped.rowcount == 0:
                raise NotFound(f"no approval or form request '{approval_id}'", field="id")
        row = session.execute(select(A).where(A.c.id == approval_id)).first()
        if row is None:
            raise NotFound(f"no approval or form request '{approval_id}'", field="id")
        return ApprovalRecord(row, load_request(row.spec), self._votes(session, [approval_id]).get(approval_id, []))

    def _votes(self, session, ids: list[str]) -> dict[str, list[Vote]]:
        found: dict[str, list[Vote]] = {}
        if not ids:
            return found
        for r in session.execute(select(V).where(V.c.approval_id.in_(ids)).order_by(V.c.created_at)):
            found.setdefault(r.approval_id, []).append(
                Vote(
                    r.username,
                    r.slot,
                    r.slot_label,
                    r.decision,
                    r.comment,
                    aware(r.created_at),
                    r.via,
                    json.loads(r.answer) if r.answer else None,
                )
            )
        return found

    def get(self, approval_id: str) -> ApprovalRecord:
        with self._session() as session:
            return self._load(session, approval_id)

    def list(self, *, state: str | None = None, dag_ids: Iterable[str] | None = None) -> list[ApprovalRecord]:
        """Requests newest first; ``state`` ``pending``, ``decided`` (any final state) or None (all)."""
        with self._session() as session:
            query = select(A).order_by(A.c.created_at.desc())
            if state == "decided":
                query = query.where(A.c.state != PENDING)
            elif state:
                query = query.where(A.c.state == state)
            if dag_ids is not None:
                query = query.where(A.c.dag_id.in_(list(dag_ids)))
            rows = list(session.execute(query))
            votes = self._votes(session, [r.id for r in rows])
            return [ApprovalRecord(r, load_request(r.spec), votes.get(r.id, [])) for r in rows]

    def for_runs(self, runs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[ApprovalRecord]]:
        """The requests of each (dag_id, run_id), oldest first: two queries for a whole page of runs."""
        wanted = set(runs)
        found: dict[tuple[str, str], list[ApprovalRecord]] = {run: [] for run in wanted}
        if not wanted:
            return found
        with self._session() as session:
            rows = [
                r
                for r in session.execute(
                    select(A)
                    .where(A.c.dag_id.in_({d for d, _ in wanted}), A.c.run_id.in_({r for _, r in wanted}))
                    .order_by(A.c.created_at)
                )
                if (r.dag_id, r.run_id) in wanted
            ]
            votes = self._votes(session, [r.id for r in rows])
        for r in rows:
            found[(r.dag_id, r.run_id)].append(ApprovalRecord(r, load_request(r.spec), votes.get(r.id, [])))
        return found

    def history(self, username: str) -> list[tuple[ApprovalRecord, Vote]]:
        with self._session() as session:
            ids = [r.approval_id for r in session.execute(select(V.c.approval_id).where(V.c.username == username))]
            rows = {r.id: r for r in session.execute(select(A).where(A.c.id.in_(ids)))} if ids else {}
            votes = self._votes(session, ids)
        result = []
        for approval_id, row in rows.items():
            record = ApprovalRecord(row, load_request(row.spec), votes.get(approval_id, []))
            result += [(record, v) for v in record.votes if v.username == username]
        return sorted(result, key=lambda pair: pair[1].at, reverse=True)

    def events(self, approval_id: str) -> list[dict[str, Any]]:
        with self._session() as session:
            rows = session.execute(select(E).where(E.c.approval_id == approval_id).order_by(E.c.id))
            return [
                {"event": r.event, "detail": json.loads(r.detail) if r.detail else None, "at": aware(r.created_at)}
                for r in rows
            ]

    def _event(self, session, approval_id: str, event: str, detail: Any = None) -> None:
        session.execute(
            insert(E).values(
                approval_id=approval_id,
                event=event,
                detail=json.dumps(detail, default=str) if detail is not None else None,
                created_at=self._now(),
            )
        )

    # -- links ----------------------------------------------------------------------------------

    def issue_link(self, session, record: ApprovalRecord, recipient: str, expires_at: datetime) -> str:
        return issue_link(session, record.id, recipient, created_at=self._now(), expires_at=expires_at)

    def check_link(self, token: str, username: str | None = None) -> ApprovalRecord:
        """The request a link is for, if the link is genuine, unexpired and unused (else 410) and —
        given ``username`` — was sent to that user (else 403: a forwarded link votes for nobody)."""
        with self._session() as session:
            payload = unsign(link_key(session), token)
            link = session.execute(select(L).where(L.c.jti == str(payload.get("j")))).first()
            if link is None or link.approval_id != payload.get("a"):
                raise Gone("this link is not valid", field="token")
            if link.used_at is not None:
                raise Gone("this link has already been used", field="token")
            if aware(link.expires_at) <= self._now():
                raise Gone("this link has expired", field="token")
            if username is not None and link.recipient != username:
                raise Forbidden(
                    f"this link was sent to someone else ({link.recipient}): sign in as them, or answer "
                    "in the Autopilot inbox",
                    field="token",
                )
            return self._load(session, link.approval_id)

    # -- discovering new requests ----------------------------------------------------------------

    # When this process last synced (time.monotonic()): readers sync only when that is older than
    # a second, so a busy inbox does not rescan every pending HITL row on each request.
    _synced_at = float("-inf")

    def sync_if_stale(self, max_age: float = 1.0) -> None:
        """``sync()`` unless this process synced less than ``max_age`` seconds ago (the inbox calls
        it on each read so that a request shows as soon as its task parks, sweep or not)."""
        if time.monotonic() - ApprovalRecords._synced_at >= max_age:
            self.sync()

    def sync(self) -> list[str]:
        """Record the HITL requests of Autopilot steps that are not recorded yet and close requests
        whose task moved on without an answer; returns the ids of the new ones. (The sweep asks
        their people; listing requests syncs too, so the inbox never lags behind the sweep.)"""
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance as TI

        ApprovalRecords._synced_at = time.monotonic()
        created: list[str] = []
        with self._session() as session:
            rows = session.execute(
                select(
                    HITLDetail.ti_id,
                    HITLDetail.assignees,
                    HITLDetail.created_at,
                    TI.dag_id,
                    TI.run_id,
                    TI.task_id,
                    TI.map_index,
                    TI.try_number,
                    TI.state,
                )
                .join(TI, TI.id == HITLDetail.ti_id)
                .where(HITLDetail.responded_at.is_(None))
            ).all()
            known = set(session.scalars(select(A.c.id).where(A.c.state == PENDING)))
            candidates = [
                r
                for r in rows
                if any(a.get("id") == AUTOPILOT_USER_ID for a in (r.assignees or []))
                and f"{r.ti_id}.{r.try_number}" not in known
                and str(getattr(r.state, "value", r.state)) in ("awaiting_input", "deferred")
            ]
        for r in candidates:
            approval_id = f"{r.ti_id}.{r.try_number}"
            try:
                if self._record(approval_id, r):
                    created.append(approval_id)
            except IntegrityError:  # another API server worker recorded it first
                continue
            except ContactError:
                # the approvers of the run's own version cannot be resolved any more (a contact was
                # removed): nobody is asked rather than the wrong people; Airflow's backstop ends it
                log.exception("%s %s %s: cannot resolve the run's approvers", r.dag_id, r.run_id, r.task_id)
                continue
            except (ValueError, ValidationError):
                # a request this release cannot read (a newer one wrote it): nobody is asked
                log.exception("%s %s %s: cannot read the step's request", r.dag_id, r.run_id, r.task_id)
                continue
        self._close_orphans()
        return created

    def _record(self, approval_id: str, r: Any) -> bool:
        from airflow.models.xcom import XComModel

        with self._session() as session:
            if session.execute(select(A.c.id).where(A.c.id == approval_id)).first() is not None:
                return False
            xcom = session.scalars(
                XComModel.get_many(
                    run_id=r.run_id,
                    key=REQUEST_XCOM_KEY,
                    dag_ids=r.dag_id,
                    task_ids=r.task_id,
                    map_indexes=r.map_index,
                    limit=1,
                )
            ).first()
            if xcom is None:
                return False  # the task writes its description before the HITL row; try again next sweep
            hitl, pinned = self._pin_rules(session, r, load_request(XComModel.deserialize_value(xcom)))
            now = self._now()
            timeout, remind = hitl.timeout_seconds, hitl.remind_every_seconds
            session.execute(
                insert(A).values(
                    id=approval_id,
                    ti_id=str(r.ti_id),
                    try_number=r.try_number,
                    kind=hitl.kind,
                    dag_id=r.dag_id,
                    run_id=r.run_id,
                    task_id=r.task_id,
                    map_index=r.map_index,
                    requester=hitl.requester.username,
                    state=PENDING,
                    spec=json.dumps(hitl.as_dict()),
                    created_at=now,
                    deadline=now + timedelta(seconds=timeout) if timeout else None,
                    next_reminder_at=now + timedelta(seconds=remind) if remind else None,
                    revision=0,
                )
            )
            self._event(session, approval_id, "created", {"slots": [s.label for s in hitl.slots]})
            self._event(session, approval_id, pinned.pop("event"), pinned)
        return True

    def _pin_rules(self, session, r: Any, sent: HitlRequest) -> tuple[HitlRequest, dict[str, Any]]:
        """The request's rules as the DAG version the run started with has them — not as the task
        (which parses the definition when it starts, so it sees edits made since) sent them.

        Scalar rules (quorum, exclude_requester, timeout, …) are taken from that version; when the
        approvers (``from``/``escalate_to``) differ, they are resolved here from that version's
        references. Returns the request and the event to record (``rules_pinned``, ``rules_changed``
        or ``rules_unpinned`` when the run has no serialized DAG version)."""
        rules, owner = _run_rules(session, r.dag_id, r.run_id, r.task_id)
        if rules is None:
            log.warning("%s %s: no DAG version for the run; using the rules the task sent", r.dag_id, r.run_id)
            return sent, {"event": "rules_unpinned"}
        as_sent = sent.as_dict()
        settings = rules.settings()
        changed = sorted(k for k, v in settings.items() if as_sent.get(k) != v)
        pinned = HitlRequest.model_validate({**as_sent, **settings})
        refs = {"from": ([s.ref for s in sent.slots], rules.from_)}
        if rules.escalate_to is not None:
            refs["escalate_to"] = ([s.ref for s in sent.escalate_to], rules.escalate_to)
        moved = [k for k, (refs_sent, refs_kept) in refs.items() if refs_sent != refs_kept]
        if moved:
            run = {"requester": _triggering_user(session, r.dag_id, r.run_id), "owner": owner}
            scope = {"run": run, "form": sent.request}
            folder = config.definitions_dir()
            if "from" in moved:
                pinned.slots = resolve_slots(rules.from_, scope, folder)
            if "escalate_to" in moved:
                pinned.escalate_to = resolve_slots(rules.escalate_to or [], scope, folder)
            changed += moved
        if changed:
            _align_backstop(session, r, pinned)
            log.warning(
                "%s %s %s: the definition changed since the run started (%s); the run keeps its own rules",
                r.dag_id,
                r.run_id,
                r.task_id,
                ", ".join(changed),
            )
            return pinned, {"event": "rules_changed", "kept": changed}
        return pinned, {"event": "rules_pinned"}

    def _close_orphans(self) -> None:
        """Pending requests whose task is no longer waiting (cleared, marked by hand, timed out by
        Airflow's own sweep) are closed, so nobody is asked to vote on them any more."""
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance as TI

        with self._session() as session:
            pending = list(session.execute(select(A.c.id, A.c.ti_id, A.c.try_number).where(A.c.state == PENDING)))
            if not pending:
                return
            live = {
                str(r.id): r
                for r in session.execute(
                    select(TI.id, TI.try_number, TI.state, HITLDetail.responded_at)
                    .outerjoin(HITLDetail, HITLDetail.ti_id == TI.id)
                    .where(TI.id.in_([as_uuid(p.ti_id) for p in pending]))
                )
            }
            for approval_id, ti_id, try_number in pending:
                r = live.get(str(as_uuid(ti_id)))
                state = str(getattr(r.state, "value", r.state)) if r is not None else None
                waiting = r is not None and r.try_number == try_number and state in ("awaiting_input", "deferred")
                if waiting and r.responded_at is None:
                    continue
                claimed = session.execute(
                    update(A)
                    .where(A.c.id == approval_id, A.c.state == PENDING)
                    .values(state="closed", decided_at=self._now())
                )
                if claimed.rowcount:
                    self._event(session, approval_id, "closed", {"task_state": state})


def _run_rules(session, dag_id: str, run_id: str, task_id: str) -> tuple[HitlRules | None, str | None]:
    """A step's rules in the serialized DAG of the version the run was created with (Airflow keeps a
    DagVersion per change of the serialized DAG once a run used it; ``dag_run.created_dag_version_id``
    names the run's), and the task's Airflow ``owner`` there (the workflow's owner as written: what
    the contact reference ``owner`` reaches). None when the run has no version, or the task carries
    no rules."""
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel

    version_id = session.scalar(
        select(DagRun.created_dag_version_id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    )
    if version_id is None:
        return None, None
    serialized = session.scalar(select(SerializedDagModel).where(SerializedDagModel.dag_version_id == version_id))
    if serialized is None:
        return None, None
    for task in serialized.data["dag"]["tasks"]:
        fields = task.get("__var", task)
        if fields.get("task_id") == task_id and isinstance(fields.get(RULES_FIELD), str):
            return HitlRules.model_validate_json(fields[RULES_FIELD]), fields.get("owner")
    return None, None


def _align_backstop(session, r: Any, hitl: HitlRequest) -> None:
    """Airflow's own timeout of the waiting task (``trigger_timeout``, then the HITL ``defaults``
    applied by the scheduler) as the run's own rules set it — not as the task, which parsed an edited
    definition, did: else an edit to `timeout`/`on_timeout` would still decide an in-flight run."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI

    timeout = hitl.timeout_seconds
    key = as_uuid(r.ti_id)
    created = aware(r.created_at) or now_utc()
    if hitl.kind == "approval":
        windows = 2 if hitl.on_timeout == "escalate" else 1
        deadline = created + timedelta(seconds=timeout * windows) + BACKSTOP if timeout else None
        defaults = [APPROVE if hitl.on_timeout == "approve" else REJECT] if timeout else None
        session.execute(update(HITLDetail).where(HITLDetail.ti_id == key).values(defaults=defaults))
    else:
        deadline = created + timedelta(seconds=timeout) if timeout else None
    session.execute(update(TI).where(TI.id == key).values(trigger_timeout=deadline))


def _triggering_user(session, dag_id: str, run_id: str) -> str | None:
    from airflow.models.dagrun import DagRun

    return session.scalar(select(DagRun.triggering_user_name).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
