"""`approval` → ``AutopilotApprovalOperator`` (an Airflow HITL task answered through the Autopilot
plugin; see autopilot_provider/operators/approval.py), and the guards it puts on the steps after it.
The arguments it shares with `form` (dag_factory/compilers/form.py) are built here too."""

from __future__ import annotations

from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.durations import parse_duration
from autopilot_provider.operators.approval import AutopilotApprovalOperator, within
from autopilot_provider.operators.guard import APPROVED, DECIDED, NOT_APPROVED, ApprovalGuard
from dag_factory.context import BuildContext


def _seconds(duration: str | None) -> float | None:
    return parse_duration(duration).total_seconds() if duration else None


def hitl_step_kwargs(step: m.Step, spec: m.ApprovalStep | m.FormStep, ctx: BuildContext) -> dict[str, Any]:
    """The operator arguments an approval and a form step share: who answers, the texts, the timeouts."""
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


def compile_approval(step: m.Step, ctx: BuildContext) -> AutopilotApprovalOperator:
    spec = step.approval
    assert spec is not None
    return AutopilotApprovalOperator(
        quorum=spec.quorum,
        exclude_requester=spec.exclude_requester,
        on_timeout=spec.on_timeout,
        escalate_to=list(spec.escalate_to),
        comment_required_on_reject=spec.comment_required_on_reject,
        else_=list(spec.else_ or []),
        **hitl_step_kwargs(step, spec, ctx),
    )


#: Trigger rules that wait for the approval to succeed (or to branch): a task with one of these after
#: an approval runs because of its decision, so it checks that decision. (``all_done``, ``always``,
#: … run whatever the approval did, so it does not guard them.)
GUARDED_RULES = frozenset(
    {"all_success", "none_failed", "none_failed_min_one_success", "one_success", "all_done_min_one_success"}
)


def guard_approvals(dag: Any) -> None:
    """Give every task an approval guards an :class:`ApprovalGuard` as its ``pre_execute`` hook: the
    tasks after the approval (``approved``), after its `else` steps (``not_approved``), or after both
    (``decided``). A task that a path around the approval also reaches (a join after a decision whose
    other branch has no approval) is not guarded by it: its upstream tasks on the approval's side are.
    Called once the whole DAG is wired, so steps after a function's approval count too."""
    requires: dict[str, list[tuple[str, str]]] = {}
    for approval in dag.tasks:
        if not isinstance(approval, AutopilotApprovalOperator):
            continue
        else_ids = approval._else_ids() if approval.else_ else []
        approve_side: set[str] = set()
        else_side: set[str] = set()
        for child_id in approval.downstream_task_ids:
            side = else_side if within(child_id, else_ids) else approve_side
            side.add(child_id)
            side.update(t.task_id for t in dag.get_task(child_id).get_flat_relatives(upstream=False))
        bypass = _reachable_without(dag, approval.task_id)
        for task_id in sorted((approve_side | else_side) - bypass):
            rule = dag.get_task(task_id).trigger_rule
            if getattr(rule, "value", rule) not in GUARDED_RULES:
                continue
            if task_id in approve_side and task_id in else_side:
                needs = DECIDED
            else:
                needs = APPROVED if task_id in approve_side else NOT_APPROVED
            requires.setdefault(task_id, []).append((approval.task_id, needs))
    for task_id, needs in requires.items():
        task = dag.get_task(task_id)
        guard = ApprovalGuard(tuple(needs))
        task._pre_execute_hook = guard
        # recorded like a constructor argument, so `autopilot render` writes the guard out too
        init_kwargs = getattr(task, "_BaseOperator__init_kwargs", None)
        if isinstance(init_kwargs, dict):
            init_kwargs["pre_execute"] = guard


def _reachable_without(dag: Any, task_id: str) -> set[str]:
    """The tasks a path from the DAG's first tasks reaches without passing through ``task_id``."""
    seen: set[str] = set()
    todo = [t.task_id for t in dag.tasks if not t.upstream_task_ids and t.task_id != task_id]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo += [d for d in dag.get_task(current).downstream_task_ids if d != task_id]
    return seen
