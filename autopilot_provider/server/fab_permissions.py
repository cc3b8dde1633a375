"""Autopilot's permissions and roles in Airflow's FAB auth manager (the production option).

**Permissions.** FAB grants only permissions that exist in its tables, and ``airflow roles add-perms``
refuses a resource it does not know. ``autopilot permissions sync`` (also run by ``autopilot db
migrate`` when FAB is the auth manager) creates ``can_edit`` on each of Autopilot's custom resources
(:data:`RESOURCES`) and gives them to Airflow's Admin role; an admin grants them to other roles in the
UI (Security → Roles) or with ``airflow roles add-perms <role> -r "Autopilot Code" -a can_edit``.

**Roles.** ``autopilot roles sync`` also creates the four roles of :data:`ROLES` — Autopilot
Requester, Autopilot Approver, Autopilot Designer and Autopilot Admin — and sets each to exactly its permissions (adding what is missing,
removing what is not listed), through FAB's own security manager. Per-DAG permissions (``DAG:<id>``,
``DAG Run:<id>``) an admin or a DAG's ``access_control`` gave one of these roles are left alone: they
scope a role to some workflows, which is Airflow's model for per-DAG access. Run it again after an
upgrade (``deploy/init.sh`` does): it is idempotent.

Why these permissions (docs/security.md, "Roles with the FAB auth manager"): under FAB, every write to
a DAG's sub-entity — starting a run, answering a human-in-the-loop request — also needs edit access
to the DAG itself (``FabAuthManager.is_authorized_dag``), which lets its holder pause, unpause and
change any DAG in Airflow. Autopilot's portal and inbox therefore accept their own permissions,
``Autopilot Requests`` and ``Autopilot Approvals``, together with *read* access to the workflow's
runs or human-in-the-loop details, so requesters and approvers get no DAG edit access at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopilot_provider import config

#: Autopilot's custom resources (autopilot_plugin.api.permissions.Permission names the same ones).
DESIGN = "Autopilot Definitions"
AUTHOR_CODE = "Autopilot Code"
ALERTS = "Autopilot Alerts"
REQUESTS = "Autopilot Requests"
APPROVALS = "Autopilot Approvals"
RESOURCES = (DESIGN, AUTHOR_CODE, ALERTS, REQUESTS, APPROVALS)
#: The action every Autopilot permission uses (the auth manager's custom-view check with PUT).
ACTION = "can_edit"

#: FAB's resource names (``airflow.providers.fab.www.security.permissions``), written out so the
#: roles below read as the table docs/security.md shows.
DAGS, DAG_RUNS, HITL = "DAGs", "DAG Runs", "HITL Detail"
READ, EDIT = "can_read", "can_edit"
#: What every Autopilot role holds: its own account in FAB's pages, and the home page (FAB gives every
#: role that one whenever its app starts, ``add_homepage_access_to_custom_roles``).
BASE = frozenset(
    {(READ, "My Profile"), (EDIT, "My Profile"), (READ, "My Password"), (EDIT, "My Password"), (READ, "Website")}
)
#: Prefixes of FAB's per-DAG resources (``DAG:<id>``, ``DAG Run:<id>``): never touched by the sync.
PER_DAG_PREFIXES = ("DAG:", "DAG Run:")

#: The roles' names carry "Autopilot" so that a sync never rewrites a role a deployment already has
#: under a plain name such as "Designer".
REQUESTER = "Autopilot Requester"
APPROVER = "Autopilot Approver"
DESIGNER = "Autopilot Designer"
AUTOPILOT_ADMIN = "Autopilot Admin"


@dataclass(frozen=True)
class RoleSpec:
    name: str
    does: str
    permissions: frozenset[tuple[str, str]]


def _role(name: str, does: str, *permissions: tuple[str, str]) -> RoleSpec:
    return RoleSpec(name, does, BASE | frozenset(permissions))


_REQUESTER = _role(
    REQUESTER,
    "the portal: request the workflows it may read, follow its own requests",
    (READ, DAGS),
    (READ, DAG_RUNS),
    (ACTION, REQUESTS),
)
_APPROVER = _role(
    APPROVER,
    "the inbox: read the requests of the workflows it may read, vote and answer where a request names it",
    (READ, DAGS),
    (READ, HITL),
    (ACTION, APPROVALS),
)
_DESIGNER = _role(
    DESIGNER,
    "the designer: definitions, APIs, inventory, contacts (shared definitions need edit access to all DAGs)",
    (READ, DAGS),
    (EDIT, DAGS),
    (ACTION, DESIGN),
)
#: The four roles ``autopilot roles sync`` keeps, by name.
ROLES: dict[str, RoleSpec] = {
    spec.name: spec
    for spec in (
        _REQUESTER,
        _APPROVER,
        _DESIGNER,
        RoleSpec(
            AUTOPILOT_ADMIN,
            "everything in Autopilot: the three above, code, the alert delivery log and its replays",
            _REQUESTER.permissions
            | _APPROVER.permissions
            | _DESIGNER.permissions
            | {(ACTION, AUTHOR_CODE), (ACTION, ALERTS)},
        ),
    )
}


@dataclass(frozen=True)
class RoleChange:
    """What one sync did to one role."""

    role: str
    created: bool
    added: tuple[tuple[str, str], ...]
    removed: tuple[tuple[str, str], ...]
    total: int
    per_dag: int

    def describe(self) -> str:
        what = "created" if self.created else ("updated" if self.added or self.removed else "unchanged")
        parts = [f"role {self.role!r} {what}: {self.total} permission(s)"]
        if self.added:
            parts.append("added " + ", ".join(f"{a} on {r}" for a, r in self.added))
        if self.removed:
            parts.append("removed " + ", ".join(f"{a} on {r}" for a, r in self.removed))
        if self.per_dag:
            parts.append(f"{self.per_dag} per-DAG permission(s) kept")
        return "; ".join(parts)


def fab_is_auth_manager() -> bool:
    return "FabAuthManager" in config.auth_manager()


def is_per_dag(resource: str) -> bool:
    return resource.startswith(PER_DAG_PREFIXES)


def sync_fab_permissions() -> list[str]:
    """Create the permissions (idempotent) and give them to Admin; return what now exists."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        return _sync_permissions(appbuilder.sm)


