"""`ticket: {action, table, ticket, fields, note, resolution}` → ``ServiceNowTicketOperator``."""

from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.operators.ticket import ServiceNowTicketOperator
from dag_factory.compilers.task import seconds
from dag_factory.context import BuildContext


def compile_ticket(step: m.Step, ctx: BuildContext) -> ServiceNowTicketOperator:
    spec = step.ticket
    assert spec is not None
    return ServiceNowTicketOperator(
        action=spec.action,
        # an unset table follows the ticket the step defaults to (see the operator)
        table=spec.table if "table" in spec.model_fields_set or spec.action == "create" else None,
        ticket=spec.ticket,
        fields=dict(spec.fields),
        note=spec.note,
        resolution=spec.resolution,
        connection=spec.connection,
        created_by=[ctx.output_task(s) for s in ctx.steps if _creates(s) and s.id != step.id],
        request_timeout=seconds(spec.request_timeout),
        http_retries=spec.http_retries,
        backoff=seconds(spec.backoff),
        scope=ctx.scope(),
        **ctx.task_kwargs(step),
    )


def _creates(step: m.Step) -> bool:
    return step.ticket is not None and step.ticket.action == "create"
