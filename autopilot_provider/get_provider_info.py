"""What the Autopilot provider offers, declared once for Airflow's provider discovery."""

from __future__ import annotations

from autopilot_provider import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-autopilot",
        "name": "Autopilot",
        "description": "Workflow definitions (YAML) compiled into Airflow DAGs: scripts, decisions, "
        "reusable functions, and the Autopilot UI plugin.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Autopilot",
                "external-doc-url": "https://github.com/autopilot/airflow-provider-autopilot",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Autopilot",
                "python-modules": [
                    "autopilot_provider.operators.script",
                    "autopilot_provider.operators.decision",
                    "autopilot_provider.operators.values",
                ],
            }
        ],
        "hooks": [],
        "triggers": [],
        "notifications": [],
        "connection-types": [],
        "bundles": [{"integration-name": "Autopilot", "python-modules": ["dag_factory.bundle"]}],
    }
