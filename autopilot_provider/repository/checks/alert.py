"""Checks of `Alert` definitions against the rest of the folder: the owner and the requesters are
people of the contacts, each route's workflow exists, and the form values a route maps are fields of
that workflow's form — constants checked against the field's JSON Schema, required fields set."""

from __future__ import annotations

from collections.abc import Iterator

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import suggest
from autopilot_provider.repository.checks.forms import is_template, mapped_form_problems
from autopilot_provider.repository.checks.problems import Problem
from autopilot_provider.repository.contacts import Directory, owner_problems
from autopilot_provider.repository.protocol import Definitions


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
        yield from mapped_form_problems(
            route.form, loc, label, target.definition, project, written="form" in route.model_fields_set
        )
