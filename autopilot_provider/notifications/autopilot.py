"""``AutopilotNotifier``: one notification — contact references resolved to people, a message
rendered from sandboxed templates with the run's scope, sent by e-mail (Airflow's SMTP provider) and
Slack (the Slack provider: the Web API or an incoming webhook, by the connection type).

It is an Airflow ``BaseNotifier``, so it works wherever Airflow takes a notifier: a DAG's
``on_success_callback`` / ``on_failure_callback`` (workflow ``notifications``), a task callback, and
inside ``NotifyOperator`` (``notify`` steps). Credentials stay in Airflow connections
(``smtp_default`` and ``slack_default`` unless ``[autopilot] smtp_conn_id`` / ``slack_conn_id`` or the
arguments say otherwise); Airflow masks their secrets in logs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from airflow.sdk import BaseNotifier

from autopilot_provider import config
from autopilot_provider.definitions.templating import (
    FileTemplate,
    html_to_text,
    render,
    render_slack,
    text_to_html,
)
from autopilot_provider.repository.contacts import ContactError, Directory, email_addresses, slack_targets
from autopilot_provider.repository.folder import contacts_directory
from autopilot_provider.repository.scope import ScopeSpec, build_scope

VIAS = ("email", "slack")
EVENTS = ("start", "success", "failure")
_EVENT_WORDS = {"start": "started", "success": "succeeded", "failure": "failed"}


class NotificationError(RuntimeError):
    """A notification that cannot be delivered to anybody."""


@dataclass
class Message:
    subject: str
    text: str
    html: str
    slack: str


def _one_line(text: str) -> str:
    """Headers are one line: newlines in a subject (from a form value, say) become spaces."""
    return " ".join(text.split())


def compose(
    scope: Mapping[str, Any],
    *,
    definitions: str | None,
    subject: str | None = None,
    template: str | None = None,
    body: str | None = None,
    default_subject: str = "Autopilot notification",
    default_body: str = "",
) -> Message:
    """Render a message. Inline ``subject`` and ``body`` win over the template's parts; a missing
    text part is made from the HTML (and the other way round); Slack gets the ``slack`` part, else the
    text, rendered with Slack escaping."""
    if template and not definitions:
        raise NotificationError(f"template {template!r}: the definitions folder is not known")
    file = FileTemplate(definitions, template) if template and definitions else None

    def part(name: str, flavor: str | None = None) -> str | None:
        return file.render(name, scope, flavor=flavor) if file is not None else None

    subject_text = render(subject, scope) if subject else part("subject")
    text = render(body, scope) if body else part("text")
    html = part("html")
    if text is None and html is None:
        text = default_body
    if html is None:
        html = text_to_html(text or "")
    if text is None:
        text = html_to_text(html)
    if body:
        slack = render_slack(body, scope)
    elif file is not None and "slack" in file.parts:
        slack = part("slack") or ""
    elif file is not None and "text" in file.parts:
        slack = part("text", "slack") or ""
    else:
        slack = text
    return Message(
        subject=_one_line(subject_text or "") or default_subject,
        text=text.strip() + "\n",
        html=html.strip() + "\n",
        slack=slack.strip(),
    )


# ---------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------


def send_email(
    conn_id: str, to: Sequence[str], message: Message, *, headers: Mapping[str, str] | None = None, log: Any = None
) -> None:
    """One multipart/alternative mail (text and HTML) through the SMTP connection ``conn_id``
    (host, port, login, password; extra ``from_email``, ``disable_tls``, ``disable_ssl``, ...)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk import conf

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        sender = hook.from_email or conf.get("email", "from_email", fallback=None)
        if not sender:
            raise NotificationError(
                f"no sender address: set from_email in the extra of the Airflow connection {conn_id!r}"
            )
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = sender
        mail["To"] = ", ".join(to)
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
        mail["Auto-Submitted"] = "auto-generated"
        for name, value in (headers or {}).items():
            if value:
                mail[name] = _one_line(str(value))
        mail.set_content(message.text, subtype="plain", charset="utf-8")
        mail.add_alternative(message.html, subtype="html", charset="utf-8")
        client = hook._smtp_client  # connected and logged in by the hook
        if client is None:  # pragma: no cover - get_conn() raises before
            raise NotificationError(f"could not connect to the SMTP server of {conn_id!r}")
        for attempt in range(hook.smtp_retry_limit + 1):
            try:
                client.send_message(mail, from_addr=sender, to_addrs=list(to))
                break
            except Exception:
                if attempt == hook.smtp_retry_limit:
                    raise
        if log is not None:
            log.info("Mail %r sent to %s", message.subject, ", ".join(to))


