"""`use: {function: ID, with: {...}}` → a TaskGroup: an inputs task, the function's steps, an
outputs task. Inside, templates see ``inputs`` and the function's own ``steps``."""

from __future__ import annotations

from airflow.sdk import TaskGroup

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.use import ValuesOperator
from dag_factory.context import BuildContext


def compile_use(step: m.Step, ctx: BuildContext) -> TaskGroup:
    spec = step.use
    assert spec is not None
    function = ctx.function(spec.function)
    schema = {
        "type": "object",
        "properties": {name: inp.json_schema() for name, inp in function.inputs.items()},
        "required": [name for name, inp in function.inputs.items() if inp.required],
    }
    with TaskGroup(group_id=step.id, tooltip=function.title or function.id) as group:
        inputs = ValuesOperator(
            task_id="_inputs",
            values=dict(spec.with_),
            schema=schema,
            scope=ctx.scope(),
            **ctx.task_kwargs(step, task_id=False),
        )
        inner = ctx.nested(group_id=group.group_id, inputs_task=inputs.task_id)
        nodes = inner.compile_steps(function.steps)
        outputs = ValuesOperator(
            task_id="_outputs",
            values=dict(function.outputs),
            scope=inner.scope(),
            trigger_rule="none_failed_min_one_success",
            outlets=ctx.outlets(step),  # the function call updates them when it completes
        )
        roots = [nodes[s.id] for s in function.steps if not inner.dependencies[s.id]]
        inputs >> roots
        [nodes[s] for s in inner.leaves()] >> outputs
    return group
