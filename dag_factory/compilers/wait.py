"""`wait: {api, operation, params, until, every, timeout}` → ``OpenApiWaitOperator`` (deferrable)."""

from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.wait import OpenApiWaitOperator
from dag_factory.compilers.task import seconds
from dag_factory.context import BuildContext


def compile_wait(step: m.Step, ctx: BuildContext) -> OpenApiWaitOperator:
    spec = step.wait
    assert spec is not None
    return OpenApiWaitOperator(
        api=spec.api,
        operation=spec.operation,
        parameters=dict(spec.params),
        until=spec.until,
        fail_if=spec.fail_if,
        every=seconds(spec.every),
        wait_timeout=seconds(spec.timeout),
        outputs=dict(spec.outputs),
        connection=spec.connection,
        request_timeout=seconds(spec.request_timeout),
        http_retries=spec.http_retries,
        backoff=seconds(spec.backoff),
        scope=ctx.scope(),
        **ctx.task_kwargs(step),
    )
