"""Validating an OpenAPI document: openapi-spec-validator's checks, fast enough for big documents.

Two layers, like openapi-spec-validator's own ``validate()``:

1. **Structure**: the document against the official OpenAPI JSON Schema of its version (the schemas
   openapi-spec-validator ships). A valid document is confirmed by ``jsonschema-rs`` when it is
   installed (milliseconds), else for Swagger 2.0 / OpenAPI 3.0 by :class:`Draft4Check`, a yes/no
   check of those schemas compiled to closures (~0.4 s for GitHub's 13 MB description, where
   jsonschema takes ~10 s), else by :mod:`jsonschema`. An invalid document is always explained by
   jsonschema: its most relevant error (``best_match``) gives the message and the JSON pointer.
2. **Semantics**: the checks of openapi-spec-validator's keyword validators — unique operationIds,
   path templates whose parameters are all declared (and the other way round), no duplicate
   parameters, unique tag names, resolvable ``$ref``s, a ``required`` property that exists when
   ``allOf`` is used, ``default`` values that match their schema, every schema valid for its dialect
   (the OpenAPI 3.1 dialect meta-schema; for 2.0/3.0 the structure layer already checks schemas, and
   ``pattern``s must compile) — reimplemented on the plain document. openapi-spec-validator walks the
   document through ``jsonschema-path`` proxies and keeps "seen" lists that it scans linearly, which
   takes ~20 s on GitHub's REST API description; this walk takes well under a second, and every
   error carries the JSON pointer of the bad part.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterator
from functools import cache
from typing import Any

from autopilot_provider.definitions.bounded import PatternError, compile_pattern, linear_time
from autopilot_provider.openapi.spec import (
    MAX_RESOLVED_NODES,
    METHODS,
    SpecError,
    _Resolver,
    pointer,
    quiet_gc,
    ref_parts,
    walk,
)

#: Longest instance text quoted in a message.
_QUOTE = 80
#: Resolved schema nodes after which default values are no longer checked (the checks stay bounded)
MAX_DEFAULT_NODES = 20 * MAX_RESOLVED_NODES
#: Swagger 2.0 parameter fields that are not JSON Schema keywords.
_PARAMETER_FIELDS = {"name", "in", "required", "description", "allowEmptyValue", "collectionFormat"}


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def validate(document: dict[str, Any]) -> None:
    """Raise :class:`SpecError` (message, JSON pointer) for the first problem of ``document``."""
    version = detect_version(document)
    with quiet_gc():
        structure(document, version)
        for error in semantic_errors(document, version):
            raise error


def detect_version(document: Any) -> str:
    """The version: "2.0", "3.0", "3.1" or "3.2" — or SpecError when the document names no supported version."""
    if not isinstance(document, dict):
        raise SpecError("not an OpenAPI document: expected a mapping at the top", "")
    if "swagger" in document:
        value = str(document["swagger"])
        if value == "2.0":
            return "2.0"
        raise SpecError(f"unsupported Swagger version {value!r}: expected '2.0'", "/swagger")
    if "openapi" not in document:
        raise SpecError("not an OpenAPI document: no 'openapi' or 'swagger' field", "")
    value = str(document["openapi"])
    match = re.match(r"^3\.([0-2])\.\d+(-.+)?$", value)
    if not match:
        raise SpecError(f"unsupported OpenAPI version {value!r}: expected 3.0.x, 3.1.x or 3.2.x", "/openapi")
    return f"3.{match.group(1)}"


# ---------------------------------------------------------------------------------------------
# 1. Structure
# ---------------------------------------------------------------------------------------------


@cache
def _document_schema(version: str) -> dict[str, Any]:
    """The OpenAPI JSON Schema of a version, as shipped by openapi-spec-validator (read from its
    package folder: importing openapi_spec_validator itself costs over a second)."""
    import importlib.util
    import json
    from pathlib import Path

    found = importlib.util.find_spec("openapi_spec_validator")
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in folders:
        candidate = Path(folder) / "resources" / "schemas" / f"v{version}" / "schema.json"
        if candidate.exists():
            return json.loads(candidate.read_text(encoding="utf-8"))
    from openapi_spec_validator import schemas  # pragma: no cover - a differently packaged version

    content = {"2.0": schemas.schema_v2, "3.0": schemas.schema_v30, "3.1": schemas.schema_v31}.get(version)
    return dict(content if content is not None else schemas.schema_v32)


@cache
def _python_validator(version: str):
    from jsonschema.validators import validator_for

    schema = _document_schema(version)
    cls = validator_for(schema)
    if version in ("2.0", "3.0"):  # draft-04: a $ref replaces its object, so it can be inlined
        return cls(_inline_refs(schema))
    return cls(schema)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a draft-04 schema whose local ``$ref`` objects are replaced by their targets — the
    same Python objects, so recursive definitions become cycles. Validating then never looks a
    reference up (about half of jsonschema's time on a big document). Same meaning: in draft-04 a
    ``$ref`` ignores its siblings."""
    import copy

    root = copy.deepcopy(schema)

    def target(ref: str) -> Any:
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                return target(ref)
            for key, value in node.items():
                if key not in ("enum", "required", "default", "example"):
                    node[key] = inline(value)
            return node
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    for definition in (root.get("definitions") or {}).values():
        inline(definition)
    for key in list(root):
        if key != "definitions":
            root[key] = inline(root[key])
    return root


