"""Who may do what in Autopilot: the one implementation of every permission check of the plugin.

Everything goes through Airflow's configured auth manager (``get_auth_manager()``); nothing here keeps
its own user list. Two kinds of permission (docs/security.md has the table per endpoint):

* **DAG permissions** (Airflow's own): reading definitions and workflows needs DAG read access,
  starting a run needs DAG-run create access on that workflow, answering needs HITL access on it, and
  saving a workflow needs DAG edit access on *that* workflow's DAG id (none for a workflow id no DAG
  has yet). A check never takes the DAG id from the caller's query string: it is either the id the
  route names or none (all DAGs).
* **Autopilot permissions**, custom resources an admin grants:

  - ``Autopilot Definitions`` (*designer*): save definitions composed of reviewed parts — REST
    operations, forms, approvals, decisions, notifications, tickets, functions, contacts, inventory.
  - ``Autopilot Code`` (*code author*): save a definition that adds or changes code a worker runs (a
    script's body, language, working directory or the connections it receives). Whoever can do that
    can run anything the workers can, which Airflow's security model calls a DAG author.
  - ``Autopilot Alerts`` (*alert admin*): replay a logged alert delivery — start its runs again
    without the sender's signature (admins by default).
  - ``Autopilot Requests`` (*requester*) and ``Autopilot Approvals`` (*approver*): start runs of a
    workflow through Autopilot with *read* access to its runs, and answer its human-in-the-loop
    requests through Autopilot with *read* access to them. Airflow's FAB auth manager couples every
    write to a DAG's runs or HITL details with edit access to the DAG itself (pause, unpause, change
    it in Airflow); these two let requesters and approvers do their part without it. Airflow's own
    write access (DAG-run create, HITL edit) is accepted as well, so with the SimpleAuthManager,
    whose roles carry it, nothing needs configuring (these two are not used with it).

  With Airflow's FAB auth manager (or any other) they are custom-view permissions
  (``is_authorized_custom_view``: ``can_edit`` on the resource; ``autopilot roles sync`` creates
  roles holding them, autopilot_provider/server/fab_permissions.py). The SimpleAuthManager allows
  every custom view to every user, so with it the first three are configured by role instead:
  ``[autopilot] designer_roles`` (default ``user,op,admin``), ``[autopilot] code_author_roles``
  (default ``admin``) and ``[autopilot] alert_admin_roles`` (default ``admin``).

Routes use the dependencies built here (``CanRead``, ``CanDesign``, :func:`requires_workflow`), re-exported
by :mod:`autopilot_plugin.api.deps`, or call the checks for what only the route knows (the content saved,
the DAG of an approval). Every DAG check is :func:`may_dag`, which passes the DAG's team to the auth
manager (Airflow's multi-team mode). A refused check raises Airflow's way: an ``HTTPException`` 403 with
``{"message", "field"}`` as its detail.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.models import DagModel
from airflow.utils.session import create_session
from fastapi import Depends, HTTPException, Path, status
from sqlalchemy import select

from autopilot_provider import config
from autopilot_provider.definitions.code import added_code
from autopilot_provider.definitions.source import quick_header
from autopilot_provider.server import fab_permissions as fab

Method = Literal["GET", "POST", "PUT", "DELETE"]


class Permission(StrEnum):
    """Autopilot's own permissions (custom-view resources of the auth manager)."""

    DESIGN = fab.DESIGN
    AUTHOR_CODE = fab.AUTHOR_CODE
    ALERTS = fab.ALERTS
    REQUEST = fab.REQUESTS
    APPROVE = fab.APPROVALS


#: SimpleAuthManager: the ``[autopilot]`` option naming the roles that hold each permission.
_ROLE_OPTIONS = {
    Permission.DESIGN: "designer_roles",
    Permission.AUTHOR_CODE: "code_author_roles",
    Permission.ALERTS: "alert_admin_roles",
}
_WHAT = {
    Permission.DESIGN: "save definitions",
    Permission.AUTHOR_CODE: "save code that workers run",
    Permission.ALERTS: "replay alert deliveries",
    Permission.REQUEST: "request workflows",
    Permission.APPROVE: "answer requests",
}


def _is_simple(manager: Any) -> bool:
    return isinstance(manager, SimpleAuthManager)


def configured_roles(permission: Permission) -> set[str]:
    """SimpleAuthManager roles (lower case) that hold ``permission``."""
    return {role.lower() for role in config.get_list(_ROLE_OPTIONS[permission])}


