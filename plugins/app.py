"""The Autopilot FastAPI app, mounted by Airflow's API server at ``/autopilot``.

Routers live in ``autopilot_plugin.api``; the UI (designer, form portal, approvals inbox) will be added
to this same app. Its OpenAPI document is served at ``/autopilot/openapi.json`` and the interactive
docs at ``/autopilot/docs`` (both describe the API only and need no token; every API route does).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from autopilot_plugin.api import apis, definitions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from autopilot_provider import __version__
from autopilot_provider.store import StoreError

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

DESCRIPTION = """\
Manage Autopilot workflow definitions (YAML files in the definitions folder): list, read, validate,
create, update and delete them, with optimistic concurrency (`version` = sha256 of the content) and a
revision history.

Authenticate like the Airflow REST API: get a token from `POST /auth/token` and send
`Authorization: Bearer <token>`. Reads need DAG read access, writes DAG edit access.
"""


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Inside a mounted sub-app, request.app is this app: give it the auth manager that Airflow's own
    # AuthManagerDep-based dependencies look for, so they work here too.
    try:
        from airflow.api_fastapi.app import get_auth_manager

        app.state.auth_manager = get_auth_manager()
    except Exception:  # pragma: no cover - no auth manager outside the API server
        log.debug("no Airflow auth manager available", exc_info=True)
    yield


async def store_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    return JSONResponse(status_code=exc.status, content={"detail": exc.as_dict()})


def create_app() -> FastAPI:
    app = FastAPI(
        title="Autopilot API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_exception_handler(StoreError, store_error_handler)
    app.include_router(definitions.router, prefix=API_PREFIX)
    app.include_router(apis.router, prefix=API_PREFIX)
    return app


app = create_app()
