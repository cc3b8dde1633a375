"""Compile Autopilot definitions into Airflow DAGs."""
