"""``ServiceNowHook``: open, read, update and close records (tickets) through ServiceNow's Table API,
with the instance and credentials of an Airflow Connection of type ``autopilot_servicenow``.

* **Instance**: the connection's host (``acme.service-now.com``, or a full URL
  ``https://acme.service-now.com``; *Scheme* defaults to https, *Port* is optional).
* **Auth**: an OAuth2 access token in the extra ``token`` is sent as ``Authorization: Bearer``;
  otherwise login and password as HTTP basic.
* **Protocol**: ``POST /api/now/table/{table}`` creates, ``GET /api/now/table/{table}/{sys_id}`` or
  ``GET /api/now/table/{table}?sysparm_query=number=X&sysparm_limit=1`` reads, ``PATCH
  /api/now/table/{table}/{sys_id}`` updates; bodies are JSON in a ``{"result": ...}`` envelope,
  errors are ``{"error": {"message", "detail"}, "status": "failure"}``. A work note is a write to the
  journal field ``work_notes`` (ServiceNow appends it; reading the field back gives no history).
* **Closing** sets the table's state fields (:data:`CLOSE_FIELDS`): ``sc_request`` gets ``state`` and
  ``request_state``, ``incident`` is resolved (6) or canceled (8), and so on.
* **Re-sending** on 429 and 5xx (``Retry-After`` wins) and on connection errors, with backoff
  (:class:`~autopilot_provider.openapi.request.RetryPolicy`, as REST steps). A create is not re-sent
  after a timeout once the request may have reached ServiceNow, so a slow instance never gets two
  tickets for one step.
* **Secrets** (password, token, the basic credentials) are registered with Airflow's secrets masker
  before anything is logged.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook

from autopilot_provider.definitions.tickets import CLOSE_FIELDS
from autopilot_provider.hooks.openapi import _host_url, _mask, connection_extras
from autopilot_provider.openapi.request import RetryPolicy, excerpt, parse_body

CONN_TYPE = "autopilot_servicenow"
TABLE = re.compile(r"^[A-Za-z0-9_]+$")
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
NUMBER = re.compile(r"^[A-Za-z0-9_.-]+$")

RESOLUTIONS = ("completed", "rejected", "cancelled")


class ServiceNowError(Exception):
    """ServiceNow answered with an error (after the retries), or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """Sending the same request again will not help (a 4xx other than 408 and 429)."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in (408, 429)


class ServiceNowNotFound(ServiceNowError):
    """No record with that number or sys_id in the table."""


@dataclass
class Credentials:
    """What an ``autopilot_servicenow`` connection holds."""

    conn_id: str = ""
    instance_url: str | None = None
    login: str | None = None
    password: str | None = None
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    verify: bool | str = True

    @classmethod
    def from_connection(cls, conn: Any) -> Credentials:
        get, headers, verify = connection_extras(conn, CONN_TYPE)
        return cls(
            conn_id=getattr(conn, "conn_id", "") or "",
            instance_url=_host_url(conn),
            login=conn.login or None,
            password=conn.password or None,
            token=get("token"),
            headers=headers,
            verify=verify,
        )

    def authorization(self) -> str:
        if self.token:
            return f"Bearer {self.token}"
        if self.login and self.password is not None:
            return "Basic " + base64.b64encode(f"{self.login}:{self.password}".encode()).decode()
        raise ServiceNowError(
            f"connection '{self.conn_id}' has no credentials for ServiceNow: set its login and password "
            "(basic auth) or the extra `token` (an OAuth2 access token)"
        )

    def secrets(self) -> list[str]:
        values = [self.password, self.token]
        if self.login and self.password:
            values.append(base64.b64encode(f"{self.login}:{self.password}".encode()).decode())
        return [v for v in values if v]


def error_text(body: Any) -> str:
    """ServiceNow's own words from an error body: ``message (detail)``, else an excerpt."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        detail = error.get("detail")
        return f"{error['message']} ({detail})" if detail else str(error["message"])
    return excerpt(body if body is not None else "", 300)


def close_fields(table: str, resolution: str) -> dict[str, str] | None:
    """The fields that close a record of ``table`` with ``resolution``, None for an unknown table."""
    return CLOSE_FIELDS.get(table, {}).get(resolution)


