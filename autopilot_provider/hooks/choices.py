"""A form field's choices fetched from an API operation (``options: {api, operation, ...}``) through
:class:`~autopilot_provider.hooks.openapi.OpenApiHook`.

Fetched only when a form is shown or submitted on the API server, or when the ``_check_form`` task runs
on a worker — never while a DAG is parsed. Each answer is kept for ``[autopilot] choices_cache_seconds``
(:func:`autopilot_provider.config.choices_cache_seconds`). The operation must answer a JSON array of items, or an object
with exactly one array property (``{"items": [...], "total": 3}``); ``value`` and ``label`` are dotted
paths in each item (default ``id`` and ``name``; an item without the value is not a choice, one without
the label shows its value). Items that are plain values (``["gold", "silver"]``) are their own value
and label.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from autopilot_provider import config
from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import Refused
from autopilot_provider.hooks.openapi import OpenApiError, OpenApiHook
from autopilot_provider.openapi.request import (
    RequestValidationError,
    build_request,
    excerpt,
)
from autopilot_provider.repository.forms import (
    Choice,
    choices_from_items,
    describe_source,
    is_array,
    labels,
    resource_choices,
    with_choices,
)
from autopilot_provider.repository.protocol import Definitions

#: Per-request timeout and re-sends when fetching choices (a form should not hang).
OPTIONS_TIMEOUT = 10.0


OPTIONS_RETRIES = 1


class ChoicesUnavailable(Refused):
    """A field's dynamic choices could not be fetched (the API answers 502)."""

    status = 502

    def __init__(self, field: str, message: str):
        super().__init__(f"field '{field}': {message}", field=field)


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


def fetch_api_items(project: Definitions, source: m.OptionsSource, *, max_age: float | None = None) -> list[Any]:
    """Call the options' operation with the Api's connection; its list of items. Raises ``ValueError``
    with a message fit for the user (credentials never appear in it)."""
    key = (str(project.root), source.api, source.operation, json.dumps(source.params, sort_keys=True, default=str))
    cached = API_CACHE.get(key, config.choices_cache_seconds() if max_age is None else max_age)
    if cached is not None:
        return cached

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


def api_choices(
    project: Definitions, name: str, source: m.OptionsSource, *, max_age: float | None = None
) -> list[Choice]:
    try:
        items = fetch_api_items(project, source, max_age=max_age)
    except ValueError as exc:
        raise ChoicesUnavailable(name, f"cannot fetch its choices: {exc}") from None
    return choices_from_items(items, source)[0]


def resolve_choices(
    form: m.Form, project: Definitions, *, api: bool = True, max_age: float | None = None
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


def resolve_step_form(form: Mapping[str, Any], project: Definitions, *, max_age: float | None = None) -> dict[str, Any]:
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
        with_choices(prop, f, choices)
        shown = labels(f, choices)
        if shown:
            names = [shown.get(str(c.value), str(c.value)) for c in choices]
            entry = ui.setdefault(name, {})
            if is_array(f):
                entry["items"] = {"ui:enumNames": names}
            else:
                entry["ui:enumNames"] = names
    return {"schema": schema, "ui_schema": ui}
