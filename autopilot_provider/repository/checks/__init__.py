"""The checks that need more than one file: each step kind's checks against the rest of the project
(its Api's OpenAPI document, the contacts, the inventory, the templates), in one table.

A check is ``check(definition, project) -> Iterable[Problem]`` for a workflow or function (``CHECKS``)
or another kind (``KIND_CHECKS``: an alert's routes against their workflows, a trigger's data point and alert); ``project``
is None when the file is checked alone (then only checks listed with ``needs_project=False`` run).
:func:`project_diagnostics` turns the findings into located diagnostics; the repository
(:class:`~autopilot_provider.repository.folder.Project`) adds them to each file's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import Diagnostic
from autopilot_provider.definitions.validate import Loaded
from autopilot_provider.repository.checks.alert import alert_problems
from autopilot_provider.repository.checks.approval import answerable_problems
from autopilot_provider.repository.checks.forms import options_diagnostics
from autopilot_provider.repository.checks.people import people_problems, resource_owner_problems
from autopilot_provider.repository.checks.problems import (
    NOT_YET,
    SCRIPT_LANGUAGES_NOT_YET,
    Problem,
    unsupported_problems,
)
from autopilot_provider.repository.checks.rest import rest_step_problems
from autopilot_provider.repository.checks.ticket import ticket_problems
from autopilot_provider.repository.checks.trigger import trigger_problems, trigger_source_problems
from autopilot_provider.repository.checks.wait import wait_problems
from autopilot_provider.repository.checks.workflow import workflow_problems
from autopilot_provider.repository.protocol import Definitions

Check = Callable[[Any, Any], Iterable[tuple]]

#: (check, needs the project): every check of a workflow or function, in the order they report.
CHECKS: list[tuple[Check, bool]] = [
    (unsupported_problems, False),  # kinds and script languages that do not run yet
    (ticket_problems, False),  # ticket
    (options_diagnostics, False),  # form fields' dynamic options (more with the project)
    (rest_step_problems, True),  # task, wait (REST)
    (wait_problems, True),  # wait (in time): window references
    (people_problems, True),  # owner; notify, approval, form, notifications, timers
    (answerable_problems, True),  # approval, form
    (workflow_problems, True),  # workflow: the workflow it starts, its form, cycles
]

#: The checks of the kinds that are not workflows or functions, by kind (same shape as CHECKS).
KIND_CHECKS: dict[str, list[tuple[Check, bool]]] = {
    "Alert": [(alert_problems, True)],  # owner, requesters, target workflows and their forms
    "Trigger": [
        (trigger_source_problems, False),  # data points that are not read yet (sql, metric)
        (trigger_problems, True),  # data point (Api operation), alert, owner, notify
    ],
    "Resources": [(resource_owner_problems, True)],  # items' owners
}

__all__ = ["CHECKS", "KIND_CHECKS", "NOT_YET", "SCRIPT_LANGUAGES_NOT_YET", "Problem", "project_diagnostics"]


def project_diagnostics(loaded: Loaded, project: Definitions | None = None) -> list[Diagnostic]:
    """What the project's other files say about this one, located in the file: kinds not supported
    yet, form fields' dynamic ``options`` that name no inventory type or API operation and, given the
    project, REST steps that do not match their Api's OpenAPI document, unknown people and groups,
    steps nobody could answer, and notification templates that are missing or broken."""
    definition, located = loaded.definition, loaded.located
    if located is None or definition is None:
        return []
    if isinstance(definition, (m.Workflow, m.Function)):
        checks = CHECKS
    else:
        checks = KIND_CHECKS.get(type(definition).__name__, [])
    diagnostics = []
    for check, needs_project in checks:
        if needs_project and project is None:
            continue
        for found in check(definition, project):
            problem = Problem(*found)
            diagnostics.append(located.diagnostic(problem.loc, problem.message, key=problem.key))
    return diagnostics
