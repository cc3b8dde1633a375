"""Validate one definition: YAML → model → semantic checks, every problem with its position.

Cross-definition facts (which functions exist) come in through a ``FunctionLookup``, so this module
knows nothing about folders; ``autopilot_provider.repository.folder`` supplies it.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.assets import asset_problems
from autopilot_provider.definitions.bounded import linear_time
from autopilot_provider.definitions.code import env_name_problem
from autopilot_provider.definitions.durations import parse_duration
from autopilot_provider.definitions.errors import Diagnostic, suggest
from autopilot_provider.definitions.graph import dependencies, stray_decision_children
from autopilot_provider.definitions.moments import cron_problem, parse_moment, zone_problem
from autopilot_provider.definitions.source import Located, YamlError, parse
from autopilot_provider.definitions.templating import check_template

FunctionLookup = Callable[[str], "Loaded | None"]

CRON_PRESETS = {
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
    "@annually",
}
#: Values whose text is code or SQL, never a template (a bash body holding one is an error: `script`).
UNTEMPLATED = {("script", "python"), ("script", "bash"), ("sql", "query")}
#: The variables a declared connection `{PREFIX: conn_id}` gives a script: PREFIX_HOST, ...
CONNECTION_ENV_SUFFIXES = ("HOST", "PORT", "LOGIN", "PASSWORD", "SCHEMA", "EXTRA", "URI")
EXPRESSION_KEYS = {"if", "when", "until", "fail_if"}
#: What an alert's templates and expressions find under `alert`.
ALERT_KEYS = {"id", "delivery_id"}
#: Expressions of REST steps that also see the HTTP `response` (`status`, `headers`, `body`).
RESPONSE_EXPRESSION_KEYS = {"until", "fail_if"}
#: What a trigger's REST parameters see: the run reading the data point.
TRIGGER_PARAMS_SCOPE: dict[str, set[str] | None] = {"run": None}
#: What a trigger's notification templates see: the event (`trigger`) and the run.
TRIGGER_NOTIFY_SCOPE: dict[str, set[str] | None] = {"trigger": set(m.TRIGGER_EVENT_FIELDS), "run": None}


@dataclass
class Loaded:
    """One definition file after validation."""

    path: str
    located: Located | None = None
    definition: m.Header | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics and self.definition is not None

    @property
    def kind(self) -> str | None:
        if self.definition is not None:
            return type(self.definition).__name__
        data = self.located.data if self.located else None
        return data.get("kind") if isinstance(data, dict) else None


def load_text(text: str, path: str) -> Loaded:
    """Parse and validate the model of one definition (no cross-file checks)."""
    loaded = Loaded(path=path)
    try:
        loaded.located = parse(text, path)
    except YamlError as exc:
        loaded.diagnostics.append(exc.diagnostic)
        return loaded
    located = loaded.located
    data = located.data
    if not isinstance(data, dict):
        loaded.diagnostics.append(located.diagnostic((), "a definition must be a mapping with apiVersion and kind"))
        return loaded
    version = data.get("apiVersion")
    if version != m.API_VERSION:
        loc = ("apiVersion",) if "apiVersion" in data else ()
        what = f"unsupported apiVersion {version!r}" if "apiVersion" in data else "missing apiVersion"
        loaded.diagnostics.append(located.diagnostic(loc, f"{what}: expected '{m.API_VERSION}'"))
        return loaded
    kind = data.get("kind")
    model = m.KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        loc = ("kind",) if "kind" in data else ()
        what = f"unknown kind {kind!r}" if "kind" in data else "missing kind"
        loaded.diagnostics.append(
            located.diagnostic(loc, f"{what}: expected one of {', '.join(m.KINDS)}{suggest(str(kind), m.KINDS)}")
        )
        return loaded
    try:
        loaded.definition = model.model_validate(data)
    except ValidationError as exc:
        loaded.diagnostics.extend(_pydantic_diagnostics(exc, model, located))
    return loaded


def load_data(data: Any, path: str) -> Loaded | None:
    """The model of data that ``load_text`` produced from a file that then passed every check (the
    parse-time validation cache): the same model, without YAML or positions. None if it does not
    validate any more (a changed model: check the file again)."""
    model = m.KINDS.get(data.get("kind")) if isinstance(data, dict) else None
    if model is None or data.get("apiVersion") != m.API_VERSION:
        return None
    try:
        definition = model.model_validate(data)
    except ValidationError:
        return None
    return Loaded(path=path, located=Located(path=path, data=data), definition=definition)


def validate(loaded: Loaded, functions: FunctionLookup) -> Loaded:
    """Add the semantic checks to a model-valid definition."""
    definition, located = loaded.definition, loaded.located
    if definition is None or located is None:
        return loaded
    checker = _Checker(located, functions)
    if isinstance(definition, m.Workflow):
        checker.workflow(definition)
    elif isinstance(definition, m.Function):
        checker.function(definition)
    elif isinstance(definition, m.Contacts):
        checker.contacts(definition)
    elif isinstance(definition, m.Resources):
        checker.resources(definition)
    elif isinstance(definition, m.Alert):
        checker.alert(definition)
    elif isinstance(definition, m.Trigger):
        checker.trigger(definition)
    loaded.diagnostics.extend(checker.diagnostics)
    return loaded


# ---------------------------------------------------------------------------------------------
# pydantic errors → diagnostics
# ---------------------------------------------------------------------------------------------


def _pydantic_diagnostics(exc: ValidationError, model: type[BaseModel], located: Located) -> list[Diagnostic]:
    seen: dict[tuple, list[str]] = {}
    order: list[tuple[tuple, bool]] = []
    for error in exc.errors():
        loc = _clean_loc(error["loc"], located.data)
        kind = error["type"]
        if kind == "extra_forbidden":
            name = loc[-1]
            fields = _fields_at(model, loc[:-1])
            hint = _unknown_field_hint(model, loc[:-1], str(name))
            message = f"unknown field '{name}'" + (f": {hint}" if hint else suggest(str(name), fields))
            key = True
        elif kind == "missing":
            message = f"missing required field '{loc[-1]}'"
            loc, key = loc[:-1], False
        elif kind == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == m.DURATION:
            where = _dotted(_within_step(loc))
            message = f"{where}: invalid duration {error['input']!r}: use forms like 30s, 5m, 2h, 3d or PT2H"
            key = False
        else:
            text = error["msg"].removeprefix("Value error, ")
            where = _dotted(_within_step(loc))
            message = f"{where}: {text}" if where and not _ends_in_model(model, loc) else text
            key = False
        full = f"{_context(loc, located.data)}{message}"
        if (loc, key) not in seen:
            seen[(loc, key)] = []
            order.append((loc, key))
        if full not in seen[(loc, key)]:
            seen[(loc, key)].append(full)
    result = []
    for loc, key in order:
        messages = seen[(loc, key)]
        result.append(located.diagnostic(loc, messages[0] if len(messages) == 1 else " or ".join(messages), key=key))
    return result


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union-member tags ('str', 'Schedule', ...) that are not part of the document."""
    cleaned: list[Any] = []
    current = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(current, dict) and part in current:
            current = current[part]
            cleaned.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            cleaned.append(part)
        elif last and isinstance(current, dict) and part not in m.UNION_TAGS:
            cleaned.append(part)
    return tuple(cleaned)


