"""`decision: {if, then, else}` or `{cases, default}` → ``DecisionOperator`` (a branch: the first case whose
expression holds, else the default)."""

from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.decision import DecisionOperator
from dag_factory.context import BuildContext


def compile_decision(step: m.Step, ctx: BuildContext) -> DecisionOperator:
    spec = step.decision
    assert spec is not None
    return DecisionOperator(
        cases=[[expression, [ctx.entry_id(t) for t in targets]] for expression, targets in spec.branches()],
        default=[ctx.entry_id(t) for t in spec.fallback()],
        scope=ctx.scope(),
        **ctx.task_kwargs(step),
    )