def has_permission(user: BaseUser, permission: Permission) -> bool:
    """Whether ``user`` holds one of Autopilot's own permissions."""
    manager = get_auth_manager()
    if _is_simple(manager):
        role = getattr(user, "role", None)
        if not role or permission not in _ROLE_OPTIONS:
            # requesting and answering: the SimpleAuthManager's roles carry Airflow's own access
            return False
        return str(role).lower() in configured_roles(permission)
    return bool(manager.is_authorized_custom_view(method="PUT", resource_name=permission.value, user=user))


def team_of(dag_id: str) -> str | None:
    """The team that owns a DAG (Airflow's multi-team mode), ``None`` when none does or it is unknown."""
    try:
        return DagModel.get_team_name(dag_id)
    except Exception:  # noqa: BLE001 - a DAG not parsed yet, or no team tables: no team
        return None


def may_dag(user: BaseUser, method: Method, dag_id: str | None = None, entity: Any = None) -> bool:
    """Airflow's DAG permission for ``dag_id`` (with its team), or for all DAGs when ``dag_id`` is None."""
    details = DagDetails(id=dag_id, team_name=team_of(dag_id)) if dag_id else None
    return bool(get_auth_manager().is_authorized_dag(method=method, access_entity=entity, details=details, user=user))


def run_entity() -> DagAccessEntity:
    """The DAG's runs (read them, start one)."""
    return DagAccessEntity.RUN


def hitl_entity() -> DagAccessEntity:
    """The DAG's human-in-the-loop details (read them, answer one)."""
    return DagAccessEntity.HITL_DETAIL


def dag_exists(dag_id: str) -> bool:
    """Whether Airflow has (or had: a stale DAG keeps its row) a DAG with this id."""
    with create_session() as session:
        return session.scalar(select(DagModel.dag_id).where(DagModel.dag_id == dag_id)) is not None


def may_start_runs(user: BaseUser, dag_id: str | None = None) -> bool:
    """Whether ``user`` may start runs of ``dag_id`` (of some DAG, when None) through Autopilot:
    Airflow's DAG-run create access (under FAB: with DAG edit access), or the ``Autopilot Requests``
    permission with read access to the DAG's runs."""
    if may_dag(user, "POST", dag_id, run_entity()):
        return True
    return has_permission(user, Permission.REQUEST) and may_dag(user, "GET", dag_id, run_entity())


def may_answer(user: BaseUser, dag_id: str) -> bool:
    """Whether ``user`` may answer (vote on, fill in) the human-in-the-loop requests of ``dag_id``
    through Autopilot: Airflow's HITL edit access (under FAB: with DAG edit access), or the ``Autopilot
    Approvals`` permission with read access to them. Being asked is checked after, by the request's
    rules."""
    if may_dag(user, "PUT", dag_id, hitl_entity()):
        return True
    return has_permission(user, Permission.APPROVE) and may_dag(user, "GET", dag_id, hitl_entity())


def forbidden(message: str, field: str | None = None) -> HTTPException:
    detail: dict[str, Any] = {"message": message}
    if field:
        detail["field"] = field
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def require_permission(user: BaseUser, permission: Permission, *, field: str | None = None, why: str = "") -> None:
    if not has_permission(user, permission):
        raise forbidden(
            f"you may not {_WHAT[permission]}{why}: that needs the '{permission.value}' permission", field=field
        )


def require_dag(
    user: BaseUser,
    method: Method,
    dag_id: str,
    *,
    what: str,
    needs: str,
    field: str | None = None,
    entity: Any = None,
) -> None:
    """403 unless ``user`` may do ``method`` on ``dag_id`` (on its ``entity``: runs, HITL details);
    the refusal says what it ``needs``."""
    if not may_dag(user, method, dag_id, entity):
        raise forbidden(f"you may not {what} '{dag_id}': that needs {needs}", field=field)


#: What answering needs, as refusals and the inbox say it.
ANSWER_NEEDS = (
    f"the '{Permission.APPROVE.value}' permission and read access to its human-in-the-loop requests, or "
    "edit access to them"
)