def sync_fab_roles() -> list[RoleChange]:
    """:func:`sync_fab_permissions`, then create or update each role of :data:`ROLES` so that it holds
    exactly its permissions (per-DAG ones excepted, see the module's docstring)."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        manager = appbuilder.sm
        _sync_permissions(manager)
        return [_sync_role(manager, spec) for spec in ROLES.values()]


def _sync_permissions(manager) -> list[str]:
    admin = manager.find_role("Admin") or manager.add_role("Admin")
    done = []
    for resource in RESOURCES:
        permission = manager.create_permission(ACTION, resource)
        if permission is None:
            raise RuntimeError(f"FAB could not create the permission {ACTION} on {resource!r}")
        manager.add_permission_to_role(admin, permission)
        done.append(f"{ACTION} on {resource}")
    return done


def _sync_role(manager, spec: RoleSpec) -> RoleChange:
    role = manager.find_role(spec.name)
    created = role is None
    if role is None:
        role = manager.add_role(spec.name)
    held = {(p.action.name, p.resource.name): p for p in role.permissions}
    added = []
    for action, resource in sorted(spec.permissions - held.keys()):
        # create_permission returns the existing one when it is there (FAB's get-or-create)
        permission = manager.create_permission(action, resource)
        if permission is None:
            raise RuntimeError(f"FAB could not create the permission {action} on {resource!r}")
        manager.add_permission_to_role(role, permission)
        added.append((action, resource))
    removed = []
    for key in sorted(held.keys() - spec.permissions):
        if not is_per_dag(key[1]):
            manager.remove_permission_from_role(role, held[key])
            removed.append(key)
    per_dag = sum(1 for _, resource in held if is_per_dag(resource))
    return RoleChange(spec.name, created, tuple(added), tuple(removed), len(spec.permissions), per_dag)
