"""Checks of form fields' dynamic ``options`` (an inventory type, or an API operation that lists the
choices), and of form values mapped onto another workflow's form (an alert route's, a `workflow` step's)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import jsonschema

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.bounded import linear_time
from autopilot_provider.definitions.errors import suggest
from autopilot_provider.openapi.request import (
    check_params,
    parameter_names,
)
from autopilot_provider.repository.checks.problems import Problem
from autopilot_provider.repository.forms import (
    choices_from_items,
    field_schema,
    format_checker,
    inventory_items,
    resource_choices,
)
from autopilot_provider.repository.protocol import Definitions


def options_diagnostics(definition: m.Header, project: Definitions | None = None) -> list[tuple[tuple, str, bool]]:
    """(location, message, at the key?) for `options` that cannot give choices: both or neither of
    `resources` and `api`, `options` with a static `enum`, and — given the project — an unknown
    inventory type, items without the value, a default that is not a choice, an unknown api or
    operation, a non-GET operation, and parameters the operation does not take or requires."""

    problems: list[tuple[tuple, str, bool]] = []
    if isinstance(definition, m.Function):
        for name, f in definition.inputs.items():
            if f.options is not None:
                problems.append(
                    (
                        ("inputs", name, "options"),
                        f"input '{name}': `options` belong to a workflow's form fields (a function's inputs "
                        "come from the calling step's `with:`)",
                        True,
                    )
                )
        return problems
    fields: list[tuple[tuple, str, m.FormField]] = []
    if isinstance(definition, m.Workflow):
        fields += [
            (("form", "properties", name), f"field '{name}'", f) for name, f in definition.form.properties.items()
        ]
    for i, step in enumerate(getattr(definition, "steps", None) or []):
        if step.form is not None:
            fields += [
                (("steps", i, "form", "properties", name), f"step '{step.id}': field '{name}'", f)
                for name, f in step.form.properties.items()
            ]
    for base, where, f in fields:
        source = f.options
        if source is None:
            continue
        if f.enum is not None:
            problems.append(
                (base + ("enum",), f"{where}: use either a static `enum` or dynamic `options`, not both", True)
            )
        if (source.resources is None) == (source.api is None):
            given = "both" if source.resources is not None else "neither"
            problems.append(
                (
                    base + ("options",),
                    f"{where}: options need exactly one of `resources` (an inventory type) and `api` (got {given})",
                    True,
                )
            )
            continue
        if source.resources is not None:
            for key in ("operation", "params"):
                if key in source.model_fields_set:
                    problems.append(
                        (base + ("options", key), f"{where}: `{key}` belongs to options from an `api`", True)
                    )
            if project is not None:
                problems += _inventory_problems(project, f, source, base, where, suggest)
            continue
        if not source.operation:
            problems.append(
                (base + ("options",), f"{where}: options from an `api` need the `operation` that lists them", True)
            )
            continue
        if project is not None:
            problems += _api_problems(project, source, base + ("options",), where, suggest)
    return problems


def _inventory_problems(project: Definitions, f, source, base, where, suggest) -> list[tuple[tuple, str, bool]]:
    loc = base + ("options", "resources")
    types = project.resource_types()
    if source.resources not in types:
        hint = suggest(source.resources, types) or (
            f"; inventory types: {', '.join(types)}" if types else " (there are no Resources definitions)"
        )
        return [(loc, f"{where}: unknown resource type '{source.resources}'{hint}", False)]
    items = inventory_items(project, source.resources)
    choices, missing = choices_from_items(items, source)
    problems = []
    for index in missing[:5]:
        problems.append(
            (
                base + ("options", "value" if source.value else "resources"),
                f"{where}: resource '{items[index]['id']}' has no value at '{source.value_path}'",
                False,
            )
        )
    default = f.default if "default" in f.model_fields_set else None
    values = [c.value for c in choices]
    wanted = default if isinstance(default, list) else [default] if default is not None else []
    for value in wanted:
        if value not in values:
            problems.append(
                (
                    base + ("default",),
                    f"{where}: default {json.dumps(value)} is not one of the inventory's '{source.resources}' items"
                    f"{suggest(str(value), [str(v) for v in values])}",
                    False,
                )
            )
    return problems


def _api_problems(project: Definitions, source, loc, where, suggest) -> list[tuple[tuple, str, bool]]:

    apis = project.ids("Api")
    if source.api not in apis:
        hint = suggest(source.api, apis) or (
            f"; Api definitions: {', '.join(apis)}" if apis else " (there are no Api definitions)"
        )
        return [(loc + ("api",), f"{where}: unknown api '{source.api}'{hint}", False)]
    try:
        found = project.api_spec(source.api)
    except Exception as exc:  # noqa: BLE001 - an unreadable document is reported where it is used
        return [(loc + ("api",), f"{where}: api '{source.api}': cannot read its OpenAPI document: {exc}", False)]
    api_loaded, spec = found
    if spec is None:
        first = api_loaded.diagnostics[0] if api_loaded.diagnostics else api_loaded.path
        return [(loc + ("api",), f"{where}: api '{source.api}' has errors: {first}", False)]
    operation = spec.operation(source.operation)
    if operation is None:
        lowered = {c.lower(): c for c in spec.operations}
        hint = suggest(source.operation, spec.operations) or (
            f" (did you mean '{lowered[source.operation.lower()]}'?)" if source.operation.lower() in lowered else ""
        )
        return [
            (loc + ("operation",), f"{where}: api '{source.api}' has no operation '{source.operation}'{hint}", False)
        ]
    if operation.method != "GET":
        return [
            (
                loc + ("operation",),
                f"{where}: choices must come from a GET operation; '{operation.id}' is {operation.method} "
                "(it would run every time the form is shown)",
                False,
            )
        ]
    problems = []
    names = parameter_names(operation)
    for problem in check_params(spec, operation, source.params):
        # "params.NAME: message" → at that parameter when it is given, else at `params` / `options`
        name = problem.split(":", 1)[0].removeprefix("params.").split(".")[0].split("[")[0]
        if name in source.params:
            at = loc + ("params", name)
        else:
            at = loc + ("params",) if "params" in source.model_fields_set else loc
        problems.append((at, f"{where}: options {problem}", name in source.params and name not in names))
    return problems


def is_template(value: Any) -> bool:
    """Whether a mapped value is computed per run or delivery (holds a template anywhere inside)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_template(v) for v in value.values())
    if isinstance(value, list):
        return any(is_template(v) for v in value)
    return False


def mapped_form_problems(
    values: Mapping[str, Any],
    loc: tuple,
    label: str,
    workflow: m.Workflow,
    project: Definitions,
    *,
    written: bool,
    carried: Collection[str] = (),
) -> Iterator[Problem]:
    """Values mapped onto ``workflow``'s form under ``loc + ("form",)`` (``written``: whether that key
    is in the file): fields the form does not have, constants that do not fit their field's JSON
    Schema, and required fields without a default left out — except the ``carried`` ones, which the
    caller fills in itself. Templates are checked when they are rendered."""
    form = workflow.form
    for name, value in values.items():
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
        if field is None or name in values or name in carried:
            continue
        if field.const is not None or ("default" in field.model_fields_set and field.default is not None):
            continue
        yield Problem(
            loc + ("form",) if written else loc,
            f"{label}workflow '{workflow.id}' requires form field '{name}' (it has no default): map it in `form`",
        )
