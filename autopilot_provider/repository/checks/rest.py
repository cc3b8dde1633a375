"""Checks of `task` and `wait` steps (REST calls) against their Api's OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import suggest
from autopilot_provider.openapi.request import coerce, parameter_names, schema_errors
from autopilot_provider.repository.checks.problems import Problem
from autopilot_provider.repository.protocol import Definitions


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def rest_step_problems(definition: m.Workflow | m.Function, project: Definitions) -> Iterator[Problem]:
    """Each `task`/`wait` step against its Api: the api and the operation exist, parameters are known
    and the required ones given, and literal values (not templates) fit the schemas."""
    for i, step in enumerate(definition.steps):
        call = step.task or step.wait
        if call is None or isinstance(call, m.TimeWaitStep):
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
