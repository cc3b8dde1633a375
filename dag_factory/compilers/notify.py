"""Notifications.

* ``notify:`` steps → ``NotifyOperator``.
* Workflow ``notifications``: ``on_success`` / ``on_failure`` → the DAG's ``on_success_callback`` /
  ``on_failure_callback`` (an ``AutopilotNotifier``; Airflow runs DAG callbacks in the dag-processor,
  and inline in ``dag.test()``). Airflow 3.3 has no DAG-level "run started" callback, so ``on_start``
  → a first task ``_notify_start`` that every root step waits for: it runs once per run (not once per
  root task or per retry, as a task ``on_execute_callback`` would), shows in the grid with its log,
  and is retried like any step. If it cannot send, the request stops before anything is changed.
* ``people_diagnostics``: validation-time checks of contact references and notification templates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.notify import NotifyOperator
from autopilot_provider.runtime import ScopeSpec

START_TASK_ID = "_notify_start"


def _spec_kwargs(spec: m.NotifySpec) -> dict[str, Any]:
    return {
        "to": list(spec.to),
        "via": list(spec.via),
        "subject": spec.subject,
        "template": spec.template,
        "body": spec.body,
    }


def compile_notify(step: m.Step, ctx) -> NotifyOperator:
    spec = step.notify
    assert spec is not None
    return NotifyOperator(**_spec_kwargs(spec), scope=ctx.scope(), **ctx.task_kwargs(step))


def _workflow_scope(workflow: m.Workflow, ctx) -> dict[str, Any]:
    """Every top-level step's outputs (a `use` step's are in its `_outputs` task)."""
    return ScopeSpec(
        steps={s.id: ctx.output_task(s) for s in workflow.steps},
        definitions=str(ctx.definitions),
        tickets=[ctx.output_task(s) for s in workflow.steps if s.ticket is not None and s.ticket.action == "create"],
    ).as_dict()


def workflow_callbacks(workflow: m.Workflow, ctx) -> dict[str, Any]:
    """DAG keyword arguments for ``notifications.on_success`` / ``on_failure``."""
    from autopilot_provider.notifications.autopilot import AutopilotNotifier

    kwargs: dict[str, Any] = {}
    for event in ("success", "failure"):
        spec = getattr(workflow.notifications, f"on_{event}")
        if spec is not None:
            kwargs[f"on_{event}_callback"] = AutopilotNotifier(
                **_spec_kwargs(spec), event=event, scope=_workflow_scope(workflow, ctx)
            )
    return kwargs


def start_notification(workflow: m.Workflow, ctx) -> NotifyOperator | None:
    """``notifications.on_start`` → the task ``_notify_start`` (create it inside the DAG before the
    steps, so it comes first, then ``connect_start`` it once the steps are compiled)."""
    spec = workflow.notifications.on_start
    if spec is None:
        return None
    from autopilot_provider.timeparse import parse_duration

    kwargs: dict[str, Any] = {"task_id": START_TASK_ID, "doc_md": "Tell people the request has started."}
    defaults = workflow.defaults
    if defaults.retries is not None:
        kwargs["retries"] = defaults.retries
    if defaults.retry_delay:
        kwargs["retry_delay"] = parse_duration(defaults.retry_delay)
    if defaults.timeout:
        kwargs["execution_timeout"] = parse_duration(defaults.timeout)
    return NotifyOperator(**_spec_kwargs(spec), event="start", scope=_workflow_scope(workflow, ctx), **kwargs)


def connect_start(start: NotifyOperator | None, workflow: m.Workflow, ctx, nodes: dict[str, Any]) -> None:
    """Every root step (one that waits for no other step) waits for ``_notify_start``."""
    if start is not None:
        start >> [nodes[s.id] for s in workflow.steps if not ctx.dependencies.get(s.id)]


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _ref_lists(definition: m.Workflow | m.Function, skip: set[str]) -> Iterator[tuple[tuple, list[str]]]:
    """(location, contact references) of every place that names people, except in steps of the
    kinds in ``skip`` (kinds that do not compile yet are reported as such, nothing more)."""
    for i, step in enumerate(definition.steps):
        if step.kind in skip:
            continue
        if step.notify is not None:
            yield ("steps", i, "notify", "to"), step.notify.to
        if step.approval is not None:
            yield ("steps", i, "approval", "from"), step.approval.from_
            yield ("steps", i, "approval", "escalate_to"), step.approval.escalate_to
        if step.form is not None:
            yield ("steps", i, "form", "from"), step.form.from_
    if isinstance(definition, m.Workflow):
        for event in ("on_start", "on_success", "on_failure"):
            spec = getattr(definition.notifications, event)
            if spec is not None:
                yield ("notifications", event, "to"), spec.to
        for i, timer in enumerate(definition.timers):
            yield ("timers", i, "notify", "to"), timer.notify.to


def _templates(definition: m.Workflow | m.Function) -> Iterator[tuple[tuple, str]]:
    for i, step in enumerate(definition.steps):
        if step.notify is not None and step.notify.template:
            yield ("steps", i, "notify", "template"), step.notify.template
    if isinstance(definition, m.Workflow):
        for event in ("on_start", "on_success", "on_failure"):
            spec = getattr(definition.notifications, event)
            if spec is not None and spec.template:
                yield ("notifications", event, "template"), spec.template
        for i, timer in enumerate(definition.timers):
            if timer.notify.template:
                yield ("timers", i, "notify", "template"), timer.notify.template


def _label(definition: m.Workflow | m.Function, loc: tuple) -> str:
    if loc[0] == "steps":
        return f"step '{definition.steps[loc[1]].id}': "
    if loc[0] == "notifications":
        return f"notifications.{loc[1]}: "
    return f"timer '{definition.timers[loc[1]].id}': " if isinstance(definition, m.Workflow) else ""


def people_diagnostics(definition: m.Header, project: Any) -> list[tuple[tuple, str]]:
    """(location, message) for unknown people and groups in ``to``/``from``/``escalate_to``, and for
    notification templates that are missing, unsafe or broken. Reads the Contacts definitions only
    when a definition names people."""
    if not isinstance(definition, (m.Workflow, m.Function)):
        return []
    from autopilot_provider.contacts import Directory, check_contact_refs
    from autopilot_provider.templating import FileTemplate, TemplateFileError
    from dag_factory.registry import NOT_YET

    problems: list[tuple[tuple, str]] = []
    directory: Directory | None = None
    for loc, refs in _ref_lists(definition, set(NOT_YET)):
        if not refs:
            continue
        if directory is None and any(r.split(":", 1)[0] in ("person", "group", "manager_of") for r in refs):
            directory = Directory.from_project(project)
        for index, message in check_contact_refs(refs, project, directory=directory):
            problems.append((loc + (index,), _label(definition, loc) + message))
    if isinstance(definition, m.Workflow):
        names: dict[str, set[str] | None] = {
            "form": set(definition.form.properties),
            "steps": {s.id for s in definition.steps},
            "run": None,
            "resources": None,
            "contacts": None,
        }
    else:
        names = {
            "inputs": set(definition.inputs),
            "steps": {s.id for s in definition.steps},
            "run": None,
            "resources": None,
            "contacts": None,
        }
    for loc, name in _templates(definition):
        label = _label(definition, loc)
        try:
            issues = FileTemplate(project.root, name).check(names)
        except TemplateFileError as exc:
            problems.append((loc, f"{label}{exc}"))
            continue
        problems.extend((loc, f"{label}template {name!r}: {issue}") for issue in issues)
    return problems