def _within_step(loc: tuple) -> tuple:
    """The part of loc after the innermost ('steps', i): the step is already named in the message."""
    for i in range(len(loc) - 2, -1, -1):
        if loc[i] == "steps" and isinstance(loc[i + 1], int):
            return loc[i + 2 :]
    return loc


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _context(loc: tuple, data: Any) -> str:
    """'step 'ping': ' when the location is inside a step."""
    current = data
    label = ""
    for i, part in enumerate(loc):
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            break
        if i >= 1 and loc[i - 1] == "steps" and isinstance(current, dict) and isinstance(current.get("id"), str):
            label = f"step '{current['id']}': "
        elif i == 1 and loc[0] == "routes" and isinstance(current, dict) and isinstance(current.get("id"), str):
            label = f"route '{current['id']}': "
    return label


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _models_at(model: type[BaseModel], loc: tuple) -> list[type[BaseModel]]:
    """The models that may sit at ``loc`` (several where the type is a union)."""
    candidates: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for candidate in candidates:
            for kind in _unwrap(candidate):
                origin = typing.get_origin(kind)
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    for name, info in kind.model_fields.items():
                        if part in (name, info.alias):
                            following.append(info.annotation)
                elif origin is list and isinstance(part, int):
                    following.extend(typing.get_args(kind)[:1])
                elif origin is dict:
                    following.extend(typing.get_args(kind)[1:2])
        candidates = following
    return [
        kind
        for candidate in candidates
        for kind in _unwrap(candidate)
        if isinstance(kind, type) and issubclass(kind, BaseModel)
    ]


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    return [info.alias or name for kind in _models_at(model, loc) for name, info in kind.model_fields.items()]


