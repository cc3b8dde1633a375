"""Notifications.

* ``notify:`` steps → ``NotifyOperator``.
* Workflow ``notifications``: ``on_success`` / ``on_failure`` → the DAG's ``on_success_callback`` /
  ``on_failure_callback`` (an ``AutopilotNotifier``; Airflow runs DAG callbacks in the dag-processor,
  and inline in ``dag.test()``). Airflow 3.3 has no DAG-level "run started" callback, so ``on_start``
  → a first task ``_notify_start`` that every root step waits for: it runs once per run (not once per
  root task or per retry, as a task ``on_execute_callback`` would), shows in the grid with its log,
  and is retried like any step. If it cannot send, the request stops before anything is changed.
"""

from __future__ import annotations

from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.durations import parse_duration
from autopilot_provider.notifications.autopilot import AutopilotNotifier
from autopilot_provider.operators.notify import NotifyOperator
from autopilot_provider.repository.scope import ScopeSpec
from dag_factory.context import BuildContext

START_TASK_ID = "_notify_start"


def _spec_kwargs(spec: m.NotifySpec) -> dict[str, Any]:
    return {
        "to": list(spec.to),
        "via": list(spec.via),
        "subject": spec.subject,
        "template": spec.template,
        "body": spec.body,
    }


def compile_notify(step: m.Step, ctx: BuildContext) -> NotifyOperator:
    spec = step.notify
    assert spec is not None
    return NotifyOperator(**_spec_kwargs(spec), scope=ctx.scope(), **ctx.task_kwargs(step))


def _workflow_scope(workflow: m.Workflow, ctx: BuildContext) -> dict[str, Any]:
    """Every top-level step's outputs (a `use` step's are in its `_outputs` task)."""
    return ScopeSpec(
        steps={s.id: ctx.output_task(s) for s in workflow.steps},
        definitions=str(ctx.definitions),
        tickets=[ctx.output_task(s) for s in workflow.steps if s.ticket is not None and s.ticket.action == "create"],
        owner=ctx.owner,
    ).as_dict()


def workflow_callbacks(workflow: m.Workflow, ctx: BuildContext) -> dict[str, Any]:
    """DAG keyword arguments for ``notifications.on_success`` / ``on_failure``."""

    kwargs: dict[str, Any] = {}
    for event in ("success", "failure"):
        spec = getattr(workflow.notifications, f"on_{event}")
        if spec is not None:
            kwargs[f"on_{event}_callback"] = AutopilotNotifier(
                **_spec_kwargs(spec), event=event, scope=_workflow_scope(workflow, ctx)
            )
    return kwargs


def start_notification(workflow: m.Workflow, ctx: BuildContext) -> NotifyOperator | None:
    """``notifications.on_start`` → the task ``_notify_start`` (create it inside the DAG before the
    steps, so it comes first, then ``connect_start`` it once the steps are compiled)."""
    spec = workflow.notifications.on_start
    if spec is None:
        return None

    kwargs: dict[str, Any] = {"task_id": START_TASK_ID, "doc_md": "Tell people the request has started."}
    defaults = workflow.defaults
    if defaults.retries is not None:
        kwargs["retries"] = defaults.retries
    if defaults.retry_delay:
        kwargs["retry_delay"] = parse_duration(defaults.retry_delay)
    if defaults.timeout:
        kwargs["execution_timeout"] = parse_duration(defaults.timeout)
    return NotifyOperator(**_spec_kwargs(spec), event="start", scope=_workflow_scope(workflow, ctx), **kwargs)


def connect_start(start: NotifyOperator | None, workflow: m.Workflow, ctx: BuildContext, nodes: dict[str, Any]) -> None:
    """Every root step (one that waits for no other step) waits for ``_notify_start``."""
    if start is not None:
        start >> [nodes[s.id] for s in workflow.steps if not ctx.dependencies.get(s.id)]