@cache
def _rust_validator(version: str):
    try:
        import jsonschema_rs
    except ImportError:
        return None
    try:
        return jsonschema_rs.validator_for(_document_schema(version), validate_formats=False)
    except Exception:  # pragma: no cover - an old jsonschema-rs; fall back to jsonschema
        return None


class Unsupported(Exception):
    """The schema uses a keyword :class:`Draft4Check` does not implement (jsonschema decides then)."""


class Draft4Check:
    """A yes/no validator for the draft-04 keywords the OpenAPI 2.0 and 3.0 JSON Schemas use, compiled
    to closures once (recursive definitions become cycles of closures).

    jsonschema spends most of its time creating a validator object per (schema, value) pair and
    collecting errors that ``oneOf`` then throws away; answering only "valid?" is several times
    faster. It decides nothing on its own: a document it rejects goes to jsonschema for the error, and
    a schema with a keyword it does not know raises :class:`Unsupported` (then jsonschema decides).
    Formats are not checked, as in openapi-spec-validator's structure check.
    """

    KEYWORDS = {
        "type",
        "enum",
        "required",
        "properties",
        "patternProperties",
        "additionalProperties",
        "items",
        "additionalItems",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "uniqueItems",
        "pattern",
        "minLength",
        "maxLength",
        "$ref",
    }
    ANNOTATIONS = {"$schema", "id", "title", "description", "default", "definitions", "format", "example"}

    #: Remote documents the OpenAPI schemas refer to (Swagger 2.0 uses draft-04's own definitions).
    REMOTE = {"http://json-schema.org/draft-04/schema": "draft4"}

    def __init__(self, schema: dict[str, Any]):
        self.compiled: dict[int, Any] = {}
        self.check = self.compile(schema, schema)

    def __call__(self, instance: Any) -> bool:
        return self.check(instance)

    def _target(self, ref: Any, root: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if not isinstance(ref, str):
            raise Unsupported(f"$ref {ref!r}")
        base, _, fragment = ref.partition("#")
        if base:
            if self.REMOTE.get(base.rstrip("/")) != "draft4":
                raise Unsupported(f"$ref {ref!r}")
            from jsonschema.validators import Draft4Validator

            root = Draft4Validator.META_SCHEMA
        parts = [p.replace("~1", "/").replace("~0", "~") for p in fragment.split("/")[1:]] if fragment else []
        return walk(root, parts, ref), root

    def compile(self, schema: Any, root: dict[str, Any]):  # noqa: C901 - one branch per keyword
        if schema is True or schema == {}:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        key = id(schema)
        if key in self.compiled:
            return self.compiled[key]
        slot: list[Any] = [None]

        def deferred(x: Any) -> bool:
            return slot[0](x)

        self.compiled[key] = deferred
        unknown = set(schema) - self.KEYWORDS - self.ANNOTATIONS
        if unknown:
            raise Unsupported(f"keywords {sorted(unknown)}")
        if "$ref" in schema:  # draft-04: a $ref replaces its object
            target, target_root = self._target(schema["$ref"], root)
            slot[0] = self.compile(target, target_root)
            return deferred
        sub = functools.partial(self.compile, root=root)
        checks = []
        if "type" in schema:
            kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            tests = [_TYPES[k] for k in kinds]
            checks.append(tests[0] if len(tests) == 1 else (lambda x, tests=tests: any(t(x) for t in tests)))
        if "enum" in schema:
            checks.append(_enum(schema["enum"]))
        if {
            "properties",
            "patternProperties",
            "additionalProperties",
            "required",
            "minProperties",
            "maxProperties",
        } & set(schema):
            checks.append(self._object(schema, sub))
        if {"items", "additionalItems", "minItems", "maxItems", "uniqueItems"} & set(schema):
            checks.append(self._array(schema, sub))
        if {"pattern", "minLength", "maxLength"} & set(schema):
            checks.append(_string(schema))
        if {"minimum", "maximum"} & set(schema):
            checks.append(_number(schema))
        for keyword in ("allOf", "anyOf", "oneOf"):
            if keyword in schema:
                subs = [sub(s) for s in schema[keyword]]
                checks.append({"allOf": _all_of, "anyOf": _any_of, "oneOf": _one_of}[keyword](subs))
        if "not" in schema:
            negated = sub(schema["not"])
            checks.append(lambda x, negated=negated: not negated(x))

        def run(x: Any) -> bool:
            for check in checks:
                if not check(x):
                    return False
            return True

        slot[0] = checks[0] if len(checks) == 1 else (_always if not checks else run)
        return deferred

    @staticmethod
    def _object(schema: dict[str, Any], compile_):
        props = {k: compile_(v) for k, v in (schema.get("properties") or {}).items()}
        patterns = [
            (regex, compile_(v))
            for p, v in (schema.get("patternProperties") or {}).items()
            if (regex := _regex(p)) is not None
        ]
        extra = schema.get("additionalProperties", True)
        extra = None if extra is True or extra == {} else (False if extra is False else compile_(extra))
        required = list(schema.get("required") or [])
        low, high = schema.get("minProperties"), schema.get("maxProperties")

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name in required:
                if name not in x:
                    return False
            if low is not None and len(x) < low or high is not None and len(x) > high:
                return False
            for name, value in x.items():
                matched = False
                sub = props.get(name)
                if sub is not None:
                    matched = True
                    if not sub(value):
                        return False
                for regex, sub in patterns:
                    if regex.search(name):
                        matched = True
                        if not sub(value):
                            return False
                if not matched and extra is not None and (extra is False or not extra(value)):
                    return False
            return True

        return check

    @staticmethod
    def _array(schema: dict[str, Any], compile_):
        items = schema.get("items", {})
        each = compile_(items) if isinstance(items, dict) else None
        positional = [compile_(s) for s in items] if isinstance(items, list) else None
        rest = schema.get("additionalItems", True)
        rest = None if rest is True or rest == {} else (False if rest is False else compile_(rest))
        low, high, unique = schema.get("minItems"), schema.get("maxItems"), schema.get("uniqueItems") is True

        def check(x: Any) -> bool:
            if not isinstance(x, list):
                return True
            if low is not None and len(x) < low or high is not None and len(x) > high:
                return False
            if each is not None and each is not _always:
                for value in x:
                    if not each(value):
                        return False
            if positional is not None:
                for sub, value in zip(positional, x, strict=False):
                    if not sub(value):
                        return False
                if rest is not None and len(x) > len(positional):
                    if rest is False or not all(rest(v) for v in x[len(positional) :]):
                        return False
            return not unique or _unique(x)

        return check


def _always(_x: Any) -> bool:
    return True


def _never(_x: Any) -> bool:
    return False


_TYPES = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
}


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _enum(options: list):
    texts = {o for o in options if isinstance(o, str)}
    others = [o for o in options if not isinstance(o, str)]

    def check(x: Any) -> bool:
        if isinstance(x, str):
            return x in texts
        return any(_equal(x, o) for o in others)

    return check


