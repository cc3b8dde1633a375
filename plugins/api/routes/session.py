"""``/api/v1/session`` and ``/api/v1/schema``: what the UI needs to know before it shows anything —
who is logged in and what they may do, and the definition format's JSON Schema (one schema per step
kind drives the designer's property panels)."""

from __future__ import annotations

from autopilot_plugin.api.datamodels.session import SchemaOut, SessionOut, StepKindOut
from autopilot_plugin.api.deps import CanRead, GetUserDep, user_name
from autopilot_plugin.api.errors import ErrorDocs
from autopilot_plugin.api.permissions import Permission, has_permission, may_start_runs
from fastapi import APIRouter

from autopilot_provider.definitions.models import STEP_KINDS
from autopilot_provider.definitions.schema import definition_schema, step_schemas
from dag_factory.registry import NOT_YET

router = APIRouter(tags=["UI"])

errors = ErrorDocs()


@router.get("/session", operation_id="get_session", responses=errors(401))
def get_session(user: GetUserDep) -> SessionOut:
    """The calling user and the UI actions they are allowed."""
    design = has_permission(user, Permission.DESIGN)
    return SessionOut(
        user=user_name(user),
        user_id=str(user.get_id()),
        can_edit_definitions=design,
        can_author_code=has_permission(user, Permission.AUTHOR_CODE),
        can_trigger=may_start_runs(user),
        can_read_alert_deliveries=design or has_permission(user, Permission.ALERTS),
        can_replay_alerts=has_permission(user, Permission.ALERTS),
    )


@router.get("/schema", dependencies=[CanRead], operation_id="get_schema", responses=errors(401, 403))
def get_schema() -> SchemaOut:
    """The definition format's JSON Schema, derived from the models (the same as `autopilot schema`)."""
    kinds = [StepKindOut(kind=k, supported=k not in NOT_YET, note=NOT_YET.get(k)) for k in STEP_KINDS]
    return SchemaOut(definition=definition_schema(), steps=step_schemas(), step_kinds=kinds)
