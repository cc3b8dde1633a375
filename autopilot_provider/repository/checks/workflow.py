"""Checks of `workflow` steps against the rest of the folder: the workflow a step starts exists, the
values it maps fit that workflow's form (fields it has, constants that fit, required fields set; its
`requester` is carried over, never mapped), and no workflow starts itself, directly or through the
workflows (and the functions) it starts — such a cycle would start runs without end.

Other workflows are read as models only (:meth:`~autopilot_provider.repository.protocol.Definitions.parsed`):
checking them fully would check this one again when they start it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import suggest
from autopilot_provider.repository.checks.forms import mapped_form_problems
from autopilot_provider.repository.checks.problems import Problem
from autopilot_provider.repository.contacts import REQUESTER_FIELD
from autopilot_provider.repository.protocol import Definitions


def workflow_problems(definition: m.Workflow | m.Function, project: Definitions) -> Iterator[Problem]:
    for i, step in enumerate(definition.steps):
        loc = ("steps", i)
        label = f"step '{step.id}': "
        if step.workflow is not None:
            spec = step.workflow
            target = definition if spec.id == definition.id else _workflow(project, spec.id)
            if target is None:
                known = project.ids("Workflow")
                yield Problem(loc + ("workflow", "id"), f"{label}unknown workflow '{spec.id}'{suggest(spec.id, known)}")
                continue
            if isinstance(target, str):
                yield Problem(loc + ("workflow", "id"), f"{label}workflow '{spec.id}' has errors: {target}")
                continue
            if REQUESTER_FIELD in spec.form:
                yield Problem(
                    loc + ("workflow", "form", REQUESTER_FIELD),
                    f"{label}`{REQUESTER_FIELD}` cannot be mapped: the run it starts is for this run's requester, "
                    "who is carried over",
                    key=True,
                )
            values = {k: v for k, v in spec.form.items() if k != REQUESTER_FIELD}
            written = "form" in spec.model_fields_set
            yield from mapped_form_problems(
                values, loc + ("workflow",), label, target, project, written=written, carried={REQUESTER_FIELD}
            )
            starts = [spec.id]
            where = loc + ("workflow", "id")
        elif step.use is not None and isinstance(definition, m.Workflow):
            starts = sorted(set(_started([step], project, set())))
            where = loc + ("use", "function")
            label += f"function '{step.use.function}' starts "
        else:
            continue
        if isinstance(definition, m.Workflow):  # a function's cycles show in the workflows that use it
            for started in starts:
                cycle = _cycle(definition, started, project)
                if cycle:
                    yield Problem(
                        where,
                        f"{label}workflow '{started}' makes a cycle of workflows: {' → '.join(cycle)} (each run "
                        "would start the next without end)",
                    )


def _workflow(project: Definitions, workflow_id: str) -> m.Workflow | str | None:
    """The workflow's model, the first of its errors when it has none, None when there is no such
    workflow."""
    rel = project.find("Workflow", workflow_id)
    if rel is None:
        return None
    parsed = project.parsed(rel)
    if isinstance(parsed.definition, m.Workflow):
        return parsed.definition
    return str(parsed.diagnostics[0]) if parsed.diagnostics else "it cannot be read"


def _started(steps: Iterable[m.Step], project: Definitions, functions: set[str]) -> Iterator[str]:
    """The ids of the workflows these steps start, through the functions they use too."""
    for step in steps:
        if step.workflow is not None:
            yield step.workflow.id
        elif step.use is not None and step.use.function not in functions:
            functions.add(step.use.function)
            rel = project.find("Function", step.use.function)
            function = project.parsed(rel).definition if rel is not None else None
            if isinstance(function, m.Function):
                yield from _started(function.steps, project, functions)


def _cycle(origin: m.Workflow, first: str, project: Definitions) -> list[str] | None:
    """The workflows from ``origin`` through ``first`` back to ``origin`` (``[a, b, a]``), or None."""
    seen: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node == origin.id:
            return path
        if node in seen:
            return None
        seen.add(node)
        target = _workflow(project, node)
        if not isinstance(target, m.Workflow):
            return None
        for started in dict.fromkeys(_started(target.steps, project, set())):
            found = visit(started, [*path, started])
            if found:
                return found
        return None

    return visit(first, [origin.id, first])
