"""Request forms: a workflow's form as JSON Schema, its dynamic choices, server-side validation, and
starting (and listing) the runs that forms request.

One module serves every path that starts a run, so they agree:

* the DAG factory (:func:`param_schema`) turns each field into an Airflow ``Param``, with choices from
  the inventory (``options: {resources: TYPE}``) resolved at compile time into ``enum`` +
  ``values_display``, so Airflow's trigger form shows a dropdown and Airflow validates every trigger;
* the plugin API (``/autopilot/api/v1/workflows``) serves :func:`form_view` and validates submissions
  with :func:`check_form` before :func:`start_run` creates the run as the calling user;
* the ``_check_form`` task (:class:`~autopilot_provider.operators.check_form.CheckFormOperator`)
  re-validates a run's values against the live choices of fields whose choices come from an API
  (``options: {api, operation, ...}``), which Airflow cannot check when a run is triggered.

Choices from an API are fetched only when a form is shown or submitted on the API server, or when
``_check_form`` runs — never while a DAG is parsed. The API server keeps each answer for
:data:`CACHE_SECONDS` (``[autopilot] choices_cache_seconds``). The operation must answer a JSON array of items, or an object with exactly one
array property (``{"items": [...], "total": 3}``); ``value`` and ``label`` are dotted paths in each
item (default ``id`` and ``name``; an item without the value is not a choice, one without the label
shows its value). Items that are plain values (``["gold", "silver"]``) are their own value and label.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jsonschema

from autopilot_provider.bounded import depth_problem, linear_time
from autopilot_provider.definitions import models as m

#: How long the API server reuses an API's answer for a field's choices, unless
#: ``[autopilot] choices_cache_seconds`` says otherwise.
CACHE_SECONDS = 30.0
#: Per-request timeout and re-sends when fetching choices (a form should not hang).
OPTIONS_TIMEOUT = 10.0
OPTIONS_RETRIES = 1
#: Task ids of the tasks the factory adds before the workflow's own steps.
CHECK_TASK_ID = "_check_form"
INTERNAL_TASKS = {CHECK_TASK_ID: "Check the request form", "_notify_start": "Tell people the request has started"}
#: Formats that only tell the form how to draw a field; not JSON Schema formats.
WIDGET_FORMATS = {"multiline": "textarea", "password": "password"}
#: Airflow Param keys that are not JSON Schema (the portal schema leaves them out).
PARAM_ONLY_KEYS = ("section", "values_display", "description_md")

_MISSING = object()
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One problem with a submitted value; ``field`` is a dotted path (``hostname``, ``disks[0].size``)."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class FormInvalid(Exception):
    """Submitted values do not fit the form (the API answers 422 with ``errors``)."""

    status = 422

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        count = len(errors)
        self.message = f"the form has {count} invalid field{'s' if count != 1 else ''}: " + "; ".join(
            str(e) for e in errors
        )
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "errors": [e.as_dict() for e in self.errors]}


class ChoicesUnavailable(Exception):
    """A field's dynamic choices could not be fetched (the API answers 502)."""

    status = 502

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = f"field '{field}': {message}"
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "field": self.field}


class RunNotPossible(Exception):
    """The workflow's DAG cannot take a run yet (not parsed, import errors): 409."""

    status = 409

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message}


# ---------------------------------------------------------------------------------------------
# Choices
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    value: Any
    label: str


def get_path(item: Any, path: str) -> Any:
    """``item["a"]["b"][0]`` for ``a.b.0``; ``_MISSING`` when any part is absent."""
    current = item
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def choices_from_items(items: Iterable[Any], source: m.OptionsSource) -> tuple[list[Choice], list[int]]:
    """(choices, indexes of items without the value). Duplicated values: the first item wins."""
    choices: dict[str, Choice] = {}
    missing: list[int] = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            value = get_path(item, source.value_path)
            label = get_path(item, source.label_path)
        else:
            value, label = item, _MISSING
        if value is _MISSING or value is None or isinstance(value, (Mapping, list)):
            missing.append(index)
            continue
        key = json.dumps(value, default=str)
        if key not in choices:
            text = value if label is _MISSING or label is None else label
            choices[key] = Choice(value, str(text))
    return list(choices.values()), missing


def describe_source(source: m.OptionsSource) -> str:
    if source.resources is not None:
        return f"the inventory's '{source.resources}' items"
    return f"api '{source.api}' operation '{source.operation}'"


def inventory_items(project: Any, resource_type: str) -> list[dict[str, Any]]:
    return [item.model_dump() for item in project.resource_items() if item.type == resource_type]


