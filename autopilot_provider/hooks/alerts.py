"""``AlertHook``: deliver an event to an Alert endpoint of the Airflow API server
(``POST <base>/autopilot/api/v1/alerts/<id>``) the way an outside sender does — signed with the
alert's scheme (:func:`autopilot_provider.definitions.signatures.sign`) and the secret (or token) kept
as the password of the alert's Airflow connection. So an event a trigger raises takes the alert's
path: its match rules and routes, the runs it starts, the asset events, the delivery log.

The base URL is ``[autopilot] trigger_alert_base_url`` (default: the API server the workers reach,
see :func:`autopilot_provider.config.trigger_alert_base_url`). One attempt per call: the caller's
outbox and Airflow's task retries re-send, and the endpoint's idempotency by delivery id makes a
re-sent delivery start nothing new.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook

from autopilot_provider import config
from autopilot_provider.definitions.signatures import sign

#: Answers that mean the endpoint read the delivery and will never take it as it is (too large, not
#: JSON, or its mapped form values do not fit the target workflow): sending it again cannot help.
REJECTED = (413, 415, 422)


class AlertDeliveryError(Exception):
    """The delivery did not arrive, or was not taken (a 5xx, a refused signature): send it again."""


class AlertRejected(AlertDeliveryError):
    """The endpoint received the delivery and refuses it for good (its log has the reason)."""


def encode(payload: Any) -> bytes:
    """The body a payload is sent as: the same bytes for the same payload, every time."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


class AlertHook(BaseHook):
    """Deliver events to alert endpoints, signed with the secret of ``alert_conn_id`` (its password).

    :param alert_conn_id: the alert's ``auth.connection``
    :param scheme: the alert's ``auth.scheme`` (github, stripe, standard, bearer)
    :param base_url: the API server; default ``[autopilot] trigger_alert_base_url`` and its fallbacks
    :param timeout: seconds for the request
    """

    conn_name_attr = "alert_conn_id"
    default_conn_name = "autopilot_alert_default"
    hook_name = "Autopilot alert (sender)"

    def __init__(
        self,
        alert_conn_id: str = default_conn_name,
        *,
        scheme: str,
        base_url: str | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alert_conn_id = alert_conn_id
        self.scheme = scheme
        self.base_url = (base_url or config.trigger_alert_base_url()).rstrip("/")
        self.timeout = timeout

    def url(self, alert_id: str) -> str:
        return f"{self.base_url}/autopilot/api/v1/alerts/{quote(alert_id, safe='')}"

    def secret(self) -> str:
        password = self.get_connection(self.alert_conn_id).password
        if not password:
            raise AlertDeliveryError(
                f"the connection '{self.alert_conn_id}' has no password (the alert's secret or token)"
            )
        return password

    def deliver(
        self, alert_id: str, payload: Any, *, delivery_id: str, delivery_header: str | None = None
    ) -> dict[str, Any]:
        """POST ``payload`` to the alert, signed; its answer (``{"status": "accepted" | "duplicate" |
        "filtered", "runs": [...], ...}``). ``delivery_header``: the header the alert reads its
        delivery id from (its ``delivery_id.header``), which gets ``delivery_id`` too."""
        body = encode(payload)
        headers = {"Content-Type": "application/json"}
        headers.update(sign(self.scheme, self.secret(), body, delivery_id=delivery_id, timestamp=int(time.time())))
        if delivery_header:
            headers[delivery_header] = delivery_id
        url = self.url(alert_id)
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=self.timeout, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise AlertDeliveryError(f"POST {url}: {type(exc).__name__}: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {"text": response.text[:500]}
        if 200 <= response.status_code < 300:
            return answer if isinstance(answer, dict) else {"answer": answer}
        detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
        message = f"POST {url} answered HTTP {response.status_code}: {json.dumps(detail, default=str)[:1000]}"
        if response.status_code in REJECTED:
            raise AlertRejected(message)
        if response.status_code == 401:
            message += (
                f" (the endpoint refused the signature: the password of connection '{self.alert_conn_id}' must be "
                "the secret the alert's endpoint checks with, and the alert must exist without errors)"
            )
        raise AlertDeliveryError(message)
