"""Checks of `Trigger` definitions against the rest of the folder: the data point (an Api's
operation, like a `task` step's; SQL and metrics are not supported yet), the Alert it raises, and the
people it names (its owner, whom it notifies) and its notification template."""

from __future__ import annotations

from collections.abc import Iterator

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import suggest
from autopilot_provider.definitions.templating import FileTemplate, TemplateFileError
from autopilot_provider.definitions.validate import TRIGGER_NOTIFY_SCOPE
from autopilot_provider.repository.checks.problems import TRIGGER_SOURCES_NOT_YET, Problem
from autopilot_provider.repository.checks.rest import rest_call_problems
from autopilot_provider.repository.contacts import check_contact_refs, owner_problems
from autopilot_provider.repository.protocol import Definitions

#: Contact references that need a requester, which a trigger's scheduled run does not have.
REQUESTER_REFS = ("requester", "manager_of:requester")


def trigger_source_problems(definition: m.Trigger, project: Definitions | None = None) -> Iterator[Problem]:
    """A data point of a kind that is not read yet (SQL, metrics)."""
    source = definition.source
    if source in TRIGGER_SOURCES_NOT_YET:
        yield Problem(
            (source,),
            f"data point '{source}' is not supported yet ({TRIGGER_SOURCES_NOT_YET[source]}); read a REST "
            "operation with `rest`",
            key=True,
        )


def trigger_problems(definition: m.Trigger, project: Definitions) -> Iterator[Problem]:
    """The data point against its Api, the alert, the owner and whom it notifies."""
    if definition.rest is not None:
        yield from rest_call_problems(definition.rest, ("rest",), "rest", project)
        yield from _body_problem(definition.rest, project)
    if definition.alert is not None:
        yield from _alert_problems(definition.alert, project)
    for message in owner_problems(definition.owner, project):
        yield Problem(("owner",), f"owner: {message}")
    if definition.notify is not None:
        yield from _notify_problems(definition.notify, definition.owner, project)


def _alert_problems(alert_id: str, project: Definitions) -> Iterator[Problem]:
    rel = project.find("Alert", alert_id)
    if rel is None:
        alerts = project.ids("Alert")
        hint = suggest(alert_id, alerts) or (
            f"; Alert definitions: {', '.join(alerts)}" if alerts else " (there are no Alert definitions)"
        )
        yield Problem(("alert",), f"unknown alert '{alert_id}'{hint}")
        return
    target = project.load(rel)
    if not target.ok:
        first = target.diagnostics[0] if target.diagnostics else None
        yield Problem(("alert",), f"alert '{alert_id}' has errors" + (f": {first}" if first else ""))


def _body_problem(call: m.RestOperation, project: Definitions) -> Iterator[Problem]:
    """A data point is read without a request body: an operation that requires one cannot be it."""
    try:
        found = project.api_spec(call.api)
    except Exception:  # noqa: BLE001 - rest_call_problems reports an unreadable document
        return
    operation = found[1].operation(call.operation) if found is not None and found[1] is not None else None
    if operation is not None and operation.body_required:
        yield Problem(
            ("rest", "operation"),
            f"rest: operation '{operation.id}' requires a request body; a trigger reads its data point without one",
        )


def _notify_problems(spec: m.NotifySpec, owner: str | None, project: Definitions) -> Iterator[Problem]:
    for index, ref in enumerate(spec.to):
        if ref in REQUESTER_REFS:
            yield Problem(
                ("notify", "to", index),
                f"notify: '{ref}': a trigger's run has no requester; name people or groups (e.g. the owner)",
            )
    refs = [ref for ref in spec.to if ref not in REQUESTER_REFS]
    # a trigger's run has no form: owner_of:form.FIELD names nothing
    for index, message in check_contact_refs(refs, project, owner=owner, item_fields=()):
        yield Problem(("notify", "to", spec.to.index(refs[index])), f"notify: {message}")
    if spec.template:
        try:
            issues = FileTemplate(project.root, spec.template).check(TRIGGER_NOTIFY_SCOPE)
        except TemplateFileError as exc:
            yield Problem(("notify", "template"), f"notify: {exc}")
            return
        for issue in issues:
            yield Problem(("notify", "template"), f"notify: template {spec.template!r}: {issue}")