def require_hitl(user: BaseUser, dag_id: str, method: Literal["GET", "PUT"]) -> None:
    """403 unless ``user`` may read (``GET``) or answer (``PUT``, :func:`may_answer`) the
    human-in-the-loop requests of ``dag_id``."""
    if method == "GET":
        require_dag(
            user,
            "GET",
            dag_id,
            what="read human-in-the-loop requests of",
            needs="read access to them",
            field="dag_id",
            entity=hitl_entity(),
        )
    elif not may_answer(user, dag_id):
        raise forbidden(f"you may not answer human-in-the-loop requests of '{dag_id}': that needs {ANSWER_NEEDS}")


def require_start_runs(user: BaseUser, dag_id: str, *, what: str = "start runs of workflow") -> None:
    """403 unless ``user`` may start runs of ``dag_id`` (:func:`may_start_runs`)."""
    if not may_start_runs(user, dag_id):
        raise forbidden(
            f"you may not {what} '{dag_id}': that needs the '{Permission.REQUEST.value}' permission and read "
            "access to its runs, or DAG-run create access to it"
        )


def _reads_dags(user: GetUserDep) -> None:
    # all DAGs: the id is never taken from the query string (a per-DAG auth manager would accept
    # ``?dag_id=<one the caller may read>`` for every definition)
    if not may_dag(user, "GET"):
        raise forbidden("you may not read workflow definitions: that needs read access to DAGs")


def _designs(user: GetUserDep) -> None:
    require_permission(user, Permission.DESIGN)


def _reads_deliveries(user: GetUserDep) -> None:
    # the delivery log shows what senders sent (masked): designers and alert admins
    if not (has_permission(user, Permission.DESIGN) or has_permission(user, Permission.ALERTS)):
        raise forbidden(
            "you may not read the alert delivery log: that needs the 'Autopilot Definitions' or the "
            "'Autopilot Alerts' permission"
        )


#: A path parameter naming a workflow; its DAG id is the workflow id.
WorkflowId = Annotated[str, Path(description="The workflow id (its Airflow DAG id).")]


def requires_workflow(method: Method, run: bool = False) -> Any:
    """A route dependency: the caller may do ``method`` on the DAG of the workflow the path names
    (``{workflow_id}``), on its runs with ``run``; else 403."""

    def check(workflow_id: WorkflowId, user: GetUserDep) -> None:
        if run and method == "POST":
            require_start_runs(user, workflow_id)
        else:
            require_dag(
                user,
                method,
                workflow_id,
                what="read workflow",
                needs="read access to it",
                entity=run_entity() if run else None,
            )

    return Depends(check)


#: Reading definitions, the catalog and the schema: read access to (all) DAGs.
CanRead = Depends(_reads_dags)
#: Reading the alert delivery log: the designer or the alert-admin permission.
CanReadDeliveries = Depends(_reads_deliveries)
#: Changing definitions or importing APIs: the designer permission. Routes that save content also
#: call :func:`authorize_definition_change` (DAG edit on the workflow's id, the code-author permission).
CanDesign = Depends(_designs)


def authorize_definition_change(
    user: BaseUser, path: str, old_text: str | None, new_text: str | None, *, code: bool = True
) -> None:
    """Beyond the designer permission (the route's), what saving ``new_text`` over ``old_text`` at
    ``path`` needs: DAG edit access on each workflow id involved (the one saved and the one replaced;
    none for a new workflow id that no DAG has yet: there is nothing of anyone's to change, and Airflow
    has no per-DAG permission to grant for it before it is parsed), and the code-author permission when
    the new text adds or changes code a worker runs (unless ``code`` is false: rejecting a change needs
    only the DAG edit access)."""

    for text, saved in ((old_text, False), (new_text, True)):
        kind, ident = quick_header(text) if text else (None, None)
        if kind == "Workflow" and ident:
            if saved and not may_dag(user, "PUT", ident) and not dag_exists(ident):
                continue  # a new workflow: a clash with another file's id is refused by the store
            require_dag(user, "PUT", ident, what="change workflow", needs="edit access to its DAG", field="content")
        elif text is not None and not may_dag(user, "PUT"):
            # a function, an API, the contacts or the inventory is shared: it changes what every
            # workflow using it does, so it needs edit access to all DAGs, not to one
            raise forbidden(
                f"you may not change the shared definition {path!r} ({kind or 'unknown kind'}): that needs edit "
                "access to all DAGs, since every workflow may use it",
                field="content",
            )
    added = added_code(old_text, new_text, path) if code else []
    if added:
        shown = ", ".join(added[:3]) + (f" and {len(added) - 3} more" if len(added) > 3 else "")
        require_permission(user, Permission.AUTHOR_CODE, field="content", why=f" ({shown})")
