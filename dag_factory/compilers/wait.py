"""`wait:` → ``OpenApiWaitOperator`` when it polls a REST operation (`api`, `operation`, `until`, `every`,
`timeout`), ``TimeWaitOperator`` when it waits in time (`until` a date-time, `for` a duration, a
`window`); both defer to Airflow's triggerer."""

from __future__ import annotations

from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.wait import OpenApiWaitOperator
from autopilot_provider.operators.wait_time import TimeWaitOperator
from dag_factory.compilers.task import seconds
from dag_factory.context import BuildContext


def compile_wait(step: m.Step, ctx: BuildContext) -> Any:
    spec = step.wait
    assert spec is not None
    if isinstance(spec, m.TimeWaitStep):
        return compile_time_wait(step, spec, ctx)
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


def compile_time_wait(step: m.Step, spec: m.TimeWaitStep, ctx: BuildContext) -> TimeWaitOperator:
    return TimeWaitOperator(
        until=spec.until,
        duration=seconds(spec.for_) if spec.for_ is not None else None,
        window=spec.window.model_dump(exclude_none=True) if spec.window is not None else None,
        timezone=spec.timezone or ctx.timezone,
        scope=ctx.scope(),
        **ctx.task_kwargs(step),
    )
