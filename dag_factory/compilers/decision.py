from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.decision import DecisionOperator


def compile_decision(step: m.Step, ctx) -> DecisionOperator:
    spec = step.decision
    assert spec is not None
    return DecisionOperator(
        cases=[[expression, [ctx.entry_id(t) for t in targets]] for expression, targets in spec.branches()],
        default=[ctx.entry_id(t) for t in spec.fallback()],
        scope=ctx.scope(),
        **ctx.task_kwargs(step),
    )
