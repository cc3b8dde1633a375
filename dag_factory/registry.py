"""The whole mapping from step kind to compiler, in one table.

A kind listed in ``NOT_YET`` is part of the format (so editors and the designer know it) but has no
operator in this release: a definition that uses it fails validation with a clear message instead of
compiling to a silent no-op.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import Diagnostic
from autopilot_provider.definitions.validate import Loaded

Compiler = Callable[[m.Step, Any], Any]


class _Lazy(Mapping[str, Compiler]):
    """kind → compiler, importing a compiler's module (and its operators and hooks) on first use:
    a worker starting one task, or a DagBag of script-only workflows, never pays for the others."""

    def __init__(self, paths: dict[str, str]):
        self.paths = paths
        self._loaded: dict[str, Compiler] = {}

    def __getitem__(self, kind: str) -> Compiler:
        if kind not in self._loaded:
            module, _, name = self.paths[kind].partition(":")
            self._loaded[kind] = getattr(importlib.import_module(module), name)
        return self._loaded[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


COMPILERS: Mapping[str, Compiler] = _Lazy(
    {
        "script": "dag_factory.compilers.script:compile_script",
        "decision": "dag_factory.compilers.decision:compile_decision",
        "use": "dag_factory.compilers.use:compile_use",
        "task": "dag_factory.compilers.task:compile_task",
        "wait": "dag_factory.compilers.wait:compile_wait",
        "notify": "dag_factory.compilers.notify:compile_notify",
        "approval": "dag_factory.compilers.human:compile_approval",
        "form": "dag_factory.compilers.human:compile_form",
        "ticket": "dag_factory.compilers.ticket:compile_ticket",
    }
)

NOT_YET: dict[str, str] = {
    "pipe": "pipe steps arrive with the SQL and ticket-data integration",
    "metric": "metric steps arrive with the metrics integration",
}
SCRIPT_LANGUAGES_NOT_YET = {
    "ansible": "ansible scripts arrive with the ansible runner",
    "terraform": "terraform scripts arrive with the terraform runner",
    "ssh": "ssh scripts arrive with the SSH runner",
}
assert not set(COMPILERS) & set(NOT_YET) and set(COMPILERS) | set(NOT_YET) == set(m.STEP_KINDS)


def factory_diagnostics(loaded: Loaded, project: Any = None) -> list[Diagnostic]:
    """What the factory cannot compile, located in the file: kinds not supported yet, form fields'
    dynamic `options` that name no inventory type or API operation and, given the project, REST steps
    that do not match their Api's OpenAPI document, unknown people and groups, and notification
    templates that are missing or broken."""
    from autopilot_provider.forms import options_diagnostics
    from dag_factory.compilers import human, notify, ticket

    definition, located = loaded.definition, loaded.located
    if located is None or not isinstance(definition, (m.Workflow, m.Function)):
        return []
    problems = [located.diagnostic(loc, message, key=True) for loc, message in _unsupported(definition)]
    problems += [located.diagnostic(loc, message) for loc, message in ticket.ticket_diagnostics(definition)]
    problems += [
        located.diagnostic(loc, message, key=key) for loc, message, key in options_diagnostics(definition, project)
    ]
    if project is not None:
        problems += [
            located.diagnostic(loc, message, key=key) for loc, message, key in _rest_steps(definition, project)
        ]
        problems += [
            located.diagnostic(loc, message) for loc, message in notify.people_diagnostics(definition, project)
        ]
        problems += [located.diagnostic(loc, message) for loc, message in human.human_diagnostics(definition, project)]
    return problems


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _rest_steps(definition: m.Workflow | m.Function, project: Any) -> Iterator[tuple[tuple, str, bool]]:
    """Each `task`/`wait` step against its Api: the api and the operation exist, parameters are known
    and the required ones given, and literal values (not templates) fit the schemas."""
    from autopilot_provider.definitions.validate import suggest
    from autopilot_provider.openapi.request import parameter_names, schema_errors

    for i, step in enumerate(definition.steps):
        call = step.task or step.wait
        if call is None:
            continue
        base = ("steps", i, step.kind)
        where = f"step '{step.id}'"
        apis = project.ids("Api")
        if call.api not in apis:
            hint = suggest(call.api, apis) or (
                f"; Api definitions: {', '.join(apis)}" if apis else " (there are no Api definitions)"
            )
            yield base + ("api",), f"{where}: unknown api '{call.api}'{hint}", False
            continue
        try:
            found = project.api_spec(call.api)
        except Exception as exc:  # noqa: BLE001 - an unreadable document is reported where it is used
            yield base + ("api",), f"{where}: api '{call.api}': cannot read its OpenAPI document: {exc}", False
            continue
        api_loaded, spec = found
        if spec is None:
            first = api_loaded.diagnostics[0] if api_loaded.diagnostics else api_loaded.path
            yield base + ("api",), f"{where}: api '{call.api}' has errors: {first}", False
            continue
        operation = spec.operation(call.operation)
        if operation is None:
            hint = suggest(call.operation, spec.operations) or _closest_ci(call.operation, spec.operations)
            yield (
                base + ("operation",),
                f"{where}: api '{call.api}' has no operation '{call.operation}'{hint}",
                False,
            )
            continue
        names = parameter_names(operation)
        for name in call.params:
            if name not in names:
                hint = suggest(name, names) or (
                    f"; its parameters: {', '.join(names)}" if names else " (it takes no parameters)"
                )
                yield (
                    base + ("params", name),
                    f"{where}: operation '{operation.id}' has no parameter '{name}'{hint}",
                    True,
                )
        for param in operation.parameters:
            if param.required and call.params.get(param.name) is None:
                loc = base + ("params",) if "params" in _raw(definition, base) else base
                yield (
                    loc,
                    f"{where}: missing required {param.location} parameter '{param.name}' of operation "
                    f"'{operation.id}'",
                    True,
                )
            elif param.name in call.params and not _templated(call.params[param.name]):
                from autopilot_provider.openapi.request import coerce

                value = coerce(call.params[param.name], param.schema)
                for path, message in schema_errors(spec, param.schema, value, skip=_templated):
                    yield (
                        base + ("params", param.name, *path),
                        f"{where}: params.{param.name}{_dotted(path)}: {message}",
                        False,
                    )
        if step.task is not None:
            body = step.task.body
            if body is not None and operation.body_schema is None and not operation.body_media_types:
                yield base + ("body",), f"{where}: operation '{operation.id}' takes no request body", True
            elif body is None and operation.body_required:
                yield base, f"{where}: operation '{operation.id}' requires a request body (`body:`)", True
            elif body is not None and operation.body_schema:
                for path, message in schema_errors(spec, operation.body_schema, body, skip=_templated):
                    yield base + ("body", *path), f"{where}: body{_dotted(path)}: {message}", False


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _closest_ci(name: str, choices: Any) -> str:
    lowered = {c.lower(): c for c in choices}
    return f" (did you mean '{lowered[name.lower()]}'?)" if name.lower() in lowered else ""


def _raw(definition: Any, loc: tuple) -> dict:
    """The step kind's mapping as written (to tell an absent key from an empty one)."""
    step = definition.steps[loc[1]]
    spec = getattr(step, loc[2])
    return spec.model_dump(exclude_unset=True)


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
    if isinstance(definition, m.Workflow):
        for i, _ in enumerate(definition.timers):
            yield ("timers", i), "timers are not supported yet (they arrive as Deadline Alerts with SLA timers)"
