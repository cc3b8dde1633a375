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


def api_base_url() -> str:
    """The Airflow API server's public URL (``[api] base_url``), for links in mails and messages."""
    configured = conf.get("api", "base_url", fallback=None)
    return (configured or f"http://localhost:{conf.get('api', 'port', fallback='8080')}").rstrip("/")


def auth_manager() -> str:
    """``[core] auth_manager``: the class path of Airflow's auth manager."""
    return conf.get("core", "auth_manager", fallback="") or ""