def _unique(values: list) -> bool:
    if all(isinstance(v, str) for v in values):
        return len(set(values)) == len(values)
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            if _equal(a, b):
                return False
    return True


def _regex(pattern: str) -> Any:
    """``pattern`` for checking a document's default values: RE2, which matches in linear time (the
    document's author chooses both the pattern and the default, on the API server). None when RE2
    cannot run it: defaults are a lint, and such a pattern is not checked."""
    try:
        return compile_pattern(pattern)
    except PatternError:
        return None


def _string(schema: dict[str, Any]):
    regex = _regex(schema["pattern"]) if isinstance(schema.get("pattern"), str) else None
    low, high = schema.get("minLength"), schema.get("maxLength")

    def check(x: Any) -> bool:
        if not isinstance(x, str):
            return True
        if low is not None and len(x) < low or high is not None and len(x) > high:
            return False
        return regex is None or regex.search(x) is not None

    return check


def _number(schema: dict[str, Any]):
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open, high_open = schema.get("exclusiveMinimum") is True, schema.get("exclusiveMaximum") is True

    def check(x: Any) -> bool:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return True
        if low is not None and (x <= low if low_open else x < low):
            return False
        return high is None or not (x >= high if high_open else x > high)

    return check


def _all_of(subs):
    return lambda x: all(s(x) for s in subs)


