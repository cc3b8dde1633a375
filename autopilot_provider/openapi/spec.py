"""OpenAPI documents (Swagger 2.0, OpenAPI 3.0 and 3.1) as one uniform operation model.

Everything that needs an API's shape — import, the catalog, validation of task steps, building
requests at run time — reads it through :func:`autopilot_provider.openapi.cache.load_spec` and :class:`Operation`, whatever version
the document was written in. Local ``$ref``s are resolved (recursive schemas are cut at the cycle).

Big documents stay cheap:

* operations are built on first access (``Spec.operations`` is a lazy mapping), and each ``$ref`` is
  resolved once per document (results that do not depend on a cycle are shared);
* ``load_spec(path)`` of a local file keeps a normalised copy in a cache folder keyed by the content's
  sha256 (:mod:`autopilot_provider.openapi.cache`): loading it again reads a small index and then
  only the parts of the document that the requested operations use;
* validation (:func:`~autopilot_provider.openapi.validation.validate_document`) is :mod:`autopilot_provider.openapi.validation`.
"""

from __future__ import annotations

import copy
import functools
import gc
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autopilot_provider.definitions.bounded import LimitError, linear_time, load_json, load_yaml
from autopilot_provider.openapi.sources import SourceError, read_file

log = logging.getLogger(__name__)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCATIONS = ("path", "query", "header", "cookie")
#: Bump when the normalised shape changes (operation ids, schemas...): it keys the on-disk cache.
NORMALISE_VERSION = 2
#: Keys of a ``$ref`` sibling that only annotate (OpenAPI 3.1 allows siblings next to ``$ref``).
_ANNOTATIONS = {"description", "summary", "title", "deprecated", "readOnly", "writeOnly", "example", "examples"}


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
    deprecated: bool = False

    def parameter(self, name: str, location: str | None = None) -> Parameter | None:
        for param in self.parameters:
            if param.name == name and (location is None or param.location == location):
                return param
        return None


@dataclass(frozen=True)
class OperationRef:
    """What the index knows about an operation without building it (cheap to list and search)."""

    id: str
    method: str  # lower case, as in the document
    path: str
    derived_id: bool = False
    summary: str | None = None
    tags: tuple[str, ...] = ()
    deprecated: bool = False


class Operations(Mapping):
    """operation id → :class:`Operation`, built on first access. Iterates in document order."""

    def __init__(self, refs: dict[str, OperationRef], build: Callable[[OperationRef], Operation]):
        self.refs = refs
        self._build = build
        self._built: dict[str, Operation] = {}

    def __getitem__(self, key: str) -> Operation:
        op = self._built.get(key)
        if op is None:
            op = self._built[key] = self._build(self.refs[key])
        return op

    def __contains__(self, key: object) -> bool:
        return key in self.refs

    def __iter__(self) -> Iterator[str]:
        return iter(self.refs)

    def __len__(self) -> int:
        return len(self.refs)

    def __repr__(self) -> str:
        return f"Operations({len(self.refs)} operations, {len(self._built)} built)"


class Spec:
    """A normalised document. ``operations`` is a lazy mapping; ``document`` is the parsed original
    (for a spec loaded from the cache it is read on first access)."""

    def __init__(
        self,
        title: str,
        version: str,
        openapi: str,
        servers: list[str],
        security_schemes: dict[str, dict[str, Any]],
        security: list[dict[str, list[str]]],
        operations: Mapping[str, Operation],
        document: dict[str, Any] | None = None,
        *,
        document_loader: Callable[[], dict[str, Any]] | None = None,
        context: _Context | None = None,
        tags: list[dict[str, Any]] | None = None,
        sha256: str | None = None,
    ):
        self.title = title
        self.version = version
        self.openapi = openapi
        self.servers = servers
        self.security_schemes = security_schemes
        self.security = security
        self.operations = operations
        self._document = document
        self._document_loader = document_loader
        self._context = context
        self.tags = tags or []
        self.sha256 = sha256

    def __repr__(self) -> str:
        return f"Spec(title={self.title!r}, version={self.version!r}, openapi={self.openapi!r}, operations={len(self.operations)})"

    @property
    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = self._document_loader() if self._document_loader else {}
        return self._document

    @property
    def dialect(self) -> str:
        return "3.1" if self.openapi.startswith("3.1") else ("2.0" if self.openapi.startswith("2") else "3.0")

    def operation(self, operation_id: str) -> Operation | None:
        return self.operations.get(operation_id)

    def refs(self) -> dict[str, OperationRef]:
        """operation id → :class:`OperationRef` (id, method, path, summary, tags) without building."""
        ops = self.operations
        if isinstance(ops, Operations):
            return ops.refs
        return {
            k: OperationRef(k, o.method.lower(), o.path, o.derived_id, o.summary, o.tags, o.deprecated)
            for k, o in ops.items()
        }

    def unresolved_operation(self, operation_id: str) -> Operation | None:
        """The operation with its schemas as written (``$ref``s kept): small, for listings."""
        ref = self.refs().get(operation_id)
        if ref is None:
            return None
        if self._context is None:
            return self.operations[operation_id]
        return _build_operation(self._context, ref, deep=False)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


