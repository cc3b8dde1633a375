"""``OpenApiPollTrigger``: poll one prepared request from Airflow's triggerer until a condition holds.

Everything it needs arrives in its (JSON-able) kwargs, resolved by the operator on the worker: the
prepared request, the base URL, the auth material (headers, query or cookie values, or the OAuth2
client credentials so it can fetch and refresh tokens itself), the ``until``/``fail_if`` expressions
with a snapshot of the names they may use, the interval and the deadline. Airflow stores trigger
kwargs encrypted (``[core] fernet_key``); the secrets are masked again in the triggerer before
anything is logged.

It fires exactly one event: ``done`` (``until`` true, with the response), ``failed`` (``fail_if``
true), ``timeout`` (the deadline passed, with the last response) or ``error`` (non-2xx after the
retries, a transport error, a redirect to another origin, or an expression that cannot be
evaluated). Redirects are followed by the shared send loop, same origin only (see the hook).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from autopilot_provider.hooks.openapi import OpenApiError, _amask, asend, auth_secrets
from autopilot_provider.openapi.request import PreparedRequest, RetryPolicy, condition, excerpt


class OpenApiPollTrigger(BaseTrigger):
    def __init__(
        self,
        *,
        request: dict[str, Any],
        base_url: str,
        auth: dict[str, Any],
        until: str,
        deadline: float,
        interval: float = 30.0,
        fail_if: str | None = None,
        scope: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        verify: bool | str = True,
        request_timeout: float = 60.0,
        policy: dict[str, Any] | None = None,
        label: str = "",
    ) -> None:
        super().__init__()
        self.request = request
        self.base_url = base_url
        self.auth = auth
        self.until = until
        self.deadline = deadline
        self.interval = interval
        self.fail_if = fail_if
        self.scope = scope or {}
        self.headers = headers or {}
        self.verify = verify
        self.request_timeout = request_timeout
        self.policy = policy or {}
        self.label = label

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request": self.request,
                "base_url": self.base_url,
                "auth": self.auth,
                "until": self.until,
                "deadline": self.deadline,
                "interval": self.interval,
                "fail_if": self.fail_if,
                "scope": self.scope,
                "headers": self.headers,
                "verify": self.verify,
                "request_timeout": self.request_timeout,
                "policy": self.policy,
                "label": self.label,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await _amask(*auth_secrets(self.auth))
        request = PreparedRequest.from_dict(self.request)
        policy = RetryPolicy(**self.policy)
        polls = 0
        response: dict[str, Any] | None = None
        async with httpx.AsyncClient(
            timeout=self.request_timeout, verify=self.verify, follow_redirects=False
        ) as client:
            while True:
                try:
                    response = await asend(
                        client,
                        request,
                        self.base_url,
                        self.auth,
                        policy=policy,
                        extra_headers=self.headers,
                        log=self.log,
                    )
                except OpenApiError as exc:
                    yield self._event("error", polls, response, message=str(exc))
                    return
                polls += 1
                status = response["status"]
                if not 200 <= status < 300:
                    body = excerpt(response["body"] if response["body"] is not None else "", 500)
                    yield self._event(
                        "error",
                        polls,
                        response,
                        message=f"{request.method} {request.path} answered HTTP {status}: {body}",
                    )
                    return
                try:
                    if self.fail_if and condition(self.fail_if, response, self.scope):
                        yield self._event("failed", polls, response, message=f"fail_if is true: {self.fail_if}")
                        return
                    done = condition(self.until, response, self.scope)
                except Exception as exc:  # noqa: BLE001 - an expression error ends the wait with its text
                    yield self._event("error", polls, response, message=f"cannot evaluate the condition: {exc}")
                    return
                self.log.info("%s poll %d: HTTP %s, until → %s", self.label, polls, status, done)
                if done:
                    yield self._event("done", polls, response)
                    return
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    yield self._event("timeout", polls, response)
                    return
                await asyncio.sleep(min(self.interval, remaining))

    @staticmethod
    def _event(status: str, polls: int, response: dict[str, Any] | None, message: str = "") -> TriggerEvent:
        payload: dict[str, Any] = {"status": status, "polls": polls, "message": message}
        if response is not None:
            payload["response"] = {k: response[k] for k in ("status", "headers", "body")}
        return TriggerEvent(payload)
