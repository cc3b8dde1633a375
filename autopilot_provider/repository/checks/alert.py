"""Checks of `Alert` definitions against the rest of the folder: the owner and the requesters are
people of the contacts, each route's workflow exists, and the form values a route maps are fields of
that workflow's form — constants checked against the field's JSON Schema, required fields set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.bounded import linear_time
from autopilot_provider.definitions.errors import suggest
from autopilot_provider.repository.checks.problems import Problem
from autopilot_provider.repository.contacts import Directory, owner_problems
from autopilot_provider.repository.forms import field_schema, format_checker, resource_choices
from autopilot_provider.repository.protocol import Definitions


def is_template(value: Any) -> bool:
    """Whether a mapped value is computed per delivery (holds a template anywhere inside)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_template(v) for v in value.values())
    if isinstance(value, list):
        return any(is_template(v) for v in value)
    return False


def requester_key(value: str) -> str:
    """A fixed requester as the contacts know it: ``person:alice`` and ``alice`` are the same."""
    return value.removeprefix("person:")


def alert_problems(definition: m.Alert, project: Definitions) -> Iterator[Problem]:
    directory: Directory | None = None

    def people() -> Directory:
        nonlocal directory
        if directory is None:
            directory = Directory.from_project(project)
        return directory

    for message in owner_problems(definition.owner, project):
        yield Problem(("owner",), f"owner: {message}")
    workflows = project.ids("Workflow")
    for i, route in enumerate(definition.routes):
        loc = ("routes", i)
        label = f"route '{route.id}': "
        if not is_template(route.requester):
            key = requester_key(route.requester)
            person = people().find_person(key)
            if person is None:
                hint = suggest(key, people().people)
                yield Problem(
                    loc + ("requester",),
                    f"{label}unknown person '{key}'{hint}: the requester is a person of the contacts{people()._why_unknown()}",
                )
            elif not person.username:
                yield Problem(
                    loc + ("requester",),
                    f"{label}person '{person.id}' has no `username`: runs are started as an Airflow user, so the "
                    "requester needs one in the contacts",
                )
        rel = project.find("Workflow", route.workflow)
        if rel is None:
            yield Problem(
                loc + ("workflow",), f"{label}unknown workflow '{route.workflow}'{suggest(route.workflow, workflows)}"
            )
            continue
        target = project.load(rel)
        if not target.ok or not isinstance(target.definition, m.Workflow):
            first = target.diagnostics[0] if target.diagnostics else None
            yield Problem(
                loc + ("workflow",),
                f"{label}workflow '{route.workflow}' has errors" + (f": {first}" if first else ""),
            )
            continue
        yield from _form_problems(route, loc, label, target.definition, project)


def _form_problems(
    route: m.AlertRoute, loc: tuple, label: str, workflow: m.Workflow, project: Definitions
) -> Iterator[Problem]:
    form = workflow.form
    for name, value in route.form.items():
        field = form.properties.get(name)
        if field is None:
            known = list(form.properties)
            hint = suggest(name, known) or (
                f"; its fields: {', '.join(known)}" if known else " (the workflow's form has no fields)"
            )
            yield Problem(
                loc + ("form", name), f"{label}workflow '{workflow.id}' has no form field '{name}'{hint}", key=True
            )
            continue
        if is_template(value) or value is None:
            continue
        choices = None
        if field.options is not None and field.options.resources is not None:
            choices = resource_choices(project, field.options)
        schema = field_schema(field, choices)
        validator = linear_time(jsonschema.validators.validator_for(schema))(schema, format_checker=format_checker())
        error = next(iter(validator.iter_errors(value)), None)
        if error is not None:
            yield Problem(
                loc + ("form", name),
                f"{label}{value!r} does not fit field '{name}' of workflow '{workflow.id}': {error.message}",
            )
    for name in form.required:
        field = form.properties.get(name)
        if field is None or name in route.form:
            continue
        if field.const is not None or ("default" in field.model_fields_set and field.default is not None):
            continue
        where = loc + ("form",) if "form" in route.model_fields_set else loc
        yield Problem(
            where,
            f"{label}workflow '{workflow.id}' requires form field '{name}' (it has no default): map it in `form`",
        )