def _any_of(subs):
    return lambda x: any(s(x) for s in subs)


def _one_of(subs):
    def check(x: Any) -> bool:
        found = 0
        for sub in subs:
            if sub(x):
                found += 1
                if found > 1:
                    return False
        return found == 1

    return check


@cache
def _fast_check(version: str) -> Draft4Check | None:
    if version not in ("2.0", "3.0"):
        return None
    try:
        return Draft4Check(_inline_refs(_document_schema(version)))
    except (Unsupported, re.error, KeyError, TypeError):  # pragma: no cover - a future schema
        return None


def accelerated() -> bool:
    """Whether jsonschema-rs checks the structure."""
    return _rust_validator("3.0") is not None


def structure_backend(version: str) -> str:
    """What confirms a valid document's structure: jsonschema-rs, the compiled draft-04 check
    (Swagger 2.0 / OpenAPI 3.0) or jsonschema."""
    if _rust_validator(version) is not None:
        return "jsonschema-rs"
    return "draft-04 check" if _fast_check(version) is not None else "jsonschema"


def structure(document: dict[str, Any], version: str) -> None:
    fast = _rust_validator(version)
    if fast is not None:
        try:
            if fast.is_valid(document):
                return
        except Exception:  # noqa: S110 - e.g. a value jsonschema-rs cannot convert; jsonschema decides
            pass
    check = _fast_check(version)
    if check is not None:
        try:
            if check(document):
                return
        except RecursionError:
            pass
    from jsonschema.exceptions import best_match

    validator = _python_validator(version)
    first = next(validator.iter_errors(document), None)
    if first is None:
        return
    error = best_match([first])
    raise SpecError(_message(error), pointer(*error.absolute_path))


def _message(error) -> str:
    """jsonschema's message with a long instance quoted short, and oneOf/anyOf explained."""
    message = error.message
    text = repr(error.instance)
    if len(text) > _QUOTE and message.startswith(text):
        message = _short(error.instance) + message[len(text) :]
    if error.validator in ("oneOf", "anyOf") and error.context:
        message += " (" + "; ".join(sorted({_short_message(e) for e in error.context})[:3]) + ")"
    return message


def _short_message(error) -> str:
    text = repr(error.instance)
    message = error.message
    if message.startswith(text):
        message = _short(error.instance) + message[len(text) :]
    where = pointer(*error.relative_path)
    return f"{where}: {message}" if where else message


def _short(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:4])
        return "{" + keys + (", ..." if len(value) > 4 else "") + "}" if value else "{}"
    if isinstance(value, list):
        return f"[... {len(value)} item(s)]"
    text = repr(value)
    return text if len(text) <= _QUOTE else text[: _QUOTE - 3] + "..."


# ---------------------------------------------------------------------------------------------
# 2. Semantics
# ---------------------------------------------------------------------------------------------


