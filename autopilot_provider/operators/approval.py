"""The ``approval`` step, and what it shares with the mid-flow ``form`` step
(:mod:`autopilot_provider.operators.form`): both are built on Airflow's human-in-the-loop. Worker
runtime (and DAG parsing).

The task writes an Airflow HITL request (``hitl_detail``) and parks in Airflow 3.3's
``awaiting_input`` state — no worker slot, no trigger. Before that it resolves *who* may answer
(contacts → approver slots with their Airflow user names) and pushes that, with the rendered
subject and body, as the XCom ``autopilot_request`` (a
:class:`~autopilot_provider.repository.hitl.HitlRequest`); the Autopilot plugin on the API server reads it,
keeps the vote trail in its ``autopilot_approval*`` tables, sends the approval mails with signed links,
reminds, escalates, and — once the quorum is reached — answers the HITL request itself, which
resumes the task here in ``execute_complete``.

The HITL request is assigned to a synthetic user (``autopilot:…``) that no Airflow user can be, so
answering in Airflow's own Required Actions page is refused (403) instead of bypassing the quorum
and the group rules. Should an answer still arrive from anyone but Autopilot (an auth manager that
lets admins answer everything, say), the step fails loudly rather than continue on one person's say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk.bases.branch import BranchMixIn
from airflow.sdk.exceptions import AirflowFailException

from autopilot_provider.definitions.templating import render
from autopilot_provider.notifications.autopilot import requester_name
from autopilot_provider.operators.guard import SEAL_KEY
from autopilot_provider.repository.contacts import OnBehalfRefused
from autopilot_provider.repository.folder import contacts_directory
from autopilot_provider.repository.hitl import (
    APPROVE,
    AUTOPILOT_USER,
    AUTOPILOT_USER_ID,
    BACKSTOP,
    REJECT,
    REQUEST_XCOM_KEY,
    RULES_FIELD,
    HitlRequest,
    HitlRules,
    Person,
    default,
    person,
    resolve_slots,
)
from autopilot_provider.repository.scope import ScopeSpec, build_scope

__all__ = ["AutopilotApprovalOperator", "HitlStepError", "HitlStepOperator", "within"]


class HitlStepError(RuntimeError):
    """A step waiting for people that cannot go on (rejected without `else`, answered outside
    Autopilot, …)."""


class HitlStepOperator(HITLOperator):
    """What approvals and form steps share: resolving people, describing the request for the plugin,
    and refusing answers that did not come through Autopilot."""

    # Airflow's (unsandboxed) Jinja never sees user text: subject and body render in Autopilot's sandbox.
    template_fields: Sequence[str] = ()
    kind: str
    #: HITL arguments computed here from the step's own (``autopilot render`` leaves them out).
    derived_args = frozenset({"options", "assigned_users", "subject", "response_timeout", "defaults"})

    def __init__(
        self,
        *,
        from_: Sequence[str],
        title: str | None = None,
        subject_template: str | None = None,
        body_template: str | None = None,
        timeout_seconds: float | None = None,
        remind_every_seconds: float | None = None,
        via: Sequence[str] = tuple(default("via")),
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("subject", title or kwargs.get("task_id", "Request"))
        kwargs["assigned_users"] = [AUTOPILOT_USER]
        super().__init__(**kwargs)
        self.from_ = list(from_)
        self.title = title
        self.subject_template = subject_template
        self.body_template = body_template
        self.timeout_seconds = timeout_seconds
        self.remind_every_seconds = remind_every_seconds
        self.via = list(via)
        self.scope = scope or {}
        self.autopilot_rules = self.rules().to_json()

    @classmethod
    def get_serialized_fields(cls):
        return super().get_serialized_fields() | {RULES_FIELD}

    def rules(self) -> HitlRules:
        """Who may answer and how the answer is decided: what a run keeps from the DAG version it
        started with (``autopilot_provider.server.approval_records`` compares it with what the task sends)."""
        return HitlRules(from_=self.from_, timeout_seconds=self.timeout_seconds)

    def request_fields(self, context: Any, scope: dict[str, Any]) -> dict[str, Any]:
        """The kind-specific fields of the :class:`HitlRequest`."""
        return {}

    def execute(self, context: Any):

        spec = ScopeSpec.from_dict(self.scope)
        scope = build_scope(context, spec)
        directory = contacts_directory(spec.definitions)
        requester = Person(username=scope["run"].get("requester"))
        try:
            who = person(directory.resolve("requester", scope))
            requester = requester.model_copy(update=who.model_dump(exclude_none=True))
        except OnBehalfRefused as exc:
            # never fall back to the account that started it: it named someone else, so who may not
            # approve (and who is asked) would be guessed
            raise AirflowFailException(str(exc)) from None
        except Exception:  # noqa: BLE001 - a run started by a system may have no requester
            requester.name = requester_name(directory, scope)
        # like notifications, templates see who asked as run.requester_name
        scope["run"] = {**scope["run"], "requester_name": requester.name or requester.username}
        if self.subject_template:
            self.subject = " ".join(render(self.subject_template, scope).split())
        if self.body_template:
            self.body = render(self.body_template, scope)
        dag = context.get("dag")
        request = HitlRequest(
            kind=self.kind,
            step_id=self.task_id.rsplit(".", 1)[-1],
            title=self.title or self.task_id,
            workflow_title=getattr(dag, "description", None) or getattr(dag, "dag_id", None),
            subject=self.subject,
            body=self.body,
            requester=requester,
            request=dict(scope["form"]),
            slots=resolve_slots(self.from_, scope, spec.definitions),
            timeout_seconds=self.timeout_seconds,
            remind_every_seconds=self.remind_every_seconds,
            via=self.via,
            definitions=spec.definitions,
            **self.request_fields(context, scope),
        )
        self.log.info("Asking %s: %s", ", ".join(slot.label for slot in request.slots), request.subject)
        context["ti"].xcom_push(key=REQUEST_XCOM_KEY, value=request.as_dict())
        return super().execute(context)

    def check_responder(self, event: Mapping[str, Any]) -> None:
        responder = event.get("responded_by_user") or {}
        if event.get("responded_by_user") is not None and responder.get("id") != AUTOPILOT_USER_ID:
            raise HitlStepError(
                f"answered by {responder.get('name') or responder.get('id')} outside Autopilot: not accepted "
                "(answers go through the Autopilot inbox or API, which apply the quorum and group rules)"
            )


class AutopilotApprovalOperator(HitlStepOperator, BranchMixIn):
    """An ``approval`` step. Outputs: ``outcome`` (``approved``, ``rejected``, ``timed_out``),
    ``approved`` (bool), ``votes`` (who, when, decision, comment), ``rejected_by`` and ``comment``
    (the deciding rejection), ``decided_at``, and ``seal``: the decision as the API server signed it,
    which the steps this approval guards check before they run (``autopilot_provider.operators.guard``).

    Not approved: with ``else_`` the listed steps run and the approval's other direct downstream
    steps are skipped; without it the step fails, naming who rejected and why."""

    kind = "approval"
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        quorum: str | int = default("quorum"),
        exclude_requester: bool = default("exclude_requester"),
        on_timeout: str = default("on_timeout"),
        escalate_to: Sequence[str] = (),
        comment_required_on_reject: bool = default("comment_required_on_reject"),
        else_: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        timeout = kwargs.get("timeout_seconds")
        if timeout:
            windows = 2 if on_timeout == "escalate" else 1
            kwargs["response_timeout"] = timedelta(seconds=timeout * windows) + BACKSTOP
            kwargs["defaults"] = [APPROVE if on_timeout == "approve" else REJECT]
        # set before the base class computes the rules
        self.quorum = quorum
        self.exclude_requester = exclude_requester
        self.on_timeout = on_timeout
        self.escalate_to = list(escalate_to)
        self.comment_required_on_reject = comment_required_on_reject
        super().__init__(options=[APPROVE, REJECT], **kwargs)
        self.else_ = list(else_)

    def rules(self) -> HitlRules:
        return HitlRules(
            **super().rules().model_dump(exclude_unset=True),
            quorum=self.quorum,
            exclude_requester=self.exclude_requester,
            on_timeout=self.on_timeout,
            escalate_to=self.escalate_to,
            comment_required_on_reject=self.comment_required_on_reject,
        )

    def request_fields(self, context: Any, scope: dict[str, Any]) -> dict[str, Any]:
        spec = ScopeSpec.from_dict(self.scope)
        return {
            "quorum": self.quorum,
            "exclude_requester": self.exclude_requester,
            "on_timeout": self.on_timeout,
            "escalate_to": resolve_slots(self.escalate_to, scope, spec.definitions) if self.escalate_to else [],
            "comment_required_on_reject": self.comment_required_on_reject,
        }

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if "error" in event:
            self.process_trigger_event_error(event)
        self.check_responder(event)
        result = dict(event.get("params_input") or {})
        if event.get("responded_by_user") is None:  # Airflow's own timeout sweep applied the defaults
            result = {"outcome": "timed_out", "approved": event["chosen_options"] == [APPROVE], "votes": []}
        outputs = {
            "outcome": result.get("outcome") or ("approved" if event["chosen_options"] == [APPROVE] else "rejected"),
            "approved": bool(result.get("approved", event["chosen_options"] == [APPROVE])),
            "votes": result.get("votes", []),
            "rejected_by": result.get("rejected_by"),
            "comment": result.get("comment"),
            "decided_at": event["responded_at"].isoformat() if event.get("responded_at") else None,
            "seal": result.get(SEAL_KEY),
        }
        self.log.info("Approval %s: %s", outputs["outcome"], outputs["votes"])
        if not outputs["approved"] and not self.else_:
            who = f" by {outputs['rejected_by']}" if outputs.get("rejected_by") else ""
            why = f": {outputs['comment']}" if outputs.get("comment") else ""
            raise HitlStepError(f"not approved ({outputs['outcome']}{who}){why}")
        if self.else_:
            # Branching ends execute_complete with an exception (the skip), so push the outputs first.
            context["ti"].xcom_push(key="return_value", value=outputs)
            else_ids = self._else_ids()
            if outputs["approved"]:
                self.do_branch(context, [t for t in self.downstream_task_ids if not within(t, else_ids)])
            else:
                self.do_branch(context, else_ids)
        return outputs

    def _else_ids(self) -> list[str]:
        """The else steps' task (or task group) ids; inside a function they carry its group prefix."""
        prefix = self.task_id.rsplit(".", 1)[0] + "." if "." in self.task_id else ""
        return [prefix + step for step in self.else_]


def within(task_id: str, ids: Sequence[str]) -> bool:
    return any(task_id == i or task_id.startswith(i + ".") for i in ids)