@contextmanager
def quiet_gc():
    """Pause the cyclic garbage collector: parsing or walking a big document allocates millions of
    objects, and the collections they trigger (each scanning everything alive) cost as much again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _yaml_loader():
    try:  # timestamps stay strings (`version: 2024-01-01`), like openapi-spec-validator reads YAML
        from jsonschema_path.loaders import JsonschemaSafeLoader

        return JsonschemaSafeLoader
    except ImportError:  # pragma: no cover
        return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _string_keys(node: Any) -> Any:
    """YAML reads `200:` as an int; JSON (and OpenAPI) keys are strings."""
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            node = {str(k).lower() if isinstance(k, bool) else str(k): v for k, v in node.items()}
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                node[key] = _string_keys(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, (dict, list)):
                node[i] = _string_keys(value)
    return node


def is_json_text(text: str | bytes) -> bool:
    head = text[:200].lstrip() if isinstance(text, str) else text[:200].lstrip().decode("utf-8", "replace")
    return head.startswith("{")


def parse_document(text: str | bytes, *, source: str = "<document>") -> dict[str, Any]:
    """JSON or YAML text → dict (JSON is valid YAML, but json.loads is much faster for big specs).

    Aliases and nesting are bounded (:mod:`autopilot_provider.definitions.bounded`): a document that would expand
    beyond the limits is a SpecError naming the position of the alias or node."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8-sig")
        with quiet_gc():
            if is_json_text(text):
                data = load_json(text)
            else:
                data = _string_keys(load_yaml(text, _yaml_loader()))
    except LimitError as exc:
        where = f"{source}:{exc.line}:{exc.column}" if exc.line > 1 or exc.column > 1 else source
        raise SpecError(f"{where}: {'JSON' if is_json_text(text) else 'YAML'}: {exc.message}", exc.pointer) from None
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{source} is neither JSON nor YAML: {exc}", "") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source} is not an OpenAPI document (expected a mapping at the top)", "")
    return data


def read_source(source: str | Path) -> str:
    """Read a local file (a regular file, size-capped). Nothing is fetched over the network here:
    documents from URLs are imported (:mod:`autopilot_provider.server.openapi_import`) and read as files."""
    text = str(source)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", text):
        raise SpecError(
            f"{text}: OpenAPI documents are read from files; import a URL with `autopilot import-openapi`", ""
        )
    try:
        return read_file(source).decode("utf-8-sig")
    except SourceError as exc:
        raise SpecError(f"cannot read {source}: {exc.message}", "") from None
    except OSError as exc:
        raise SpecError(f"cannot read {source}: {exc.strerror or exc}", "") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source} is not UTF-8 text: {exc}", "") from None


# ---------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def pointer(*parts: Any) -> str:
    """JSON pointer of a path of keys: pointer("paths", "/a/{b}", "get") → /paths/~1a~1{b}/get."""
    return "".join("/" + _escape(str(p)) for p in parts)


def ref_parts(ref: str) -> list[str]:
    if not ref.startswith("#"):
        raise SpecError(f"only local $ref ('#/...') are supported, got {ref!r}; bundle the document first", "")
    body = ref[1:]
    if body in ("", "/"):
        return []
    if not body.startswith("/"):
        raise SpecError(f"malformed $ref {ref!r}", "")
    from urllib.parse import unquote

    return [_unescape(unquote(p)) for p in body.split("/")[1:]]


def walk(node: Any, parts: list[str], ref: str = "") -> Any:
    for part in parts:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise SpecError(f"unresolvable $ref {ref!r}: no {pointer(*parts)} in the document", "") from None
    return node


