"""Events in: the alert endpoints (``POST /autopilot/api/v1/alerts/<id>``) and their delivery log.
API server only.

A delivery is authenticated by its signature or token alone, never by an Airflow session:

* ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``;
* ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`` over ``<t>.<raw body>``, ``t`` within the
  alert's ``tolerance`` (default 5 minutes) of now;
* ``standard`` (Standard Webhooks 1.0): ``webhook-signature: v1,<base64> …`` over
  ``<webhook-id>.<webhook-timestamp>.<raw body>`` with the key ``whsec_<base64>``, the timestamp within
  the tolerance;
* ``bearer``: ``Authorization: Bearer <token>``.

(The schemes are written once, in :mod:`autopilot_provider.definitions.signatures`, which a
trigger's task signs its deliveries with too.) The secret (or token) is the password of the alert's Airflow connection. Every comparison is
``hmac.compare_digest`` over the raw body as received (what a proxy passes on is what was signed);
the body is parsed only after it is verified. A bad signature, a stale timestamp, a missing header,
an unknown alert or one whose definition has errors all answer the same 401 — the work done is the
same too (a connection lookup and a comparison against a dummy secret) — and each is logged with the
real reason.

A verified delivery then goes the portal's way: the match rules and each route's ``when`` are
sandboxed expressions, its form values sandboxed templates, the values are validated with the
workflow's form (:func:`autopilot_provider.repository.forms.check_form`, choices resolved as for the
portal), the requester is resolved through the contacts, and runs start with
:func:`autopilot_provider.server.requests.start_run`, triggered by the requester. Run ids are
derived from (alert, delivery id, route, item), so the same delivery — sent again, or twice at once —
starts each run exactly once; every delivery is recorded in ``autopilot_alert_delivery``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Undefined
from sqlalchemy import delete, func, insert, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from autopilot_provider import config
from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.bounded import LimitError, load_json
from autopilot_provider.definitions.errors import Refused
from autopilot_provider.definitions.signatures import signature_problem
from autopilot_provider.definitions.templating import evaluate, render, render_value
from autopilot_provider.hooks.choices import resolve_choices
from autopilot_provider.repository.checks.alert import requester_key
from autopilot_provider.repository.checks.forms import is_template
from autopilot_provider.repository.contacts import Directory
from autopilot_provider.repository.folder import Project, tree_fingerprint
from autopilot_provider.repository.forms import FormInvalid, check_form, find_workflow
from autopilot_provider.server import requests as requests_service
from autopilot_provider.server.errors import Conflict, NotFound, NotMigrated
from autopilot_provider.server.tables import _engine, alert_delivery_table

log = logging.getLogger(__name__)

D = alert_delivery_table

STATUSES = ("accepted", "duplicate", "filtered", "rejected", "invalid", "failed")
#: What a refused delivery is answered, whatever the reason (the log keeps the reason).
UNAUTHORIZED = {"detail": {"message": "invalid or missing signature"}}
#: The body types an alert endpoint reads.
JSON, FORM = "application/json", "application/x-www-form-urlencoded"
#: Most events one delivery may carry (``for_each``).
MAX_EVENTS = 100
#: Longest delivery id kept as given (a longer one is replaced by its sha256).
MAX_DELIVERY_ID = 200
#: Largest payload (as JSON) the log keeps; larger ones are logged as truncated and cannot be replayed.
MAX_LOGGED_PAYLOAD = 256 * 1024
#: Headers the log keeps (each value capped).
MAX_LOGGED_HEADERS, MAX_HEADER_VALUE = 100, 1000
#: Request headers that authenticate: never shown to templates, masked in the log.
AUTH_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-hub-signature",
        "x-hub-signature-256",
        "stripe-signature",
        "webhook-signature",
    }
)
#: Names (of headers, of payload keys) whose values are masked in the log.
SECRET_NAME = re.compile(
    r"(?i)(passw|secret|token|api[-_]?key|authorization|signature|credential|private[-_]?key|cookie|session[-_]?id)"
)
MASK = "***"
#: The connection looked up for an unknown alert, so that it costs what a known one costs.
DUMMY_CONNECTION = "autopilot_alert_unknown"
_DUMMY_SECRET = secrets.token_hex(32)
_DUMMY_AUTH = m.AlertAuth(scheme="github", connection=DUMMY_CONNECTION)
#: How often the sweep purges old deliveries (seconds).
PURGE_EVERY = 600.0


# ---------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one delivery: its log status, the HTTP answer and the runs it names."""

    status: str
    http_status: int
    alert: str
    delivery_id: str
    reason: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    #: the row of the delivery log (set once recorded)
    id: int | None = None

    def body(self) -> dict[str, Any]:
        if self.status == "rejected":
            return UNAUTHORIZED
        if self.http_status >= 400:
            detail: dict[str, Any] = {"message": self.message or self.reason or self.status}
            if self.errors:
                detail["errors"] = self.errors
            if self.runs:
                detail["runs"] = self.runs
            if self.http_status == 415:
                detail["field"] = "Content-Type"
            return {"detail": detail}
        return {"alert": self.alert, "delivery_id": self.delivery_id, "status": self.status, "runs": self.runs}


