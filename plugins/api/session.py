"""``/api/v1/session`` and ``/api/v1/schema``: what the UI needs to know before it shows anything —
who is logged in and what they may do, and the definition format's JSON Schema (one schema per step
kind drives the designer's property panels)."""

from __future__ import annotations

from typing import Any

from autopilot_plugin.api.deps import CanRead, GetUserDep, user_name
from autopilot_plugin.api.permissions import Permission, has_permission, may_dag, run_entity
from fastapi import APIRouter
from pydantic import BaseModel, Field

from autopilot_provider.definitions.models import STEP_KINDS
from autopilot_provider.definitions.schema import definition_schema, step_schemas
from dag_factory.registry import NOT_YET

router = APIRouter(tags=["UI"])


class SessionOut(BaseModel):
    user: str = Field(description="The Airflow user name.")
    user_id: str
    can_edit_definitions: bool = Field(
        description="The designer permission ('Autopilot Definitions'): may save definitions in the designer."
    )
    can_author_code: bool = Field(
        description="The code-author permission ('Autopilot Code'): may add or change scripts that workers run."
    )
    can_trigger: bool = Field(description="DAG run create access: may start runs.")


class StepKindOut(BaseModel):
    kind: str
    supported: bool = Field(description="Whether this release compiles the kind (else it validates as 'not yet').")
    note: str | None = None


class SchemaOut(BaseModel):
    definition: dict[str, Any] = Field(description="JSON Schema of any definition file (dispatching on `kind`).")
    steps: dict[str, Any] = Field(description="Step kind → JSON Schema of its body.")
    step_kinds: list[StepKindOut]


@router.get("/session", operation_id="get_session", responses={401: {"description": "Not authenticated"}})
def get_session(user: GetUserDep) -> SessionOut:
    """The calling user and the UI actions they are allowed."""
    return SessionOut(
        user=user_name(user),
        user_id=str(user.get_id()),
        can_edit_definitions=has_permission(user, Permission.DESIGN),
        can_author_code=has_permission(user, Permission.AUTHOR_CODE),
        can_trigger=may_dag(user, "POST", None, run_entity()),
    )


@router.get("/schema", dependencies=[CanRead], operation_id="get_schema", responses={401: {}, 403: {}})
def get_schema() -> SchemaOut:
    """The definition format's JSON Schema, derived from the models (the same as `autopilot schema`)."""

    kinds = [StepKindOut(kind=k, supported=k not in NOT_YET, note=NOT_YET.get(k)) for k in STEP_KINDS]
    return SchemaOut(definition=definition_schema(), steps=step_schemas(), step_kinds=kinds)
