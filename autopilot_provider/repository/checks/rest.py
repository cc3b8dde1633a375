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
    """Each `task`/`wait` step against its Api (:func:`rest_call_problems`)."""
    for i, step in enumerate(definition.steps):
        call = step.task or step.wait
        if call is not None and not isinstance(call, m.TimeWaitStep):  # a wait in time calls nothing
            yield from rest_call_problems(call, ("steps", i, step.kind), f"step '{step.id}'", project)


def rest_call_problems(call: m.RestOperation, base: tuple, where: str, project: Definitions) -> Iterator[Problem]:
    """One REST operation (a step's, a trigger's data point) against its Api: the api and the
    operation exist, parameters are known and the required ones given, and literal values (not
    templates) fit the schemas; a `task`'s body too. ``base``: where the call is in the definition;
    ``where``: how messages name its owner."""
    apis = project.ids("Api")
    if call.api not in apis:
        hint = suggest(call.api, apis) or (
            f"; Api definitions: {', '.join(apis)}" if apis else " (there are no Api definitions)"
        )
        yield Problem(base + ("api",), f"{where}: unknown api '{call.api}'{hint}")
        return
    try:
        found = project.api_spec(call.api)
    except Exception as exc:  # noqa: BLE001 - an unreadable document is reported where it is used
        yield Problem(base + ("api",), f"{where}: api '{call.api}': cannot read its OpenAPI document: {exc}")
        return
    api_loaded, spec = found
    if spec is None:
        first = api_loaded.diagnostics[0] if api_loaded.diagnostics else api_loaded.path
        yield Problem(base + ("api",), f"{where}: api '{call.api}' has errors: {first}")
        return
    operation = spec.operation(call.operation)
    if operation is None:
        hint = suggest(call.operation, spec.operations) or _closest_ci(call.operation, spec.operations)
        yield Problem(base + ("operation",), f"{where}: api '{call.api}' has no operation '{call.operation}'{hint}")
        return
    names = parameter_names(operation)
    for name in call.params:
        if name not in names:
            hint = suggest(name, names) or (
                f"; its parameters: {', '.join(names)}" if names else " (it takes no parameters)"
            )
            yield Problem(
                base + ("params", name), f"{where}: operation '{operation.id}' has no parameter '{name}'{hint}", True
            )
    for param in operation.parameters:
        if param.required and call.params.get(param.name) is None:
            loc = base + ("params",) if "params" in call.model_fields_set else base
            yield Problem(
                loc,
                f"{where}: missing required {param.location} parameter '{param.name}' of operation '{operation.id}'",
                True,
            )
        elif param.name in call.params and not _templated(call.params[param.name]):
            value = coerce(call.params[param.name], param.schema)
            for path, message in schema_errors(spec, param.schema, value, skip=_templated):
                yield Problem(
                    base + ("params", param.name, *path), f"{where}: params.{param.name}{_dotted(path)}: {message}"
                )
    if isinstance(call, m.TaskStep):
        body = call.body
        if body is not None and operation.body_schema is None and not operation.body_media_types:
            yield Problem(base + ("body",), f"{where}: operation '{operation.id}' takes no request body", True)
        elif body is None and operation.body_required:
            yield Problem(base, f"{where}: operation '{operation.id}' requires a request body (`body:`)", True)
        elif body is not None and operation.body_schema:
            for path, message in schema_errors(spec, operation.body_schema, body, skip=_templated):
                yield Problem(base + ("body", *path), f"{where}: body{_dotted(path)}: {message}")


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _closest_ci(name: str, choices: Any) -> str:
    lowered = {c.lower(): c for c in choices}
    return f" (did you mean '{lowered[name.lower()]}'?)" if name.lower() in lowered else ""
