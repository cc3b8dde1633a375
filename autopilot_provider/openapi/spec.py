"""OpenAPI documents (Swagger 2.0, OpenAPI 3.0 and 3.1) as one uniform operation model.

Everything that needs an API's shape — import, the catalog, validation of task steps, building
requests at run time — reads it through :func:`load_spec` and :class:`Operation`, whatever version
the document was written in. Local ``$ref``s are resolved (recursive schemas are cut at the cycle).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCATIONS = ("path", "query", "header", "cookie")


class SpecError(Exception):
    """A document that is not a valid OpenAPI description; ``pointer`` is the JSON pointer of the bad part."""

    def __init__(self, message: str, pointer: str = ""):
        self.message = message
        self.pointer = pointer
        super().__init__(f"{pointer or '/'}: {message}" if pointer is not None else message)


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path | query | header | cookie
    required: bool = False
    schema: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    style: str | None = None
    explode: bool | None = None


@dataclass(frozen=True)
class Operation:
    id: str
    method: str  # upper case
    path: str
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    body_schema: dict[str, Any] | None = None
    body_required: bool = False
    body_media_types: tuple[str, ...] = ()
    responses: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    security: tuple[dict[str, list[str]], ...] | None = None  # None: the document's default applies
    derived_id: bool = False  # the document gave no operationId

    def parameter(self, name: str, location: str | None = None) -> Parameter | None:
        for param in self.parameters:
            if param.name == name and (location is None or param.location == location):
                return param
        return None

    def as_catalog(self) -> dict[str, Any]:
        data = asdict(self)
        data["operationId"] = data.pop("id")
        data["parameters"] = [asdict(p) for p in self.parameters]
        return data


@dataclass
class Spec:
    title: str
    version: str
    openapi: str  # "2.0", "3.0.3", "3.1.0", ...
    servers: list[str]
    security_schemes: dict[str, dict[str, Any]]
    security: list[dict[str, list[str]]]
    operations: dict[str, Operation]
    document: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def dialect(self) -> str:
        return "3.1" if self.openapi.startswith("3.1") else ("2.0" if self.openapi.startswith("2") else "3.0")

    def operation(self, operation_id: str) -> Operation | None:
        return self.operations.get(operation_id)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def parse_document(text: str | bytes, *, source: str = "<document>") -> dict[str, Any]:
    """JSON or YAML text → dict (JSON is valid YAML, but json.loads is much faster for big specs)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            data = json.loads(text)
        else:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{source} is neither JSON nor YAML: {exc}", "") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source} is not an OpenAPI document (expected a mapping at the top)", "")
    return data


def read_source(source: str | Path) -> str:
    """Read a file path or an http(s) URL."""
    text = str(source)
    if re.match(r"^https?://", text):
        import httpx

        response = httpx.get(text, follow_redirects=True, timeout=60)
        response.raise_for_status()
        return response.text
    return Path(source).read_text(encoding="utf-8")