def _unknown_field_hint(model: type[BaseModel], loc: tuple, name: str) -> str | None:
    """What a model says about an unknown field (``unknown_field_hint``), e.g. that a secret does not
    belong in a definition; None when it says nothing (the nearest known field is suggested then)."""
    for kind in _models_at(model, loc):
        hint = getattr(kind, "unknown_field_hint", None)
        found = hint(name) if hint is not None else None
        if found:
            return found
    return None


def _ends_in_model(model: type[BaseModel], loc: tuple) -> bool:
    """True when loc designates a whole object (model validator errors read better unprefixed)."""
    return bool(_fields_at(model, loc)) or not loc


# ---------------------------------------------------------------------------------------------
# Semantic checks
# ---------------------------------------------------------------------------------------------


class _Checker:
    def __init__(self, located: Located, functions: FunctionLookup):
        self.located = located
        self.functions = functions
        self.diagnostics: list[Diagnostic] = []

    def error(self, loc: tuple, message: str, *, key: bool = False) -> None:
        self.diagnostics.append(self.located.diagnostic(loc, message, key=key))

    # -- kinds --------------------------------------------------------------------------------

    def workflow(self, wf: m.Workflow) -> None:
        form_fields = set(wf.form.properties)
        self.form(wf.form.properties, wf.form.required, ("form",))
        self.schedule(wf)
        step_ids = self.steps(wf.steps, ("steps",))
        self.templates(
            self.located.data,
            (),
            {"form": form_fields, "steps": step_ids, "run": None, "resources": None, "contacts": None},
        )

    def function(self, fn: m.Function) -> None:
        self.form(fn.inputs, [k for k, v in fn.inputs.items() if v.required], ("inputs",))
        step_ids = self.steps(fn.steps, ("steps",))
        self.templates(
            self.located.data,
            (),
            {"inputs": set(fn.inputs), "steps": step_ids, "run": None, "resources": None, "contacts": None},
        )

    def contacts(self, contacts: m.Contacts) -> None:
        people = self._unique(contacts.people, ("people",), "person")
        self._unique(contacts.groups, ("groups",), "group")
        for i, person in enumerate(contacts.people):
            if person.manager and person.manager not in people:
                self.error(
                    ("people", i, "manager"), f"unknown person '{person.manager}'{suggest(person.manager, people)}"
                )
        for i, group in enumerate(contacts.groups):
            for j, member in enumerate(group.members):
                if member not in people:
                    self.error(
                        ("groups", i, "members", j),
                        f"group '{group.id}': unknown person '{member}'{suggest(member, people)}",
                    )
            self.maintenance_windows(group.maintenance_windows, ("groups", i), f"group '{group.id}'")

    def resources(self, resources: m.Resources) -> None:
        for i, item in enumerate(resources.items):
            self.maintenance_windows(item.maintenance_windows, ("items", i), f"item '{item.id}'")

    def maintenance_windows(self, windows: list[m.MaintenanceWindow], loc: tuple, owner: str) -> None:
        ids: set[str] = set()
        for j, window in enumerate(windows):
            where = loc + ("maintenance_windows", j)
            if window.id is not None:
                if window.id in ids:
                    self.error(where + ("id",), f"{owner}: duplicate maintenance window id '{window.id}'")
                ids.add(window.id)
            self.window(window.cron, window.duration, window.timezone, where, f"{owner}: ")

    def alert(self, alert: m.Alert) -> None:
        """Every expression and template of an alert compiles in the sandbox and names only what a
        delivery gives: `payload`, `headers`, `alert` ({id, delivery_id}) and, in routes, `event`."""
        delivery = {"payload": None, "headers": None, "alert": ALERT_KEYS}
        routes = {**delivery, "event": None}
        if alert.auth.tolerance is not None:
            if alert.auth.scheme not in m.TIMESTAMPED_SCHEMES:
                self.error(
                    ("auth", "tolerance"),
                    f"`tolerance` belongs to the schemes with a signed timestamp ({', '.join(m.TIMESTAMPED_SCHEMES)}); "
                    f"{alert.auth.scheme} has none",
                    key=True,
                )
            self._duration(alert.auth.tolerance, ("auth", "tolerance"))
        if alert.delivery_id is not None and alert.delivery_id.expression is not None:
            self._check_text(alert.delivery_id.expression, ("delivery_id", "expression"), delivery, expression=True)
        for i, rule in enumerate(alert.match):
            self._check_text(rule, ("match", i), delivery, expression=True)
        if alert.for_each is not None:
            self._check_text(alert.for_each, ("for_each",), delivery, expression=True)
        seen: dict[str, int] = {}
        for i, route in enumerate(alert.routes):
            loc = ("routes", i)
            if route.id in seen:
                self.error(loc + ("id",), f"duplicate route id '{route.id}' (first used by route {seen[route.id] + 1})")
            seen.setdefault(route.id, i)
            if route.when is not None:
                self._check_text(route.when, loc + ("when",), routes, expression=True)
            self.templates(self.located.data["routes"][i].get("form"), loc + ("form",), routes)
            if _is_template(route.requester):
                self._check_text(route.requester, loc + ("requester",), routes, expression=False)

    def trigger(self, trigger: m.Trigger) -> None:
        """A trigger's schedule, durations, expressions (`value` over `response`; `condition` and
        `resolve` over `value` and `response`) and templates (REST parameters over `run`, the
        notification over `trigger` — the event — and `run`)."""
        loc = ("schedule", "cron") if isinstance(trigger.schedule, m.Schedule) else ("schedule",)
        spec = trigger.schedule if isinstance(trigger.schedule, m.Schedule) else m.Schedule(cron=trigger.schedule)
        self._schedule(spec, loc, detailed=isinstance(trigger.schedule, m.Schedule))
        if spec.cron == "@once":
            self.error(loc, "a trigger reads its data point again and again: @once is not a trigger's schedule")
        if isinstance(trigger.schedule, m.Schedule) and trigger.schedule.catchup:
            self.error(
                ("schedule", "catchup"),
                "a trigger reads the current value, so catchup would read it again for every missed interval: "
                "leave catchup off",
            )
        for name in ("for", "retry_delay", "timeout"):
            self._duration(getattr(trigger, "for_" if name == "for" else name), (name,))
        if trigger.rest is not None:
            for name in ("request_timeout", "backoff"):
                self._duration(getattr(trigger.rest, name), ("rest", name))
            self.templates(self.located.data["rest"].get("params"), ("rest", "params"), TRIGGER_PARAMS_SCOPE)
        self._check_text(trigger.value, ("value",), {"response": None}, expression=True)
        over_value: dict[str, set[str] | None] = {"value": None, "response": None}
        self._check_text(trigger.condition, ("condition",), over_value, expression=True)
        if trigger.resolve is not None:
            self._check_text(trigger.resolve, ("resolve",), over_value, expression=True)
        if trigger.notify is not None:
            self.templates(self.located.data["notify"], ("notify",), TRIGGER_NOTIFY_SCOPE)

    def _unique(self, items: list[Any], loc: tuple, what: str) -> set[str]:
        ids: set[str] = set()
        for i, item in enumerate(items):
            if item.id in ids:
                self.error(loc + (i, "id"), f"duplicate {what} id '{item.id}'")
            ids.add(item.id)
        return ids

    # -- form ---------------------------------------------------------------------------------

    def form(self, properties: dict[str, m.FormField], required: list[str], loc: tuple) -> None:
        for i, name in enumerate(required):
            if name not in properties:
                self.error(
                    loc + ("required", i), f"required field '{name}' is not in properties{suggest(name, properties)}"
                )
        for name, fld in properties.items():
            schema = fld.json_schema()
            schema.pop("required", None)
            with_default = "default" in fld.model_fields_set and fld.default is not None
            invalid_schema, invalid_default = _field_problems(schema, fld.default if with_default else None)
            if invalid_schema is not None:
                self.error(loc + ("properties", name), f"field '{name}': invalid schema: {invalid_schema}")
                continue
            if invalid_default is not None:
                self.error(
                    loc + ("properties", name, "default"),
                    f"field '{name}': default {fld.default!r} is invalid: {invalid_default}",
                )

    def schedule(self, wf: m.Workflow) -> None:
        if wf.schedule is None:
            return
        spec = wf.schedule if isinstance(wf.schedule, m.Schedule) else m.Schedule(cron=wf.schedule)
        loc = ("schedule", "cron") if isinstance(wf.schedule, m.Schedule) else ("schedule",)
        self._schedule(spec, loc, detailed=isinstance(wf.schedule, m.Schedule))
        if spec.cron != "@once":
            for name, fld in wf.form.properties.items():
                if name in wf.form.required and "default" not in fld.model_fields_set:
                    self.error(
                        ("form", "properties", name),
                        f"field '{name}' is required but has no default: a scheduled run has nobody to fill it in",
                    )

    def _schedule(self, spec: m.Schedule, loc: tuple, *, detailed: bool) -> None:
        """The cron expression (or preset), the assets and, written as a mapping (``detailed``), the
        timezone and the start date."""
        if spec.assets is not None:
            for where, message in asset_problems(spec.assets, ("schedule", "assets"), conditions=True):
                self.error(where, f"schedule: {message}")
            if spec.cron in ("@once", "@continuous"):
                self.error(loc, f"schedule: {spec.cron} cannot be combined with assets (use a cron, or assets alone)")
        if spec.cron is not None and spec.cron not in CRON_PRESETS:
            from croniter import croniter

            if spec.cron.startswith("@") or not croniter.is_valid(spec.cron):
                self.error(
                    loc,
                    f"invalid cron expression {spec.cron!r}"
                    + (f"; presets are {', '.join(sorted(CRON_PRESETS))}" if spec.cron.startswith("@") else ""),
                )
        if detailed:
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(spec.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.error(("schedule", "timezone"), f"unknown timezone {spec.timezone!r}")
            if spec.start_date:
                import pendulum

                try:
                    pendulum.parse(spec.start_date)
                except Exception:
                    self.error(
                        ("schedule", "start_date"), f"invalid start_date {spec.start_date!r}: expected an ISO date"
                    )

    # -- steps --------------------------------------------------------------------------------

    def steps(self, steps: list[m.Step], loc: tuple) -> set[str]:
        ids: dict[str, int] = {}
        for i, step in enumerate(steps):
            if step.id in ids:
                self.error(loc + (i, "id"), f"duplicate step id '{step.id}' (first used by step {ids[step.id] + 1})")
            else:
                ids[step.id] = i
        known = set(ids)
        for i, step in enumerate(steps):
            for j, dep in enumerate(step.after or []):
                if dep == step.id:
                    self.error(loc + (i, "after", j), f"step '{step.id}': a step cannot come after itself")
                elif dep not in known:
                    self.error(
                        loc + (i, "after", j), f"step '{step.id}': after: unknown step '{dep}'{suggest(dep, known)}"
                    )
            if step.decision is not None:
                self.decision(step, loc + (i, "decision"), known)
            if step.approval is not None:
                for j, target in enumerate(step.approval.else_ or []):
                    where = loc + (i, "approval", "else", j)
                    if target == step.id:
                        self.error(where, f"step '{step.id}': an approval's else cannot be the approval itself")
                    elif target not in known:
                        self.error(where, f"step '{step.id}': else: unknown step '{target}'{suggest(target, known)}")
            if step.use is not None:
                self.use(step, loc + (i, "use"))
            if step.script is not None:
                self.script(step, loc + (i, "script"))
            if isinstance(step.wait, m.TimeWaitStep):
                self.time_wait(step, step.wait, loc + (i, "wait"))
            for where, message in asset_problems(step.outlets, loc + (i, "outlets"), conditions=False):
                self.error(where, f"step '{step.id}': {message}")
            for fld in ("retry_delay", "timeout"):
                self._duration(getattr(step, fld), loc + (i, fld))
        if not self.diagnostics:
            self._cycles(steps, loc)
        if not self.diagnostics:
            for child, decision in stray_decision_children(steps):
                self.error(
                    loc + (ids[child], "id"),
                    f"step '{child}' waits for decision '{decision}' but is not one of its branches, so it "
                    f"would always be skipped: list it under the decision's then/else/cases, or set `after:`",
                )
        return known

    def _duration(self, value: str | None, loc: tuple) -> None:
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as exc:
                self.error(loc, str(exc))

    def time_wait(self, step: m.Step, spec: m.TimeWaitStep, loc: tuple) -> None:
        """A wait in time: a zone that exists, a duration, a literal `until` that is a date-time (a
        template is checked with the others), an inline window that opens and closes."""
        where = f"step '{step.id}': "
        if spec.timezone is not None and zone_problem(spec.timezone):
            self.error(loc + ("timezone",), where + str(zone_problem(spec.timezone)))
        if spec.for_ is not None:
            self._duration(spec.for_, loc + ("for",))
        if spec.until is not None and not _is_template(spec.until):
            try:
                parse_moment(spec.until)
            except ValueError as exc:
                hint = "; a REST wait (an expression over response) also needs api and operation"
                self.error(loc + ("until",), f"{where}until: {exc}" + (hint if "response" in spec.until else ""))
        window = spec.window
        if window is not None and window.reference is None:
            assert window.cron is not None and window.duration is not None
            self.window(window.cron, window.duration, window.timezone, loc + ("window",), where)

    def window(self, cron: str, duration: str, timezone: str | None, loc: tuple, where: str) -> None:
        problem = cron_problem(cron)
        if problem:
            self.error(loc + ("cron",), where + problem)
        try:
            length = parse_duration(duration)
        except ValueError as exc:
            self.error(loc + ("duration",), where + str(exc))
        else:
            if length.total_seconds() <= 0:
                self.error(loc + ("duration",), f"{where}a window must stay open for some time, not {duration!r}")
        if timezone is not None and zone_problem(timezone):
            self.error(loc + ("timezone",), where + str(zone_problem(timezone)))

    def decision(self, step: m.Step, loc: tuple, known: set[str]) -> None:
        spec = step.decision
        assert spec is not None
        for j, target in _decision_targets(spec):
            where = loc + j
            if target == step.id:
                self.error(where, f"step '{step.id}': a decision cannot branch to itself")
            elif target not in known:
                self.error(where, f"step '{step.id}': branch to unknown step '{target}'{suggest(target, known)}")

    def script(self, step: m.Step, loc: tuple) -> None:
        """Values stay data: a bash body is never templated (``{{ }}`` in it is an error that shows
        the environment-variable form), and the names a step sets do not shadow Airflow's or ours."""
        spec = step.script
        assert spec is not None
        if spec.bash is not None:
            found = _template_in_bash(spec.bash)
            if found is not None:
                line_in_text, column_in_text, message = found
                line, col = self.located.text_position(loc + ("bash",), line_in_text, column_in_text)
                self.diagnostics.append(Diagnostic(self.located.path, line, col, f"step '{step.id}': {message}"))
        given: dict[str, tuple] = {}
        for name in spec.env:
            given[name] = loc + ("env", name)
        for prefix, conn_id in spec.connections.items():
            for suffix in CONNECTION_ENV_SUFFIXES:
                name = f"{prefix}_{suffix}"
                if name in given:
                    self.error(
                        loc + ("connections", prefix),
                        f"step '{step.id}': connection '{conn_id}' as {prefix} sets {name}, which env: also sets",
                        key=True,
                    )
                    break
                given[name] = loc + ("connections", prefix)
        for name, where in list(given.items()):
            problem = env_name_problem(name)
            if problem is not None:
                self.error(where, f"step '{step.id}': {name} cannot be set: {problem}; choose another name", key=True)

    def use(self, step: m.Step, loc: tuple) -> None:
        spec = step.use
        assert spec is not None
        target = self.functions(spec.function)
        if target is None:
            hint = getattr(self.functions, "__self__", None)
            extra = hint.unknown_function_hint(spec.function) if hasattr(hint, "unknown_function_hint") else ""
            self.error(loc + ("function",), f"step '{step.id}': unknown function '{spec.function}'{extra}")
            return
        if not target.ok or not isinstance(target.definition, m.Function):
            first = target.diagnostics[0] if target.diagnostics else None
            self.error(
                loc + ("function",),
                f"step '{step.id}': function '{spec.function}' has errors" + (f": {first}" if first else ""),
            )
            return
        fn = target.definition
        for name in spec.with_:
            if name not in fn.inputs:
                self.error(
                    loc + ("with", name),
                    f"step '{step.id}': function '{fn.id}' has no input '{name}'{suggest(name, fn.inputs)}",
                    key=True,
                )
        for name, inp in fn.inputs.items():
            if inp.required and name not in spec.with_ and "default" not in inp.model_fields_set:
                self.error(
                    loc + ("with",) if "with" in self._data(loc) else loc,
                    f"step '{step.id}': missing required input '{name}' of function '{fn.id}'",
                )

    def _data(self, loc: tuple) -> Any:
        current = self.located.data
        for part in loc:
            current = current[part]
        return current

    def _cycles(self, steps: list[m.Step], loc: tuple) -> None:

        deps = dependencies(steps)
        index = {s.id: i for i, s in enumerate(steps)}
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(node: str) -> list[str] | None:
            state[node] = 1
            stack.append(node)
            for dep in deps.get(node, ()):
                if state.get(dep) == 1:
                    return stack[stack.index(dep) :] + [dep]
                if dep not in state:
                    found = visit(dep)
                    if found:
                        return found
            stack.pop()
            state[node] = 2
            return None

        for step in steps:
            if step.id not in state:
                cycle = visit(step.id)
                if cycle:
                    # cycle lists each step then one of its dependencies, so read it backwards
                    path = " → ".join(reversed(cycle))
                    self.error(loc + (index[cycle[0]], "id"), f"dependency cycle: {path}")
                    return

    # -- templates ----------------------------------------------------------------------------

    def templates(self, value: Any, loc: tuple, scope: dict[str, set[str] | None]) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if loc[-1:] and (loc[-1], key) in UNTEMPLATED:
                    continue
                if key == "until" and loc[-1:] == ("wait",) and m.REST_WAIT_FIELDS.isdisjoint(value):
                    if isinstance(child, str) and _is_template(child):  # a wait in time: a date-time template
                        self._check_text(child, loc + (key,), scope, expression=False)
                elif key in EXPRESSION_KEYS and isinstance(child, str) and _in_expression_owner(loc):
                    with_response = key in RESPONSE_EXPRESSION_KEYS
                    self._check_text(
                        child, loc + (key,), {**scope, "response": None} if with_response else scope, expression=True
                    )
                elif key == "outputs" and loc[-1:] in (("task",), ("wait",)) and isinstance(child, dict):
                    for name, expression in child.items():
                        if isinstance(expression, str):
                            self._check_text(
                                expression, loc + (key, name), {**scope, "response": None}, expression=True
                            )
                elif _may_hold_templates(child):
                    self.templates(child, loc + (key,), scope)
        elif isinstance(value, list):
            for i, child in enumerate(value):
                if _may_hold_templates(child):
                    self.templates(child, loc + (i,), scope)
        elif _is_template(value):
            self._check_text(value, loc, scope, expression=False)

    def _check_text(self, text: str, loc: tuple, scope: dict[str, set[str] | None], *, expression: bool) -> None:
        what = "expression" if expression else "template"
        error, line, refs, undeclared = _checked_template(text, expression)
        if error:
            self._text_error(loc, line, f"invalid {what}: {error}")
            return
        for name in sorted(undeclared - set(scope)):
            self._text_error(
                loc, 1, f"unknown name '{name}' in {what}{suggest(name, scope)}; known names: {', '.join(scope)}"
            )
        for ref in refs:
            names = scope.get(ref.scope)
            if ref.scope not in scope or names is None or ref.name is None:
                continue
            if ref.name not in names:
                label = {
                    "form": "form field",
                    "steps": "step",
                    "inputs": "input",
                    "alert": "alert field",
                    "trigger": "event field",
                }.get(ref.scope, ref.scope)
                self._text_error(loc, ref.line, f"unknown {label} '{ref.name}' in {what}{suggest(ref.name, names)}")

    def _text_error(self, loc: tuple, line_in_text: int, message: str) -> None:
        line, col = self.located.text_position(loc, line_in_text)
        self.diagnostics.append(Diagnostic(self.located.path, line, col, _context(loc, self.located.data) + message))


@functools.lru_cache(maxsize=8192)
def _checked_template(text: str, expression: bool) -> tuple[str | None, int, tuple, frozenset[str]]:
    """``check_template`` once per distinct text in a process: the same templates recur across
    definitions (``{{ form.hostname }}``), and parsing one with Jinja costs about a millisecond."""
    error, line, refs, undeclared = check_template(text, expression=expression)
    return error, line, tuple(refs), frozenset(undeclared)


def _field_problems(schema: dict[str, Any], default: Any) -> tuple[str | None, str | None]:
    """(why the schema is invalid, why ``default`` does not fit it) for one form field, each None when
    fine; a None default is not checked. Once per distinct schema and default in a process: the same
    fields recur across definitions, and checking a schema against the metaschema costs far more than
    the rest of a form's checks."""
    key = (repr(schema), repr(default)) if _plain(schema) and _plain(default) else None
    if key is not None and key in _FIELD_PROBLEMS:
        return _FIELD_PROBLEMS[key]
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        result: tuple[str | None, str | None] = (exc.message, None)
    else:
        errors = []
        if default is not None:
            # patterns on RE2: the schema and the default come from whoever sends the definition
            validator = linear_time(jsonschema.Draft7Validator)(schema, format_checker=jsonschema.FormatChecker())
            errors = list(validator.iter_errors(default))
        result = (None, errors[0].message if errors else None)
    if key is not None:
        if len(_FIELD_PROBLEMS) >= 4096:
            _FIELD_PROBLEMS.clear()
        _FIELD_PROBLEMS[key] = result
    return result


_FIELD_PROBLEMS: dict[tuple[str, str], tuple[str | None, str | None]] = {}


def _plain(value: Any) -> bool:
    """JSON-like data of the built-in types only, so that its repr tells it apart from any other."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return kind in (str, int, float, bool, type(None))


def _template_in_bash(body: str) -> tuple[int, int, str] | None:
    """(line, column, message) of the first ``{{`` or ``{%`` in a bash body, or None. Bash bodies
    are not templated: a value pasted into shell text is code to the shell, however it is quoted."""
    starts = [i for i in (body.find("{{"), body.find("{%")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    line = body.count("\n", 0, start) + 1
    column = start - (body.rfind("\n", 0, start) + 1) + 1
    if body.startswith("{{", start):
        end = body.find("}}", start)
        snippet = body[start : end + 2] if end >= 0 and "\n" not in body[start:end] else "{{ ... }}"
        expression = snippet[2:-2].strip() if snippet != "{{ ... }}" else "..."
        name = _env_name_for(expression)
        message = (
            f"bash scripts are not templated: {snippet} would be pasted into shell code. Pass the value "
            f'as an environment variable and use it quoted: env: {{{name}: "{{{{ {expression} }}}}"}}, '
            f'then "${name}" in the script'
        )
    else:
        message = (
            "bash scripts are not templated: {% ... %} is not allowed in a bash body. Pass the values "
            'through env (env: {VALUE: "{{ form.field }}"}) and branch in bash on "$VALUE"'
        )
    return line, column, message


def _env_name_for(expression: str) -> str:
    """A variable name for the hint: ``form.hostname`` → HOSTNAME, ``run.id`` → RUN_ID."""
    path = re.search(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", expression)
    if path is None:
        return "VALUE"
    words = path.group().split(".")
    name = words[-1].upper()
    if words[0] == "run" and len(words) > 1:
        name = f"RUN_{name}"
    if env_name_problem(name) is not None or not name[0].isalpha():
        name = f"VALUE_{name}".rstrip("_")
    return name


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value or "{#" in value)


def _may_hold_templates(value: Any) -> bool:
    """Whether ``templates`` has anything to check in ``value``: most values are plain words and
    numbers, and not walking into them halves the walk."""
    return isinstance(value, (dict, list)) or _is_template(value)


def _in_expression_owner(loc: tuple) -> bool:
    """`if`, `when` and `until` are expressions inside decisions and waits only."""
    return any(part in ("decision", "wait", "cases") for part in loc)


def _decision_targets(spec: m.DecisionStep) -> Iterable[tuple[tuple, str]]:
    if spec.cases is not None:
        for i, case in enumerate(spec.cases):
            for j, target in enumerate(case.then):
                yield ("cases", i, "then", j), target
        for j, target in enumerate(spec.default or []):
            yield ("default", j), target
    else:
        for j, target in enumerate(spec.then or []):
            yield ("then", j), target
        for j, target in enumerate(spec.else_ or []):
            yield ("else", j), target
