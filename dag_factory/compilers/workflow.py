"""`workflow: {id, form, wait, on_failure, every}` → ``StartWorkflowOperator`` (Airflow's
``TriggerDagRunOperator``, deferred while it waits)."""

from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.workflow import StartWorkflowOperator
from dag_factory.compilers.task import seconds
from dag_factory.context import BuildContext


def compile_workflow(step: m.Step, ctx: BuildContext) -> StartWorkflowOperator:
    spec = step.workflow
    assert spec is not None
    return StartWorkflowOperator(
        workflow=spec.id,
        form=dict(spec.form),
        wait=spec.wait,
        on_failure=spec.on_failure,
        every=seconds(spec.every),
        scope=ctx.scope(),
        **ctx.task_kwargs(step),
    )