def post_slack(conn_id: str, targets: Sequence[str], text: str, *, log: Any = None) -> None:
    """One Slack message per target (a channel such as ``#storage`` or a member id), through the Slack
    provider, by the type of the Airflow connection ``conn_id``:

    * ``slack`` (Slack API, a bot token as the password): ``chat.postMessage`` to each target — a
      member id gets a direct message from the app;
    * ``slackwebhook`` (incoming webhook, the URL's token as the password): one post per target,
      ``channel`` selecting it on webhooks that allow it (one-channel app webhooks post to their own
      channel).

    A Slack API answer that is not ``ok`` raises (the caller logs and records it)."""
    from airflow.providers.slack.hooks.slack import SlackHook

    if SlackHook.get_connection(conn_id).conn_type == SlackHook.conn_type:
        client = SlackHook(slack_conn_id=conn_id).client
        for target in targets:
            client.chat_postMessage(channel=target, text=text, unfurl_links=False)
            if log is not None:
                log.info("Slack message posted to %s", target)
        return

    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(slack_webhook_conn_id=conn_id)
    for target in targets:
        with warnings.catch_warnings():
            # the hook warns that app webhooks ignore `channel`; legacy and relay webhooks honour it
            warnings.simplefilter("ignore", UserWarning)
            hook.send_dict({"channel": target, "text": text, "unfurl_links": False})
        if log is not None:
            log.info("Slack message posted to %s", target)


# ---------------------------------------------------------------------------------------------
# The notifier
# ---------------------------------------------------------------------------------------------


class _NoTaskInstance:
    """Stands in for ``ti`` when a DAG callback comes without one (no step outputs then)."""

    try_number = None

    def xcom_pull(self, **_: Any) -> None:
        return None


class _DatabaseXCom:
    """``ti`` for a DAG callback that runs without a task supervisor — ``dag.test()`` runs DAG
    callbacks in its own process, where the Task SDK cannot reach XCom — reading step outputs from
    the metadata database instead. (The dag-processor, which runs DAG callbacks in a deployment,
    has a supervisor, so the Task SDK path is used there.)"""

    def __init__(self, ti: Any, dag_id: str | None, run_id: str | None):
        self._ti = ti
        self.task_id = getattr(ti, "task_id", None)
        self.try_number = getattr(ti, "try_number", None)
        self._dag_id = dag_id or getattr(ti, "dag_id", None)
        self._run_id = run_id or getattr(ti, "run_id", None)

    def xcom_pull(self, *, task_ids: str, key: str = "return_value", **_: Any) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            query = XComModel.get_many(
                run_id=self._run_id, key=key, dag_ids=self._dag_id, task_ids=task_ids, map_indexes=-1, limit=1
            )
            row = session.scalars(query).first()
            return XComModel.deserialize_value(row) if row is not None else None


def _has_supervisor() -> bool:
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def notification_scope(context: Mapping[str, Any], spec: ScopeSpec, event: str | None = None) -> dict[str, Any]:
    """The template scope (form, steps, run, …) for a notification. ``run`` also has ``event``
    (start / success / failure, or None in a notify step), ``reason`` and, on failure,
    ``failed_step`` (the task that failed last); ``send`` adds ``requester_name``."""
    ti = context.get("ti")
    if ti is None:
        ctx = {**context, "ti": _NoTaskInstance()}
    elif event in ("success", "failure") and not _has_supervisor():
        dag_run = context.get("dag_run")
        ctx = {**context, "ti": _DatabaseXCom(ti, getattr(dag_run, "dag_id", None), context.get("run_id"))}
    else:
        ctx = dict(context)
    scope = build_scope(ctx, spec)
    run = dict(scope["run"])
    if not run.get("dag_id"):
        run["dag_id"] = getattr(context.get("dag"), "dag_id", None)
    run["event"] = event
    run["reason"] = context.get("reason")
    run["failed_step"] = getattr(ti, "task_id", None) if event == "failure" else None
    scope["run"] = run
    return scope


def requester_name(directory: Directory, scope: Mapping[str, Any]) -> str | None:
    """Who asked, for people to read: the requester's name (see ``Directory.requester``), else the
    Airflow user who started the run."""

    try:
        return directory.resolve("requester", scope).label()
    except ContactError:
        return scope["run"].get("requester")


