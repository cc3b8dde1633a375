"""``/api/v1/apis``: import OpenAPI documents as Api definitions, list them, and browse their
operations (the catalog the designer and the form portal use).

Import is :func:`autopilot_provider.server.openapi_import.import_openapi` — the same function as
``autopilot import-openapi`` — with the definition saved through the
:class:`~autopilot_provider.server.definition_store.DefinitionStore`, so it is validated, gets a revision (author = the
Airflow user) and the DAG bundles are refreshed. The catalog is
:mod:`autopilot_provider.openapi.catalog`. Errors are ``{"detail": {"message", "field", ...}}``; an
invalid document is a 422 whose ``pointer`` is the JSON pointer of the bad part.
"""

from __future__ import annotations

from typing import Annotated, Any

from autopilot_plugin.api.deps import CanDesign, CanRead, GetUserDep, StoreDep, user_name
from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from autopilot_provider.openapi.catalog import CatalogError, api_entry, spec_of, tags
from autopilot_provider.openapi.catalog import get_operation as one
from autopilot_provider.openapi.catalog import list_apis as entries
from autopilot_provider.openapi.catalog import list_operations as page
from autopilot_provider.openapi.sources import Allowlist
from autopilot_provider.repository.folder import Project
from autopilot_provider.server.errors import Refused
from autopilot_provider.server.openapi_import import import_openapi

router = APIRouter(prefix="/apis", tags=["APIs"])


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class ApiImport(BaseModel):
    name: str = Field(description="The Api id: letters, digits and underscores, starting with a letter.")
    url: str | None = Field(
        None,
        description="An absolute http(s) URL the API server fetches the document from. Loopback, private and "
        "link-local addresses are refused unless `[autopilot] fetch_allowlist` names them; a path or a "
        "file:// URL is refused (send the document as `content`).",
    )
    content: str | None = Field(None, description="The document text (JSON or YAML). Give `url` or `content`.")
    connection: str | None = Field(
        None,
        description="Airflow connection id for base URL and credentials (default: the replaced Api's, else `<name>_api`).",
    )
    replace: bool = Field(False, description="Replace an existing Api of that name (else 409).")


class ImportOut(BaseModel):
    name: str
    api_path: str = Field(description="The Api definition, relative to the definitions folder.")
    spec_path: str = Field(description="The stored document, relative to the definitions folder.")
    title: str
    version: str = Field(description="`info.version` of the document.")
    openapi: str = Field(description="The document's OpenAPI (or Swagger) version.")
    operations: int
    derived_ids: int = Field(description="Operations without operationId; they got a derived id.")
    connection: str
    replaced: bool
    revision: int | None = Field(description="The definition revision recorded for the Api file.")
    refreshed_bundles: list[str]


class ApiOut(BaseModel):
    id: str
    path: str = Field(description="The Api definition, relative to the definitions folder.")
    title: str | None
    spec: str | None = Field(description="The document, relative to the definition (inside the definitions folder).")
    connection: str | None
    valid: bool
    error: str | None = Field(None, description="Why the definition or its document cannot be loaded.")
    version: str | None = Field(None, description="`info.version` of the document.")
    openapi: str | None = None
    operations: int | None = Field(None, description="Number of operations.")
    servers: list[str] | None = None


class ApiList(BaseModel):
    apis: list[ApiOut]
    total_entries: int


class TagOut(BaseModel):
    name: str
    description: str | None = None
    operations: int


class ApiDetail(ApiOut):
    tags: list[TagOut] = Field(default_factory=list)
    security_schemes: dict[str, Any] = Field(default_factory=dict)


class ParameterOut(BaseModel):
    name: str
    in_: str = Field(alias="in", serialization_alias="in", description="path, query, header or cookie")
    required: bool
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema", serialization_alias="schema")
    style: str | None = None
    explode: bool | None = None

    model_config = {"populate_by_name": True}


class RequestBodyOut(BaseModel):
    required: bool
    media_types: list[str]
    schema_: dict[str, Any] | None = Field(None, alias="schema", serialization_alias="schema")

    model_config = {"populate_by_name": True}


class ResponseOut(BaseModel):
    schema_: dict[str, Any] | None = Field(None, alias="schema", serialization_alias="schema")

    model_config = {"populate_by_name": True}


class OperationOut(BaseModel):
    operationId: str = Field(description="The document's operationId, or a derived one (`derived_id`).")
    method: str
    path: str
    summary: str | None
    tags: list[str]
    deprecated: bool
    derived_id: bool
    parameters: list[ParameterOut]
    request_body: RequestBodyOut | None
    responses: dict[str, ResponseOut] = Field(description="Status code (or `default`, `2XX`) → body schema.")


class OperationList(BaseModel):
    api: str
    operations: list[OperationOut] = Field(description="Schemas as written in the document (`$ref`s kept).")
    total_entries: int = Field(description="How many operations match (all pages).")


class OperationDetail(OperationOut):
    api: str
    description: str | None
    security: list[dict[str, list[str]]] | None = Field(
        description="Security requirements; null when the document's default applies."
    )


