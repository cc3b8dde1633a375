"""Models shared by every resource of the plugin API: the error body and a definition diagnostic.

Every refusal is answered as ``{"detail": ErrorDetail}`` (:mod:`autopilot_plugin.api.errors`); which of
the optional fields are set depends on the refusal.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class DiagnosticOut(BaseModel):
    path: str = Field(description="File path relative to the definitions folder.")
    line: int
    column: int
    message: str
    text: str = Field(description="`path:line:column: message`")


class FieldErrorOut(BaseModel):
    field: str = Field(description="Dotted path of the field, e.g. `hostname` or `disks[0].size`.")
    message: str


class ErrorDetail(BaseModel):
    message: str
    field: str | None = Field(None, description="The input at fault.")
    current_version: str | None = Field(None, description="A stale `version`: the current one.")
    diagnostics: list[DiagnosticOut] | None = Field(None, description="Invalid content: each problem found.")
    pointer: str | None = Field(None, description="For an invalid document: the JSON pointer of the bad part.")
    errors: list[FieldErrorOut] | None = Field(None, description="Invalid form values: each field at fault.")


class ErrorOut(BaseModel):
    detail: ErrorDetail
