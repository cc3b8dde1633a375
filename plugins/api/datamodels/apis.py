"""Request and response models of ``/apis``: importing an OpenAPI document as an Api definition, and
the catalog of Apis and their operations."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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