class ErrorDetail(BaseModel):
    message: str
    field: str | None = None
    pointer: str | None = Field(None, description="For an invalid document: the JSON pointer of the bad part.")


class ErrorOut(BaseModel):
    detail: ErrorDetail


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Invalid input (the `field` names it), or the URL could not be fetched",
        503: "The Autopilot tables are missing (`autopilot db migrate`), or `[autopilot] fetch_allowlist` is malformed",
        401: "Not authenticated",
        403: "Not allowed",
        404: "No such Api or operation",
        409: "An Api of that name exists (send `replace: true`), or its id is used by another file",
        422: "Not a valid OpenAPI document (`pointer` names the bad part), a `url` that is not an absolute "
        "http(s) URL or is at an address not allowed, or the Api cannot be loaded",
    }
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


def _fail(exc) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.as_dict())


def _project(store):

    return Project(store.root, display_root="")


def fetch_allowlist():
    """``[autopilot] fetch_allowlist``: the internal hosts and networks imports may fetch from."""
    from airflow.configuration import conf

    return Allowlist.parse(conf.get("autopilot", "fetch_allowlist", fallback="") or "")


ApiName = Annotated[str, Path(description="The Api id.")]


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanDesign],
    operation_id="import_api",
    responses=_responses(400, 401, 403, 409, 422, 503),
)
def import_api(body: ApiImport, store: StoreDep, user: GetUserDep) -> ImportOut:
    """Import an OpenAPI document (Swagger 2.0, OpenAPI 3.0 or 3.1; JSON or YAML) from a URL or from
    text: validate it, store it under `apis/specs/` and write the Api definition `apis/<name>.yaml`.
    Nothing is written when the document is invalid."""

    if (body.url is None) == (body.content is None):
        raise HTTPException(
            status_code=400, detail={"message": "give exactly one of url and content", "field": "content"}
        )
    try:
        allowlist = fetch_allowlist() if body.url is not None else None
    except ValueError as exc:
        raise HTTPException(status_code=503, detail={"message": f"[autopilot] {exc}", "field": "url"}) from None
    try:
        result = import_openapi(
            store.root,
            body.name,
            url=body.url,
            content=body.content,
            allowlist=allowlist,
            connection=body.connection,
            force=body.replace,
            store=store,
            author=user_name(user),
        )
    except Refused as exc:
        raise _fail(exc) from None
    return ImportOut(**result.as_dict())


@router.get("", dependencies=[CanRead], operation_id="list_apis", responses=_responses(401, 403))
def list_apis(store: StoreDep) -> ApiList:
    """Every Api definition with its document's title, version and number of operations."""

    items = [ApiOut(**vars(e)) for e in entries(_project(store))]
    return ApiList(apis=items, total_entries=len(items))


@router.get("/{name}", dependencies=[CanRead], operation_id="get_api", responses=_responses(401, 403, 404))
def get_api(name: ApiName, store: StoreDep) -> ApiDetail:
    """One Api: its definition, the document's version, servers, security schemes and tags."""

    project = _project(store)
    try:
        entry = api_entry(project, name)
    except CatalogError as exc:
        raise _fail(exc) from None
    detail = ApiDetail(**vars(entry))
    if entry.valid:
        spec = spec_of(project, name)
        detail.tags = [TagOut(**t) for t in tags(spec)]
        detail.security_schemes = spec.security_schemes
    return detail


@router.get(
    "/{name}/operations",
    dependencies=[CanRead],
    operation_id="list_api_operations",
    responses=_responses(401, 403, 404, 422),
)
def list_operations(
    name: ApiName,
    store: StoreDep,
    q: Annotated[
        str | None, Query(description="Words that must all appear in the operationId, summary, method or path.")
    ] = None,
    tag: Annotated[str | None, Query(description="Only operations with this tag (case-insensitive).")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="Page size.")] = 100,
    offset: Annotated[int, Query(ge=0, description="Operations to skip.")] = 0,
) -> OperationList:
    """The Api's operations in document order (a page of them), with parameters, request body and
    response schemas as written (`$ref`s kept; get one operation for resolved schemas)."""

    try:
        spec = spec_of(_project(store), name)
        items, total = page(spec, q=q, tag=tag, limit=limit, offset=offset)
    except CatalogError as exc:
        raise _fail(exc) from None
    return OperationList(api=name, operations=[OperationOut(**i) for i in items], total_entries=total)


@router.get(
    "/{name}/operations/{operation_id:path}",
    dependencies=[CanRead],
    operation_id="get_api_operation",
    responses=_responses(401, 403, 404, 422),
)
def get_operation(
    name: ApiName,
    operation_id: Annotated[str, Path(description="The operationId (may contain `/`, e.g. `repos/get`).")],
    store: StoreDep,
) -> OperationDetail:
    """One operation with every schema resolved (`$ref`s inlined; a recursive schema is cut to `{}`
    where it refers to itself)."""

    try:
        entry = one(spec_of(_project(store), name), operation_id)
    except CatalogError as exc:
        raise _fail(exc) from None
    return OperationDetail(api=name, **entry)
