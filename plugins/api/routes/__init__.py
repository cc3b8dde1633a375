"""The plugin API's routes, one module per resource (each an ``APIRouter``): what the app mounts.

``api_router`` holds every API route under ``/api/v1``; ``pages_router`` the HTML pages that are not
part of the API (the confirmation page behind approval mail links).
"""

from __future__ import annotations

from autopilot_plugin.api.routes import (
    alerts,
    apis,
    approvals,
    confirm_page,
    definitions,
    keys,
    requests,
    reviews,
    session,
    workflows,
)
from fastapi import APIRouter

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
for resource in (definitions, reviews, apis, workflows, requests, session, approvals, keys, alerts):
    api_router.include_router(resource.router)

pages_router = APIRouter(include_in_schema=False)
pages_router.include_router(confirm_page.router)
