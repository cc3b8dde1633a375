"""Approvals and mid-flow forms on the API server: the quorum, the vote trail, signed links,
reminders, escalation and timeouts.

The task side (``autopilot_provider.operators.human``) parks an Airflow HITL request assigned to
Autopilot and describes it in the XCom ``autopilot_request``. Everything here runs where the metadata
database is reachable — the API server (the plugin's routes and its background sweep) — never on a
worker:

* :meth:`Approvals.sync` finds new HITL requests of Autopilot steps and records them
  (``autopilot_approval``) with the rules of the DAG version the run started with (not those of a
  definition edited since), then asks the approvers (e-mail/Slack with signed links);
* :meth:`Approvals.vote` / :meth:`Approvals.respond` record a vote or a form answer after checking
  who may vote (group membership, the requester rule — never on their own request unless
  ``[autopilot] allow_self_approval`` — one vote per person, the slot still open);
* once the quorum decides, the same database transaction answers the HITL request as Autopilot and
  moves the task instance back to ``scheduled`` — exactly what Airflow's own HITL PATCH does — so the
  vote, the outcome and the resume commit together or not at all;
* :meth:`Approvals.sweep` (every few seconds, from the API server) sends reminders, escalates and
  applies timeouts. Every change claims its row first (a conditional UPDATE), so several API server
  workers never send the same mail twice.

A vote trail is never rewritten: votes have one row per (request, person) and events are append-only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from autopilot_provider.definitions.bounded import linear_time
from autopilot_provider.definitions.templating import slack_escape, text_to_html
from autopilot_provider.notifications.autopilot import Message, post_slack, send_email
from autopilot_provider.operators.guard import SEAL_KEY, b64, seal_payload
from autopilot_provider.operators.human import (
    APPROVE,
    AUTOPILOT_USER,
    AUTOPILOT_USER_ID,
    BACKSTOP,
    REJECT,
    REQUEST_XCOM_KEY,
    RULES_FIELD,
    SUBMIT,
    resolve_slots,
    self_approval_allowed,
)
from autopilot_provider.repository.contacts import ContactError
from autopilot_provider.server.errors import Conflict, Forbidden, Gone, NotFound, Refused, Unprocessable
from autopilot_provider.server.store import definitions_root
from autopilot_provider.server.tables import approval_event_table, approval_table, link_table, setting_table, vote_table

log = logging.getLogger(__name__)

A, V, L, E = approval_table, vote_table, link_table, approval_event_table

PENDING = "pending"
DECIDED = ("approved", "rejected", "timed_out", "answered")
STATES = (PENDING, *DECIDED, "closed")
ESCALATION_SLOT = -1
DEFAULT_LINK_TTL = timedelta(days=7)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# ---------------------------------------------------------------------------------------------
# The quorum (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vote:
    username: str
    slot: int
    slot_label: str
    decision: str
    comment: str | None
    at: datetime
    via: str
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


def tally(spec: Mapping[str, Any], votes: Iterable[Vote]) -> str | None:
    """``approved``, ``rejected`` or None (still open). An escalation contact's vote decides alone;
    otherwise approved once the quorum approves, rejected once it no longer can."""
    decided = slot_decisions(votes)
    if ESCALATION_SLOT in decided:
        return "approved" if decided[ESCALATION_SLOT].decision == "approve" else "rejected"
    slots = len(spec["slots"])
    approvals = sum(1 for slot, vote in decided.items() if slot >= 0 and vote.decision == "approve")
    still_open = slots - sum(1 for slot in decided if slot >= 0)
    need = needed(spec.get("quorum", "all"), slots)
    if approvals >= need:
        return "approved"
    if approvals + still_open < need:
        return "rejected"
    return None


def members(slot: Mapping[str, Any]) -> set[str]:
    return {m["username"] for m in slot.get("members", []) if m.get("username")}


def is_requester(spec: Mapping[str, Any], username: str) -> bool:
    return bool(username) and (spec.get("requester") or {}).get("username") == username


def requester_may_approve(spec: Mapping[str, Any]) -> bool:
    """Whether the requester counts as an approver of this request: never, unless the workflow says
    ``exclude_requester: false`` *and* the deployment allows it (``[autopilot] allow_self_approval``)."""
    return spec.get("exclude_requester", True) is False and self_approval_allowed()


def entitled_slots(spec: Mapping[str, Any], username: str, escalated: bool) -> list[int]:
    """The slots ``username`` may decide: groups they belong to, themselves as a person; after an
    escalation, the escalation contacts too."""
    slots = [i for i, slot in enumerate(spec["slots"]) if username in members(slot)]
    if escalated and any(username in members(slot) for slot in spec.get("escalate_to", [])):
        slots.append(ESCALATION_SLOT)
    return slots


# ---------------------------------------------------------------------------------------------
# Signed, expiring, single-use links
# ---------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: Mapping[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def unsign(key: bytes, token: str) -> dict[str, Any]:
    """The payload of a token signed with ``key``; Gone (410) for anything forged or malformed."""
    try:
        body, mac = token.split(".", 1)
        expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            raise ValueError("bad signature")
        payload = json.loads(_unb64(body))
        if not isinstance(payload, dict):
            raise ValueError("not an object")
        return payload
    except (ValueError, TypeError, json.JSONDecodeError):
        raise Gone("this link is not valid", field="token") from None


# ---------------------------------------------------------------------------------------------
# Signed decisions (checked by the steps an approval guards: autopilot_provider.operators.guard)
# ---------------------------------------------------------------------------------------------

APPROVAL_KEY_SETTING = "approval_signing_key"


def approval_signing_key(session) -> Any:
    """The Ed25519 key that signs approval decisions: made once by ``autopilot db migrate``, kept in
    ``autopilot_setting`` (the metadata database, which workers cannot reach), never sent anywhere."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    value = session.scalar(select(setting_table.c.value).where(setting_table.c.name == APPROVAL_KEY_SETTING))
    if value is None:
        raise Refused("the Autopilot tables are not migrated: run `autopilot db migrate`")
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(value))


