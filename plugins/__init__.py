"""The Autopilot Airflow plugin (API server only): the REST API and the UI, mounted under /autopilot."""
