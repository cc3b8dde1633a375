"""`script: {bash | python, env, connections, cwd}` → ``ScriptOperator``."""

from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.script import ScriptOperator
from dag_factory.context import BuildContext


def compile_script(step: m.Step, ctx: BuildContext) -> ScriptOperator:
    spec = step.script
    assert spec is not None
    return ScriptOperator(
        language=spec.language,
        script=getattr(spec, spec.language),
        env=dict(spec.env),
        connections=dict(spec.connections) or None,
        cwd=spec.cwd,
        scope=ctx.scope(),
        **ctx.task_kwargs(step),
    )
