"""``/api/v1/apis``: import OpenAPI documents as Api definitions, list them, and browse their
operations (the catalog the designer and the form portal use).

The import and the catalog are :mod:`autopilot_plugin.api.services.apis` over
:mod:`autopilot_provider.server.openapi_import` and :mod:`autopilot_provider.openapi.catalog`.
Refusals are ``{"detail": {"message", "field", ...}}`` (:mod:`autopilot_plugin.api.errors`); an invalid
document is a 422 whose ``pointer`` is the JSON pointer of the bad part.
"""

from __future__ import annotations

from typing import Annotated

from autopilot_plugin.api.datamodels.apis import (
    ApiDetail,
    ApiImport,
    ApiList,
    ApiOut,
    ImportOut,
    OperationDetail,
    OperationList,
    OperationOut,
)
from autopilot_plugin.api.deps import CanDesign, CanRead, GetUserDep, StoreDep, user_name
from autopilot_plugin.api.errors import ErrorDocs
from autopilot_plugin.api.services import apis as service
from fastapi import APIRouter, Path, Query, status

from autopilot_provider.openapi.catalog import get_operation as one
from autopilot_provider.openapi.catalog import list_apis as entries
from autopilot_provider.openapi.catalog import list_operations as page
from autopilot_provider.openapi.catalog import spec_of

router = APIRouter(prefix="/apis", tags=["APIs"])

errors = ErrorDocs(
    {
        400: "Invalid input (the `field` names it), or the URL could not be fetched",
        503: "The Autopilot tables are missing (`autopilot db migrate`), or `[autopilot] fetch_allowlist` is malformed",
        404: "No such Api or operation",
        409: "An Api of that name exists (send `replace: true`), or its id is used by another file",
        422: "Not a valid OpenAPI document (`pointer` names the bad part), a `url` that is not an absolute "
        "http(s) URL or is at an address not allowed, or the Api cannot be loaded",
    }
)

ApiName = Annotated[str, Path(description="The Api id.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanDesign],
    operation_id="import_api",
    responses=errors(400, 401, 403, 409, 422, 503),
)
def import_api(body: ApiImport, store: StoreDep, user: GetUserDep) -> ImportOut:
    """Import an OpenAPI document (Swagger 2.0, OpenAPI 3.0 or 3.1; JSON or YAML) from a URL or from
    text: validate it, store it under `apis/specs/` and write the Api definition `apis/<name>.yaml`.
    Nothing is written when the document is invalid."""
    return ImportOut(**service.import_api(store, body, author=user_name(user)).as_dict())


@router.get("", dependencies=[CanRead], operation_id="list_apis", responses=errors(401, 403))
def list_apis(store: StoreDep) -> ApiList:
    """Every Api definition with its document's title, version and number of operations."""
    items = [ApiOut(**vars(e)) for e in entries(service.catalog(store))]
    return ApiList(apis=items, total_entries=len(items))


@router.get("/{name}", dependencies=[CanRead], operation_id="get_api", responses=errors(401, 403, 404))
def get_api(name: ApiName, store: StoreDep) -> ApiDetail:
    """One Api: its definition, the document's version, servers, security schemes and tags."""
    return service.api_detail(service.catalog(store), name)


@router.get(
    "/{name}/operations",
    dependencies=[CanRead],
    operation_id="list_api_operations",
    responses=errors(401, 403, 404, 422),
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
    items, total = page(spec_of(service.catalog(store), name), q=q, tag=tag, limit=limit, offset=offset)
    return OperationList(api=name, operations=[OperationOut(**i) for i in items], total_entries=total)


@router.get(
    "/{name}/operations/{operation_id:path}",
    dependencies=[CanRead],
    operation_id="get_api_operation",
    responses=errors(401, 403, 404, 422),
)
def get_operation(
    name: ApiName,
    operation_id: Annotated[str, Path(description="The operationId (may contain `/`, e.g. `repos/get`).")],
    store: StoreDep,
) -> OperationDetail:
    """One operation with every schema resolved (`$ref`s inlined; a recursive schema is cut to `{}`
    where it refers to itself)."""
    return OperationDetail(api=name, **one(spec_of(service.catalog(store), name), operation_id))