class _Walker:
    def __init__(self, document: dict[str, Any], version: str):
        self.document = document
        self.version = version
        self.resolver = _Resolver(document)
        self.operation_ids: dict[str, str] = {}
        self.schemas_seen: set[tuple[int, bool]] = set()
        self.meta_checked: set[int] = set()

    # -- references -------------------------------------------------------------------------

    def follow(self, node: Any, where: str) -> tuple[Any, str]:
        """(object, its pointer) after following a ``$ref`` chain; SpecError at the ``$ref`` if it is broken."""
        hops = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            try:
                parts = ref_parts(ref)
                node = walk(self.document, parts, ref)
            except SpecError as exc:
                raise SpecError(exc.message, where + "/$ref") from None
            where = pointer(*parts)
            hops += 1
            if hops > 50:
                raise SpecError("a $ref chain of more than 50 references (a cycle?)", where)
        return node, where

    # -- document ---------------------------------------------------------------------------

    def errors(self) -> Iterator[SpecError]:
        doc = self.document
        tags = doc.get("tags")
        if isinstance(tags, list):
            seen: set[str] = set()
            for i, tag in enumerate(tags):
                name = tag.get("name") if isinstance(tag, dict) else None
                if name in seen:
                    yield SpecError(f"Duplicate tag name '{name}'", pointer("tags", i, "name"))
                seen.add(name)
        for path, item in (doc.get("paths") or {}).items():
            yield from self.path_item(str(path), item, pointer("paths", path))
        components = doc.get("components")
        if isinstance(components, dict) and isinstance(components.get("schemas"), dict):
            for name, schema in components["schemas"].items():
                yield from self.schema(schema, pointer("components", "schemas", name))

    def path_item(self, path: str, item: Any, where: str) -> Iterator[SpecError]:
        item, where = self.follow(item, where)
        if not isinstance(item, dict):
            return
        shared = item.get("parameters")
        shared_params: list[tuple[dict, str]] = []
        if isinstance(shared, list):
            shared_params = yield from self.parameters(shared, where + "/parameters")
        for method in (*METHODS, "query") if self.version == "3.2" else METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                yield from self.operation(path, method, operation, shared_params, f"{where}/{method}")

    def operation(
        self, path: str, method: str, op: dict, shared: list[tuple[dict, str]], where: str
    ) -> Iterator[SpecError]:
        op_id = op.get("operationId")
        if op_id is not None:
            if op_id in self.operation_ids:
                yield SpecError(
                    f"Operation ID '{op_id}' for '{method}' in '{path}' is not unique "
                    f"(also used at {self.operation_ids[op_id]})",
                    where + "/operationId",
                )
            else:
                self.operation_ids[op_id] = where
        responses = op.get("responses")
        if isinstance(responses, dict):
            for code, response in responses.items():
                yield from self.response(response, f"{where}/responses/{_esc(code)}")
        own: list[tuple[dict, str]] = []
        if isinstance(op.get("parameters"), list):
            own = yield from self.parameters(op["parameters"], where + "/parameters")
        if "requestBody" in op:
            body, body_where = self.follow(op["requestBody"], where + "/requestBody")
            if isinstance(body, dict):
                yield from self.content(body.get("content"), body_where + "/content")
        declared = {p.get("name") for p, _ in [*own, *shared] if p.get("in") == "path"}
        try:
            in_path = {name for _, name, _, _ in string.Formatter().parse(path) if name}
        except ValueError as exc:
            yield SpecError(f"path template {path!r} is malformed: {exc}", where.rsplit("/", 1)[0])
            return
        for name in sorted(in_path - declared):
            yield SpecError(
                f"Path parameter '{name}' for '{method}' operation in '{path}' was not resolved "
                f"(no parameter with in: path and name: {name})",
                where,
            )
        for name in sorted(n for n in declared - in_path if isinstance(n, str)):
            yield SpecError(
                f"Path parameter '{name}' for '{method}' operation in '{path}' was not resolved "
                f"(the path has no {{{name}}})",
                where,
            )

    def parameters(self, params: list, where: str):
        """Check a parameter list; return [(parameter, pointer)] (a generator's return value)."""
        found: list[tuple[dict, str]] = []
        seen: set[tuple[Any, Any]] = set()
        for i, param in enumerate(params):
            param, at = self.follow(param, f"{where}/{i}")
            if not isinstance(param, dict):
                continue
            if "schema" in param:
                yield from self.schema(param["schema"], at + "/schema")
            if self.version.startswith("3") and isinstance(param.get("content"), dict):
                yield from self.content(param["content"], at + "/content")
            if self.version == "2.0" and "default" in param and param.get("in") != "body":
                schema = {k: v for k, v in param.items() if k not in _PARAMETER_FIELDS}
                yield from self.default(schema, param["default"], at + "/default")
            key = (param.get("name"), param.get("in"))
            if key in seen:
                yield SpecError(f"Duplicate parameter '{param.get('name')}'", at)
            seen.add(key)
            found.append((param, at))
        return found

    def response(self, response: Any, where: str) -> Iterator[SpecError]:
        response, where = self.follow(response, where)
        if not isinstance(response, dict):
            return
        if self.version == "2.0":
            if "schema" in response:
                yield from self.schema(response["schema"], where + "/schema")
        else:
            yield from self.content(response.get("content"), where + "/content")

    def content(self, content: Any, where: str) -> Iterator[SpecError]:
        if not isinstance(content, dict):
            return
        for media, entry in content.items():
            if isinstance(entry, dict) and "schema" in entry:
                yield from self.schema(entry["schema"], f"{where}/{_esc(media)}/schema")

    # -- schemas ----------------------------------------------------------------------------

    def schema(
        self, node: Any, where: str, require_properties: bool = True, meta_checked: bool = False
    ) -> Iterator[SpecError]:
        if isinstance(node, dict) and "$ref" in node:
            node, where = self.follow(node, where)
            meta_checked = False  # a referenced schema is checked where it is defined, once
        if not isinstance(node, (dict, bool)):
            yield SpecError(f"{_short(node)} is not of type 'object', 'boolean'", where)
            return
        key = id(node)
        if not meta_checked and key not in self.meta_checked:
            self.meta_checked.add(key)
            problem = self.meta(node, where)
            if problem is not None:
                yield problem
                return
        if (key, require_properties) in self.schemas_seen or isinstance(node, bool):
            return
        self.schemas_seen.add((key, require_properties))
        if self.version != "3.1" and isinstance(node.get("pattern"), str):
            try:
                re.compile(node["pattern"])
            except re.error as exc:
                yield SpecError(f"{node['pattern']!r} is not a 'regex': {exc}", where + "/pattern")
        nested: set[str] = set()
        for keyword in ("allOf", "anyOf", "oneOf"):
            subs = node.get(keyword)
            if isinstance(subs, list):
                for i, sub in enumerate(subs):
                    yield from self.schema(sub, f"{where}/{keyword}/{i}", False, True)
                    if keyword == "allOf":
                        nested |= self.properties_of(sub)
        for keyword in ("not", "items"):
            if keyword in node and isinstance(node[keyword], (dict, bool)):
                yield from self.schema(node[keyword], f"{where}/{keyword}", False, True)
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, sub in properties.items():
                yield from self.schema(sub, f"{where}/properties/{_esc(name)}", False, True)
        if "allOf" in node and require_properties:
            required = node.get("required") if isinstance(node.get("required"), list) else []
            own = set(properties) if isinstance(properties, dict) else set()
            extra = sorted(str(r) for r in set(required) - own - nested)
            if extra:
                yield SpecError(f"Required list has not defined properties: {extra}", where + "/required")
        if "default" in node:
            value = node["default"]
            if value is not None or node.get("nullable") is not True:
                yield from self.default(node, value, where + "/default")

    def properties_of(self, node: Any, depth: int = 0) -> set[str]:
        """Every property name reachable through allOf/anyOf/oneOf/items/not (as openapi-spec-validator)."""
        try:
            node, _ = self.follow(node, "")
        except SpecError:
            return set()
        if not isinstance(node, dict) or depth > 50:
            return set()
        names = set(node["properties"]) if isinstance(node.get("properties"), dict) else set()
        for keyword in ("allOf", "anyOf", "oneOf"):
            if isinstance(node.get(keyword), list):
                for sub in node[keyword]:
                    names |= self.properties_of(sub, depth + 1)
        for keyword in ("items", "not"):
            if isinstance(node.get(keyword), dict):
                names |= self.properties_of(node[keyword], depth + 1)
        return names

    def meta(self, node: Any, where: str) -> SpecError | None:
        """OpenAPI 3.1+: the schema against its dialect's meta-schema (2.0/3.0 schemas are already
        checked by the structure layer, whose Schema Object definition is stricter)."""
        if not self.version.startswith("3.") or self.version == "3.0":
            return None
        from jsonschema.exceptions import SchemaError, ValidationError

        cls = _dialect_validator(self.version, self.document.get("jsonSchemaDialect"), node)
        if cls is None:
            dialect = node.get("$schema") if isinstance(node, dict) else None
            return SpecError(
                f"Unknown JSON Schema dialect: {dialect or self.document.get('jsonSchemaDialect')!r}", where
            )
        try:
            cls(node)
        except (SchemaError, ValidationError) as exc:
            return SpecError(_message(exc), where + pointer(*exc.absolute_path))
        return None

    def default(self, schema: dict, value: Any, where: str) -> Iterator[SpecError]:
        if self.resolver.spent > MAX_DEFAULT_NODES:
            return  # defaults are a lint: a document whose schemas expand this much gets no more of it
        try:
            resolved = self.resolver.resolve(schema)
        except SpecError:
            return  # a broken $ref is reported where it is
        try:
            validator = _value_validator(self.version, resolved)
            # `format` is an annotation in OpenAPI (JSON Schema 2020-12): published documents have
            # defaults such as '' for a uri, which clients send as they are; only structure is checked
            error = next((e for e in validator.iter_errors(value) if e.validator != "format"), None)
        except Exception as exc:  # a schema the validator cannot apply (e.g. minimum: "one")
            yield SpecError(f"default value cannot be checked against its schema: {exc}", where)
            return
        if error is not None:
            from jsonschema.exceptions import best_match

            error = best_match([error])
            yield SpecError(f"default value is invalid: {_message(error)}", where + pointer(*error.absolute_path))


