"""`task: {api, operation, params, body, outputs}` → ``OpenApiTaskOperator``."""

from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.durations import parse_duration
from autopilot_provider.operators.task import OpenApiTaskOperator
from dag_factory.context import BuildContext


def seconds(duration: str) -> float:
    return parse_duration(duration).total_seconds()


def compile_task(step: m.Step, ctx: BuildContext) -> OpenApiTaskOperator:
    spec = step.task
    assert spec is not None
    return OpenApiTaskOperator(
        api=spec.api,
        operation=spec.operation,
        parameters=dict(spec.params),
        body=spec.body,
        outputs=dict(spec.outputs),
        connection=spec.connection,
        validate_response=spec.validate_response,
        request_timeout=seconds(spec.request_timeout),
        http_retries=spec.http_retries,
        backoff=seconds(spec.backoff),
        idempotency_header=spec.idempotency_header,
        scope=ctx.scope(),
        **ctx.task_kwargs(step),
    )
