"""Autopilot's permissions as FAB resources, so that Airflow's FAB auth manager can grant them.

FAB grants only permissions that exist in its tables, and ``airflow roles add-perms`` refuses a
resource it does not know. ``autopilot permissions sync`` (also run by ``autopilot db migrate`` when
FAB is the auth manager) creates ``can_edit`` on ``Autopilot Definitions``, ``Autopilot Code`` and
``Autopilot Alerts`` and gives them to the Admin role; an admin then grants them to other roles in the UI (Security → Roles)
or with ``airflow roles add-perms <role> -r "Autopilot Code" -a can_edit``.
"""

from __future__ import annotations

from autopilot_provider import config

#: The custom resources (see autopilot_plugin.api.permissions.Permission) and the action they use.
RESOURCES = ("Autopilot Definitions", "Autopilot Code", "Autopilot Alerts")
ACTION = "can_edit"


def fab_is_auth_manager() -> bool:
    return "FabAuthManager" in config.auth_manager()


def sync_fab_permissions() -> list[str]:
    """Create the permissions (idempotent) and give them to Admin; return what now exists."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        manager = appbuilder.sm
        admin = manager.find_role("Admin") or manager.add_role("Admin")
        done = []
        for resource in RESOURCES:
            permission = manager.create_permission(ACTION, resource)
            if permission is None:
                raise RuntimeError(f"FAB could not create the permission {ACTION} on {resource!r}")
            manager.add_permission_to_role(admin, permission)
            done.append(f"{ACTION} on {resource}")
        return done
