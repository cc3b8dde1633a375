"""The Airflow plugin: registers the Autopilot FastAPI app under ``/autopilot`` on the API server."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from autopilot_plugin.app import app


class AutopilotPlugin(AirflowPlugin):
    name = "autopilot"
    fastapi_apps = [{"app": app, "url_prefix": "/autopilot", "name": "Autopilot API"}]
