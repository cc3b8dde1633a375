"""A `task` step: call one operation of an OpenAPI-described product.

Thin on purpose: render ``params`` and ``body`` in the sandbox, build and check the request from the
spec (:mod:`autopilot_provider.openapi.request`), send it through :class:`OpenApiHook`, check the
response, and push the step's outputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from autopilot_provider.definitions.templating import render_value
from autopilot_provider.hooks.openapi import OpenApiAuthError, OpenApiError, OpenApiHook
from autopilot_provider.openapi.request import (
    RequestValidationError,
    build_request,
    check_response,
    evaluate_outputs,
    excerpt,
)
from autopilot_provider.repository.folder import Project
from autopilot_provider.repository.scope import ScopeSpec, build_scope


class OpenApiStepError(AirflowException):
    """The product answered with an error (non-2xx after the retries)."""


def load_operation(definitions: str | None, api: str, operation: str):
    """(Api definition, Spec, Operation) from the definitions folder; fails the task clearly."""

    if not definitions:
        raise AirflowFailException("the task has no definitions folder to find its Api in")
    found = Project(definitions).api_spec(api)
    if found is None:
        raise AirflowFailException(f"unknown api '{api}' (no Api definition with this id in {definitions})")
    loaded, spec = found
    if spec is None:
        raise AirflowFailException(f"api '{api}' has errors: " + "; ".join(str(d) for d in loaded.diagnostics))
    op = spec.operation(operation)
    if op is None:
        raise AirflowFailException(f"api '{api}' has no operation '{operation}'")
    return loaded.definition, spec, op


class OpenApiTaskOperator(BaseOperator):
    """Call ``operation`` of the Api definition ``api``.

    ``parameters`` (path/query/header/cookie, by name) and ``body`` are rendered with the sandboxed
    scope (a value that is exactly ``{{ expr }}`` keeps its type) and checked against the operation's
    schemas before anything is sent. ``outputs`` maps names to expressions over ``response``
    (``{status, headers, body}``); without outputs the step's outputs are ``{status, body}``.
    A non-2xx answer (after ``http_retries`` re-sends on 429/5xx/connection errors) fails the task.
    """

    template_fields: Sequence[str] = ("parameters", "body")
    template_fields_renderers = {"parameters": "json", "body": "json"}
    ui_color = "#e6f7ef"

    def __init__(
        self,
        *,
        api: str,
        operation: str,
        parameters: dict[str, Any] | None = None,
        body: Any = None,
        outputs: dict[str, str] | None = None,
        connection: str | None = None,
        validate_response: str = "fail",
        request_timeout: float = 60.0,
        http_retries: int = 3,
        backoff: float = 1.0,
        idempotency_header: str | None = None,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if validate_response not in ("fail", "warn", "off"):
            raise ValueError(f"validate_response must be fail, warn or off, not {validate_response!r}")
        self.api = api
        self.operation = operation
        self.parameters = parameters or {}
        self.body = body
        self.outputs = outputs or {}
        self.connection = connection
        self.validate_response = validate_response
        self.request_timeout = request_timeout
        self.http_retries = http_retries
        self.backoff = backoff
        self.idempotency_header = idempotency_header
        self.scope = scope or {}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # User text renders in Autopilot's sandbox with Autopilot's names, not Airflow's context.
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        self.parameters = render_value(self.parameters, scope)
        self.body = render_value(self.body, scope)

    def hook(self, api_definition: Any, spec: Any) -> OpenApiHook:
        return OpenApiHook(
            self.connection or api_definition.connection,
            spec=spec,
            request_timeout=self.request_timeout,
            retries=self.http_retries,
            backoff=self.backoff,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        api_definition, spec, operation = load_operation(self.scope.get("definitions"), self.api, self.operation)
        try:
            request = build_request(spec, operation, self.parameters, self.body)
        except RequestValidationError as exc:
            raise AirflowFailException(str(exc)) from None
        if self.idempotency_header:
            request.headers[self.idempotency_header] = idempotency_key(context)
        hook = self.hook(api_definition, spec)
        self.log.info("%s: %s %s (connection %s)", operation.id, operation.method, operation.path, hook.openapi_conn_id)
        try:
            response = hook.run(operation, request)
        except OpenApiAuthError as exc:
            raise AirflowFailException(str(exc)) from None
        except OpenApiError as exc:
            raise OpenApiStepError(str(exc)) from None
        check_status(self.log, operation, response)
        self.check_body(spec, operation, response)
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        try:
            outputs = evaluate_outputs(self.outputs, response, scope)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("Outputs: %s", outputs)
        return outputs

    def check_body(self, spec: Any, operation: Any, response: dict[str, Any]) -> None:
        if self.validate_response == "off":
            return
        problems = check_response(spec, operation, response["status"], response["body"])
        if not problems:
            return
        message = "the response does not match the OpenAPI document:\n" + "\n".join(f"  {p}" for p in problems)
        if self.validate_response == "fail":
            raise AirflowFailException(message + "\n(set `validate_response: warn` or `off` on the step to accept it)")
        self.log.warning("%s", message)


def idempotency_key(context: Any) -> str:
    """The same for every try of one task instance (DAG, run, task, map index), different for any
    other: what an API that honours idempotency keys needs to recognise a retried create."""
    ti = context["ti"]
    name = "\x00".join((ti.dag_id, ti.run_id, ti.task_id, str(getattr(ti, "map_index", -1))))
    return "autopilot-" + hashlib.sha256(name.encode()).hexdigest()[:40]


def check_status(log: Any, operation: Any, response: dict[str, Any]) -> None:
    """Fail on a non-2xx answer, with an excerpt of the body in the log and the error."""
    status = response["status"]
    if 200 <= status < 300:
        return
    body = excerpt(response["body"] if response["body"] is not None else "")
    attempts = response.get("attempts", 1)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    log.error("%s answered HTTP %s%s. Response body:\n%s", operation.id, status, tries, body)
    message = (
        f"{operation.method} {operation.path} ({operation.id}) answered HTTP {status}{tries}: {excerpt(body, 500)}"
    )
    if 400 <= status < 500 and status not in (408, 429):
        raise AirflowFailException(message)  # sending it again will not help
    raise OpenApiStepError(message)