class _Resolver:
    """Inlines local ``$ref``s. A reference already being expanded (a recursive schema) becomes ``{}``.

    Each reference is resolved once: a result that does not depend on where the cycle was cut is
    cached (and shared — treat resolved schemas as read-only).

    One :meth:`resolve` (or the schemas of one operation together) builds at most
    :data:`MAX_RESOLVED_NODES` nodes *as expanded* (a shared result counts each time it is used):
    references that double at every level would otherwise cost exponential time, and every consumer
    that serialises the result (the catalog API, a form's schema) exponential output. References
    past the budget are cut to ``{}`` like cycles.
    """

    def __init__(self, root: Any):
        self.root = root  # a dict, or anything with .node(parts) (the lazy cached document)
        self.cache: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}  # ref → nodes its cached result expands to
        self.left = MAX_RESOLVED_NODES
        self.spent = 0  # nodes built by every resolve() so far

    def target(self, ref: str) -> Any:
        return self.node(ref_parts(ref), ref)

    def node(self, parts: list[str], ref: str = "") -> Any:
        """The value at a path of (unescaped) keys."""
        lazy = getattr(self.root, "node", None)
        if lazy is not None:
            return lazy(parts, ref)
        return walk(self.root, parts, ref)

    def shallow(self, node: Any) -> Any:
        """Follow ``$ref`` chains of an object (parameter, response, request body, path item)."""
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = self.target(node["$ref"])
            if siblings and isinstance(node, dict):
                node = {**node, **siblings}
            seen += 1
            if seen > 50:
                raise SpecError("a $ref chain of more than 50 references (a cycle?)", "")
        return node

    def resolve(self, node: Any, *, fresh: bool = True) -> Any:
        """``node`` with its references inlined, within a new budget (``fresh``) or what is left of
        the current one (the schemas of one operation share one)."""
        if fresh:
            self.left = MAX_RESOLVED_NODES
        before = self.left
        value = self._deep(node, {})[0]
        self.spent += before - self.left
        if self.left < 0 <= before:
            log.warning("schemas expand to more than %d nodes; references past that are cut", MAX_RESOLVED_NODES)
        return value

    def _deep(self, node: Any, active: dict[str, bool]) -> tuple[Any, set[str] | None]:
        self.left -= 1
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                value, cuts = self._ref(ref, active)
                if len(node) > 1:
                    value, more = self._siblings(node, value, active)
                    cuts = _union(cuts, more)
                return value, cuts
            out: dict[str, Any] = {}
            cuts = None
            for key, value in node.items():
                if isinstance(value, (dict, list)):
                    value, more = self._deep(value, active)
                    if more:
                        cuts = _union(cuts, more)
                out[key] = value
            return out, cuts
        if isinstance(node, list):
            items = []
            cuts = None
            for value in node:
                if isinstance(value, (dict, list)):
                    value, more = self._deep(value, active)
                    if more:
                        cuts = _union(cuts, more)
                items.append(value)
            return items, cuts
        return node, None

    def _ref(self, ref: str, active: dict[str, bool]) -> tuple[Any, set[str] | None]:
        if self.left < 0:
            return {}, {_OVER_BUDGET}
        cached = self.cache.get(ref, _MISSING)
        if cached is not _MISSING:
            self.left -= self.sizes[ref]
            return cached, None
        if ref in active:
            return {}, {ref}
        active[ref] = True
        before = self.left
        try:
            value, cuts = self._deep(self.target(ref), active)
        finally:
            del active[ref]
        if cuts:
            cuts.discard(ref)
        if not cuts:
            self.cache[ref] = value
            self.sizes[ref] = before - self.left
            return value, None
        return value, cuts

    def _siblings(self, node: dict, value: Any, active: dict[str, bool]) -> tuple[Any, set[str] | None]:
        siblings, cuts = self._deep({k: v for k, v in node.items() if k != "$ref"}, active)
        if not isinstance(value, dict):
            return value, cuts
        if set(siblings) <= _ANNOTATIONS:
            return {**value, **siblings}, cuts
        return {"allOf": [value], **siblings}, cuts


_MISSING = object()
#: the "cut" of a reference past the resolver's budget (never a real reference: results holding it are not cached)
_OVER_BUDGET = "budget"
#: nodes one resolved schema may expand to (the largest in GitHub's REST API description has about 19,000)
MAX_RESOLVED_NODES = 100_000


def _union(a: set[str] | None, b: set[str] | None) -> set[str] | None:
    if not a:
        return set(b) if b else None
    if b:
        a |= b
    return a


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def derive_operation_id(method: str, path: str) -> str:
    """A stable id for an operation without operationId: `get /hosts/{id}/agent` → `get_hosts_id_agent`."""
    words = re.sub(r"[{}]", "", path)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_")
    return f"{method.lower()}_{slug}" if slug else method.lower()


