"""People in the loop: `approval` → ``AutopilotApprovalOperator``, `form` → ``AutopilotFormOperator``
(both Airflow HITL tasks answered through the Autopilot plugin; see autopilot_provider/operators/human.py)."""

from __future__ import annotations

from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.human import (
    AutopilotApprovalOperator,
    AutopilotFormOperator,
    self_approval_allowed,
)
from autopilot_provider.timeparse import parse_duration


def _seconds(duration: str | None) -> float | None:
    return parse_duration(duration).total_seconds() if duration else None


def _common(step: m.Step, spec: m.ApprovalStep | m.FormStep, ctx) -> dict[str, Any]:
    kwargs = ctx.task_kwargs(step)
    # A person may take days: the step's own `timeout` says how long they have, not how long the
    # task may run (Airflow deprecates execution_timeout on HITL tasks).
    kwargs.pop("execution_timeout", None)
    return {
        "from_": list(spec.from_),
        "title": step.title,
        "subject_template": spec.subject,
        "body_template": spec.body,
        "timeout_seconds": _seconds(spec.timeout or step.timeout),
        "remind_every_seconds": _seconds(spec.remind_every),
        "via": list(spec.via),
        "scope": ctx.scope(),
        **kwargs,
    }


def compile_approval(step: m.Step, ctx) -> AutopilotApprovalOperator:
    spec = step.approval
    assert spec is not None
    return AutopilotApprovalOperator(
        quorum=spec.quorum,
        exclude_requester=spec.exclude_requester,
        on_timeout=spec.on_timeout,
        escalate_to=list(spec.escalate_to),
        comment_required_on_reject=spec.comment_required_on_reject,
        else_=list(spec.else_ or []),
        **_common(step, spec, ctx),
    )


def compile_form(step: m.Step, ctx) -> AutopilotFormOperator:
    spec = step.form
    assert spec is not None
    from autopilot_provider.forms import step_form

    return AutopilotFormOperator(
        form=step_form(spec.properties, spec.required, ctx.project), **_common(step, spec, ctx)
    )


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def human_diagnostics(definition: m.Workflow | m.Function, project: Any) -> list[tuple[tuple, str]]:
    """(location, message) for approval and form steps nobody could answer: answers come from
    logged-in Airflow users, so every entry of `from`/`escalate_to` must lead to at least one
    Airflow user name; and the requester cannot be an approver where `exclude_requester` is set, nor
    may a step set ``exclude_requester: false`` unless ``[autopilot] allow_self_approval`` is on.
    (Unknown people and groups are reported by the contacts check.)"""
    from autopilot_provider.contacts import ContactError, Directory, split_ref

    problems: list[tuple[tuple, str]] = []
    directory: Directory | None = None
    for i, step in enumerate(definition.steps):
        spec = step.approval or step.form
        if spec is None:
            continue
        where = f"step '{step.id}': "
        lists = [("from", spec.from_)]
        if step.approval is not None:
            lists.append(("escalate_to", step.approval.escalate_to))
            if not step.approval.exclude_requester and not self_approval_allowed():
                problems.append(
                    (
                        ("steps", i, "approval", "exclude_requester"),
                        f"{where}exclude_requester: false has no effect: a requester never approves their own "
                        "request unless the deployment's admin sets [autopilot] allow_self_approval; remove it",
                    )
                )
        for key, refs in lists:
            for j, ref in enumerate(refs):
                loc = ("steps", i, step.kind, key, j)
                try:
                    kind, value = split_ref(ref)
                except ContactError:
                    continue
                if kind == "email":
                    problems.append((loc, f"{where}{ref} cannot answer: an e-mail address is not an Airflow user"))
                elif kind == "requester" and step.approval is not None and step.approval.exclude_requester:
                    problems.append(
                        (loc, f"{where}the requester cannot approve their own request (exclude_requester is set)")
                    )
                elif kind in ("person", "group"):
                    directory = directory or Directory.from_project(project)
                    people = (
                        [directory.people.get(value)]
                        if kind == "person"
                        else [directory.people.get(p) for p in getattr(directory.groups.get(value), "members", [])]
                    )
                    known = [p for p in people if p is not None]
                    if known and not any(p.username for p in known):
                        who = "has no" if kind == "person" else "has no member with an"
                        problems.append(
                            (loc, f"{where}{ref} {who} Airflow `username` in the contacts, so nobody could answer")
                        )
        if step.form is not None:
            for j, name in enumerate(step.form.required):
                if name not in step.form.properties:
                    problems.append(
                        (("steps", i, "form", "required", j), f"{where}required field '{name}' is not in properties")
                    )
    return problems