# ---------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------


def header_map(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, str]:
    """Request headers by lower-case name (repeated headers joined with ``, ``, as HTTP allows)."""
    found: dict[str, str] = {}
    for name, value in pairs:
        key = (name.decode("latin-1") if isinstance(name, bytes) else name).lower()
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def connection_secret(conn_id: str) -> tuple[str | None, str | None]:
    """(the password of an Airflow connection, why there is none)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        connection = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return None, f"the connection '{conn_id}' does not exist"
    except Exception as exc:  # noqa: BLE001 - a secrets backend that fails: refused, and the log says why
        return None, f"the connection '{conn_id}' cannot be read: {type(exc).__name__}"
    if not connection.password:
        return None, f"the connection '{conn_id}' has no password (the secret or token)"
    return connection.password, None


# ---------------------------------------------------------------------------------------------
# Payloads, headers and the log's masking
# ---------------------------------------------------------------------------------------------


class BadBody(Refused):
    status = 422


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_payload(body: bytes, kind: str) -> Any:
    """The payload of a verified body: JSON (bounded nesting) or form fields (a field sent several
    times is a list)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8 text", field="body") from None
    if kind == FORM:
        try:
            fields = parse_qs(text, keep_blank_values=True, max_num_fields=1000, strict_parsing=False)
        except ValueError as exc:
            raise BadBody(f"the body is not form-encoded: {exc}", field="body") from None
        return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}
    try:
        return load_json(text, max_depth=32)
    except LimitError as exc:
        raise BadBody(f"the JSON body is {exc}", field="body") from None
    except ValueError as exc:
        raise BadBody(f"the body is not JSON: {exc}", field="body") from None