def operation_index(document: dict[str, Any], resolver: _Resolver | None = None) -> dict[str, OperationRef]:
    """Every operation of the document with its id, in document order.

    Explicit operationIds are kept as written (a repeated one — invalid, only possible without
    validation — gets ``_2``, ``_3``... in document order). Operations without one get
    :func:`derive_operation_id`; derived ids never take an explicit id, and when two derive to the same
    id, they are numbered in (path, method) order — so an id does not depend on where in the document
    an operation is written, and re-importing the same document always gives the same ids.
    """
    resolver = resolver or _Resolver(document)
    found: list[tuple[str, str, dict[str, Any]]] = []
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        if "$ref" in item:
            item = resolver.shallow(item)
            if not isinstance(item, dict):
                continue
        for method in METHODS:
            raw = item.get(method)
            if isinstance(raw, dict):
                found.append((str(path), method, raw))
    explicit: dict[str, int] = {}
    ids: list[str | None] = []
    for _, _, raw in found:
        op_id = raw.get("operationId")
        if isinstance(op_id, str) and op_id:
            n = explicit.get(op_id, 0) + 1
            explicit[op_id] = n
            ids.append(op_id if n == 1 else f"{op_id}_{n}")
        else:
            ids.append(None)
    taken = {i for i in ids if i}
    derived_order = sorted(
        (k for k, i in enumerate(ids) if i is None), key=lambda k: (found[k][0], METHODS.index(found[k][1]))
    )
    for k in derived_order:
        base = derive_operation_id(found[k][1], found[k][0])
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        ids[k] = candidate
    index: dict[str, OperationRef] = {}
    for (path, method, raw), op_id in zip(found, ids, strict=True):
        tags = raw.get("tags")
        summary = raw.get("summary")
        index[op_id] = OperationRef(
            id=op_id,
            method=method,
            path=path,
            derived_id=not (isinstance(raw.get("operationId"), str) and raw.get("operationId")),
            summary=summary if isinstance(summary, str) else None,
            tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
            deprecated=raw.get("deprecated") is True,
        )
    return index


@dataclass
class _Context:
    """What building an operation needs: the (possibly lazy) document and one shared resolver."""

    resolver: _Resolver
    swagger: bool
    consumes: tuple[str, ...]  # Swagger 2.0 document-level `consumes`

    def path_item(self, path: str) -> dict[str, Any]:
        item = self.resolver.node(["paths", path], "#" + pointer("paths", path))
        return self.resolver.shallow(item) if isinstance(item, dict) else {}


def normalise(document: dict[str, Any]) -> Spec:
    resolver = _Resolver(document)
    version = str(document.get("openapi") or document.get("swagger") or "")
    context = _Context(
        resolver=resolver,
        swagger=version.startswith("2"),
        consumes=tuple(document.get("consumes") or ()),
    )
    index = operation_index(document, resolver)
    info = document.get("info") or {}
    return Spec(
        title=str(info.get("title", "")),
        version=str(info.get("version", "")),
        openapi=version,
        servers=_servers(document),
        security_schemes=_security_schemes(document, resolver),
        security=list(document.get("security") or []),
        operations=Operations(index, lambda ref: _build_operation(context, ref)),
        document=document,
        context=context,
        tags=[t for t in document.get("tags") or [] if isinstance(t, dict)],
    )


def _build_operation(ctx: _Context, ref: OperationRef, deep: bool = True) -> Operation:
    item = ctx.path_item(ref.path)
    raw = item.get(ref.method) or {}
    shallow = ctx.resolver.shallow
    ctx.resolver.left = MAX_RESOLVED_NODES  # one budget for all the schemas of the operation
    schema = functools.partial(ctx.resolver.resolve, fresh=False) if deep else _identity
    shared = [shallow(p) for p in item.get("parameters") or []]
    own = [shallow(p) for p in raw.get("parameters") or []]
    parameters = _merge_parameters(shared, own)
    if ctx.swagger:
        op = _swagger_operation(ctx, raw, parameters, schema)
    else:
        op = _openapi3_operation(ctx, raw, parameters, schema)
    security = raw.get("security")
    return Operation(
        id=ref.id,
        method=ref.method.upper(),
        path=ref.path,
        summary=raw.get("summary"),
        description=raw.get("description"),
        tags=tuple(raw.get("tags") or ()),
        security=tuple(security) if isinstance(security, list) else None,
        derived_id=ref.derived_id,
        deprecated=raw.get("deprecated") is True,
        **op,
    )


def _identity(node: Any) -> Any:
    return node


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


