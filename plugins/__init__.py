"""The Autopilot Airflow plugin: the REST API (mounted under /autopilot) and, later, the UI."""
