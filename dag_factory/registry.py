"""The whole mapping from step kind to compiler, in one table.

A kind listed in ``NOT_YET`` is part of the format (so editors and the designer know it) but has no
operator in this release: a definition that uses it fails validation with a clear message instead of
compiling to a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import Diagnostic
from autopilot_provider.definitions.validate import Loaded
from dag_factory.compilers import decision, script, use

Compiler = Callable[[m.Step, Any], Any]

COMPILERS: dict[str, Compiler] = {
    "script": script.compile_script,
    "decision": decision.compile_decision,
    "use": use.compile_use,
}

NOT_YET: dict[str, str] = {
    "task": "REST task steps arrive with the OpenAPI import",
    "wait": "wait steps arrive with the OpenAPI import",
    "form": "mid-flow form steps arrive with people-in-the-loop",
    "approval": "approval steps arrive with people-in-the-loop",
    "notify": "notify steps arrive with people-in-the-loop",
    "ticket": "ticket steps arrive with the ServiceNow integration",
    "pipe": "pipe steps arrive with the SQL and ticket-data integration",
    "metric": "metric steps arrive with the metrics integration",
}
SCRIPT_LANGUAGES_NOT_YET = {
    "ansible": "ansible scripts arrive with the ansible runner",
    "terraform": "terraform scripts arrive with the terraform runner",
    "ssh": "ssh scripts arrive with the SSH runner",
}
assert not set(COMPILERS) & set(NOT_YET) and set(COMPILERS) | set(NOT_YET) == set(m.STEP_KINDS)


def factory_diagnostics(loaded: Loaded) -> list[Diagnostic]:
    """What the factory cannot compile yet, located in the file."""
    definition, located = loaded.definition, loaded.located
    if located is None or not isinstance(definition, (m.Workflow, m.Function)):
        return []
    problems = [located.diagnostic(loc, message, key=True) for loc, message in _unsupported(definition)]
    return problems


def _unsupported(definition: m.Workflow | m.Function) -> Iterator[tuple[tuple, str]]:
    for i, step in enumerate(definition.steps):
        if step.kind in NOT_YET:
            yield (
                ("steps", i, step.kind),
                f"step '{step.id}': step kind '{step.kind}' is not supported yet ({NOT_YET[step.kind]})",
            )
        elif step.script is not None and step.script.language in SCRIPT_LANGUAGES_NOT_YET:
            lang = step.script.language
            yield (
                ("steps", i, "script", lang),
                f"step '{step.id}': script language '{lang}' is not supported yet ({SCRIPT_LANGUAGES_NOT_YET[lang]})",
            )
    fields = definition.form.properties if isinstance(definition, m.Workflow) else definition.inputs
    where = ("form", "properties") if isinstance(definition, m.Workflow) else ("inputs",)
    for name, field in fields.items():
        if field.options is not None:
            yield (
                where + (name, "options"),
                f"field '{name}': dynamic options are not supported yet (they arrive with request forms)",
            )
    if isinstance(definition, m.Workflow):
        for i, _ in enumerate(definition.timers):
            yield ("timers", i), "timers are not supported yet (they arrive as Deadline Alerts with SLA timers)"
        for event in ("on_start", "on_success", "on_failure"):
            if getattr(definition.notifications, event) is not None:
                yield (
                    ("notifications", event),
                    f"notifications.{event} is not supported yet (notifications arrive with people-in-the-loop)",
                )
