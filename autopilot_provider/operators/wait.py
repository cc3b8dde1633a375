"""A `wait` step: poll an operation until a condition holds — from the triggerer, holding no worker slot.

The operator renders and checks the request, resolves the base URL and auth on the worker, then
defers to :class:`~autopilot_provider.triggers.openapi.OpenApiPollTrigger`. Airflow resumes it in
``execute_complete`` with the trigger's event: the outputs are computed from the last response, or
the step fails saying why (timeout, ``fail_if``, an HTTP error).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from autopilot_provider.definitions.templating import check_template, render_value
from autopilot_provider.hooks.openapi import OpenApiAuthError, OpenApiError, OpenApiHook
from autopilot_provider.openapi.request import RequestValidationError, build_request, evaluate_outputs, excerpt
from autopilot_provider.operators.task import load_operation
from autopilot_provider.repository.scope import ScopeSpec, build_scope
from autopilot_provider.triggers.openapi import OpenApiPollTrigger

#: Airflow's own deferral timeout is a safety net behind the trigger's deadline (which gives the
#: clearer message).
DEFER_MARGIN = timedelta(minutes=5)


class OpenApiWaitOperator(BaseOperator):
    """Poll ``operation`` of ``api`` every ``every`` seconds until ``until`` (an expression over
    ``response``) is true, failing when ``fail_if`` is true or after ``wait_timeout`` seconds."""

    template_fields: Sequence[str] = ("parameters",)
    template_fields_renderers = {"parameters": "json"}
    ui_color = "#f0ecfa"

    def __init__(
        self,
        *,
        api: str,
        operation: str,
        until: str,
        parameters: dict[str, Any] | None = None,
        fail_if: str | None = None,
        every: float = 30.0,
        wait_timeout: float = 3600.0,
        outputs: dict[str, str] | None = None,
        connection: str | None = None,
        request_timeout: float = 60.0,
        http_retries: int = 3,
        backoff: float = 1.0,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api = api
        self.operation = operation
        self.until = until
        self.parameters = parameters or {}
        self.fail_if = fail_if
        self.every = every
        self.wait_timeout = wait_timeout
        self.outputs = outputs or {}
        self.connection = connection
        self.request_timeout = request_timeout
        self.http_retries = http_retries
        self.backoff = backoff
        self.scope = scope or {}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        self.parameters = render_value(self.parameters, scope)

    def execute(self, context: Any) -> None:
        api_definition, spec, operation = load_operation(self.scope.get("definitions"), self.api, self.operation)
        try:
            request = build_request(spec, operation, self.parameters, None)
        except RequestValidationError as exc:
            raise AirflowFailException(str(exc)) from None
        hook = OpenApiHook(
            self.connection or api_definition.connection,
            spec=spec,
            request_timeout=self.request_timeout,
            retries=self.http_retries,
            backoff=self.backoff,
        )
        try:
            material = hook.trigger_material(operation)
        except (OpenApiAuthError, OpenApiError) as exc:
            raise AirflowFailException(str(exc)) from None

        self.log.info(
            "Waiting for `%s` on %s %s, every %ss, at most %ss (in the triggerer)",
            self.until,
            operation.method,
            operation.path,
            self.every,
            self.wait_timeout,
        )
        trigger = OpenApiPollTrigger(
            request=request.as_dict(),
            base_url=material["base_url"],
            auth=material["auth"],
            headers=material["headers"],
            verify=material["verify"],
            request_timeout=material["request_timeout"],
            policy=material["policy"],
            until=self.until,
            fail_if=self.fail_if,
            scope=self._condition_scope(context),
            interval=self.every,
            deadline=time.time() + self.wait_timeout,
            label=f"{self.task_id}:",
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=self.wait_timeout) + DEFER_MARGIN,
        )

    def _condition_scope(self, context: Any) -> dict[str, Any]:
        """The names ``until``/``fail_if`` may use besides ``response``, as plain data (the trigger
        has no XCom): ``form``, ``inputs``, ``run`` and the outputs of the steps they mention."""
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        mentioned: set[str] = set()
        for expression in (self.until, self.fail_if):
            if expression:
                _, _, refs, _ = check_template(expression, expression=True)
                mentioned |= {r.name for r in refs if r.scope == "steps" and r.name}
        steps = {sid: scope["steps"][sid] for sid in mentioned if sid in scope["steps"]}
        return {"form": scope["form"], "inputs": scope["inputs"], "run": scope["run"], "steps": steps}

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = event or {}
        status, polls, response = event.get("status"), event.get("polls", 0), event.get("response")
        last = ""
        if response is not None:
            last = f"; last response: HTTP {response['status']} {excerpt(response['body'] or '', 500)}"
        if status == "timeout":
            raise AirflowException(
                f"gave up waiting after {_seconds(self.wait_timeout)} ({polls} polls): `{self.until}` is still "
                f"false{last}"
            )
        if status == "failed":
            raise AirflowFailException(f"{event.get('message')} (after {polls} polls){last}")
        if status != "done" or response is None:
            raise AirflowException(f"waiting failed: {event.get('message') or event}")
        self.log.info("`%s` is true after %d poll(s)", self.until, polls)
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        try:
            outputs = evaluate_outputs(self.outputs, response, scope)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        outputs = outputs if self.outputs else {**outputs, "polls": polls}
        self.log.info("Outputs: %s", outputs)
        return outputs


def _seconds(value: float) -> str:
    return str(timedelta(seconds=round(value))) if value >= 60 else f"{value:g}s"
