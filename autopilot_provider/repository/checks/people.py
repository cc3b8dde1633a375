"""Checks of the places that name people (``to``/``from``/``escalate_to``, owners of workflows and
inventory items) and of notification templates."""

from __future__ import annotations

from collections.abc import Iterator

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.templating import FileTemplate, TemplateFileError
from autopilot_provider.repository.checks.problems import NOT_YET, Problem
from autopilot_provider.repository.contacts import UNKNOWN, Directory, check_contact_refs, owner_problems
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


def item_fields(form: m.Form) -> list[str]:
    """The form fields whose value is an inventory item's id (``options: {resources: TYPE}``): what
    ``owner_of:form.FIELD`` may name."""
    return [name for name, f in form.properties.items() if f.options is not None and f.options.resources is not None]


def people_problems(definition: m.Workflow | m.Function, project: Definitions) -> list[Problem]:
    """(location, message) for a workflow's owner that names nobody known, unknown people, groups and
    inventory items in ``to``/``from``/``escalate_to`` (``owner`` where the workflow's owner is no
    contact), and notification templates that are missing, unsafe or broken. Reads the Contacts
    definitions only when a definition names people."""
    if not isinstance(definition, (m.Workflow, m.Function)):
        return []
    problems: list[tuple[tuple, str]] = []
    directory: Directory | None = None
    # a function's steps reach the owner and the form of whichever workflow uses it: checked at run time
    owner, fields = UNKNOWN, UNKNOWN
    if isinstance(definition, m.Workflow):
        owner, fields = definition.owner, item_fields(definition.form)
        problems.extend((("owner",), f"owner: {message}") for message in owner_problems(definition.owner, project))
    for loc, refs in _ref_lists(definition, set(NOT_YET)):
        if not refs:
            continue
        if directory is None and any(r.split(":", 1)[0] in ("person", "group", "manager_of", "owner_of") for r in refs):
            directory = Directory.from_project(project)
        found = check_contact_refs(refs, project, directory=directory, owner=owner, item_fields=fields)
        for index, message in found:
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


def resource_owner_problems(definition: m.Resources, project: Definitions) -> list[Problem]:
    """(location, message) for inventory items whose ``owner`` names nobody known (free text is fine)."""
    directory: Directory | None = None
    problems: list[Problem] = []
    for i, item in enumerate(definition.items):
        if not item.owner:
            continue
        directory = directory or Directory.from_project(project, inventory=False)
        for message in owner_problems(item.owner, project, directory):
            problems.append((("items", i, "owner"), f"item '{item.id}': owner: {message}"))
    return problems
