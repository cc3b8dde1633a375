"""Autopilot's Airflow provider: the definition format (``definitions``, ``openapi``), the definitions
folder (``repository``), what runs on workers (``hooks``, ``operators``, ``triggers``,
``notifications``), the API server's services (``server``), configuration and the CLI. The layers and
what may import what: docs/architecture.md."""

__version__ = "0.1.0"
