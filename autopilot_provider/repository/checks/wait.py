"""Checks of `wait` steps in time against the rest of the project: a `window:` that references an
inventory item or a contact group names one that exists, has `maintenance_windows`, and (with
`id:`) has that window. References written as templates are resolved when the step runs."""

from __future__ import annotations

from collections.abc import Iterator

from autopilot_provider.definitions import models as m
from autopilot_provider.repository.checks.problems import Problem
from autopilot_provider.repository.protocol import Definitions
from autopilot_provider.repository.windows import WindowError, referenced_windows


def _templated(value: str) -> bool:
    return "{{" in value or "{%" in value


def wait_problems(definition: m.Workflow | m.Function, project: Definitions) -> Iterator[Problem]:
    for i, step in enumerate(definition.steps):
        spec = step.wait
        if not isinstance(spec, m.TimeWaitStep) or spec.window is None or spec.window.reference is None:
            continue
        kind, ident = spec.window.reference
        if _templated(ident):
            continue
        try:
            referenced_windows(project, kind, ident, spec.window.id)
        except WindowError as exc:
            field = "id" if exc.field == "id" else kind
            yield Problem(("steps", i, "wait", "window", field), f"step '{step.id}': window: {exc}")
