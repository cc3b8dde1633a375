"""`form` → ``AutopilotFormOperator``: a mid-flow form, an Airflow HITL task answered through the
Autopilot plugin (see autopilot_provider/operators/form.py)."""

from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.form import AutopilotFormOperator
from autopilot_provider.repository.forms import step_form
from dag_factory.compilers.approval import hitl_step_kwargs
from dag_factory.context import BuildContext


def compile_form(step: m.Step, ctx: BuildContext) -> AutopilotFormOperator:
    spec = step.form
    assert spec is not None
    return AutopilotFormOperator(
        form=step_form(spec.properties, spec.required, ctx.project), **hitl_step_kwargs(step, spec, ctx)
    )
