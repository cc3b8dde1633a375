"""CSRF protection for the Autopilot app: a browser session cookie alone cannot change anything.

Airflow's ``get_user`` accepts the ``_token`` cookie when no ``Authorization`` header is sent, which is
what lets the Autopilot UI (same origin, inside Airflow's UI or at its own URL) call the API without a
second login. A cookie is also sent by a form another site posts to us, so a state-changing request
(any method but GET, HEAD, OPTIONS) that carries the cookie and no ``Authorization`` header must also
carry the header ``X-Autopilot-Request: 1``. Browsers only let a page of another origin set a custom
header after a CORS preflight, which Airflow does not grant unless its operator allows that origin.

Clients with a bearer token are unaffected: a cross-site page cannot attach a token it does not have,
and ``get_user`` prefers the header over the cookie anyway.
"""

from __future__ import annotations

import json
from http.cookies import SimpleCookie

from starlette.types import ASGIApp, Receive, Scope, Send

#: The header the UI sends with every request (any non-empty value is accepted).
CSRF_HEADER = "x-autopilot-request"
COOKIE_NAME = "_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MESSAGE = (
    "a request authenticated by the session cookie must send the header X-Autopilot-Request: 1 "
    "(or authenticate with Authorization: Bearer <token>)"
)


def _has_session_cookie(raw: str) -> bool:
    cookies = SimpleCookie()
    try:
        cookies.load(raw)
    except Exception:
        # an unparsable Cookie header may still carry the token as far as another parser is concerned
        return COOKIE_NAME in raw
    return COOKIE_NAME in cookies


def needs_proof(method: str, headers: dict[bytes, bytes]) -> bool:
    """Whether a request is cookie-authenticated, state-changing and lacks the CSRF header."""
    if method.upper() in SAFE_METHODS:
        return False
    if headers.get(b"authorization", b"").strip():
        return False
    if headers.get(CSRF_HEADER.encode(), b"").strip():
        return False
    return _has_session_cookie(headers.get(b"cookie", b"").decode("latin-1"))


class CsrfMiddleware:
    """ASGI middleware answering 403 to cookie-authenticated state changes without the CSRF header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: dict[bytes, bytes] = {}
            for name, value in scope["headers"]:
                # several Cookie headers are joined; for the others the first one counts
                if name == b"cookie" and name in headers:
                    headers[name] += b"; " + value
                else:
                    headers.setdefault(name, value)
            if needs_proof(scope["method"], headers):
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
