"""Request forms: a form as JSON Schema (for Airflow Params and for the portal's renderer) and the
server-side validation of submitted values.

Every path that starts a run uses these, so they agree:

* the DAG factory (:func:`param_schema`) turns each field into an Airflow ``Param``, with choices from
  the inventory (``options: {resources: TYPE}``) resolved at compile time into ``enum`` +
  ``values_display``, so Airflow's trigger form shows a dropdown and Airflow validates every trigger;
* the plugin API (:mod:`autopilot_provider.server.requests`) serves the form and validates
  submissions with :func:`check_form` before it starts the run as the calling user;
* the ``_check_form`` task (:class:`~autopilot_provider.operators.check_form.CheckFormOperator`)
  re-validates a run's values against the live choices of fields whose choices come from an API
  (:mod:`autopilot_provider.hooks.choices`), which Airflow cannot check when a run is triggered.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.bounded import depth_problem, linear_time
from autopilot_provider.definitions.errors import Refused, suggest
from autopilot_provider.repository.protocol import Definitions

#: Task ids of the tasks the factory adds before the workflow's own steps.
CHECK_TASK_ID = "_check_form"


INTERNAL_TASKS = {CHECK_TASK_ID: "Check the request form", "_notify_start": "Tell people the request has started"}


#: Formats that only tell the form how to draw a field; not JSON Schema formats.
WIDGET_FORMATS = {"multiline": "textarea", "password": "password"}


#: Airflow Param keys that are not JSON Schema (the portal schema leaves them out).
PARAM_ONLY_KEYS = ("section", "values_display", "description_md")


_MISSING = object()


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldError:
    """One problem with a submitted value; ``field`` is a dotted path (``hostname``, ``disks[0].size``)."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class FormInvalid(Refused):
    """Submitted values do not fit the form (the API answers 422 with ``errors``)."""

    status = 422

    def __init__(self, errors: list[FieldError]):
        count = len(errors)
        message = f"the form has {count} invalid field{'s' if count != 1 else ''}: " + "; ".join(str(e) for e in errors)
        super().__init__(message, errors=[e.as_dict() for e in errors])
        self.errors = errors


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


def inventory_items(project: Definitions, resource_type: str) -> list[dict[str, Any]]:
    return [item.model_dump() for item in project.resource_items() if item.type == resource_type]


def resource_choices(project: Definitions, source: m.OptionsSource) -> list[Choice]:
    """The inventory items of ``source.resources`` as choices (read from the definitions now)."""
    choices, _ = choices_from_items(inventory_items(project, source.resources or ""), source)
    return choices


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


def is_array(f: m.FormField) -> bool:
    return f.type == "array" or (isinstance(f.type, list) and "array" in f.type)


def with_choices(schema: dict[str, Any], f: m.FormField, choices: list[Choice]) -> None:
    values = [c.value for c in choices]
    if is_array(f):
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
        with_choices(schema, f, choices)
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
        with_choices(schema, f, choices)
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
            if is_array(f):
                entry["items"] = {"ui:enumNames": names}
            else:
                entry["ui:enumNames"] = names
        if f.description_md:
            entry["ui:description"] = f.description_md
            entry["ui:enableMarkdownInDescription"] = True
        if entry:
            ui[name] = entry
    return ui


def step_form(
    properties: dict[str, m.FormField], required: list[str], project: Definitions | None = None
) -> dict[str, Any]:
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


def workflows(project: Definitions) -> list[m.Workflow]:
    """Every valid workflow of the project, by id."""
    found = [loaded.definition for loaded in project.of_kind("Workflow") if loaded.ok]
    return sorted(found, key=lambda w: w.id)


def find_workflow(project: Definitions, workflow_id: str) -> m.Workflow | None:
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
