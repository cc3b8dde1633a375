"""CSRF protection for the Autopilot app: a browser session cookie alone cannot change anything.

Airflow's ``get_user`` accepts the ``_token`` cookie when no ``Authorization`` header is sent, which is
what lets the Autopilot UI (same origin, inside Airflow's UI or at its own URL) call the API without a
second login. A cookie is also sent by a form another site posts to us, so a state-changing request
(any method but GET, HEAD, OPTIONS) that carries the cookie and no ``Authorization`` header must also
carry the header ``X-Autopilot-Request: 1``. Browsers only let a page of another origin set a custom
header after a CORS preflight, which Airflow does not grant unless its operator allows that origin.

Deliveries to alert endpoints (``POST /api/v1/alerts/<id>``) are not checked: the route reads no
Airflow credential at all — a sender authenticates with the alert's signature or token — so a cookie
sent along grants nothing there.

Clients with a bearer token are unaffected: a cross-site page cannot attach a token it does not have,
and ``get_user`` prefers the header over the cookie anyway.

The rule reads a request exactly as Airflow's ``get_user`` does, so that the cookie is never the
credential without the check: the first ``Authorization`` header exempts the request only when
FastAPI's ``HTTPBearer`` would take it (scheme ``Bearer``, any case, and a credential); any other
``Authorization`` header (Basic, garbage) does not, since ``get_user`` then falls back to the cookie.
Cookies are parsed by Starlette's ``cookie_parser`` over every ``Cookie`` header, as
``request.cookies`` is.
"""

from __future__ import annotations

import json

from autopilot_plugin.paths import is_alert_delivery
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

#: The header the UI sends with every request (any non-empty value is accepted).
CSRF_HEADER = "x-autopilot-request"
COOKIE_NAME = "_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MESSAGE = (
    "a request authenticated by the session cookie must send the header X-Autopilot-Request: 1 "
    "(or authenticate with Authorization: Bearer <token>)"
)


def _has_session_cookie(cookie_headers: list[str]) -> bool:
    """Whether ``request.cookies`` has the session cookie (Starlette merges every Cookie header)."""
    cookies: dict[str, str] = {}
    for header in cookie_headers:
        cookies.update(cookie_parser(header))
    return COOKIE_NAME in cookies


def _sends_bearer(authorization: str | None) -> bool:
    """Whether ``get_user`` takes its user from this header (``HTTPBearer``'s reading of it)."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    return bool(authorization and scheme and credentials) and scheme.lower() == "bearer"


def needs_proof(method: str, headers: list[tuple[bytes, bytes]] | dict[bytes, bytes]) -> bool:
    """Whether a request is state-changing, has the session cookie as its credential (no bearer token)
    and lacks the CSRF header. ``headers``: the ASGI (name, value) pairs, names lower-case."""
    if method.upper() in SAFE_METHODS:
        return False
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    first: dict[bytes, str] = {}
    cookie_headers: list[str] = []
    for name, value in pairs:
        text = value.decode("latin-1")
        if name == b"cookie":
            cookie_headers.append(text)
        first.setdefault(name, text)  # Starlette's Headers.get: the first one counts
    if _sends_bearer(first.get(b"authorization")):
        return False
    if first.get(CSRF_HEADER.encode(), "").strip():
        return False
    return _has_session_cookie(cookie_headers)


class CsrfMiddleware:
    """ASGI middleware answering 403 to cookie-authenticated state changes without the CSRF header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not is_alert_delivery(scope) and needs_proof(scope["method"], scope["headers"]):
                body = json.dumps({"detail": {"message": MESSAGE, "field": "X-Autopilot-Request"}}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