def approval_public_key(session_factory=None) -> bytes:
    """The raw public half of :func:`approval_signing_key` (what workers verify with)."""
    from cryptography.hazmat.primitives import serialization

    if session_factory is None:
        from airflow.utils.session import create_session as session_factory
    with session_factory() as session:
        key = approval_signing_key(session)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _seal(session, row: Any, outcome: str, approved: bool, decided_at: datetime) -> dict[str, Any]:
    """The signed decision the approval task receives with its answer and keeps in its outputs."""
    at = decided_at.isoformat()
    payload = seal_payload(
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        outcome=outcome,
        approved=approved,
        decided_at=at,
    )
    signature = approval_signing_key(session).sign(payload)
    return {"outcome": outcome, "approved": approved, "decided_at": at, "signature": b64(signature)}


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def _conf(key: str, default: str) -> str:
    from airflow.configuration import conf

    return conf.get("autopilot", key, fallback=None) or default


def base_url() -> str:
    """Where people reach Airflow (the links in mails): ``[api] base_url``, else this machine's API
    server port on localhost (right for `make run`; set ``base_url`` anywhere people are elsewhere)."""
    from airflow.configuration import conf

    configured = conf.get("api", "base_url", fallback=None)
    return (configured or f"http://localhost:{conf.get('api', 'port', fallback='8080')}").rstrip("/")


def sweep_interval() -> float:
    return float(_conf("approval_sweep_seconds", "5"))


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------


@dataclass
class Request:
    """One row of ``autopilot_approval`` with its decoded description, votes and events."""

    row: Any
    spec: dict[str, Any]
    votes: list[Vote]

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def escalated(self) -> bool:
        return self.row.escalated_at is not None


_DECIDED_AS = {"approve": "approved", "reject": "rejected", "answer": "answered"}


def slot_state(request: Request, slot: int) -> dict[str, Any]:
    """``{"state": open|approved|rejected|answered, "decided_by": user or None}`` of one slot."""
    vote = slot_decisions(request.votes).get(slot)
    if vote is None:
        return {"state": "open", "decided_by": None}
    return {"state": _DECIDED_AS[vote.decision], "decided_by": vote.username}


