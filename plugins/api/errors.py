"""Errors as responses, in one place: the exception handlers of the plugin's app and the error
responses routes document in the OpenAPI document.

Routes and services never build an error response themselves: they raise a refusal, a
:class:`~autopilot_provider.definitions.errors.Refused` (``status``, ``message``, ``field``,
``as_dict()``), and :func:`add_error_handlers` answers it as ``{"detail": {...}}`` with its status.
Permission checks raise Airflow's way, an ``HTTPException`` (401/403) from a
route dependency (:mod:`autopilot_plugin.api.permissions`), with the same body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autopilot_plugin.api.datamodels.common import ErrorOut
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from autopilot_provider.definitions.errors import Refused

#: What the app answers as a refusal: each has ``status`` and ``as_dict()``.
REFUSALS: tuple[type[Exception], ...] = (Refused,)


async def refusal_response(request: Request, exc: Exception) -> JSONResponse:
    """``{"detail": {"message", "field", ...}}`` with the refusal's status."""
    return JSONResponse(status_code=exc.status, content={"detail": exc.as_dict()})  # type: ignore[attr-defined]


def add_error_handlers(app: FastAPI) -> None:
    for kind in REFUSALS:
        app.add_exception_handler(kind, refusal_response)


#: What an error status means when a resource does not say more.
GENERIC = {
    400: "Invalid input (the `field` names it)",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflicts with the current state",
    410: "Gone",
    422: "Invalid input (the `field` names it)",
    502: "A field's choices could not be fetched from its API (`field` names it)",
    503: "The Autopilot tables are missing: run `autopilot db migrate`",
}


class ErrorDocs:
    """The error responses of one resource's routes, for ``responses=``: ``docs(401, 403, 404)``.
    ``descriptions`` says what a status means for this resource (else :data:`GENERIC`)."""

    def __init__(self, descriptions: Mapping[int, str] | None = None) -> None:
        self.descriptions = {**GENERIC, **(descriptions or {})}

    def __call__(self, *codes: int) -> dict[int | str, dict[str, Any]]:
        return {code: {"model": ErrorOut, "description": self.descriptions[code]} for code in codes}
