"""A ``notify`` step: resolve the recipients, render the message, send it (``AutopilotNotifier``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from autopilot_provider.notifications.autopilot import AutopilotNotifier


class NotifyOperator(BaseOperator):
    """Send one notification by e-mail and/or Slack. The step's outputs say what was sent:
    ``{"subject": ..., "email": [addresses], "slack": [channels or member ids]}``."""

    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        to: Sequence[str],
        via: Sequence[str] = ("email",),
        subject: str | None = None,
        template: str | None = None,
        body: str | None = None,
        event: str | None = None,
        smtp_conn_id: str | None = None,
        slack_conn_id: str | None = None,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = list(to)
        self.via = list(via)
        self.subject = subject
        self.template = template
        self.body = body
        self.event = event
        self.smtp_conn_id = smtp_conn_id
        self.slack_conn_id = slack_conn_id
        self.scope = scope or {}

    def notifier(self):

        return AutopilotNotifier(
            to=self.to,
            via=self.via,
            subject=self.subject,
            template=self.template,
            body=self.body,
            event=self.event,
            scope=self.scope,
            smtp_conn_id=self.smtp_conn_id,
            slack_conn_id=self.slack_conn_id,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        return self.notifier().send(context)
