"""Every ``[autopilot]`` option, read in one place.

Each option is declared once, with its description, type and default, in
:func:`autopilot_provider.get_provider_info.get_provider_info` (``config``), which is what
``airflow config list`` shows. The functions here read an option through Airflow's configuration
(so ``AIRFLOW__AUTOPILOT__<NAME>`` environment variables and secrets backends work) and fall back to
that declared default; reading an option that is not declared is a programming error
(:class:`KeyError`), which keeps the declaration and the code from drifting apart. Options are read
on each call, so a changed configuration applies without a restart where the caller allows it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from airflow.configuration import conf

from autopilot_provider.get_provider_info import get_provider_info

SECTION = "autopilot"


@cache
def declared() -> dict[str, dict[str, Any]]:
    """The options ``get_provider_info`` declares: name → {description, type, default, …}."""
    return get_provider_info()["config"][SECTION]["options"]


def get(name: str) -> str:
    """An option as text: the configured value, else its declared default."""
    default = declared()[name]["default"]
    value = conf.get(SECTION, name, fallback=None)
    return default if value is None else value


def get_list(name: str) -> list[str]:
    """A comma-separated option as its stripped, non-empty items."""
    return [item.strip() for item in (get(name) or "").split(",") if item.strip()]


def get_bool(name: str) -> bool:
    return (get(name) or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


def get_float(name: str) -> float:
    value = get(name)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(declared()[name]["default"])


def get_int(name: str) -> int:
    value = get(name)
    try:
        return int(value)
    except (TypeError, ValueError):
        return int(declared()[name]["default"])


# -- named options (the ones read in more than one place, or with more than a default) -----------


def definitions_dir(explicit: str | os.PathLike[str] | None = None) -> str:
    """The definitions folder, resolved the same way everywhere (the plugin's API, the CLI, the DAG
    bundle, workers): ``explicit`` (a bundle's ``definitions`` argument, a CLI ``--definitions``), else
    the ``AUTOPILOT_DEFINITIONS`` environment variable, else ``[autopilot] definitions_dir``, else
    ``[core] dags_folder``."""
    return str(
        explicit or os.environ.get("AUTOPILOT_DEFINITIONS") or get("definitions_dir") or conf.get("core", "dags_folder")
    )


def on_behalf_users() -> set[str]:
    """Airflow accounts that may name someone else as a form's requester."""
    return set(get_list("on_behalf_users"))


def allow_self_approval() -> bool:
    """Whether ``exclude_requester: false`` may let a requester approve their own request."""
    return get_bool("allow_self_approval")


def script_env_allowlist() -> list[str]:
    """Names or globs of the worker's environment variables script steps may see besides the base list."""
    return get_list("script_env_allowlist")


def oauth_token_url_allowlist() -> list[str]:
    """Origins or URL prefixes OAuth2 client credentials may be sent to when the OpenAPI document names
    the token URL (comma or newline separated)."""
    return [
        entry.strip()
        for entry in (get("oauth_token_url_allowlist") or "").replace("\n", ",").split(",")
        if entry.strip()
    ]


def fetch_allowlist() -> str:
    """The internal hosts and networks OpenAPI imports by URL may fetch from, as written (parsed by
    :meth:`autopilot_provider.openapi.sources.Allowlist.parse`, which names a bad entry)."""
    return get("fetch_allowlist") or ""


def request_max_ahead_days() -> int:
    """How many days ahead a request may ask to start (``start_at``)."""
    return get_int("request_max_ahead_days")


def choices_cache_seconds() -> float:
    """How long a form field's choices fetched from an API are kept."""
    return get_float("choices_cache_seconds")


def smtp_conn_id() -> str:
    """The SMTP connection approval mails and notifications go out through (empty: the default)."""
    return get("smtp_conn_id") or declared()["smtp_conn_id"]["default"]


def slack_conn_id() -> str:
    """The Slack connection approval messages and notifications go out through (empty: the default)."""
    return get("slack_conn_id") or declared()["slack_conn_id"]["default"]


def api_base_url() -> str:
    """The Airflow API server's public URL (``[api] base_url``), for links in mails and messages."""
    configured = conf.get("api", "base_url", fallback=None)
    return (configured or f"http://localhost:{conf.get('api', 'port', fallback='8080')}").rstrip("/")


def auth_manager() -> str:
    """``[core] auth_manager``: the class path of Airflow's auth manager."""
    return conf.get("core", "auth_manager", fallback="") or ""


def execution_api_server_url() -> str | None:
    """``[core] execution_api_server_url``: where workers reach the API server (None: not set)."""
    return conf.get("core", "execution_api_server_url", fallback=None) or None


def trigger_alert_base_url() -> str:
    """Where trigger tasks deliver alerts: ``[autopilot] trigger_alert_base_url``, else the API server
    the workers already reach (``[core] execution_api_server_url`` without ``/execution``), else
    :func:`api_base_url`."""
    configured = (get("trigger_alert_base_url") or "").strip()
    if configured:
        return configured.rstrip("/")
    execution = execution_api_server_url()
    if execution:
        return execution.rstrip("/").removesuffix("/execution").rstrip("/")
    return api_base_url()