class Approvals:
    """The approvals service. Each public method runs in one database transaction (a session of
    Airflow's ORM, so Autopilot's rows and Airflow's HITL/TI rows commit together)."""

    def __init__(self, session_factory=None, *, now=_now):
        if session_factory is None:
            from airflow.utils.session import create_session

            session_factory = create_session
        self._session = session_factory
        self._now = now

    # -- reading ------------------------------------------------------------------------------

    def _load(self, session, approval_id: str, *, lock: bool = False) -> Request:
        if lock:
            # Bump the revision first: a row lock on PostgreSQL, the write lock on SQLite, so votes on
            # one request are applied one after another.
            bumped = session.execute(update(A).where(A.c.id == approval_id).values(revision=A.c.revision + 1))
            if bumped.rowcount == 0:
                raise NotFound(f"no approval or form request '{approval_id}'", field="id")
        row = session.execute(select(A).where(A.c.id == approval_id)).first()
        if row is None:
            raise NotFound(f"no approval or form request '{approval_id}'", field="id")
        return Request(row, json.loads(row.spec), self._votes(session, [approval_id]).get(approval_id, []))

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
                    _aware(r.created_at),
                    r.via,
                    json.loads(r.answer) if r.answer else None,
                )
            )
        return found

    def get(self, approval_id: str) -> Request:
        with self._session() as session:
            return self._load(session, approval_id)

    def list(self, *, state: str | None = None, dag_ids: Iterable[str] | None = None) -> list[Request]:
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
            return [Request(r, json.loads(r.spec), votes.get(r.id, [])) for r in rows]

    def for_runs(self, runs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[Request]]:
        """The requests of each (dag_id, run_id), oldest first: two queries for a whole page of runs."""
        wanted = set(runs)
        found: dict[tuple[str, str], list[Request]] = {run: [] for run in wanted}
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
            found[(r.dag_id, r.run_id)].append(Request(r, json.loads(r.spec), votes.get(r.id, [])))
        return found

    def history(self, username: str) -> list[tuple[Request, Vote]]:
        with self._session() as session:
            ids = [r.approval_id for r in session.execute(select(V.c.approval_id).where(V.c.username == username))]
            rows = {r.id: r for r in session.execute(select(A).where(A.c.id.in_(ids)))} if ids else {}
            votes = self._votes(session, ids)
        result = []
        for approval_id, row in rows.items():
            request = Request(row, json.loads(row.spec), votes.get(approval_id, []))
            result += [(request, v) for v in request.votes if v.username == username]
        return sorted(result, key=lambda pair: pair[1].at, reverse=True)

    def events(self, approval_id: str) -> list[dict[str, Any]]:
        with self._session() as session:
            rows = session.execute(select(E).where(E.c.approval_id == approval_id).order_by(E.c.id))
            return [
                {"event": r.event, "detail": json.loads(r.detail) if r.detail else None, "at": _aware(r.created_at)}
                for r in rows
            ]

    # -- discovering new requests ----------------------------------------------------------------

    # When this process last synced (time.monotonic()): readers sync only when that is older than
    # a second, so a busy inbox does not rescan every pending HITL row on each request.
    _synced_at = float("-inf")

    def sync_if_stale(self, max_age: float = 1.0) -> None:
        """``sync()`` unless this process synced less than ``max_age`` seconds ago (the inbox calls
        it on each read so that a request shows as soon as its task parks, sweep or not)."""
        if time.monotonic() - Approvals._synced_at >= max_age:
            self.sync()

    def sync(self) -> list[str]:
        """Record the HITL requests of Autopilot steps that are not recorded yet and close requests
        whose task moved on without an answer; returns the ids of the new ones. (The sweep asks
        their people; listing requests syncs too, so the inbox never lags behind the sweep.)"""
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance as TI

        Approvals._synced_at = time.monotonic()
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
            spec, pinned = self._pin_rules(session, r, XComModel.deserialize_value(xcom))
            now = self._now()
            timeout = spec.get("timeout_seconds")
            remind = spec.get("remind_every_seconds")
            session.execute(
                insert(A).values(
                    id=approval_id,
                    ti_id=str(r.ti_id),
                    try_number=r.try_number,
                    kind=spec.get("kind", "approval"),
                    dag_id=r.dag_id,
                    run_id=r.run_id,
                    task_id=r.task_id,
                    map_index=r.map_index,
                    requester=(spec.get("requester") or {}).get("username"),
                    state=PENDING,
                    spec=json.dumps(spec, default=str),
                    created_at=now,
                    deadline=now + timedelta(seconds=timeout) if timeout else None,
                    next_reminder_at=now + timedelta(seconds=remind) if remind else None,
                    revision=0,
                )
            )
            self._event(session, approval_id, "created", {"slots": [s["label"] for s in spec.get("slots", [])]})
            self._event(session, approval_id, pinned.pop("event"), pinned)
        return True

    def _pin_rules(self, session, r: Any, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The request's rules as the DAG version the run started with has them — not as the task
        (which parses the definition when it starts, so it sees edits made since) sent them.

        Scalar rules (quorum, exclude_requester, timeout, …) are taken from that version; when the
        approvers (``from``/``escalate_to``) differ, they are resolved here from that version's
        references. Returns the spec and the event to record (``rules_pinned``, ``rules_changed`` or
        ``rules_unpinned`` when the run has no serialized DAG version)."""
        rules = _run_rules(session, r.dag_id, r.run_id, r.task_id)
        if rules is None:
            log.warning("%s %s: no DAG version for the run; using the rules the task sent", r.dag_id, r.run_id)
            return spec, {"event": "rules_unpinned"}
        pinned = dict(spec)
        changed = sorted(k for k in rules if k not in ("from", "escalate_to") and spec.get(k) != rules[k])
        pinned.update({k: v for k, v in rules.items() if k not in ("from", "escalate_to")})
        refs = {"from": [s["ref"] for s in spec.get("slots", [])]}
        if "escalate_to" in rules:
            refs["escalate_to"] = [s["ref"] for s in spec.get("escalate_to", [])]
        moved = [k for k, sent in refs.items() if sent != list(rules.get(k) or [])]
        if moved:
            scope = {"run": {"requester": _triggering_user(session, r.dag_id, r.run_id)}, "form": spec.get("request")}

            folder = str(definitions_root())
            if "from" in moved:
                pinned["slots"] = resolve_slots(rules["from"], scope, folder)
            if "escalate_to" in moved:
                pinned["escalate_to"] = (
                    resolve_slots(rules["escalate_to"], scope, folder) if rules["escalate_to"] else []
                )
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
                    .where(TI.id.in_([_uuid(p.ti_id) for p in pending]))
                )
            }
            for approval_id, ti_id, try_number in pending:
                r = live.get(str(_uuid(ti_id)))
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
    ) -> Request:
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
        request = self._load(session, approval_id, lock=True)
        spec = request.spec
        if request.row.kind != "approval":
            raise Conflict("this is a form request: answer it with its fields (responses)", field="id")
        self._check_open(request)
        self_approval = is_requester(spec, username)
        if self_approval and not requester_may_approve(spec):
            raise Forbidden("you requested this: you cannot approve your own request", field="user")
        chosen = self._choose_slot(request, username, slot)
        if decision == "reject" and spec.get("comment_required_on_reject", True) and not comment:
            raise Unprocessable("a comment is required to reject", field="comment")
        label = "escalation" if chosen == ESCALATION_SLOT else spec["slots"][chosen]["label"]
        vote = Vote(username, chosen, label, decision, comment, self._now(), via)
        self._insert_vote(session, approval_id, vote)
        if self_approval:
            log.warning(
                "%s voted on their own request %s ([autopilot] allow_self_approval is on and the step says "
                "exclude_requester: false)",
                username,
                approval_id,
            )
            self._event(session, approval_id, "self_approval", {"user": username, "decision": decision})
        request.votes.append(vote)
        outcome = tally(spec, request.votes)
        if outcome is not None:
            self._decide(session, request, outcome)

    def respond(
        self,
        approval_id: str,
        username: str,
        values: Mapping[str, Any],
        *,
        via: str = "api",
        schema: Mapping[str, Any] | None = None,
    ) -> Request:
        """Answer a mid-flow form: any one of its people; the values must fit the fields (``schema``:
        the fields with their API choices fetched, when some come from an API)."""
        with self._session() as session:
            request = self._load(session, approval_id, lock=True)
            if request.row.kind != "form":
                raise Conflict("this is an approval: vote on it (votes)", field="id")
            self._check_open(request)
            chosen = self._choose_slot(request, username, None)
            answer = validate_answer(schema or (request.spec.get("form") or {}).get("schema") or {}, values)
            vote = Vote(
                username, chosen, request.spec["slots"][chosen]["label"], "answer", None, self._now(), via, answer
            )
            self._insert_vote(session, approval_id, vote)
            request.votes.append(vote)
            self._decide(session, request, "answered")
        return self.get(approval_id)

    def _check_open(self, request: Request) -> None:
        if request.row.state != PENDING:
            raise Conflict(f"this request is already {request.row.state.replace('_', ' ')}", field="id")

    def _choose_slot(self, request: Request, username: str, slot: str | int | None) -> int:
        spec = request.spec
        if any(v.username == username for v in request.votes):
            raise Conflict("you have already answered this request", field="user")
        mine = entitled_slots(spec, username, request.escalated)
        if not mine:
            who = ", ".join(s["label"] for s in spec["slots"])
            raise Forbidden(f"you are not one of the people asked ({who})", field="user")
        decided = slot_decisions(request.votes)
        if slot is not None:
            wanted = _slot_index(spec, slot)
            if wanted not in mine:
                raise Forbidden(f"you cannot answer for {slot!r}", field="slot")
            if wanted in decided:
                raise Conflict(f"{slot!r} has already decided (by {decided[wanted].username})", field="slot")
            return wanted
        open_slots = [i for i in mine if i not in decided]
        if not open_slots:
            by = ", ".join(sorted({decided[i].username for i in mine}))
            raise Conflict(f"your group has already answered (by {by})", field="slot")
        # escalation contacts decide as such; otherwise the first open slot in the order listed
        return ESCALATION_SLOT if ESCALATION_SLOT in open_slots else open_slots[0]

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

    def _decide(self, session, request: Request, outcome: str, *, approved: bool | None = None) -> None:
        """Close the request with ``outcome`` and answer the HITL request as Autopilot, in this
        transaction."""
        votes = [v.as_dict() for v in sorted(request.votes, key=lambda v: v.at)]
        if request.row.kind == "form":
            answer = dict(request.votes[-1].answer or {})
            answer["_answered_by"] = request.votes[-1].username
            chosen, params_input = [SUBMIT], answer
        else:
            if approved is None:
                approved = outcome == "approved"
            deciding = next((v for v in reversed(request.votes) if v.decision == "reject"), None)
            params_input = {
                "outcome": outcome,
                "approved": approved,
                "votes": votes,
                "rejected_by": deciding.username if deciding and not approved else None,
                "comment": deciding.comment if deciding and not approved else None,
            }
            chosen = [APPROVE if approved else REJECT]
        now = self._now()
        if request.row.kind == "approval":
            params_input[SEAL_KEY] = _seal(session, request.row, outcome, approved, now)
        session.execute(
            update(A)
            .where(A.c.id == request.id)
            .values(state=outcome, decided_at=now, outcome=json.dumps(params_input, default=str))
        )
        self._event(session, request.id, "decided", {"outcome": outcome, "options": chosen})
        _answer_hitl(session, request.row.ti_id, chosen, params_input)

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

    def _key(self, session) -> bytes:
        value = session.scalar(select(setting_table.c.value).where(setting_table.c.name == "link_signing_key"))
        if value is None:
            raise Refused("the Autopilot tables are not migrated: run `autopilot db migrate`")
        return bytes.fromhex(value)

    def issue_link(self, session, request: Request, recipient: str, expires_at: datetime) -> str:
        import secrets

        jti = secrets.token_urlsafe(16)
        session.execute(
            insert(L).values(
                jti=jti, approval_id=request.id, recipient=recipient, created_at=self._now(), expires_at=expires_at
            )
        )
        return sign(self._key(session), {"a": request.id, "j": jti, "e": int(expires_at.timestamp())})

    def check_link(self, token: str, username: str | None = None) -> Request:
        """The request a link is for, if the link is genuine, unexpired and unused (else 410) and —
        given ``username`` — was sent to that user (else 403: a forwarded link votes for nobody)."""
        with self._session() as session:
            payload = unsign(self._key(session), token)
            link = session.execute(select(L).where(L.c.jti == str(payload.get("j")))).first()
            if link is None or link.approval_id != payload.get("a"):
                raise Gone("this link is not valid", field="token")
            if link.used_at is not None:
                raise Gone("this link has already been used", field="token")
            if _aware(link.expires_at) <= self._now():
                raise Gone("this link has expired", field="token")
            if username is not None and link.recipient != username:
                raise Forbidden(
                    f"this link was sent to someone else ({link.recipient}): sign in as them, or answer "
                    "in the Autopilot inbox",
                    field="token",
                )
            return self._load(session, link.approval_id)

    def redeem_link(self, token: str, username: str, decision: str, comment: str | None = None) -> Request:
        """Vote through a link: the link must be genuine, unexpired, unused and sent to the logged-in
        user, who must be entitled to vote; the link is spent in the same transaction as the vote."""
        request = self.check_link(token, username)
        with self._session() as session:
            payload = unsign(self._key(session), token)
            spent = session.execute(
                update(L)
                .where(L.c.jti == payload["j"], L.c.used_at.is_(None), L.c.expires_at > self._now())
                .values(used_at=self._now(), used_by=username)
            )
            if spent.rowcount != 1:
                raise Gone("this link has already been used", field="token")
            # the link is spent in the vote's transaction: a refused vote leaves it unspent
            self._cast(session, request.id, username, decision, comment, slot=None, via="link")
        return self.get(request.id)

    def resume_answered(self) -> int:
        """Resume the tasks whose answer came within the grace period of their parking (``_resume``)."""
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.utils.state import TaskInstanceState

        resumed = 0
        with self._session() as session:
            waiting = session.scalars(
                select(TI.id)
                .join(HITLDetail, HITLDetail.ti_id == TI.id)
                .where(TI.state == TaskInstanceState.AWAITING_INPUT, HITLDetail.responded_at.is_not(None))
            ).all()
        for ti_id in waiting:
            with self._session() as session:
                ti = session.get(TI, ti_id, with_for_update={"of": TI})
                hitl = session.get(HITLDetail, ti_id)
                if ti is None or hitl is None or (hitl.responded_by or {}).get("id") != AUTOPILOT_USER_ID:
                    continue
                resumed += _resume(session, ti, hitl)
        return resumed

    # -- asking, reminding, escalating, timing out ---------------------------------------------------

    def sweep(self, notifier: Notifier | None = None) -> dict[str, int]:
        """One round: record and ask new requests, remind, escalate, time out. Returns counts."""
        notifier = notifier or Notifier(self)
        counts = {"asked": 0, "reminded": 0, "escalated": 0, "timed_out": 0}
        counts["resumed"] = self.resume_answered()
        self.sync()
        now = self._now()
        with self._session() as session:
            unasked = list(session.scalars(select(A.c.id).where(A.c.state == PENDING, A.c.asked_at.is_(None))))
        for approval_id in unasked:
            with self._session() as session:
                claimed = session.execute(
                    update(A).where(A.c.id == approval_id, A.c.asked_at.is_(None)).values(asked_at=now)
                )
            if claimed.rowcount:
                self._deliver(notifier, approval_id, "request")
                counts["asked"] += 1
        with self._session() as session:
            due = list(
                session.execute(
                    select(A.c.id, A.c.deadline, A.c.escalated_at, A.c.next_reminder_at, A.c.spec).where(
                        A.c.state == PENDING
                    )
                )
            )
        for approval_id, deadline, escalated_at, next_reminder_at, spec_text in due:
            spec = json.loads(spec_text)
            deadline, next_reminder_at = _aware(deadline), _aware(next_reminder_at)
            if deadline is not None and deadline <= now:
                if spec.get("on_timeout") == "escalate" and escalated_at is None and spec.get("kind") == "approval":
                    if self._claim(approval_id, deadline=deadline, escalate=True, spec=spec):
                        self._deliver(notifier, approval_id, "escalation")
                        counts["escalated"] += 1
                elif self._time_out(approval_id, spec, notifier):
                    counts["timed_out"] += 1
                continue
            if next_reminder_at is not None and next_reminder_at <= now:
                interval = timedelta(seconds=spec["remind_every_seconds"])
                with self._session() as session:
                    claimed = session.execute(
                        update(A)
                        .where(A.c.id == approval_id, A.c.state == PENDING, A.c.next_reminder_at == next_reminder_at)
                        .values(next_reminder_at=now + interval)
                    )
                if claimed.rowcount:
                    self._deliver(notifier, approval_id, "reminder")
                    counts["reminded"] += 1
        counts["redelivered"] = self._redeliver(notifier)
        return counts

    def _deliver(
        self, notifier: Notifier, approval_id: str, reason: str, *, only: list[str] | None = None, attempt: int = 0
    ) -> None:
        """Ask (or remind, escalate, tell) and, when some deliveries failed (the mail server or Slack
        was down), schedule those again — after ``[autopilot] redeliver_seconds`` (default 60),
        doubling, at most :data:`MAX_REDELIVERIES` times."""
        failed = notifier.ask(approval_id, reason=reason, only=only)
        if not failed or attempt >= MAX_REDELIVERIES:
            if failed:
                with self._session() as session:
                    self._event(session, approval_id, "delivery_abandoned", {"reason": reason, "to": failed})
            return
        job = {"reason": reason, "to": failed, "attempt": attempt + 1}
        with self._session() as session:
            session.execute(
                update(A)
                .where(A.c.id == approval_id)
                .values(redeliver_at=self._now() + redeliver_delay(attempt + 1), redeliver=json.dumps(job))
            )

    def _redeliver(self, notifier: Notifier) -> int:
        """Deliveries that failed, tried again when due (claimed row by row, like every sweep change).
        A request that was decided meanwhile needs no more asking; its timeout notice still goes."""
        now = self._now()
        with self._session() as session:
            due = list(
                session.execute(
                    select(A.c.id, A.c.redeliver_at, A.c.redeliver, A.c.state).where(
                        A.c.redeliver_at.is_not(None), A.c.redeliver_at <= now
                    )
                )
            )
        done = 0
        for approval_id, at, data, state in due:
            with self._session() as session:
                claimed = session.execute(
                    update(A)
                    .where(A.c.id == approval_id, A.c.redeliver_at == at)
                    .values(redeliver_at=None, redeliver=None)
                )
            job = json.loads(data or "{}")
            if not claimed.rowcount or not job.get("to") or (job["reason"] != "timeout" and state != PENDING):
                continue
            self._deliver(notifier, approval_id, job["reason"], only=job["to"], attempt=job["attempt"])
            done += 1
        return done

    def _claim(self, approval_id: str, *, deadline: datetime, escalate: bool, spec: Mapping[str, Any]) -> bool:
        now = self._now()
        window = timedelta(seconds=spec.get("timeout_seconds") or 0)
        with self._session() as session:
            claimed = session.execute(
                update(A)
                .where(A.c.id == approval_id, A.c.state == PENDING, A.c.escalated_at.is_(None))
                .values(escalated_at=now, deadline=now + window)
            )
            if claimed.rowcount:
                self._event(
                    session, approval_id, "escalated", {"to": [s["label"] for s in spec.get("escalate_to", [])]}
                )
            return bool(claimed.rowcount)

    def _time_out(self, approval_id: str, spec: Mapping[str, Any], notifier: Notifier) -> bool:
        with self._session() as session:
            request = self._load(session, approval_id, lock=True)
            if request.row.state != PENDING:
                return False
            if request.row.kind == "form":
                return False  # Airflow's scheduler fails an unanswered form at its response timeout
            approved = spec.get("on_timeout") == "approve" and not request.escalated
            self._event(session, approval_id, "timed_out", {"approved": approved})
            self._decide(session, request, "timed_out", approved=approved)
        if spec.get("escalate_to") and spec.get("on_timeout") != "escalate":
            self._deliver(notifier, approval_id, "timeout")
        return True


def _run_rules(session, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
    """A step's rules in the serialized DAG of the version the run was created with (Airflow keeps a
    DagVersion per change of the serialized DAG once a run used it; ``dag_run.created_dag_version_id``
    names the run's). None when the run has no version, or the task carries no rules."""
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel

    version_id = session.scalar(
        select(DagRun.created_dag_version_id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    )
    if version_id is None:
        return None
    serialized = session.scalar(select(SerializedDagModel).where(SerializedDagModel.dag_version_id == version_id))
    if serialized is None:
        return None
    for task in serialized.data["dag"]["tasks"]:
        fields = task.get("__var", task)
        if fields.get("task_id") == task_id and isinstance(fields.get(RULES_FIELD), str):
            return json.loads(fields[RULES_FIELD])
    return None


def _align_backstop(session, r: Any, spec: Mapping[str, Any]) -> None:
    """Airflow's own timeout of the waiting task (``trigger_timeout``, then the HITL ``defaults``
    applied by the scheduler) as the run's own rules set it — not as the task, which parsed an edited
    definition, did: else an edit to `timeout`/`on_timeout` would still decide an in-flight run."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI

    timeout = spec.get("timeout_seconds")
    key = _uuid(r.ti_id)
    created = _aware(r.created_at) or _now()
    if spec.get("kind", "approval") == "approval":
        windows = 2 if spec.get("on_timeout") == "escalate" else 1
        deadline = created + timedelta(seconds=timeout * windows) + BACKSTOP if timeout else None
        defaults = [APPROVE if spec.get("on_timeout") == "approve" else REJECT] if timeout else None
        session.execute(update(HITLDetail).where(HITLDetail.ti_id == key).values(defaults=defaults))
    else:
        deadline = created + timedelta(seconds=timeout) if timeout else None
    session.execute(update(TI).where(TI.id == key).values(trigger_timeout=deadline))


def _triggering_user(session, dag_id: str, run_id: str) -> str | None:
    from airflow.models.dagrun import DagRun

    return session.scalar(select(DagRun.triggering_user_name).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))


def _slot_index(spec: Mapping[str, Any], slot: str | int) -> int:
    if isinstance(slot, int) or (isinstance(slot, str) and slot.lstrip("-").isdigit()):
        return int(slot)
    if slot == "escalation":
        return ESCALATION_SLOT
    for i, s in enumerate(spec["slots"]):
        if slot in (s["ref"], s["label"]):
            return i
    raise Unprocessable(f"unknown slot {slot!r}: one of {', '.join(s['ref'] for s in spec['slots'])}", field="slot")


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


def _uuid(value: str):
    import uuid

    return uuid.UUID(str(value))


#: How many times a failed delivery is tried again before it is given up (and recorded as such).
MAX_REDELIVERIES = 5


def redeliver_delay(attempt: int) -> timedelta:
    """The wait before re-delivery ``attempt`` (1, 2, …): ``[autopilot] redeliver_seconds``, doubling."""
    return timedelta(seconds=float(_conf("redeliver_seconds", "60")) * 2 ** (attempt - 1))


def resume_grace() -> timedelta:
    """How long a task must have been waiting before an answer resumes it at once (see ``_resume``)."""
    return timedelta(seconds=float(_conf("resume_grace_seconds", "15")))


def _answer_hitl(session, ti_id: str, chosen: list[str], params_input: dict[str, Any]) -> None:
    """Answer the HITL request as Autopilot and resume the task — what Airflow's HITL PATCH route
    does (same lock order: task instance, then the HITL row), minus its per-user check, which the
    quorum replaces."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI

    key = _uuid(ti_id)
    ti = session.get(TI, key, with_for_update={"of": TI})
    hitl = session.execute(select(HITLDetail).where(HITLDetail.ti_id == key).with_for_update(of=HITLDetail)).scalar()
    if hitl is None or hitl.response_received:
        raise Conflict("the task is no longer waiting for this answer", field="id")
    hitl.responded_by = dict(AUTOPILOT_USER)
    hitl.responded_at = _now()
    hitl.chosen_options = chosen
    hitl.params_input = params_input
    session.add(hitl)
    if ti is not None:
        _resume(session, ti, hitl)


def _resume(session, ti: Any, hitl: Any) -> bool:
    """Move a waiting task back to ``scheduled`` with its answer — unless it started waiting less than
    ``[autopilot] resume_grace_seconds`` (default 15) ago. Then the sweep resumes it a moment later
    (:meth:`Approvals.resume_answered`): the worker process that parked it may not have exited yet,
    and Airflow's scheduler fails a task that is queued again before it has seen that process's exit
    (it happens with Airflow's own HITL answers too)."""
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.state import TaskInstanceState

    if ti.state not in (TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED):
        return False
    waiting_since = _aware(ti.updated_at)
    if waiting_since is not None and _now() - waiting_since < resume_grace():
        return False
    handle_event_submit(TriggerEvent(hitl.as_resume_event_payload()), task_instance=ti, session=session)
    return True


# ---------------------------------------------------------------------------------------------
# Asking people (e-mail and Slack, with signed links)
# ---------------------------------------------------------------------------------------------

_REASONS = {
    "request": ("Approval needed", "Your input is needed"),
    "reminder": ("Reminder: approval needed", "Reminder: your input is needed"),
    "escalation": ("Escalated: approval needed", "Escalated: your input is needed"),
    "timeout": ("Timed out", "Timed out"),
}


class Notifier:
    """Sends approval requests, reminders and escalations. Each recipient gets their own single-use
    links; a failed delivery is recorded as an event and logged, never lost silently."""

    def __init__(self, approvals: Approvals):
        self.approvals = approvals

    def _audience(self, request: Request, reason: str) -> list[dict[str, Any]]:
        spec = request.spec
        slots = self._slots(request, reason)
        voted = {v.username for v in request.votes}
        requester = None if requester_may_approve(spec) else (spec.get("requester") or {}).get("username")
        people: dict[str, dict[str, Any]] = {}
        for slot in slots:
            for person in slot.get("members", []):
                if person.get("username") in voted or (requester and person.get("username") == requester):
                    continue
                people.setdefault(_key(person), person)
        return list(people.values())

    def _channels(self, request: Request, reason: str) -> list[dict[str, Any]]:
        """The Slack channels of the groups being asked (a notice without links: each member has their
        own links, and the channel sees that the group is asked)."""
        if reason not in ("request", "reminder", "escalation") or "slack" not in (request.spec.get("via") or []):
            return []
        return [s for s in self._slots(request, reason) if s.get("kind") == "group" and s.get("slack")]

    def _slots(self, request: Request, reason: str) -> list[dict[str, Any]]:
        spec = request.spec
        if reason in ("escalation", "timeout"):
            return list(spec.get("escalate_to", []))
        decided = slot_decisions(request.votes)
        return [s for i, s in enumerate(spec["slots"]) if i not in decided]

    def ask(self, approval_id: str, *, reason: str, only: Collection[str] | None = None) -> list[str]:
        """Send ``reason``'s message to the people (and their groups' Slack channels) concerned —
        only to the recipient keys in ``only`` when given (a re-delivery). Returns the keys whose
        delivery failed."""

        approvals = self.approvals
        request = approvals.get(approval_id)
        spec = request.spec
        people = [p for p in self._audience(request, reason) if only is None or _key(p) in only]
        channels = [c for c in self._channels(request, reason) if only is None or f"channel:{c['slack']}" in only]
        via = spec.get("via") or ["email"]
        expires = _aware(request.row.deadline) or (approvals._now() + DEFAULT_LINK_TTL)
        if reason == "escalation" and spec.get("timeout_seconds"):
            expires = approvals._now() + timedelta(seconds=spec["timeout_seconds"])
        heading = _REASONS[reason][0 if request.row.kind == "approval" else 1]
        subject = f"[Autopilot] {heading}: {spec.get('subject') or spec.get('title')}"
        sent: dict[str, list[str]] = {"email": [], "slack": []}
        failures: list[str] = []
        failed: list[str] = []
        for person in people:
            links: dict[str, str] = {}
            if reason != "timeout":
                with approvals._session() as session:
                    token = approvals.issue_link(session, request, _key(person), expires)
                confirm = f"{base_url()}/autopilot/approvals/confirm?token={token}"
                links = (
                    {"approve": confirm + "&decision=approve", "reject": confirm + "&decision=reject"}
                    if request.row.kind == "approval"
                    else {"open": confirm}
                )
            text = _message_text(request, heading, reason, links)
            message = Message(
                subject=subject,
                text=text,
                html=text_to_html(text),
                slack=_message_text(request, heading, reason, links, slack=True),
            )
            try:
                if "email" in via and person.get("email"):
                    send_email(
                        _conf("smtp_conn_id", "smtp_default"),
                        [person["email"]],
                        message,
                        headers={"X-Autopilot-Approval": request.id, "X-Autopilot-Reason": reason},
                    )
                    sent["email"].append(person["email"])
                if "slack" in via and person.get("slack"):
                    post_slack(_conf("slack_conn_id", "slack_default"), [person["slack"]], message.slack)
                    sent["slack"].append(person["slack"])
            except Exception as exc:  # noqa: BLE001 - recorded, logged and delivered again later
                log.exception("Could not notify %s about %s", person.get("name"), request.id)
                failures.append(f"{person.get('name')}: {exc}")
                failed.append(_key(person))
        inbox = f"{base_url()}/autopilot/ui/approvals"
        for slot in channels:
            notice = _message_text(request, heading, reason, {}, slack=True)
            notice += f"\n{slack_escape(slot['label'])} is asked: each member has their own link, or answer in <{inbox}|the Autopilot inbox>.\n"
            try:
                post_slack(_conf("slack_conn_id", "slack_default"), [slot["slack"]], notice)
                sent["slack"].append(slot["slack"])
            except Exception as exc:  # noqa: BLE001 - as above
                log.exception("Could not post to %s about %s", slot["slack"], request.id)
                failures.append(f"{slot['slack']}: {exc}")
                failed.append(f"channel:{slot['slack']}")
        with approvals._session() as session:
            approvals._event(session, request.id, f"{reason}_sent", {**sent, "failed": failures})
        return failed


def _key(person: Mapping[str, Any]) -> str:
    """Who a message or link is for: the Airflow user name, else the address, else the name."""
    return person.get("username") or person.get("email") or person["name"]


def _message_text(request: Request, heading: str, reason: str, links: Mapping[str, str], *, slack: bool = False) -> str:
    """The message to an approver. ``slack``: Slack's markup, with every text that came from the
    request (the form's values, the rendered subject and body, names) escaped, so a requester cannot
    slip a live link or an ``<!channel>`` into it; only the real links are links."""

    esc = slack_escape if slack else str
    spec = request.spec
    requester = spec.get("requester") or {}
    subject = esc(spec.get("subject") or spec.get("title"))
    lines = [f"{heading}: {subject}", ""]
    lines.append(f"Workflow: {esc(spec.get('workflow_title') or request.row.dag_id)} (run {esc(request.row.run_id)})")
    lines.append(f"Requested by: {esc(requester.get('name') or requester.get('username') or 'unknown')}")
    if spec.get("body"):
        lines += ["", esc(str(spec["body"]).strip())]
    if spec.get("request"):
        lines += ["", "Request:"] + [f"  {esc(k)}: {esc(v)}" for k, v in spec["request"].items()]
    if request.row.kind == "approval":
        approvers = ", ".join(esc(s["label"]) for s in spec["slots"])
        lines += ["", f"Approvers: {approvers} (quorum: {spec.get('quorum', 'all')})"]
    if reason == "timeout":
        outcome = "approved" if spec.get("on_timeout") == "approve" else "rejected"
        lines += ["", f"Nobody decided in time: the request was {outcome} automatically."]
    if request.row.deadline is not None and reason != "timeout":
        lines += ["", f"Please answer by {_aware(request.row.deadline).strftime('%Y-%m-%d %H:%M UTC')}."]
    for name, url in links.items():
        lines += ["", f"<{url}|{name.capitalize()}>" if slack else f"{name.capitalize()}: {url}"]
    if links:
        lines += ["", "Each link works once and opens a confirmation page; you sign in to Airflow first."]
    return "\n".join(lines) + "\n"