def resource_choices(project: Any, source: m.OptionsSource) -> list[Choice]:
    """The inventory items of ``source.resources`` as choices (read from the definitions now)."""
    choices, _ = choices_from_items(inventory_items(project, source.resources or ""), source)
    return choices


class _Cache:
    """API answers per (definitions, api, operation, params), for a few seconds, per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, list[Any]]] = {}

    def get(self, key: tuple, max_age: float) -> list[Any] | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or max_age <= 0 or time.monotonic() - entry[0] > max_age:
            return None
        return entry[1]

    def put(self, key: tuple, items: list[Any]) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), items)
            if len(self._entries) > 512:  # forget the oldest half rather than grow without bound
                for old in sorted(self._entries, key=lambda k: self._entries[k][0])[:256]:
                    del self._entries[old]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


API_CACHE = _Cache()


def items_of(body: Any) -> list[Any]:
    """The list of items in an answer: the body itself, or an object's only array property."""
    if isinstance(body, list):
        return body
    if isinstance(body, Mapping):
        arrays = [k for k, v in body.items() if isinstance(v, list)]
        if len(arrays) == 1:
            return body[arrays[0]]
        if not arrays:
            keys = ", ".join(list(body)[:10]) or "none"
            raise ValueError(f"the answer is an object without an array property (its properties: {keys})")
        raise ValueError(f"the answer has several array properties ({', '.join(arrays)}): which one is ambiguous")
    raise ValueError(f"the answer is not a JSON array or object (got {type(body).__name__})")


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def cache_seconds() -> float:
    """``[autopilot] choices_cache_seconds``, else :data:`CACHE_SECONDS`."""
    from airflow.configuration import conf

    return conf.getfloat("autopilot", "choices_cache_seconds", fallback=CACHE_SECONDS)


def fetch_api_items(project: Any, source: m.OptionsSource, *, max_age: float | None = None) -> list[Any]:
    """Call the options' operation with the Api's connection; its list of items. Raises ``ValueError``
    with a message fit for the user (credentials never appear in it)."""
    key = (str(project.root), source.api, source.operation, json.dumps(source.params, sort_keys=True, default=str))
    cached = API_CACHE.get(key, cache_seconds() if max_age is None else max_age)
    if cached is not None:
        return cached
    from autopilot_provider.hooks.openapi import OpenApiError, OpenApiHook
    from autopilot_provider.openapi.request import RequestValidationError, build_request, excerpt

    try:
        found = project.api_spec(source.api or "")
    except Exception as exc:  # noqa: BLE001 - an unreadable document, reported to the user
        raise ValueError(f"api '{source.api}': cannot read its OpenAPI document: {exc}") from None
    if found is None:
        raise ValueError(f"unknown api '{source.api}'")
    loaded, spec = found
    if spec is None:
        raise ValueError(f"api '{source.api}' has errors")
    operation = spec.operation(source.operation or "")
    if operation is None:
        raise ValueError(f"api '{source.api}' has no operation '{source.operation}'")
    where = f"{describe_source(source)} (connection '{loaded.definition.connection}')"
    hook = OpenApiHook(
        loaded.definition.connection,
        spec=spec,
        request_timeout=OPTIONS_TIMEOUT,
        retries=OPTIONS_RETRIES,
        backoff=0.5,
        document_base_url=False,  # the API server calls only hosts a connection names
    )
    secrets: list[str] = []
    try:
        request = build_request(spec, operation, source.params, None)
        secrets = hook.credentials.secrets()
        response = hook.run(operation, request)
    except RequestValidationError as exc:
        raise ValueError(f"{where}: {exc}") from None
    except OpenApiError as exc:
        raise ValueError(f"{where} failed: {_redact(str(exc), secrets)}") from None
    except Exception as exc:  # noqa: BLE001 - a missing connection and the like, reported to the user
        raise ValueError(f"{where} failed: {_redact(str(exc), secrets) or type(exc).__name__}") from None
    status = response["status"]
    if not 200 <= status < 300:
        body = excerpt(response["body"] if response["body"] is not None else "", 300)
        raise ValueError(f"{where} answered HTTP {status}: {_redact(body, secrets)}")
    try:
        items = items_of(response["body"])
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    API_CACHE.put(key, items)
    return items


def api_choices(project: Any, name: str, source: m.OptionsSource, *, max_age: float | None = None) -> list[Choice]:
    try:
        items = fetch_api_items(project, source, max_age=max_age)
    except ValueError as exc:
        raise ChoicesUnavailable(name, f"cannot fetch its choices: {exc}") from None
    return choices_from_items(items, source)[0]