class AutopilotNotifier(BaseNotifier):
    """Notify ``to`` (contact references) by ``via`` (``email``, ``slack``).

    :param to: ``person:ID``, ``group:ID``, ``manager_of:requester``, ``user:NAME``, ``email:ADDR``,
        ``requester``.
    :param subject: inline template for the subject.
    :param template: a template under ``definitions/templates/`` (see ``FileTemplate``).
    :param body: inline template for the text part and the Slack message.
    :param event: ``start``, ``success`` or ``failure`` for workflow notifications (default texts
        and ``run.event``), None for a notify step.
    :param scope: the compile-time ``ScopeSpec`` (as a dict): step outputs and the definitions folder.
    """

    # Nothing is rendered by Airflow's (unsandboxed) environment: user text renders in Autopilot's.
    template_fields = ()

    def __init__(
        self,
        *,
        to: Sequence[str],
        via: Sequence[str] = ("email",),
        subject: str | None = None,
        template: str | None = None,
        body: str | None = None,
        event: str | None = None,
        scope: Mapping[str, Any] | None = None,
        smtp_conn_id: str | None = None,
        slack_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        unknown = [v for v in via if v not in VIAS]
        if unknown:
            raise ValueError(f"unknown notification channel(s) {unknown}: expected {', '.join(VIAS)}")
        if event is not None and event not in EVENTS:
            raise ValueError(f"unknown event {event!r}: expected one of {', '.join(EVENTS)}")
        self.to = list(to)
        self.via = list(via)
        self.subject = subject
        self.template = template
        self.body = body
        self.event = event
        self.scope = dict(scope or {})
        self.smtp_conn_id = smtp_conn_id
        self.slack_conn_id = slack_conn_id

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments that differ from the defaults (``autopilot render`` writes the
        notifier back out with them)."""
        values = {
            "to": self.to,
            "via": self.via,
            "subject": self.subject,
            "template": self.template,
            "body": self.body,
            "event": self.event,
            "scope": self.scope,
            "smtp_conn_id": self.smtp_conn_id,
            "slack_conn_id": self.slack_conn_id,
        }
        return {k: v for k, v in values.items() if v not in (None, {}) and not (k == "via" and v == ["email"])}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render with Airflow's environment (user text renders in the sandbox, in
        ``send``); skipping it also spares building a Jinja environment from the DAG."""

    def notify(self, context: Any) -> None:
        self.send(context)

    def _defaults(self, scope: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[str, str]:
        run = scope["run"]
        dag = context.get("dag")
        title = getattr(dag, "description", None) or run.get("dag_id") or "workflow"
        if self.event:
            word = _EVENT_WORDS[self.event]
            subject = f"[Autopilot] {title}: request {word}"
            body = f"{title}: run {run.get('id')} {word}."
            if self.event == "failure" and run.get("failed_step"):
                body += f" Failed step: {run['failed_step']}."
            return subject, body + "\n"
        task = context.get("task")
        step = getattr(task, "task_id", None) or "notify"
        return f"[Autopilot] {title}: {step}", f"{title}: run {run.get('id')}, step {step}.\n"

    def send(
        self,
        context: Mapping[str, Any],
        *,
        values: Mapping[str, Any] | None = None,
        defaults: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Resolve, render and deliver; returns what was sent (the notify step's outputs).
        ``values``: more names the templates see (a trigger's ``trigger``); ``defaults``: the subject
        and body when the spec gives none."""
        spec = ScopeSpec.from_dict(self.scope)
        scope = notification_scope(context, spec, self.event)
        scope.update(values or {})
        directory = contacts_directory(spec.definitions)
        scope["run"]["requester_name"] = requester_name(directory, scope)
        recipients = directory.resolve_all(self.to, scope)
        default_subject, default_body = defaults or self._defaults(scope, context)
        message = compose(
            scope,
            definitions=spec.definitions,
            subject=self.subject,
            template=self.template,
            body=self.body,
            default_subject=default_subject,
            default_body=default_body,
        )
        run = scope["run"]
        sent: dict[str, Any] = {"subject": message.subject, "email": [], "slack": []}
        unreachable: list[str] = []
        if "email" in self.via:
            addresses, missing = email_addresses(recipients)
            unreachable += [f"{who} (no e-mail address)" for who in missing]
            if addresses:
                send_email(
                    self.smtp_conn_id or config.smtp_conn_id(),
                    addresses,
                    message,
                    headers={"X-Autopilot-Workflow": run.get("dag_id"), "X-Autopilot-Run": run.get("id")},
                    log=self.log,
                )
                sent["email"] = addresses
        if "slack" in self.via:
            targets, missing = slack_targets(recipients)
            unreachable += [f"{who} (no Slack id or channel)" for who in missing]
            if targets:
                post_slack(self.slack_conn_id or config.slack_conn_id(), targets, message.slack, log=self.log)
                sent["slack"] = targets
        if unreachable:
            self.log.warning("Not notified: %s", "; ".join(unreachable))
        if not sent["email"] and not sent["slack"]:
            raise NotificationError(
                f"nobody to notify by {' or '.join(self.via)}: " + ("; ".join(unreachable) or "no recipients")
            )
        return sent