class ServiceNowHook(BaseHook):
    """Records of a ServiceNow instance through its Table API (``/api/now/table``).

    :param servicenow_conn_id: the Airflow connection (instance and credentials)
    :param request_timeout: seconds per HTTP request
    :param retries: re-sends after 429, 5xx and connection errors
    :param backoff: first wait between re-sends, doubled each time (``Retry-After`` wins)
    """

    conn_name_attr = "servicenow_conn_id"
    default_conn_name = "servicenow_default"
    conn_type = CONN_TYPE
    hook_name = "ServiceNow (Autopilot)"

    def __init__(
        self,
        servicenow_conn_id: str = default_conn_name,
        *,
        request_timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        sleep=time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.servicenow_conn_id = servicenow_conn_id
        self.request_timeout = request_timeout
        self.policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff)
        self._sleep = sleep

    @cached_property
    def credentials(self) -> Credentials:
        creds = Credentials.from_connection(self.get_connection(self.servicenow_conn_id))
        _mask(*creds.secrets())
        return creds

    @property
    def instance_url(self) -> str:
        url = self.credentials.instance_url
        if not url:
            raise ServiceNowError(
                f"connection '{self.servicenow_conn_id}' has no host: set it to the instance, e.g. acme.service-now.com"
            )
        return url

    def record_url(self, table: str, sys_id: str) -> str:
        """A link that opens the record in ServiceNow's UI."""
        return f"{self.instance_url}/nav_to.do?uri={quote(f'/{table}.do?sys_id={sys_id}', safe='')}"

    # -- the Table API ----------------------------------------------------------------------------

    def create(self, table: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Insert a record; the record as ServiceNow stored it (with ``sys_id`` and ``number``)."""
        return self.request("POST", _path(table), body=fields)

    def get(self, table: str, reference: str) -> dict[str, Any]:
        """The record whose sys_id or number is ``reference``; :class:`ServiceNowNotFound` if none."""
        if SYS_ID.match(reference):
            try:
                return self.request("GET", _path(table, reference))
            except ServiceNowError as exc:
                if exc.status == 404:
                    raise ServiceNowNotFound(f"{table} has no record with sys_id {reference}", status=404) from None
                raise
        if not NUMBER.match(reference):
            raise ServiceNowNotFound(f"'{reference}' is neither a ticket number nor a sys_id", status=404)
        found = self.request("GET", _path(table), params={"sysparm_query": f"number={reference}", "sysparm_limit": "1"})
        if not found:
            raise ServiceNowNotFound(f"{table} has no record numbered {reference}", status=404)
        return found[0]

    def update(self, table: str, sys_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change fields of a record (a ``work_notes`` value is appended to its work notes)."""
        return self.request("PATCH", _path(table, sys_id), body=fields)

    def sys_id_of(self, table: str, reference: str) -> str:
        """``reference`` itself when it is a sys_id, else the sys_id of the record with that number."""
        return reference if SYS_ID.match(reference) else str(self.get(table, reference)["sys_id"])

    # -- sending ----------------------------------------------------------------------------------

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=self.request_timeout, verify=self.credentials.verify, follow_redirects=False)

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None) -> Any:
        """Send one Table API request with retries; the ``result`` of the answer, or
        :class:`ServiceNowError` naming ServiceNow's error message."""
        url = self.instance_url + path
        headers = {
            **self.credentials.headers,
            "Accept": "application/json",
            "Authorization": self.credentials.authorization(),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        query = {"sysparm_exclude_reference_link": "true", **(params or {})}
        attempt = 0
        with self.client() as client:
            while True:
                started = time.monotonic()
                try:
                    response = client.request(method, url, params=query, json=body, headers=headers)
                except httpx.TransportError as exc:
                    # A create that may have reached ServiceNow is not sent again: it would open a second ticket.
                    maybe_sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                    if attempt >= self.policy.retries or (method == "POST" and maybe_sent):
                        raise ServiceNowError(
                            f"ServiceNow {method} {path}: {_describe(exc)} (after {attempt + 1} attempt(s))"
                        ) from None
                    delay = self.policy.delay(attempt)
                    self.log.info("%s %s: %s; retrying in %.1fs", method, path, _describe(exc), delay)
                    self._sleep(delay)
                    attempt += 1
                    continue
                self.log.info(
                    "ServiceNow %s %s → HTTP %s (%.0f ms)",
                    method,
                    path,
                    response.status_code,
                    1000 * (time.monotonic() - started),
                )
                if self.policy.retriable(response.status_code) and attempt < self.policy.retries:
                    delay = self.policy.delay(attempt, {k.lower(): v for k, v in response.headers.items()})
                    self.log.info(
                        "HTTP %s: %s; retrying in %.1fs (retry %d of %d)",
                        response.status_code,
                        error_text(_body(response)),
                        delay,
                        attempt + 1,
                        self.policy.retries,
                    )
                    self._sleep(delay)
                    attempt += 1
                    continue
                answer = _body(response)
                if response.status_code >= 400:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    kind = ServiceNowNotFound if response.status_code == 404 else ServiceNowError
                    raise kind(
                        f"ServiceNow answered HTTP {response.status_code} to {method} {path}{tries}: {error_text(answer)}",
                        status=response.status_code,
                    )
                if not isinstance(answer, dict) or "result" not in answer:
                    raise ServiceNowError(
                        f"ServiceNow answered {method} {path} with HTTP {response.status_code} but no "
                        f"`result`: {excerpt(answer if answer is not None else '', 300)} (is the host the instance?)",
                        status=response.status_code,
                    )
                return answer["result"]

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's *Test* button: can the credentials read one record of ``sc_request``?"""
        try:
            self.request("GET", _path("sc_request"), params={"sysparm_limit": "1", "sysparm_fields": "sys_id"})
        except Exception as exc:  # noqa: BLE001 - reported to the user
            return False, str(exc)
        return True, f"{self.instance_url} answered: the credentials can read sc_request"


def _path(table: str, sys_id: str | None = None) -> str:
    if not TABLE.match(table):
        raise ServiceNowError(f"'{table}' is not a table name (letters, digits and underscores)")
    return f"/api/now/table/{table}" + (f"/{quote(sys_id, safe='')}" if sys_id else "")


def _body(response: httpx.Response) -> Any:
    return parse_body(response.content, response.headers.get("content-type") or "application/json")


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
