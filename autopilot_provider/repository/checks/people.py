"""Checks of the places that name people (``to``/``from``/``escalate_to``) and of notification templates."""

from __future__ import annotations

from collections.abc import Iterator

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.templating import FileTemplate, TemplateFileError
from autopilot_provider.repository.checks.problems import NOT_YET, Problem
from autopilot_provider.repository.contacts import Directory, check_contact_refs
from autopilot_provider.repository.protocol import Definitions


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


def people_problems(definition: m.Workflow | m.Function, project: Definitions) -> list[Problem]:
    """(location, message) for unknown people and groups in ``to``/``from``/``escalate_to``, and for
    notification templates that are missing, unsafe or broken. Reads the Contacts definitions only
    when a definition names people."""
    if not isinstance(definition, (m.Workflow, m.Function)):
        return []
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
