"""Request bodies of bounded size: the Autopilot API reads a body whole before it parses it (and
before it knows who sent it), so each one is capped.

``[autopilot] max_request_bytes`` (2 MiB by default) applies to every route but OpenAPI imports,
which carry a whole document and get ``[autopilot] max_import_bytes`` (32 MiB), and deliveries to
alert endpoints, which get ``[autopilot] alert_max_body_bytes`` (1 MiB). A body announced
larger by ``Content-Length`` is refused before any of it is read; a body sent without one (chunked)
is counted as it arrives and refused when it passes the cap. Either way the answer is a 413 with a
JSON ``detail`` naming the limit, and the route never runs.
"""

from __future__ import annotations

import json

from autopilot_plugin.paths import app_path, is_alert_delivery
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autopilot_provider import config

#: (method, path inside the app) of the routes with the larger cap
IMPORT_ROUTES = frozenset({("POST", "/api/v1/apis")})


def configured_limits() -> tuple[int, int]:
    """(max_request_bytes, max_import_bytes) from ``[autopilot]``; a value that is not a number gets the
    declared default (a bad value must not stop the API server)."""
    return config.get_int("max_request_bytes"), config.get_int("max_import_bytes")


def alert_limit() -> int:
    """``[autopilot] alert_max_body_bytes``: the cap of a delivery to an alert endpoint."""
    return config.get_int("alert_max_body_bytes")


class BodyTooLarge(HTTPException):
    """Raised while the route reads its body: FastAPI lets an HTTPException through its body parsing
    (any other error there becomes a 400), and the app answers it as a JSON 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_detail(limit))
        self.limit = limit


class BodyLimitMiddleware:
    """Answer 413 to an HTTP request whose body is larger than its route's cap."""

    def __init__(
        self,
        app: ASGIApp,
        max_request: int | None = None,
        max_import: int | None = None,
        max_alert: int | None = None,
    ) -> None:
        self.app = app
        if max_request is None or max_import is None:
            configured = configured_limits()
            max_request = configured[0] if max_request is None else max_request
            max_import = configured[1] if max_import is None else max_import
        self.max_request = max_request
        self.max_import = max_import
        self.max_alert = alert_limit() if max_alert is None else max_alert

    def limit(self, scope: Scope) -> int:
        if is_alert_delivery(scope):
            return self.max_alert
        route = (scope.get("method", "").upper(), app_path(scope))
        return self.max_import if route in IMPORT_ROUTES else self.max_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:  # pragma: no cover - routes read their body before they answer
                raise
            await _too_large(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _detail(limit: int) -> dict[str, object]:
    return {"message": f"the request body is larger than {limit} bytes", "field": None}


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _detail(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
