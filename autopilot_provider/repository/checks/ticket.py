"""Checks of `ticket` steps (ServiceNow records)."""

from __future__ import annotations

from collections.abc import Iterator

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.tickets import CLOSE_FIELDS
from autopilot_provider.repository.checks.problems import Problem
from autopilot_provider.repository.protocol import Definitions


def _creates(step: m.Step) -> bool:
    return step.ticket is not None and step.ticket.action == "create"


def ticket_problems(definition: m.Workflow | m.Function, project: Definitions | None = None) -> Iterator[Problem]:
    """Ticket steps that cannot work: update/comment/close with no `ticket` in a definition without a
    `create` step, and closing a table whose closed states Autopilot does not know without `state`."""
    creates = any(_creates(s) for s in definition.steps)
    for i, step in enumerate(definition.steps):
        spec = step.ticket
        if spec is None or spec.action == "create":
            continue
        loc = ("steps", i, "ticket")
        if spec.ticket is None and not creates:
            yield (
                loc,
                f"step '{step.id}': {spec.action} needs `ticket` (a number or sys_id): there is no `create` "
                "ticket step to default to",
            )
        explicit = "table" in spec.model_fields_set or spec.ticket is not None
        if spec.action == "close" and explicit and spec.table not in CLOSE_FIELDS and "state" not in spec.fields:
            yield (
                loc + ("table",) if "table" in spec.model_fields_set else loc,
                f"step '{step.id}': closing a {spec.table} record needs its closing `state` in `fields` (Autopilot "
                f"knows the closed states of {', '.join(CLOSE_FIELDS)})",
            )