def api_fields(form: m.Form) -> list[str]:
    """Fields whose choices come from an API (Airflow cannot check them when a run is triggered)."""
    return [name for name, f in form.properties.items() if f.options is not None and f.options.api is not None]


def pattern_fields(form: m.Form) -> list[str]:
    """Fields with a ``pattern`` (their own or in ``items``): Airflow would match it with Python's
    backtracking ``re`` when a run is triggered, so their Params leave it out and the ``_check_form``
    task matches it with RE2 instead."""
    return [name for name, f in form.properties.items() if f.pattern is not None or _has_pattern(f.items)]


def _has_pattern(schema: Any) -> bool:
    if isinstance(schema, dict):
        return isinstance(schema.get("pattern"), str) or any(_has_pattern(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_pattern(v) for v in schema)
    return False


def _without_patterns(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_patterns(v) for k, v in schema.items() if not (k == "pattern" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_without_patterns(v) for v in schema]
    return schema


def _is_string_field(f: m.FormField) -> bool:
    kinds = f.type if isinstance(f.type, list) else [f.type]
    return "string" in kinds


def resolve_choices(
    form: m.Form, project: Any, *, api: bool = True, max_age: float | None = None
) -> dict[str, list[Choice]]:
    """Field name → choices, for every field with ``options`` (API ones only when ``api``).

    Raises :class:`ChoicesUnavailable` when an API cannot be asked."""
    resolved: dict[str, list[Choice]] = {}
    for name, f in form.properties.items():
        source = f.options
        if source is None:
            continue
        if source.resources is not None:
            resolved[name] = resource_choices(project, source)
        elif source.api is not None and api:
            resolved[name] = api_choices(project, name, source, max_age=max_age)
    return resolved


# ---------------------------------------------------------------------------------------------
# Validation of `options` in definitions
# ---------------------------------------------------------------------------------------------


def options_diagnostics(definition: m.Header, project: Any = None) -> list[tuple[tuple, str, bool]]:
    """(location, message, at the key?) for `options` that cannot give choices: both or neither of
    `resources` and `api`, `options` with a static `enum`, and — given the project — an unknown
    inventory type, items without the value, a default that is not a choice, an unknown api or
    operation, a non-GET operation, and parameters the operation does not take or requires."""
    from autopilot_provider.definitions.validate import suggest

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


def _inventory_problems(project, f, source, base, where, suggest) -> list[tuple[tuple, str, bool]]:
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


def _api_problems(project, source, loc, where, suggest) -> list[tuple[tuple, str, bool]]:
    from autopilot_provider.openapi.request import check_params, parameter_names

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


# ---------------------------------------------------------------------------------------------
# Schemas
# ---------------------------------------------------------------------------------------------


def _is_array(f: m.FormField) -> bool:
    return f.type == "array" or (isinstance(f.type, list) and "array" in f.type)


def _with_choices(schema: dict[str, Any], f: m.FormField, choices: list[Choice]) -> None:
    values = [c.value for c in choices]
    if _is_array(f):
        schema["items"] = {**(schema.get("items") or {}), "enum": values}
        schema.setdefault("uniqueItems", True)
    else:
        schema["enum"] = values


def labels(f: m.FormField, choices: list[Choice] | None) -> dict[str, str]:
    """Value (as text) → label: the choices' labels, then the field's own ``values_display``."""
    shown = {str(c.value): c.label for c in choices or []}
    shown.update(f.values_display or {})
    return shown


def param_schema(f: m.FormField, choices: list[Choice] | None = None) -> dict[str, Any]:
    """The field for an Airflow ``Param`` (Airflow's UI keys included), with resolved choices.

    Airflow checks a run's values against it on every trigger path, on the API server: patterns are
    left out (Airflow would match them with Python's backtracking ``re``; the ``_check_form`` task
    matches them with RE2), and a string field (or an array's string items) without ``maxLength``
    gets :data:`MAX_VALUE_CHARS`."""
    schema = _without_patterns(f.json_schema())
    if _is_string_field(f) and f.maxLength is None and not f.enum and f.const is None:
        schema["maxLength"] = MAX_VALUE_CHARS
    items = schema.get("items")
    if isinstance(items, dict) and items.get("type") == "string" and "maxLength" not in items and "enum" not in items:
        schema["items"] = {**items, "maxLength": MAX_VALUE_CHARS}
    if choices is not None:
        _with_choices(schema, f, choices)
        shown = labels(f, choices)
        if shown:
            schema["values_display"] = shown
    return schema


def field_schema(f: m.FormField, choices: list[Choice] | None = None) -> dict[str, Any]:
    """The field as standard JSON Schema (what the portal renders and validates)."""
    schema = f.json_schema()
    for key in PARAM_ONLY_KEYS:
        schema.pop(key, None)
    if schema.get("format") in WIDGET_FORMATS:
        schema.pop("format")
    if schema.get("default", 0) is None:
        schema.pop("default")
    if f.const is not None:
        schema["default"] = f.const
    if choices is not None:
        _with_choices(schema, f, choices)
    return schema


def request_schema(form: m.Form, choices: Mapping[str, list[Choice]] | None = None) -> dict[str, Any]:
    """The JSON Schema of a submission: an object of the form's fields, nothing else."""
    choices = choices or {}
    return {
        "type": "object",
        "properties": {name: field_schema(f, choices.get(name)) for name, f in form.properties.items()},
        "required": [name for name in form.required if name in form.properties],
        "additionalProperties": False,
    }


def sections(form: m.Form) -> list[dict[str, Any]]:
    """Fields grouped by ``section`` in order of first appearance; fields without one are grouped
    under a ``null`` title where they first appear."""
    groups: dict[str | None, list[str]] = {}
    for name, f in form.properties.items():
        groups.setdefault(f.section, []).append(name)
    return [{"title": title, "fields": names} for title, names in groups.items()]


def ui_schema(form: m.Form, choices: Mapping[str, list[Choice]] | None = None) -> dict[str, Any]:
    """A react-jsonschema-form uiSchema: field order (by section), widgets, enum labels, markdown help."""
    choices = choices or {}
    ui: dict[str, Any] = {"ui:order": [name for group in sections(form) for name in group["fields"]]}
    for name, f in form.properties.items():
        entry: dict[str, Any] = {}
        if f.const is not None:
            entry["ui:widget"] = "hidden"
        elif f.format in WIDGET_FORMATS:
            entry["ui:widget"] = WIDGET_FORMATS[f.format]
        values = [c.value for c in choices[name]] if name in choices else (f.enum or [])
        shown = labels(f, choices.get(name))
        if values and shown:
            names = [shown.get(str(v), str(v)) for v in values]
            if _is_array(f):
                entry["items"] = {"ui:enumNames": names}
            else:
                entry["ui:enumNames"] = names
        if f.description_md:
            entry["ui:description"] = f.description_md
            entry["ui:enableMarkdownInDescription"] = True
        if entry:
            ui[name] = entry
    return ui


def form_view(workflow: m.Workflow, project: Any, *, max_age: float | None = None) -> dict[str, Any]:
    """What a form renderer needs: ``schema`` (choices filled in), ``ui_schema`` and ``sections``."""
    choices = resolve_choices(workflow.form, project, max_age=max_age)
    return {
        "schema": request_schema(workflow.form, choices),
        "ui_schema": ui_schema(workflow.form, choices),
        "sections": sections(workflow.form),
    }


def step_form(properties: dict[str, m.FormField], required: list[str], project: Any = None) -> dict[str, Any]:
    """A mid-flow form step's fields as its task describes them to the plugin: ``schema`` and
    ``ui_schema`` with the inventory's choices resolved now (when the workflow is compiled), and
    ``dynamic``: the fields whose choices come from an API, fetched when the form is shown and again
    when it is answered (``resolve_step_form``)."""
    form = m.Form(properties=properties, required=required)
    choices = {
        name: resource_choices(project, f.options)
        for name, f in properties.items()
        if f.options is not None and f.options.resources is not None and project is not None
    }
    dynamic = {
        name: f.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
        for name, f in properties.items()
        if f.options is not None and f.options.api is not None
    }
    view = {"schema": request_schema(form, choices), "ui_schema": ui_schema(form, choices)}
    if dynamic:
        view["dynamic"] = dynamic
    return view


def resolve_step_form(form: Mapping[str, Any], project: Any, *, max_age: float | None = None) -> dict[str, Any]:
    """A step form (``step_form``) with its API choices fetched: ``{schema, ui_schema}``. Raises
    :class:`ChoicesUnavailable` naming the field whose API cannot be asked."""
    resolved = {"schema": form.get("schema") or {}, "ui_schema": form.get("ui_schema") or {}}
    dynamic = form.get("dynamic") or {}
    if not dynamic:
        return resolved
    schema = json.loads(json.dumps(resolved["schema"]))
    ui = json.loads(json.dumps(resolved["ui_schema"]))
    for name, raw in dynamic.items():
        f = m.FormField.model_validate(raw)
        choices = api_choices(project, name, f.options, max_age=max_age)
        prop = schema.setdefault("properties", {}).setdefault(name, {})
        _with_choices(prop, f, choices)
        shown = labels(f, choices)
        if shown:
            names = [shown.get(str(c.value), str(c.value)) for c in choices]
            entry = ui.setdefault(name, {})
            if _is_array(f):
                entry["items"] = {"ui:enumNames": names}
            else:
                entry["ui:enumNames"] = names
    return {"schema": schema, "ui_schema": ui}


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _shown(values: list[Any], limit: int = 10) -> str:
    text = ", ".join(json.dumps(v, default=str) for v in values[:limit])
    return text + (f", … ({len(values) - limit} more)" if len(values) > limit else "")


def _message(error: jsonschema.ValidationError, form: m.Form, dynamic: Mapping[str, list[Choice]]) -> FieldError:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if error.message.count("'") >= 2 else ""
        return FieldError(_dotted([*path, missing]) if missing else _dotted(path), "is required")
    field = _dotted(path)
    if error.validator == "enum":
        top = path[0] if path else ""
        source = form.properties[top].options if top in form.properties else None
        given = json.dumps(error.instance, default=str)
        if top in dynamic and source is not None:
            return FieldError(field, f"{given} is not one of the choices from {describe_source(source)}")
        return FieldError(field, f"{given} is not one of {_shown(list(error.validator_value))}")
    return FieldError(field, error.message)


def check_form(
    form: m.Form, values: Any, choices: Mapping[str, list[Choice]] | None = None
) -> tuple[dict[str, Any], list[FieldError]]:
    """Validate submitted ``values`` against the form (and resolved dynamic ``choices``).

    Returns (the values to run with, errors). The values have every field of the form: the given
    ones, defaults for missing ones, ``const`` values, and ``None`` for optional fields left empty
    (as Airflow's trigger form sends them). Unknown fields are errors."""
    from autopilot_provider.definitions.validate import suggest

    choices = choices or {}
    if not isinstance(values, Mapping):
        return {}, [FieldError("", "the form must be a JSON object of field values")]
    too_big = size_errors(form, values)
    if too_big:
        return {}, too_big
    errors: list[FieldError] = []
    for name in values:
        if name not in form.properties:
            hint = suggest(str(name), form.properties) or (
                f"; the form's fields: {', '.join(form.properties)}" if form.properties else " (the form has no fields)"
            )
            errors.append(FieldError(str(name), f"unknown field{hint}"))
    # A field sent as null was left empty: a required one is then missing, an optional one None.
    given = {k: v for k, v in values.items() if k in form.properties and v is not None}
    for name, f in form.properties.items():
        if name not in given:
            if f.const is not None:
                given[name] = f.const
            elif "default" in f.model_fields_set and f.default is not None:
                given[name] = f.default
    schema = request_schema(form, choices)
    schema["additionalProperties"] = True  # unknown fields are reported above, with suggestions
    validator_class = linear_time(jsonschema.validators.validator_for(schema))  # patterns on RE2
    validator = validator_class(schema, format_checker=format_checker())
    order = {name: i for i, name in enumerate(form.properties)}
    found = [_message(error, form, choices) for error in validator.iter_errors(given)]
    top = re.compile(r"^[^.\[]*")
    errors += sorted(found, key=lambda e: (order.get(top.match(e.field).group(0), -1), e.field))
    result = {name: given.get(name) for name in form.properties}
    return result, errors


#: Longest string (anywhere in a field's value) when the field sets no ``maxLength`` of its own.
MAX_VALUE_CHARS = 64 * 1024
#: Largest submission: all the form's values as JSON.
MAX_FORM_BYTES = 1024 * 1024
#: Deepest nesting of lists and objects in one field's value.
MAX_VALUE_DEPTH = 32


def size_errors(form: m.Form, values: Mapping[str, Any]) -> list[FieldError]:
    """The fields whose values are too large to check or run with: a string longer than the field's
    ``maxLength`` allows — or than :data:`MAX_VALUE_CHARS` when it sets none — anywhere in the value,
    a value nested deeper than :data:`MAX_VALUE_DEPTH`, and the field with the largest value when all
    of them exceed :data:`MAX_FORM_BYTES`."""
    errors: list[FieldError] = []
    sizes: dict[str, int] = {}
    for name, value in values.items():
        f = form.properties.get(name) if isinstance(name, str) else None
        own = f.maxLength if f is not None and f.maxLength is not None and isinstance(value, str) else None
        limit = max(own, MAX_VALUE_CHARS) if own is not None else MAX_VALUE_CHARS
        if depth_problem(value, MAX_VALUE_DEPTH) is not None:
            errors.append(FieldError(str(name), f"is nested deeper than {MAX_VALUE_DEPTH} levels"))
            continue
        longest = _longest_string(value)
        if longest > limit:
            errors.append(FieldError(str(name), f"holds a text of {longest} characters, more than the {limit} allowed"))
            continue
        sizes[str(name)] = len(json.dumps(value, default=str))
    total = sum(sizes.values())
    if not errors and total > MAX_FORM_BYTES:
        largest = max(sizes, key=lambda k: sizes[k])
        errors.append(
            FieldError(largest, f"the form's values are {total} bytes as JSON, more than the {MAX_FORM_BYTES} allowed")
        )
    return errors


def _longest_string(value: Any) -> int:
    longest, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            longest = max(longest, len(item))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
            stack.extend(k for k in item if isinstance(k, str))
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return longest


#: An e-mail address as a form takes it: a local part without spaces or '@', and a domain of at least
#: two ASCII labels (jsonschema's own check only looks for an '@').
_EMAIL = re.compile(r"[^@\s]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,62}")


def _is_email(value: object) -> bool:
    return not isinstance(value, str) or (len(value) <= 254 and _EMAIL.fullmatch(value) is not None)


@functools.cache
def format_checker() -> jsonschema.FormatChecker:
    """What checks a form value's ``format``: jsonschema's checkers (its ``format-nongpl`` extra brings
    hostname, uri, iri, uri-template, json-pointer) with a stricter email. A format of
    :data:`~autopilot_provider.definitions.models.CHECKED_FORMATS` that this installation cannot check
    refuses every value: a format is never silently skipped."""
    # the checkers Airflow's Params use (FormatChecker() of every draft: "time" is draft 3's HH:MM:SS),
    # so that a value passes here exactly when it passes Airflow's trigger paths; email stricter
    checker = jsonschema.FormatChecker()
    checker.checkers["email"] = (_is_email, ())
    for name in m.CHECKED_FORMATS:
        if name not in checker.checkers:
            log.warning(
                "form format %r cannot be checked (install jsonschema[format-nongpl]): values are refused", name
            )
            checker.checkers[name] = (lambda value: not isinstance(value, str), ())
    return checker


def validate_form(form: m.Form, values: Any, choices: Mapping[str, list[Choice]] | None = None) -> dict[str, Any]:
    """:func:`check_form`, raising :class:`FormInvalid` when there are errors."""
    result, errors = check_form(form, values, choices)
    if errors:
        raise FormInvalid(errors)
    return result


# ---------------------------------------------------------------------------------------------
# Workflows, runs and requests (on the API server)
# ---------------------------------------------------------------------------------------------


def workflow_summary(workflow: m.Workflow) -> dict[str, Any]:
    return {
        "id": workflow.id,
        "title": workflow.title or workflow.id,
        "description": workflow.description,
        "tags": list(workflow.tags),
        "owner": workflow.owner,
        "has_form": bool(workflow.form.properties),
        "dag_id": workflow.id,
    }


def workflows(project: Any) -> list[m.Workflow]:
    """Every valid workflow of the project, by id."""
    found = [loaded.definition for loaded in project.of_kind("Workflow") if loaded.ok]
    return sorted(found, key=lambda w: w.id)


def find_workflow(project: Any, workflow_id: str) -> m.Workflow | None:
    rel = project.find("Workflow", workflow_id)
    if rel is None:
        return None
    loaded = project.load(rel)
    return loaded.definition if loaded.ok and isinstance(loaded.definition, m.Workflow) else None


def matches(workflow: m.Workflow, q: str | None, tag: str | None) -> bool:
    """``q``: every word appears in the id, title or description; ``tag``: one of its tags."""
    if tag and tag.lower() not in {t.lower() for t in workflow.tags}:
        return False
    if q:
        text = " ".join(x for x in (workflow.id, workflow.title, workflow.description) if x).lower()
        return all(word in text for word in q.lower().split())
    return True


def run_url(dag_id: str, run_id: str) -> str:
    """The run in Airflow's grid view (absolute when ``[api] base_url`` is set)."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def check_requester(project: Any, values: Mapping[str, Any], user_name: str) -> None:
    """422 on the ``requester`` field when ``user_name`` names someone else there without being
    allowed to act on their behalf (``[autopilot] on_behalf_users``), or names nobody in the contacts:
    the rule the run's steps apply (``Directory.requester``), checked before a run exists."""
    from autopilot_provider.contacts import ContactError, Directory

    try:
        Directory.from_project(project).requester(user_name, values.get("requester"))
    except ContactError as exc:  # refused, or a requester who is nobody in the contacts
        raise FormInvalid([FieldError("requester", str(exc))]) from None


def start_run(
    workflow: m.Workflow, conf: dict[str, Any], *, user_name: str, user_id: str | None = None, note: str | None = None
) -> dict[str, Any]:
    """Create a manual run of the workflow's DAG with ``conf`` (validated values), triggered by
    ``user_name`` — Airflow's own ``trigger_dag``, as the REST API's trigger endpoint does it. The
    scheduler picks it up like any other run. Raises :class:`RunNotPossible` when the DAG is not
    parsed yet or has import errors."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, ParamValidationError
    from airflow.models import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    dag_id = workflow.id
    with create_session() as session:
        model = session.get(DagModel, dag_id)
        if model is None or model.is_stale:
            raise RunNotPossible(
                f"workflow '{dag_id}' has no DAG in Airflow yet: the dag-processor has not parsed it "
                "(new or renamed definitions appear within a minute); try again shortly"
            )
        if model.has_import_errors:
            raise RunNotPossible(
                f"workflow '{dag_id}': Airflow reports an import error for its DAG (see Airflow's import errors)"
            )
        try:
            dag_run = trigger_dag(
                dag_id,
                triggered_by=DagRunTriggeredByType.REST_API,
                triggering_user_name=user_name,
                conf=conf,
                session=session,
            )
        except DagNotFound:
            raise RunNotPossible(
                f"workflow '{dag_id}' is not serialized in Airflow yet: the dag-processor has not parsed it; "
                "try again shortly"
            ) from None
        except ParamValidationError as exc:
            # Airflow checked the values against the DAG Airflow knows, which can be older than the
            # definition: the portal's validation passed, Airflow's did not.
            raise FormInvalid([FieldError(_param_name(str(exc)), str(exc))]) from None
        if dag_run is None:  # pragma: no cover - trigger_dag returns the run or raises
            raise RunNotPossible(f"workflow '{dag_id}': Airflow created no run")
        if note:
            dag_run.note = (note, user_id)
        session.flush()
        return {
            "dag_id": dag_id,
            "run_id": dag_run.run_id,
            "state": str(getattr(dag_run.state, "value", dag_run.state)),
            "url": run_url(dag_id, dag_run.run_id),
        }


def _param_name(message: str) -> str:
    marker = "Invalid input for param "
    if marker in message:
        return message.split(marker, 1)[1].split(":", 1)[0]
    return ""


_RUNNING = {"running", "queued", "scheduled", "deferred", "up_for_retry", "up_for_reschedule", "restarting"}


def combined_state(states: list[str | None]) -> str | None:
    """One state for a step that is several task instances (a function call, a mapped task)."""
    if not states:
        return None
    distinct = set(states)
    if len(distinct) == 1:
        return states[0]
    if distinct & _RUNNING:
        return "running"
    for state in ("failed", "upstream_failed"):
        if state in distinct:
            return state
    if None in distinct:
        return "running" if distinct - {None} else None
    return "success" if "success" in distinct else sorted(s for s in distinct if s)[0]


def _step(step_id: str, title: str, tis: list[Any]) -> dict[str, Any]:
    starts = [ti["start_date"] for ti in tis if ti["start_date"] is not None]
    ends = [ti["end_date"] for ti in tis if ti["end_date"] is not None]
    state = combined_state([ti["state"] for ti in tis])
    done = state in ("success", "failed", "skipped", "upstream_failed", "removed")
    return {
        "id": step_id,
        "task_id": step_id,
        "title": title,
        "state": state,
        "start_date": min(starts) if starts else None,
        "end_date": max(ends) if ends and done else None,
    }


def run_steps(workflow: m.Workflow | None, tis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's progress by step: the factory's own first tasks, then the workflow's steps in
    order (a `use` step is its TaskGroup: one state for all its tasks)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append(ti)
    steps = [_step(task, title, by_task[task]) for task, title in INTERNAL_TASKS.items() if task in by_task]
    if workflow is None:
        return steps + [_step(t, t, group) for t, group in by_task.items() if t not in INTERNAL_TASKS]
    for step in workflow.steps:
        if step.use is not None:
            group = [ti for t, items in by_task.items() if t.startswith(step.id + ".") for ti in items]
        else:
            group = by_task.get(step.id, [])
        steps.append(_step(step.id, step.title or step.id, group))
    return steps


def request_extras(runs: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Extra keys for each request of a ``GET /requests`` page (merged into it), by (dag_id, run_id):
    what other features know about a run. ``approvals``: the run's approval and mid-flow form
    requests, pending and decided, with who decided what. ``tickets``: the numbers of the ServiceNow
    tickets its ticket steps opened or changed, in order (``ticket_links``: the same with their
    ``url`` and ``table``). One batch of queries per page, not per run."""
    from autopilot_provider.approvals import Approvals, slot_state

    found = Approvals().for_runs((r.dag_id, r.run_id) for r in runs)
    tickets = run_tickets(runs)
    return {
        key: {
            "approvals": [
                {
                    "id": request.id,
                    "kind": request.row.kind,
                    "step_id": request.spec.get("step_id") or request.row.task_id,
                    "subject": request.spec.get("subject"),
                    "state": request.row.state,
                    "slots": [
                        {"label": s["label"], **slot_state(request, i)} for i, s in enumerate(request.spec["slots"])
                    ],
                    "votes": [v.as_dict() for v in request.votes],
                }
                for request in requests
            ],
            "tickets": [t["number"] for t in tickets.get(key, [])],
            "ticket_links": tickets.get(key, []),
        }
        for key, requests in found.items()
    }


def run_tickets(runs: list[Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The tickets each run's ticket steps touched (``{number, url, table}``, first seen first, once
    each), from the XCom every ticket step pushes (``TICKET_XCOM_KEY``) — one query for all the runs."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from autopilot_provider.runtime import TICKET_XCOM_KEY

    by_id = {r.id: (r.dag_id, r.run_id) for r in runs if getattr(r, "id", None) is not None}
    if not by_id:
        return {}
    found: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    with create_session() as session:
        rows = session.scalars(
            select(XComModel)
            .where(XComModel.key == TICKET_XCOM_KEY, XComModel.dag_run_id.in_(list(by_id)))
            .order_by(XComModel.timestamp, XComModel.task_id)
        ).all()
        for row in rows:
            value = XComModel.deserialize_value(row)
            if not isinstance(value, dict) or not value.get("number"):
                continue
            tickets = found.setdefault(by_id[row.dag_run_id], {})
            tickets.setdefault(
                str(value["number"]),
                {"number": str(value["number"]), "url": value.get("url"), "table": value.get("table")},
            )
    return {key: list(tickets.values()) for key, tickets in found.items()}


def list_requests(
    project: Any,
    *,
    user_name: str | None,
    may_read: Any,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Runs of the project's workflows, newest first: ``user_name``'s only, or everybody's when
    ``None``; only of DAGs for which ``may_read(dag_id)`` is true. Returns (page, total)."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    loaded = {w.id: w for w in workflows(project)}
    dag_ids = [d for d in sorted(set(project.ids("Workflow"))) if may_read(d)]
    if not dag_ids:
        return [], 0
    where = [DagRun.dag_id.in_(dag_ids)]
    if user_name is not None:
        where.append(DagRun.triggering_user_name == user_name)
    with create_session() as session:
        total = session.scalar(select(func.count()).select_from(DagRun).where(*where)) or 0
        runs = list(
            session.scalars(
                select(DagRun)
                .where(*where)
                .order_by(DagRun.created_at.desc(), DagRun.id.desc())
                .offset(offset)
                .limit(limit)
            )
        )
        rows = (
            session.execute(
                select(
                    TaskInstance.dag_id,
                    TaskInstance.run_id,
                    TaskInstance.task_id,
                    TaskInstance.state,
                    TaskInstance.start_date,
                    TaskInstance.end_date,
                ).where(
                    TaskInstance.dag_id.in_({r.dag_id for r in runs}),
                    TaskInstance.run_id.in_({r.run_id for r in runs}),
                )
            ).all()
            if runs
            else []
        )
        tis: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            state = getattr(row.state, "value", row.state)
            tis.setdefault((row.dag_id, row.run_id), []).append(
                {"task_id": row.task_id, "state": state, "start_date": row.start_date, "end_date": row.end_date}
            )
        extras = request_extras(runs)
        page = []
        for run in runs:
            workflow = loaded.get(run.dag_id)
            page.append(
                {
                    "dag_id": run.dag_id,
                    "run_id": run.run_id,
                    "title": (workflow.title or workflow.id) if workflow else run.dag_id,
                    "state": str(getattr(run.state, "value", run.state)),
                    "requester": run.triggering_user_name,
                    "created_at": run.created_at or run.queued_at or run.run_after,
                    "form": dict(run.conf or {}),
                    "steps": run_steps(workflow, tis.get((run.dag_id, run.run_id), [])),
                    "url": run_url(run.dag_id, run.run_id),
                    **extras[(run.dag_id, run.run_id)],
                }
            )
    return page, total