def template_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What templates see as ``headers``: lower-case names, without the ones that authenticate."""
    return {name: value for name, value in headers.items() if name not in AUTH_HEADERS}


def masked(value: Any) -> Any:
    """``value`` with the values of secret-looking keys replaced by ``***`` (at any depth)."""
    if isinstance(value, dict):
        return {k: MASK if SECRET_NAME.search(str(k)) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def logged_headers(headers: Mapping[str, str]) -> dict[str, str]:
    kept = {}
    for name, value in list(headers.items())[:MAX_LOGGED_HEADERS]:
        secret = name in AUTH_HEADERS or SECRET_NAME.search(name) is not None
        kept[name] = MASK if secret else value[:MAX_HEADER_VALUE]
    return kept


def logged_payload(payload: Any) -> str:
    text = json.dumps(masked(payload), default=str)
    if len(text) > MAX_LOGGED_PAYLOAD:
        return json.dumps({"_truncated": True, "bytes": len(text)})
    return text


# ---------------------------------------------------------------------------------------------
# Delivery ids and run ids
# ---------------------------------------------------------------------------------------------


def _evaluated(expression: str, scope: Mapping[str, Any]) -> Any:
    value = evaluate(expression, scope)
    # a key the payload lacks is Jinja's Undefined (StrictUndefined raises only when used): None
    return None if isinstance(value, Undefined) else value


def _defined(value: Any) -> Any:
    """``value`` unless a key it reads is missing (somewhere inside), which raises naming it."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises its "... has no attribute ..." message
        raise ValueError("undefined value")  # pragma: no cover - a plain Undefined
    if isinstance(value, dict):
        return {k: _defined(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_defined(v) for v in value]
    return value


def _holds(expression: str, scope: Mapping[str, Any]) -> bool:
    return bool(_evaluated(expression, scope))


def delivery_id_of(alert: m.Alert, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
    """The delivery's id: ``delivery_id`` (a header or an expression), else the scheme's own
    (GitHub ``X-GitHub-Delivery``, Standard Webhooks ``webhook-id``, Stripe ``payload.id``), else the
    sha256 of the raw body. Ids longer than 200 characters are replaced by their sha256."""
    found: Any = None
    spec = alert.delivery_id
    if spec is not None and spec.header is not None:
        found = headers.get(spec.header.lower())
    elif spec is not None and spec.expression is not None:
        try:
            found = _evaluated(spec.expression, {"payload": payload, "headers": template_headers(headers)})
        except Exception:  # noqa: BLE001 - a payload without it: the body's hash
            found = None
    elif alert.auth.scheme == "github":
        found = headers.get("x-github-delivery")
    elif alert.auth.scheme == "standard":
        found = headers.get("webhook-id")
    elif alert.auth.scheme == "stripe" and isinstance(payload, dict):
        found = payload.get("id")
    if isinstance(found, (dict, list)):
        found = json.dumps(found, sort_keys=True)
    text = str(found).strip() if found not in (None, "") else ""
    if not text:
        return "sha256:" + hashlib.sha256(body).hexdigest()
    if len(text) > MAX_DELIVERY_ID:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def run_id_for(alert_id: str, delivery_id: str, route_id: str, item: int) -> str:
    """The run a route starts for one event of one delivery: the same inputs, the same id."""
    digest = hashlib.sha256("\0".join((alert_id, delivery_id, route_id, str(item))).encode()).hexdigest()[:32]
    return f"alert__{alert_id[:60]}__{route_id[:60]}__{digest}"


# ---------------------------------------------------------------------------------------------
# The definitions, once per state of the folder
# ---------------------------------------------------------------------------------------------


class _Folder:
    """One :class:`Project` per state of the definitions folder (its files' names, times and sizes),
    shared by the deliveries of this process; a lock keeps its caches consistent across threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._key: tuple[str, str] | None = None
        self._project: Project | None = None

    def project(self, root: Path) -> Project:
        key = (str(root), tree_fingerprint(root))
        with self.lock:
            if self._project is None or self._key != key:
                self._project, self._key = Project(root, display_root=""), key
            return self._project


_FOLDER = _Folder()


def find_alert(project: Any, alert_id: str) -> m.Alert | None:
    """The valid alert ``alert_id`` (None: no such alert, or it has errors)."""
    rel = project.find("Alert", alert_id)
    if rel is None:
        return None
    loaded = project.load(rel)
    return loaded.definition if loaded.ok and isinstance(loaded.definition, m.Alert) else None


def alert_url(alert_id: str) -> str:
    return f"{config.api_base_url()}/autopilot/api/v1/alerts/{quote(alert_id, safe='')}"


def alert_summaries(project: Any, workflow: str | None = None) -> list[dict[str, Any]]:
    """The valid alerts (optionally only those with a route to ``workflow``), by id."""
    found = []
    for loaded in project.of_kind("Alert"):
        alert = loaded.definition
        if not loaded.ok or not isinstance(alert, m.Alert):
            continue
        if workflow is not None and all(r.workflow != workflow for r in alert.routes):
            continue
        found.append(
            {
                "id": alert.id,
                "title": alert.title or alert.id,
                "description": alert.description,
                "owner": alert.owner,
                "scheme": alert.auth.scheme,
                "url": alert_url(alert.id),
                "routes": [{"id": r.id, "workflow": r.workflow} for r in alert.routes],
            }
        )
    return sorted(found, key=lambda a: a["id"])


# ---------------------------------------------------------------------------------------------
# Processing a verified delivery
# ---------------------------------------------------------------------------------------------


@dataclass
class _Planned:
    route: m.AlertRoute
    workflow: m.Workflow
    item: int
    values: dict[str, Any]
    username: str


def _error(route: m.AlertRoute, item: int | None, field_name: str, message: str) -> dict[str, Any]:
    return {"field": field_name, "message": message, "route": route.id, "item": item}


def _requester(route: m.AlertRoute, scope: Mapping[str, Any], directory: Directory) -> tuple[str | None, str | None]:
    """(the Airflow user name the run is started as, why there is none)."""
    if is_template(route.requester):
        try:
            named = render(route.requester, scope).strip()
        except Exception as exc:  # noqa: BLE001 - the payload lacks it, or the template fails on it
            return None, f"cannot be computed: {exc}"
    else:
        named = route.requester
    person = directory.find_person(requester_key(named)) if named else None
    if person is None:
        return None, f"{named!r} is not a person of the contacts (a person id, Airflow user name or e-mail)"
    if not person.username:
        return None, f"person '{person.id}' has no username in the contacts: runs are started as an Airflow user"
    return person.username, None


def _mapped(route: m.AlertRoute, scope: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, template in route.form.items():
        try:
            values[name] = _defined(render_value(template, scope))
        except Exception as exc:  # noqa: BLE001 - undefined keys, sandbox limits: the field cannot be filled
            problems.append((name, f"cannot be computed: {exc}"))
    return values, problems


class Deliveries:
    """The alert endpoints of one definitions folder, and their delivery log."""

    def __init__(self, root: str | Path, *, session_factory: Any = None, now: Any = None):
        self.root = Path(root).resolve()
        if session_factory is None:
            from airflow.utils.session import create_session

            session_factory = create_session
        self._session = session_factory
        self._now = now or (lambda: datetime.now(UTC))

    def project(self) -> Project:
        return _FOLDER.project(self.root)

    def summaries(self, workflow: str | None = None) -> list[dict[str, Any]]:
        """:func:`alert_summaries` of this folder."""
        with _FOLDER.lock:
            return alert_summaries(self.project(), workflow)

    # -- receiving -----------------------------------------------------------------------------

    def receive(
        self, alert_id: str, header_pairs: Iterable[tuple[Any, Any]], body: bytes, content_type: str | None
    ) -> Outcome:
        """One delivery to ``POST /alerts/{alert_id}``, start to end, recorded in the log."""
        _require_table()
        headers = header_map(header_pairs)
        now = self._now()
        with _FOLDER.lock:
            project = self.project()
            alert = find_alert(project, alert_id)
            exists = alert is not None or project.find("Alert", alert_id) is not None
        if alert is None:
            connection_secret(DUMMY_CONNECTION)  # the same work as for a known alert
            signature_problem(_DUMMY_AUTH, _DUMMY_SECRET, headers, body, now=now.timestamp())
            reason = "the alert's definition has errors" if exists else "no such alert"
            return self._record(Outcome("rejected", 401, alert_id[:200], _claimed_id(headers), reason), headers, None)
        secret, missing = connection_secret(alert.auth.connection)
        problem = signature_problem(alert.auth, secret or _DUMMY_SECRET, headers, body, now=now.timestamp())
        if missing or problem:
            outcome = Outcome("rejected", 401, alert.id, _claimed_id(headers), missing or problem)
            return self._record(outcome, headers, None)
        kind = media_type(content_type)
        if kind not in (JSON, FORM):
            reason = f"content type {kind or '(none)'!r}: send {JSON} or {FORM}"
            outcome = Outcome("invalid", 415, alert.id, _claimed_id(headers), reason, message=reason)
            return self._record(outcome, headers, None)
        try:
            payload = parse_payload(body, kind)
        except BadBody as exc:
            errors = [{"field": "body", "message": exc.message, "route": None, "item": None}]
            outcome = Outcome(
                "invalid", 422, alert.id, _claimed_id(headers), exc.message, errors=errors, message=exc.message
            )
            return self._record(outcome, headers, None)
        delivery_id = delivery_id_of(alert, headers, payload, body)
        outcome = self.process(alert, payload, headers, delivery_id)
        return self._record(outcome, headers, payload)

    def process(self, alert: m.Alert, payload: Any, headers: Mapping[str, str], delivery_id: str) -> Outcome:
        """Match, map, validate, then start the runs (all validated before any starts)."""
        scope: dict[str, Any] = {
            "payload": payload,
            "headers": template_headers(headers),
            "alert": {"id": alert.id, "delivery_id": delivery_id},
            "event": payload,
        }
        outcome = Outcome("filtered", 200, alert.id, delivery_id)
        for i, rule in enumerate(alert.match):
            try:
                holds = _holds(rule, scope)
            except Exception as exc:  # noqa: BLE001 - the payload lacks what the rule reads: no match
                outcome.reason = f"match rule {i + 1} ({rule}) could not be evaluated: {exc}"
                return outcome
            if not holds:
                outcome.reason = f"match rule {i + 1} is false: {rule}"
                return outcome
        events = self._events(alert, scope, outcome)
        if events is None:
            return outcome
        with _FOLDER.lock:
            plans, errors, failures, skipped = self._plan(alert, scope, events)
        if failures:
            return self._failed(outcome, failures, [])
        if errors:
            outcome.status, outcome.http_status, outcome.errors = "invalid", 422, errors
            shown = "; ".join(
                f"route '{e['route']}'{_item(e['item'])}: {e['field'] or 'form'}: {e['message']}" for e in errors
            )
            outcome.message = outcome.reason = f"the mapped values do not fit the workflow's form: {shown}"
            return outcome
        if not plans:
            outcome.reason = "no route applies" + (f" ({'; '.join(skipped)})" if skipped else "")
            return outcome
        # A repeated delivery is known by its runs: each (alert, delivery id, route, item) names one
        # run id, so a repeat — sequential or racing the first — finds the runs started before and
        # starts nothing (no look-up of the log first: one transaction per new delivery's run).
        created = conflicts = 0
        for plan in plans:
            run_id = run_id_for(alert.id, delivery_id, plan.route.id, plan.item)
            note = f"Started by alert '{alert.id}', delivery {delivery_id} (route '{plan.route.id}'{_item(plan.item if alert.for_each else None)})"
            try:
                run = requests_service.start_run(
                    plan.workflow, plan.values, user_name=plan.username, note=note, run_id=run_id
                )
            except requests_service.IdempotencyConflict as exc:
                # the same delivery id, other values (a sender reusing ids): the first run stands and
                # the repeat is answered with it, like any repeat
                run = exc.run
                conflicts += 1
            except Refused as exc:
                failures.append(f"route '{plan.route.id}'{_item(plan.item if alert.for_each else None)}: {exc.message}")
                continue
            except SQLAlchemyError as exc:  # a busy or unreachable database: the sender may retry
                log.exception("alert %s delivery %s: starting a run failed", alert.id, delivery_id)
                failures.append(
                    f"route '{plan.route.id}': the metadata database refused the run ({type(exc).__name__})"
                )
                continue
            outcome.runs.append(
                {"route": plan.route.id, "workflow": plan.workflow.id, "run_id": run["run_id"], "url": run["url"]}
            )
            if run["created"]:
                created += 1
                if plan.route.asset:
                    self._emit_asset(
                        plan, alert, delivery_id, run["run_id"], events[plan.item] if alert.for_each else payload
                    )
        if failures:
            return self._failed(outcome, failures, outcome.runs)
        if outcome.errors and not created:
            outcome.status, outcome.http_status = "invalid", 422
            outcome.message = outcome.reason = "; ".join(e["message"] for e in outcome.errors)
            return outcome
        if created:
            outcome.status, outcome.http_status = "accepted", 202
            outcome.reason = f"{created} run(s) started" + (
                f", {len(plans) - created} already running" if created < len(plans) else ""
            )
        else:
            outcome.status, outcome.http_status = "duplicate", 200
            outcome.reason = f"delivery {delivery_id} was accepted before: every run of it was started then" + (
                f" ({conflicts} with other values than this repeat's; the first stands)" if conflicts else ""
            )
        return outcome

    def _events(self, alert: m.Alert, scope: dict[str, Any], outcome: Outcome) -> list[Any] | None:
        if alert.for_each is None:
            return [scope["payload"]]
        problem = None
        try:
            found = _evaluated(alert.for_each, scope)
        except Exception as exc:  # noqa: BLE001
            found, problem = None, f"cannot be computed: {exc}"
        if problem is None and found is not None and not isinstance(found, (list, tuple)):
            problem = f"gives a {type(found).__name__}, not a list"
        if problem is None and found is not None and len(found) > MAX_EVENTS:
            problem = f"gives {len(found)} items, more than the {MAX_EVENTS} one delivery may carry"
        if problem is not None:
            outcome.status, outcome.http_status = "invalid", 422
            outcome.errors = [{"field": "for_each", "message": problem, "route": None, "item": None}]
            outcome.message = outcome.reason = f"for_each ({alert.for_each}) {problem}"
            return None
        if not found:
            outcome.reason = f"for_each ({alert.for_each}) gives no items"
            return None
        return list(found)

    def _plan(
        self, alert: m.Alert, scope: dict[str, Any], events: list[Any]
    ) -> tuple[list[_Planned], list[dict[str, Any]], list[str], list[str]]:
        project = self.project()
        directory = Directory.from_project(project)
        plans: list[_Planned] = []
        errors: list[dict[str, Any]] = []
        failures: list[str] = []
        skipped: list[str] = []
        numbered = alert.for_each is not None
        for index, event in enumerate(events):
            item = index if numbered else None
            here = {**scope, "event": event}
            for route in alert.routes:
                if route.when is not None:
                    try:
                        applies = _holds(route.when, here)
                    except Exception as exc:  # noqa: BLE001 - the event lacks what `when` reads
                        skipped.append(f"route '{route.id}'{_item(item)}: `when` could not be evaluated: {exc}")
                        continue
                    if not applies:
                        skipped.append(f"route '{route.id}'{_item(item)}: `when` is false")
                        continue
                workflow = find_workflow(project, route.workflow)
                if workflow is None:
                    failures.append(f"route '{route.id}': workflow '{route.workflow}' does not exist or has errors")
                    continue
                values, problems = _mapped(route, here)
                errors += [_error(route, item, name, message) for name, message in problems]
                username, why = _requester(route, here, directory)
                if why:
                    errors.append(_error(route, item, "requester", why))
                if problems:
                    continue
                try:
                    choices = resolve_choices(workflow.form, project)
                except Refused as exc:
                    failures.append(f"route '{route.id}': {exc.message}")
                    continue
                result, invalid = check_form(workflow.form, values, choices)
                errors += [_error(route, item, e.field, e.message) for e in invalid]
                if invalid or username is None:
                    continue
                try:
                    requests_service.check_requester(project, result, username)
                except FormInvalid as exc:
                    errors += [_error(route, item, e.field, e.message) for e in exc.errors]
                    continue
                plans.append(_Planned(route, workflow, index, result, username))
        return plans, errors, failures, skipped

    @staticmethod
    def _failed(outcome: Outcome, failures: list[str], runs: list[dict[str, Any]]) -> Outcome:
        outcome.status, outcome.http_status, outcome.runs = "failed", 503, runs
        outcome.message = outcome.reason = (
            "the run could not be started: " + "; ".join(failures) + " (sending the delivery again is safe: runs "
            "already started are not started twice)"
        )
        return outcome

    def _emit_asset(self, plan: _Planned, alert: m.Alert, delivery_id: str, run_id: str, event: Any) -> None:
        """An event of the route's Airflow Asset, as Airflow's own ``POST /assets/events`` records it,
        so that DAGs scheduled on the asset run too."""
        from airflow.assets.manager import asset_manager
        from airflow.models.asset import AssetModel
        from sqlalchemy import or_

        extra = {
            "autopilot_alert": alert.id,
            "delivery_id": delivery_id,
            "route": plan.route.id,
            "workflow": plan.workflow.id,
            "run_id": run_id,
        }
        text = json.dumps(event, default=str)
        if len(text) <= 64 * 1024:
            extra["event"] = json.loads(text)
        uri = plan.route.asset or ""
        try:
            with self._session() as session:
                assets = session.scalars(
                    select(AssetModel).where(or_(AssetModel.uri == uri, AssetModel.name == uri))
                ).all()
                if not assets:
                    log.warning(
                        "alert %s route %s: no Airflow asset %s (no DAG uses it yet)", alert.id, plan.route.id, uri
                    )
                for asset in assets:
                    asset_manager.register_asset_change(asset=asset, extra=extra, source_is_api=True, session=session)
        except Exception:  # noqa: BLE001 - the run has started; the asset event is a side channel
            log.exception("alert %s route %s: could not emit the asset event %s", alert.id, plan.route.id, uri)

    # -- replay ----------------------------------------------------------------------------------

    def replay(self, delivery: int) -> Outcome:
        """Process a logged delivery's payload again, without its signature, under the delivery id
        ``<id>#replay-<n>`` (so its runs are new ones)."""
        _require_table()
        row = self._row(delivery)
        if row.payload is None:
            raise Conflict(
                f"delivery {delivery} kept no payload ({row.status}): there is nothing to replay", field="id"
            )
        payload = json.loads(row.payload)
        if isinstance(payload, dict) and payload.get("_truncated") is True and set(payload) == {"_truncated", "bytes"}:
            raise Conflict(f"delivery {delivery}'s payload was too large to keep: it cannot be replayed", field="id")
        with _FOLDER.lock:
            alert = find_alert(self.project(), row.alert)
        if alert is None:
            raise NotFound(f"alert '{row.alert}' does not exist any more or has errors", field="alert")
        headers = json.loads(row.headers or "{}")
        with self._session() as session:
            count = session.scalar(select(func.count()).select_from(D).where(D.c.replay_of == delivery)) or 0
        outcome = self.process(alert, payload, headers, f"{row.delivery_id}#replay-{count + 1}"[:250])
        return self._record(outcome, headers, payload, replay_of=delivery)

    def routes_of(self, delivery: int) -> list[str]:
        """The workflows the alert of a logged delivery can start (a replay may start any of them)."""
        row = self._row(delivery)
        with _FOLDER.lock:
            alert = find_alert(self.project(), row.alert)
        return sorted({r.workflow for r in alert.routes}) if alert is not None else []

    # -- the log ---------------------------------------------------------------------------------

    def _record(
        self, outcome: Outcome, headers: Mapping[str, str], payload: Any, *, replay_of: int | None = None
    ) -> Outcome:
        with self._session() as session:
            result = session.execute(
                insert(D).values(
                    alert=outcome.alert[:200],
                    delivery_id=outcome.delivery_id[:250],
                    received_at=self._now(),
                    status=outcome.status,
                    reason=outcome.reason,
                    http_status=outcome.http_status,
                    runs=json.dumps(outcome.runs),
                    replay_of=replay_of,
                    headers=json.dumps(logged_headers(headers)),
                    payload=None if payload is None else logged_payload(payload),
                )
            )
            outcome.id = result.inserted_primary_key[0]
        level = logging.INFO if outcome.status in ("accepted", "duplicate", "filtered") else logging.WARNING
        log.log(
            level, "alert %s delivery %s: %s (%s)", outcome.alert, outcome.delivery_id, outcome.status, outcome.reason
        )
        return outcome

    def _row(self, delivery: int) -> Any:
        with self._session() as session:
            row = session.execute(select(D).where(D.c.id == delivery)).first()
        if row is None:
            raise NotFound(f"no delivery {delivery}", field="id")
        return row

    def get(self, delivery: int) -> dict[str, Any]:
        """One logged delivery with its (masked) headers and payload."""
        _require_table()
        row = self._row(delivery)
        found = _as_dict(row)
        found["headers"] = json.loads(row.headers or "{}")
        found["payload"] = json.loads(row.payload) if row.payload is not None else None
        return found

    def list(
        self,
        *,
        alert: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Logged deliveries, newest first, and how many match."""
        _require_table()
        since, until = _aware(since), _aware(until)
        where = []
        if alert is not None:
            where.append(D.c.alert == alert)
        if status is not None:
            where.append(D.c.status == status)
        if since is not None:
            where.append(D.c.received_at >= since)
        if until is not None:
            where.append(D.c.received_at <= until)
        with self._session() as session:
            total = session.scalar(select(func.count()).select_from(D).where(*where)) or 0
            rows = session.execute(
                select(D).where(*where).order_by(D.c.received_at.desc(), D.c.id.desc()).offset(offset).limit(limit)
            ).all()
        return [_as_dict(row) for row in rows], total

    def purge(self, older_than: datetime) -> int:
        """Delete the deliveries received before ``older_than``; how many."""
        with self._session() as session:
            return session.execute(delete(D).where(D.c.received_at < older_than)).rowcount or 0


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (Airflow's columns refuse naive times)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _item(item: int | None) -> str:
    return f", event {item}" if item is not None else ""


def _claimed_id(headers: Mapping[str, str]) -> str:
    """The delivery id a refused delivery claims (unverified: for the log only)."""
    for name in ("x-github-delivery", "webhook-id", "x-request-id"):
        if headers.get(name):
            return headers[name][:MAX_DELIVERY_ID]
    return ""


def _as_dict(row: Any) -> dict[str, Any]:
    received = row.received_at
    if received is not None and received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return {
        "id": row.id,
        "alert": row.alert,
        "delivery_id": row.delivery_id,
        "received_at": received,
        "status": row.status,
        "reason": row.reason,
        "http_status": row.http_status,
        "runs": json.loads(row.runs or "[]"),
        "replay_of": row.replay_of,
    }


# ---------------------------------------------------------------------------------------------
# Tables and retention
# ---------------------------------------------------------------------------------------------

_table_ready: set[str] = set()


def _require_table() -> None:
    engine = _engine()
    key = str(engine.url)
    if key in _table_ready:
        return
    if not inspect(engine).has_table(D.name):
        raise NotMigrated(f"the table {D.name} does not exist: run `autopilot db migrate`")
    _table_ready.add(key)


_last_purge: list[float] = [0.0]


def purge_expired(deliveries: Deliveries | None = None, *, force: bool = False) -> int:
    """Delete deliveries older than ``[autopilot] alert_delivery_retention_days`` (0: keep all); the
    approvals sweep calls this every round, and it runs at most every 10 minutes."""
    days = config.get_int("alert_delivery_retention_days")
    now = time.monotonic()
    if days <= 0 or (not force and now - _last_purge[0] < PURGE_EVERY):
        return 0
    _last_purge[0] = now
    engine = _engine()
    if str(engine.url) not in _table_ready and not inspect(engine).has_table(D.name):
        return 0
    deliveries = deliveries or Deliveries(config.definitions_dir())
    return deliveries.purge(datetime.now(UTC) - timedelta(days=days))
