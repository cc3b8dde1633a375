"""The operation catalog of imported APIs, as the designer and the form portal read it.

Pure functions over a folder of definitions (:class:`ApiFolder`, which
:class:`~autopilot_provider.repository.folder.Project` is) and :class:`~autopilot_provider.openapi.spec.Spec`
(the plugin's ``/apis`` routes call them, on the API server). A listing reads only the operation index — ids, methods,
paths, summaries, tags — plus the operations of the requested page with their schemas as written
(``$ref``s kept, so a page stays small); one operation comes with every schema resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from autopilot_provider.definitions.errors import Refused, suggest
from autopilot_provider.definitions.validate import Loaded
from autopilot_provider.openapi.spec import Operation, OperationRef, Spec, SpecError


class ApiFolder(Protocol):
    """What the catalog reads from a folder of definitions (:class:`~autopilot_provider.repository.folder.Project`
    is the one the product uses; this layer is below it, so it names only what it needs)."""

    def index(self) -> Mapping[str, Any]:
        """Path → index entry (``kind``, ``id``) of every definition file."""

    def find(self, kind: str, ident: str) -> str | None: ...

    def load(self, rel: str) -> Loaded: ...

    def api_spec(self, api_id: str) -> tuple[Loaded, Spec | None] | None: ...


class CatalogError(Refused):
    """No such Api or operation (404), or its document cannot be loaded (422)."""

    status = 404

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message, field=field)
        if status is not None:
            self.status = status


@dataclass
class ApiEntry:
    id: str
    path: str  # the Api definition, relative to the definitions folder
    title: str | None
    spec: str | None
    connection: str | None
    valid: bool
    error: str | None = None
    version: str | None = None
    openapi: str | None = None
    operations: int | None = None
    servers: list[str] | None = None


def list_apis(project: ApiFolder) -> list[ApiEntry]:
    """Every Api definition with its document's title, version and operation count."""
    entries = []
    for rel, index in sorted(project.index().items()):
        if index.kind != "Api" or not index.id:
            continue
        entries.append(api_entry(project, index.id, rel))
    return entries


def api_entry(project: ApiFolder, api_id: str, rel: str | None = None) -> ApiEntry:
    rel = rel or project.find("Api", api_id)
    if rel is None:
        raise CatalogError(f"no Api '{api_id}'", field="name")
    loaded = project.load(rel)
    definition = loaded.definition
    entry = ApiEntry(
        id=api_id,
        path=rel,
        title=getattr(definition, "title", None),
        spec=getattr(definition, "spec", None),
        connection=getattr(definition, "connection", None),
        valid=definition is not None and not loaded.diagnostics,
    )
    if definition is None:
        entry.error = "; ".join(str(d) for d in loaded.diagnostics) or "not a valid Api definition"
        return entry
    try:
        found = project.api_spec(api_id)
        spec = found[1] if found else None
    except (SpecError, OSError) as exc:
        entry.valid, entry.error = False, f"cannot load {definition.spec}: {exc}"
        return entry
    if spec is None:
        entry.valid = False
        entry.error = entry.error or "; ".join(str(d) for d in loaded.diagnostics)
        return entry
    entry.title = entry.title or spec.title
    entry.version, entry.openapi = spec.version, spec.openapi
    entry.operations, entry.servers = len(spec.operations), list(spec.servers)
    return entry


def spec_of(project: ApiFolder, api_id: str) -> Spec:
    """The loaded spec of an Api; CatalogError 404 (no such Api) or 422 (it cannot be loaded)."""
    try:
        found = project.api_spec(api_id)
    except (SpecError, OSError) as exc:
        raise CatalogError(
            f"the document of Api '{api_id}' cannot be loaded: {exc}", field="name", status=422
        ) from None
    if found is None:
        raise CatalogError(f"no Api '{api_id}'", field="name")
    loaded, spec = found
    if spec is None:
        problems = "; ".join(str(d) for d in loaded.diagnostics)
        raise CatalogError(f"the Api definition '{api_id}' is invalid: {problems}", field="name", status=422)
    return spec


def tags(spec: Spec) -> list[dict[str, Any]]:
    """The document's tags (name, description) plus tags only operations use, with operation counts."""
    counts: dict[str, int] = {}
    for ref in spec.refs().values():
        for tag in ref.tags:
            counts[tag] = counts.get(tag, 0) + 1
    out = []
    for tag in spec.tags:
        name = str(tag.get("name", ""))
        out.append({"name": name, "description": tag.get("description"), "operations": counts.pop(name, 0)})
    out += [{"name": name, "description": None, "operations": n} for name, n in sorted(counts.items())]
    return out


def search(spec: Spec, q: str | None = None, tag: str | None = None) -> list[OperationRef]:
    """Operations whose id, summary, method or path contain every word of ``q`` (case-insensitive),
    and which carry ``tag`` (case-insensitive); document order."""
    words = [w for w in (q or "").lower().split() if w]
    wanted = tag.lower() if tag else None
    found = []
    for ref in spec.refs().values():
        if wanted is not None and wanted not in {t.lower() for t in ref.tags}:
            continue
        if words:
            text = f"{ref.id} {ref.summary or ''} {ref.method} {ref.path}".lower()
            if not all(w in text for w in words):
                continue
        found.append(ref)
    return found


def operation_entry(op: Operation, *, detail: bool) -> dict[str, Any]:
    """The JSON shape of one operation (``detail``: with its description and security)."""
    entry: dict[str, Any] = {
        "operationId": op.id,
        "method": op.method,
        "path": op.path,
        "summary": op.summary,
        "tags": list(op.tags),
        "deprecated": op.deprecated,
        "derived_id": op.derived_id,
        "parameters": [
            {
                "name": p.name,
                "in": p.location,
                "required": p.required,
                "description": p.description,
                "schema": p.schema,
                **({"style": p.style} if p.style else {}),
                **({"explode": p.explode} if p.explode is not None else {}),
            }
            for p in op.parameters
        ],
        "request_body": (
            {"required": op.body_required, "media_types": list(op.body_media_types), "schema": op.body_schema}
            if op.body_schema is not None or op.body_media_types
            else None
        ),
        "responses": {code: {"schema": schema} for code, schema in op.responses.items()},
    }
    if detail:
        entry["description"] = op.description
        entry["security"] = [dict(s) for s in op.security] if op.security is not None else None
    return entry


def list_operations(
    spec: Spec, *, q: str | None = None, tag: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """(one page of operations with their schemas as written, how many matched)."""
    found = search(spec, q, tag)
    page = found[offset : offset + limit]
    return [operation_entry(spec.unresolved_operation(ref.id), detail=False) for ref in page], len(found)


def get_operation(spec: Spec, operation_id: str) -> dict[str, Any]:
    op = spec.operation(operation_id)
    if op is None:
        raise CatalogError(
            f"no operation '{operation_id}' in this Api{suggest(operation_id, list(spec.operations))}",
            field="operation_id",
        )
    return operation_entry(op, detail=True)


__all__ = [
    "ApiEntry",
    "CatalogError",
    "api_entry",
    "get_operation",
    "list_apis",
    "list_operations",
    "search",
    "spec_of",
    "tags",
]