def _esc(part: Any) -> str:
    part = str(part)
    if "~" in part or "/" in part:
        return part.replace("~", "~0").replace("/", "~1")
    return part


def semantic_errors(document: dict[str, Any], version: str | None = None) -> Iterator[SpecError]:
    return _Walker(document, version or detect_version(document)).errors()


def _dialect_validator(version: str, default_dialect: Any, node: Any):
    """A callable that raises SchemaError when ``node`` breaks its dialect's meta-schema."""
    from functools import partial

    from jsonschema.validators import validator_for
    from openapi_schema_validator import OAS31Validator, oas31_format_checker

    try:
        from openapi_schema_validator import OAS32Validator, oas32_format_checker
    except ImportError:  # pragma: no cover - older openapi-schema-validator
        OAS32Validator, oas32_format_checker = OAS31Validator, oas31_format_checker
    base, checker = (
        (OAS32Validator, oas32_format_checker) if version == "3.2" else (OAS31Validator, oas31_format_checker)
    )
    dialect = node.get("$schema") if isinstance(node, dict) else None
    dialect = dialect or default_dialect
    if dialect is None:
        cls = base
    else:
        if not isinstance(dialect, str):
            return None
        cls = validator_for({"$schema": dialect}, default=None)
        if cls is None:
            return None
    return partial(cls.check_schema, format_checker=checker) if cls is base else cls.check_schema


def _value_validator(version: str, schema: Any):
    from openapi_schema_validator import OAS30Validator, OAS31Validator, oas30_format_checker, oas31_format_checker

    # patterns on RE2: the document's author chooses both the pattern and the default
    if version in ("3.1", "3.2"):
        return linear_time(OAS31Validator)(schema, format_checker=oas31_format_checker)
    return linear_time(OAS30Validator)(schema, format_checker=oas30_format_checker)


__all__ = [
    "Draft4Check",
    "accelerated",
    "detect_version",
    "semantic_errors",
    "structure",
    "structure_backend",
    "validate",
]


def validate_document(document: dict[str, Any]) -> None:
    """Validate like openapi-spec-validator (its OpenAPI JSON Schemas plus its semantic checks); raise
    SpecError naming the JSON pointer of the first problem."""

    validate(document)
