"""Definition → Airflow DAG: the DAG's schedule, Params (the workflow's form) and callbacks, then the
steps, each compiled by its kind's compiler from ``dag_factory.registry`` through a
:class:`~dag_factory.context.BuildContext`, wired by the rules in ``autopilot_provider.definitions.graph``.
Used by the DAG stubs (dag-processor and workers) and ``autopilot render``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.durations import parse_duration
from autopilot_provider.operators.check_form import CheckFormOperator
from autopilot_provider.operators.use import ValuesOperator
from autopilot_provider.repository.forms import (
    CHECK_TASK_ID,
    api_fields,
    param_schema,
    pattern_fields,
    resource_choices,
)
from autopilot_provider.repository.protocol import Definitions
from autopilot_provider.repository.scope import OUTPUTS_TASK_ID, ScopeSpec
from dag_factory.assets import condition
from dag_factory.compilers.approval import guard_approvals
from dag_factory.compilers.notify import connect_start, start_notification, workflow_callbacks
from dag_factory.context import BuildContext
from dag_factory.registry import COMPILERS

#: Used when a scheduled workflow gives no start_date: a fixed date keeps the DAG stable across
#: parses (a moving "now" would change the serialized DAG on every parse).
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)


def form_params(form: m.Form, project: Definitions | None = None) -> dict[str, Param]:
    """The form's fields as DAG Params. Choices from the inventory (``options: {resources: TYPE}``)
    are resolved now into ``enum`` + ``values_display``, so Airflow's trigger form offers them and
    Airflow rejects any other value on every trigger path. Choices from an API are not known at parse
    time: the ``_check_form`` task checks those (:func:`check_form_task`)."""

    params = {}
    for name, field in form.properties.items():
        source = field.options
        choices = None
        if source is not None and source.resources is not None and project is not None:
            choices = resource_choices(project, source)
        schema = param_schema(field, choices)
        if name not in form.required:
            # An optional field may be left empty: the trigger form sends null for it.
            kinds = schema.get("type", "string")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if "null" not in kinds:
                schema["type"] = ["null", *kinds]
            if "enum" in schema and None not in schema["enum"]:
                schema["enum"] = [*schema["enum"], None]
            schema.setdefault("default", None)
        description = schema.pop("description", None)
        if "default" in schema:
            params[name] = Param(schema.pop("default"), description=description, **schema)
        else:  # required with no default: the trigger form insists on a value
            params[name] = Param(description=description, **schema)
    return params


def schedule_kwargs(schedule: str | m.Schedule | None) -> dict[str, Any]:
    """A definition's ``schedule`` as the DAG's ``schedule``, ``start_date`` and ``catchup``."""
    if isinstance(schedule, m.Schedule):
        import pendulum

        start = pendulum.parse(schedule.start_date or DEFAULT_START.date().isoformat(), tz=schedule.timezone)
        value = asset_schedule(schedule) if schedule.assets is not None else schedule.cron
        return {"schedule": value, "start_date": start, "catchup": schedule.catchup}
    return {"schedule": schedule or None, "start_date": DEFAULT_START, "catchup": False}


def build_dag(workflow: m.Workflow, project: Definitions, *, source: str = "") -> DAG:
    """Build the Airflow DAG for a validated workflow."""
    timezone_name = workflow.schedule.timezone if isinstance(workflow.schedule, m.Schedule) else "UTC"
    doc = [f"# {workflow.title or workflow.id}"]
    if workflow.description:
        doc.append(workflow.description)
    if source:
        doc.append(f"Defined in `{source}` (Autopilot workflow).")
    default_args: dict[str, Any] = {}
    if workflow.owner:
        default_args["owner"] = workflow.owner

    context = BuildContext(
        project, project.root, workflow.defaults, COMPILERS, timezone=timezone_name, owner=workflow.owner
    )
    with DAG(
        dag_id=workflow.id,
        description=workflow.title,
        doc_md="\n\n".join(doc),
        **schedule_kwargs(workflow.schedule),
        tags=sorted({"autopilot", *workflow.tags}),
        params=form_params(workflow.form, project),
        default_args=default_args,
        render_template_as_native_obj=False,
        **workflow_callbacks(workflow, context),
    ) as dag:
        check = check_form_task(workflow, context)
        start = start_notification(workflow, context)
        nodes = context.compile_steps(workflow.steps)
        connect_start(start, workflow, context, nodes)
        outputs_task(workflow, context, nodes)
        guard_approvals(dag)
        if check is not None:
            check >> (
                start
                if start is not None
                else [nodes[s.id] for s in workflow.steps if not context.dependencies.get(s.id)]
            )
    return dag


def asset_schedule(spec: m.Schedule) -> Any:
    """``schedule: {assets: ...}``: Airflow's asset condition; with a ``cron`` too, an
    ``AssetOrTimeSchedule`` (runs on the cron and when the assets are updated)."""
    assets = condition(spec.assets, ("schedule", "assets"))
    if spec.cron is None:
        return assets
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(spec.cron, timezone=spec.timezone), assets=assets)


def outputs_task(workflow: m.Workflow, ctx: BuildContext, nodes: dict[str, Any]) -> ValuesOperator | None:
    """A last task ``_outputs`` when the workflow declares ``outputs``: it renders them once the
    steps are done (after the last ones, whichever branch ran), and a `workflow` step that started
    the run reads them — as a function call's ``_outputs`` task does for its step."""
    if not workflow.outputs:
        return None
    outputs = ValuesOperator(
        task_id=OUTPUTS_TASK_ID,
        values=dict(workflow.outputs),
        scope=ctx.scope(),
        trigger_rule="none_failed_min_one_success",
        doc_md="Work out the workflow's outputs (what a workflow that started this run reads).",
    )
    [nodes[s] for s in ctx.leaves()] >> outputs
    return outputs


def check_form_task(workflow: m.Workflow, ctx: BuildContext) -> CheckFormOperator | None:
    """A first task ``_check_form`` when the form has fields whose choices come from an API or that
    have a ``pattern``: it checks the run's values against the live choices and matches patterns with
    RE2 before anything else runs (and before the start notification). Create it inside the DAG before the steps, so it comes first."""

    # patterns too: the DAG's Params leave them out (Airflow would match them with backtracking `re`)
    if not api_fields(workflow.form) and not pattern_fields(workflow.form):
        return None
    kwargs: dict[str, Any] = {"task_id": CHECK_TASK_ID, "doc_md": "Check the request form against the live choices."}
    if workflow.defaults.retries is not None:
        kwargs["retries"] = workflow.defaults.retries
    if workflow.defaults.retry_delay:
        kwargs["retry_delay"] = parse_duration(workflow.defaults.retry_delay)
    return CheckFormOperator(
        form=workflow.form.model_dump(mode="json", exclude_unset=True, by_alias=True),
        scope=ScopeSpec(definitions=str(ctx.definitions)).as_dict(),
        **kwargs,
    )