def validate_document(document: dict[str, Any]) -> None:
    """Validate with openapi-spec-validator; raise SpecError naming the JSON pointer of the first error."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    if "swagger" not in document and "openapi" not in document:
        raise SpecError("not an OpenAPI document: no 'openapi' or 'swagger' field", "")
    try:
        validate(document)
    except OpenAPIValidationError as exc:
        pointer = "/" + "/".join(_escape(str(p)) for p in getattr(exc, "absolute_path", []) or [])
        raise SpecError(getattr(exc, "message", str(exc)), pointer) from None
    except Exception as exc:  # the validator reports some problems (bad $ref, ...) as other errors
        raise SpecError(str(exc), "") from None


def load_spec(source: str | Path | dict[str, Any], *, validate: bool = True) -> Spec:
    """Load an OpenAPI document from a dict, a file or a URL, validate it and normalise it."""
    if isinstance(source, dict):
        document = source
    else:
        document = parse_document(read_source(source), source=str(source))
    if validate:
        validate_document(document)
    return normalise(document)


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


class _Resolver:
    """Inlines local ``$ref``s. A reference already being expanded (a recursive schema) becomes ``{}``."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.cache: dict[str, Any] = {}

    def target(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise SpecError(f"only local $ref are supported, got {ref!r}", "")
        node: Any = self.document
        for part in ref[1:].split("/")[1:]:
            part = _unescape(part)
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise SpecError(f"unresolvable $ref {ref!r}", ref[1:]) from None
        return node

    def resolve(self, node: Any, active: frozenset[str] = frozenset()) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if ref in active:
                    return {}
                if ref not in self.cache or active:
                    resolved = self.resolve(self.target(ref), active | {ref})
                    if not active:
                        self.cache[ref] = resolved
                    return resolved
                return self.cache[ref]
            return {k: self.resolve(v, active) for k, v in node.items()}
        if isinstance(node, list):
            return [self.resolve(v, active) for v in node]
        return node


def derive_operation_id(method: str, path: str) -> str:
    """A stable id for an operation without operationId: `get /hosts/{id}/agent` → `get_hosts_id_agent`."""
    words = re.sub(r"[{}]", "", path)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_")
    return f"{method.lower()}_{slug}" if slug else method.lower()


def normalise(document: dict[str, Any]) -> Spec:
    resolver = _Resolver(document)
    version = str(document.get("openapi") or document.get("swagger") or "")
    swagger = version.startswith("2")
    operations: dict[str, Operation] = {}
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        item = resolver.resolve(item) if "$ref" in item else item
        shared = [resolver.resolve(p) for p in item.get("parameters", [])]
        for method in METHODS:
            raw = item.get(method)
            if not isinstance(raw, dict):
                continue
            op_id = raw.get("operationId")
            derived = not op_id
            if derived:
                op_id = derive_operation_id(method, path)
            base, n = op_id, 2
            while op_id in operations:
                op_id, n = f"{base}_{n}", n + 1
            parameters = _merge_parameters(shared, [resolver.resolve(p) for p in raw.get("parameters", [])])
            if swagger:
                op = _swagger_operation(document, raw, parameters, resolver)
            else:
                op = _openapi3_operation(raw, parameters, resolver)
            security = raw.get("security")
            operations[op_id] = Operation(
                id=op_id,
                method=method.upper(),
                path=path,
                summary=raw.get("summary"),
                description=raw.get("description"),
                tags=tuple(raw.get("tags") or ()),
                security=tuple(security) if isinstance(security, list) else None,
                derived_id=derived,
                **op,
            )
    info = document.get("info") or {}
    return Spec(
        title=str(info.get("title", "")),
        version=str(info.get("version", "")),
        openapi=version,
        servers=_servers(document),
        security_schemes=_security_schemes(document, resolver),
        security=list(document.get("security") or []),
        operations=operations,
        document=document,
    )


def _merge_parameters(shared: list[dict], own: list[dict]) -> list[dict]:
    merged = {(p.get("name"), p.get("in")): p for p in shared if isinstance(p, dict)}
    merged.update({(p.get("name"), p.get("in")): p for p in own if isinstance(p, dict)})
    return list(merged.values())


def _to_parameter(p: dict[str, Any], schema: dict[str, Any]) -> Parameter:
    return Parameter(
        name=str(p["name"]),
        location=str(p["in"]),
        required=bool(p.get("required")) or p.get("in") == "path",
        schema=schema,
        description=p.get("description"),
        style=p.get("style"),
        explode=p.get("explode"),
    )


def _openapi3_operation(raw: dict[str, Any], parameters: list[dict], resolver: _Resolver) -> dict[str, Any]:
    params = tuple(
        _to_parameter(p, p.get("schema") or _content_schema(p.get("content")) or {})
        for p in parameters
        if p.get("in") in LOCATIONS
    )
    body = resolver.resolve(raw.get("requestBody")) if raw.get("requestBody") else None
    content = (body or {}).get("content") or {}
    responses = {}
    for code, response in (raw.get("responses") or {}).items():
        response = resolver.resolve(response)
        responses[str(code)] = _content_schema((response or {}).get("content"))
    return {
        "parameters": params,
        "body_schema": _content_schema(content),
        "body_required": bool((body or {}).get("required")),
        "body_media_types": tuple(content),
        "responses": responses,
    }


def _content_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
    if not content:
        return None
    for media, entry in content.items():
        if "json" in media and isinstance(entry, dict):
            return entry.get("schema") or {}
    first = next(iter(content.values()))
    return (first or {}).get("schema") if isinstance(first, dict) else None


def _swagger_operation(document: dict, raw: dict, parameters: list[dict], resolver: _Resolver) -> dict[str, Any]:
    params: list[Parameter] = []
    body_schema = None
    body_required = False
    form_props: dict[str, Any] = {}
    form_required: list[str] = []
    for p in parameters:
        where = p.get("in")
        if where == "body":
            body_schema, body_required = p.get("schema") or {}, bool(p.get("required"))
        elif where == "formData":
            form_props[p["name"]] = {k: v for k, v in p.items() if k not in ("name", "in", "required", "description")}
            if p.get("required"):
                form_required.append(p["name"])
        elif where in LOCATIONS:
            schema = {k: v for k, v in p.items() if k not in ("name", "in", "required", "description")}
            params.append(_to_parameter(p, schema))
    consumes = tuple(raw.get("consumes") or document.get("consumes") or ("application/json",))
    if form_props:
        body_schema = {"type": "object", "properties": form_props, "required": form_required}
        body_required = bool(form_required)
        consumes = tuple(c for c in consumes if "form" in c) or ("application/x-www-form-urlencoded",)
    responses = {}
    for code, response in (raw.get("responses") or {}).items():
        response = resolver.resolve(response) or {}
        responses[str(code)] = response.get("schema")
    return {
        "parameters": tuple(params),
        "body_schema": body_schema,
        "body_required": body_required,
        "body_media_types": consumes if body_schema is not None else (),
        "responses": responses,
    }


def _servers(document: dict[str, Any]) -> list[str]:
    if "servers" in document:
        return [str(s.get("url", "")) for s in document.get("servers") or [] if isinstance(s, dict)]
    if "host" in document or "basePath" in document:
        scheme = (document.get("schemes") or ["https"])[0]
        host = document.get("host", "")
        return [f"{scheme}://{host}{document.get('basePath', '')}" if host else document.get("basePath", "")]
    return []


def _security_schemes(document: dict[str, Any], resolver: _Resolver) -> dict[str, dict[str, Any]]:
    if "securityDefinitions" in document:  # Swagger 2.0 → OpenAPI 3 shapes
        schemes = {}
        for name, scheme in document["securityDefinitions"].items():
            scheme = dict(scheme)
            if scheme.get("type") == "basic":
                scheme = {"type": "http", "scheme": "basic"}
            elif scheme.get("type") == "oauth2":
                flow = {"tokenUrl": scheme.get("tokenUrl"), "authorizationUrl": scheme.get("authorizationUrl"),
                        "scopes": scheme.get("scopes", {})}
                kind = {"application": "clientCredentials", "accessCode": "authorizationCode"}.get(
                    scheme.get("flow", ""), scheme.get("flow", ""))
                scheme = {"type": "oauth2", "flows": {kind: flow}}
            schemes[name] = scheme
        return schemes
    components = document.get("components") or {}
    return {name: resolver.resolve(s) for name, s in (components.get("securitySchemes") or {}).items()}


def schema_validator(spec: Spec, schema: dict[str, Any]):
    """A validator for a (resolved) schema in the document's dialect (OAS 3.0 knows `nullable`)."""
    from openapi_schema_validator import OAS30Validator, OAS31Validator

    cls = OAS31Validator if spec.dialect == "3.1" else OAS30Validator
    import jsonschema

    return cls(copy.deepcopy(schema), format_checker=jsonschema.FormatChecker())
