"""Dependencies shared by the plugin's routes, defined once: who is calling, what they may do, which
definition store and approvals service a request uses.

Plugin routes are not protected by Airflow automatically, so every route declares a permission
dependency (``CanRead``, ``CanDesign``, ``requires_workflow(...)``, re-exported here from
:mod:`autopilot_plugin.api.permissions`, the one implementation of the checks) or takes ``GetUserDep``
and checks what only it knows. They go through Airflow's configured auth manager: no or expired token
→ 401, invalid token or not allowed → 403. They use the process-wide ``get_auth_manager()``, which
works inside a mounted sub-app (``request.app.state.auth_manager`` does not: ``request.app`` is this
sub-app).
"""

from __future__ import annotations

from typing import Annotated

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import GetUserDep
from autopilot_plugin.api.permissions import CanDesign, CanRead, CanReadDeliveries, WorkflowId, requires_workflow
from fastapi import Depends

from autopilot_provider import config
from autopilot_provider.server.alerts import Deliveries
from autopilot_provider.server.approvals import Approvals
from autopilot_provider.server.definition_store import DefinitionStore
from dag_factory.bundle import refresh_bundles


def get_store() -> DefinitionStore:
    """The definitions folder the API serves (resolved per request, so configuration changes apply)."""
    return DefinitionStore(refresh=refresh_bundles)


StoreDep = Annotated[DefinitionStore, Depends(get_store)]


def get_approvals() -> Approvals:
    """The approvals service (approval and form requests, votes, signed links)."""
    return Approvals()


ApprovalsDep = Annotated[Approvals, Depends(get_approvals)]


def get_deliveries() -> Deliveries:
    """The alert endpoints of the definitions folder and their delivery log."""
    return Deliveries(config.definitions_dir())


DeliveriesDep = Annotated[Deliveries, Depends(get_deliveries)]


def user_name(user: BaseUser) -> str:
    """The name recorded as a revision's author, a voter, a run's requester."""
    return user.get_name() or str(user.get_id())


__all__ = [
    "ApprovalsDep",
    "CanDesign",
    "CanRead",
    "CanReadDeliveries",
    "DeliveriesDep",
    "GetUserDep",
    "StoreDep",
    "WorkflowId",
    "get_approvals",
    "get_deliveries",
    "get_store",
    "requires_workflow",
    "user_name",
]
