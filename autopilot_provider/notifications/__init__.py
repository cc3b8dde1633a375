"""Notifiers: Autopilot's e-mail and Slack notifications (``AutopilotNotifier``)."""
