"""Which route of the app a raw ASGI request is for, as the middlewares see it (before routing)."""

from __future__ import annotations

import re

from starlette.types import Scope

#: ``POST /api/v1/alerts/<id>``: a sender's delivery, authenticated by its signature only.
_ALERT_DELIVERY = re.compile(r"/api/v1/alerts/[^/]+")


def app_path(scope: Scope) -> str:
    """The request's path inside the Autopilot app (without the mount's root path or a final ``/``)."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.rstrip("/") or "/"


def is_alert_delivery(scope: Scope) -> bool:
    """Whether the request is a delivery to an alert endpoint. No Airflow credential counts there (the
    route never reads one), so CSRF protection has nothing to protect, and its body has its own cap."""
    return scope.get("method", "").upper() == "POST" and _ALERT_DELIVERY.fullmatch(app_path(scope)) is not None
