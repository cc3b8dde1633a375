"""Autopilot's Airflow provider: operators, hooks and the definition format."""

__version__ = "0.1.0"
