"""The Airflow plugin: registers the Autopilot FastAPI app under ``/autopilot`` on the API server, and
the Autopilot UI (served by that app at ``/autopilot/ui``) as external views in Airflow's navigation.

Each view is an iframe page of Airflow's UI (``url_route`` set): the designer, the form portal, the
approvals inbox and the alerts (sources and delivery log) under an "Autopilot" menu. ``href`` is relative, so it resolves against Airflow's base
URL and works behind a sub-path. Why an external view and not a React app plugin: see the README.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from autopilot_plugin.app import app

_ICON = "autopilot/ui/icon.svg"
_ICON_DARK = "autopilot/ui/icon-dark.svg"


def _view(name: str, route: str, page: str) -> dict:
    return {
        "name": name,
        "href": f"autopilot/ui/{page}",
        "url_route": route,
        "destination": "nav",
        "category": "Autopilot",
        "icon": _ICON,
        "icon_dark_mode": _ICON_DARK,
    }


class AutopilotPlugin(AirflowPlugin):
    name = "autopilot"
    fastapi_apps = [{"app": app, "url_prefix": "/autopilot", "name": "Autopilot API"}]
    external_views = [
        _view("Request a service", "autopilot-requests", "requests"),
        _view("Approvals", "autopilot-approvals", "approvals"),
        _view("Workflow designer", "autopilot-designer", "designer"),
        _view("Alerts", "autopilot-alerts", "alerts"),
    ]
