"""The Autopilot FastAPI app, mounted by Airflow's API server at ``/autopilot`` (API server only).

It serves the REST API under ``/api/v1`` (routers in :mod:`autopilot_plugin.api.routes`, refusals
answered by :mod:`autopilot_plugin.api.errors`), the confirmation page behind approval mail links, and
the UI (designer, form portal, approvals inbox; :mod:`autopilot_plugin.ui`) at ``/ui``. Its OpenAPI
document is served at ``/autopilot/openapi.json`` and the interactive docs at ``/autopilot/docs``
(both describe the API only and need no token; every API route does). While it runs, it sweeps
approvals (ask, remind, escalate, time out) in the background.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from autopilot_plugin import ui
from autopilot_plugin.api.errors import add_error_handlers
from autopilot_plugin.api.routes import api_router, pages_router
from autopilot_plugin.body_limit import BodyLimitMiddleware
from autopilot_plugin.csrf import CsrfMiddleware
from fastapi import FastAPI

from autopilot_provider import __version__
from autopilot_provider.server.alerts import purge_expired
from autopilot_provider.server.approval_sweep import sweep, sweep_interval
from autopilot_provider.server.approvals import Approvals

log = logging.getLogger(__name__)

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
    sweeper = asyncio.create_task(sweep_approvals())
    try:
        yield
    finally:
        sweeper.cancel()


async def sweep_approvals() -> None:
    """Ask, remind, escalate and time out approvals every ``[autopilot] approval_sweep_seconds``
    (default 5; 0 turns the sweep off in this API server), and purge alert deliveries older than
    ``[autopilot] alert_delivery_retention_days`` (at most every 10 minutes). Safe with several API
    server workers: each change is claimed in the database first."""

    interval = sweep_interval()
    if interval <= 0:
        return
    approvals = Approvals()
    last_error = None
    while True:
        try:
            counts = await asyncio.to_thread(sweep, approvals)
            if any(counts.values()):
                log.info("Approvals sweep: %s", counts)
            purged = await asyncio.to_thread(purge_expired)
            if purged:
                log.info(
                    "Alert delivery log: %d deliveries past [autopilot] alert_delivery_retention_days purged", purged
                )
            last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            # the same failure every few seconds (tables not migrated, database down) is logged once
            if str(exc) != last_error:
                log.exception("Approvals sweep failed (run `autopilot db migrate` if the tables are missing)")
            last_error = str(exc)
        await asyncio.sleep(interval)


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
    add_error_handlers(app)
    app.include_router(api_router)
    app.include_router(pages_router)
    app.include_router(ui.router)
    app.add_middleware(CsrfMiddleware)
    app.add_middleware(BodyLimitMiddleware)  # the outermost: an oversize body is refused first
    return app


app = create_app()