def _openapi3_operation(ctx: _Context, raw: dict[str, Any], parameters: list[dict], schema) -> dict[str, Any]:
    params = tuple(
        _to_parameter(p, schema(p.get("schema")) or _content_schema(p.get("content"), schema) or {})
        for p in parameters
        if p.get("in") in LOCATIONS and "name" in p
    )
    body = ctx.resolver.shallow(raw.get("requestBody")) if raw.get("requestBody") else None
    content = (body or {}).get("content") or {}
    responses = {}
    for code, response in (raw.get("responses") or {}).items():
        response = ctx.resolver.shallow(response)
        responses[str(code)] = _content_schema((response or {}).get("content"), schema)
    return {
        "parameters": params,
        "body_schema": _content_schema(content, schema),
        "body_required": bool((body or {}).get("required")),
        "body_media_types": tuple(content),
        "responses": responses,
    }


def _content_schema(content: dict[str, Any] | None, schema=_identity) -> dict[str, Any] | None:
    if not content or not isinstance(content, dict):
        return None
    for media, entry in content.items():
        if "json" in media and isinstance(entry, dict):
            return schema(entry.get("schema")) or {}
    first = next(iter(content.values()))
    return schema((first or {}).get("schema")) if isinstance(first, dict) else None


def _swagger_operation(ctx: _Context, raw: dict, parameters: list[dict], schema) -> dict[str, Any]:
    params: list[Parameter] = []
    body_schema = None
    body_required = False
    form_props: dict[str, Any] = {}
    form_required: list[str] = []
    for p in parameters:
        where = p.get("in")
        if "name" not in p:
            continue
        if where == "body":
            body_schema, body_required = schema(p.get("schema")) or {}, bool(p.get("required"))
        elif where == "formData":
            form_props[p["name"]] = schema(
                {k: v for k, v in p.items() if k not in ("name", "in", "required", "description")}
            )
            if p.get("required"):
                form_required.append(p["name"])
        elif where in LOCATIONS:
            params.append(
                _to_parameter(
                    p, schema({k: v for k, v in p.items() if k not in ("name", "in", "required", "description")})
                )
            )
    consumes = tuple(raw.get("consumes") or ctx.consumes or ("application/json",))
    if form_props:
        body_schema = {"type": "object", "properties": form_props, "required": form_required}
        body_required = bool(form_required)
        consumes = tuple(c for c in consumes if "form" in c) or ("application/x-www-form-urlencoded",)
    responses = {}
    for code, response in (raw.get("responses") or {}).items():
        response = ctx.resolver.shallow(response) or {}
        responses[str(code)] = schema(response.get("schema")) if isinstance(response, dict) else None
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
        for name, scheme in (document.get("securityDefinitions") or {}).items():
            scheme = dict(scheme)
            if scheme.get("type") == "basic":
                scheme = {"type": "http", "scheme": "basic"}
            elif scheme.get("type") == "oauth2":
                flow = {
                    "tokenUrl": scheme.get("tokenUrl"),
                    "authorizationUrl": scheme.get("authorizationUrl"),
                    "scopes": scheme.get("scopes", {}),
                }
                kind = {"application": "clientCredentials", "accessCode": "authorizationCode"}.get(
                    scheme.get("flow", ""), scheme.get("flow", "")
                )
                scheme = {"type": "oauth2", "flows": {kind: flow}}
            schemes[name] = scheme
        return schemes
    components = document.get("components") or {}
    return {name: resolver.resolve(s) for name, s in (components.get("securitySchemes") or {}).items()}


def schema_validator(spec: Spec, schema: dict[str, Any]):
    """A validator for a (resolved) schema in the document's dialect (OAS 3.0 knows `nullable`).

    Built once per schema of a spec: checking many definitions that call the same operation would
    otherwise copy the schema and build a validator for each. A schema changed since is built again."""
    validators: dict[int, tuple[dict[str, Any], dict[str, Any], Any]] = spec.__dict__.setdefault("_validators", {})
    found = validators.get(id(schema))
    if found is not None and found[0] is schema and found[1] == schema:
        return found[2]
    from openapi_schema_validator import OAS30Validator, OAS31Validator

    cls = OAS31Validator if spec.dialect == "3.1" else OAS30Validator
    import jsonschema

    copied = copy.deepcopy(schema)
    validator = linear_time(cls)(copied, format_checker=jsonschema.FormatChecker())
    if len(validators) >= 256:
        validators.clear()
    # the schema itself is held so that its id stays its own; the copy the validator uses is the
    # schema as it was, to tell whether it changed since
    validators[id(schema)] = (schema, copied, validator)
    return validator


__all__ = [
    "METHODS",
    "Operation",
    "OperationRef",
    "Operations",
    "Parameter",
    "Spec",
    "SpecError",
    "derive_operation_id",
    "normalise",
    "operation_index",
    "parse_document",
    "pointer",
    "read_source",
    "schema_validator",
]
