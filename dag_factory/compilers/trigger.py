"""A `Trigger` definition → its own DAG: one task, ``check`` (``TriggerOperator``), on the trigger's
schedule, one run at a time, no catch-up — an ordinary DAG, visible, logged and pausable in Airflow.
Its id is the trigger's id (workflow and trigger ids share the DAG namespace)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.durations import parse_duration
from autopilot_provider.operators.trigger import TriggerOperator
from autopilot_provider.repository.protocol import Definitions
from autopilot_provider.repository.scope import ScopeSpec
from autopilot_provider.repository.trigger_state import variable_key
from dag_factory.builder import schedule_kwargs
from dag_factory.compilers.task import seconds

TASK_ID = "check"


def build_trigger_dag(trigger: m.Trigger, project: Definitions, *, source: str = "") -> DAG:
    """Build the Airflow DAG of a validated trigger (a `rest` data point: the others do not validate)."""
    rest = trigger.rest
    assert rest is not None
    doc = [f"# {trigger.title or trigger.id}"]
    if trigger.description:
        doc.append(trigger.description)
    doc.append(
        f"Reads `{rest.api}.{rest.operation}`; fires when `{trigger.condition}`"
        + (f" has held for {trigger.for_}" if trigger.for_ else "")
        + f", resolves when `{trigger.resolve or f'not ({trigger.condition})'}`."
        + (f" Raises alert `{trigger.alert}`." if trigger.alert else "")
        + f" State: Airflow Variable `{variable_key(trigger.id)}`."
    )
    if source:
        doc.append(f"Defined in `{source}` (Autopilot trigger).")
    default_args: dict[str, Any] = {"owner": trigger.owner} if trigger.owner else {}
    paused: dict[str, Any] = {"is_paused_upon_creation": True} if trigger.start_paused else {}
    with DAG(
        dag_id=trigger.id,
        description=trigger.title,
        doc_md="\n\n".join(doc),
        **schedule_kwargs(trigger.schedule),
        max_active_runs=1,
        tags=["autopilot", "trigger"],
        default_args=default_args,
        render_template_as_native_obj=False,
        **paused,
    ) as dag:
        notify = None
        if trigger.notify is not None:
            spec = trigger.notify
            notify = {"to": list(spec.to), "via": list(spec.via), "subject": spec.subject}
            notify.update({"template": spec.template, "body": spec.body})
        TriggerOperator(
            task_id=TASK_ID,
            trigger_id=trigger.id,
            title=trigger.title,
            owner=trigger.owner,
            api=rest.api,
            operation=rest.operation,
            parameters=dict(rest.params),
            connection=rest.connection,
            request_timeout=seconds(rest.request_timeout),
            http_retries=rest.http_retries,
            backoff=seconds(rest.backoff),
            value=trigger.value,
            condition=trigger.condition,
            resolve=trigger.resolve,
            hold=seconds(trigger.for_) if trigger.for_ else 0.0,
            alert=trigger.alert,
            notify=notify,
            scope=ScopeSpec(definitions=str(project.root), owner=trigger.owner).as_dict(),
            retries=trigger.retries,
            retry_delay=parse_duration(trigger.retry_delay),
            execution_timeout=parse_duration(trigger.timeout) if trigger.timeout else None,
            doc_md="Read the data point, move the trigger's state, deliver its transitions.",
        )
    return dag
