"""Airflow asset URIs and names as definitions write them (`schedule: {assets: ...}`, a step's
`outlets`), checked by the rules Airflow's ``Asset`` applies to every URI before any provider's own
normaliser: not blank, at most 1,500 characters, the scheme ``airflow`` is reserved, and no password
in the URI (Airflow drops one with a warning; a definition is refused instead: credentials belong in
Connections). The provider normalisers (``postgres://``, ``s3://``, ...) run when the DAG is built,
where Airflow is imported (``dag_factory.assets``). No Airflow here."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

MAX_LENGTH = 1500
#: Names Airflow refuses for an asset.
RESERVED_NAMES = {"self", "context"}


def asset_uri_problem(uri: str) -> str | None:
    """Why Airflow would refuse ``uri`` as an asset URI (or Autopilot does), None when it is fine."""
    if not uri or uri.isspace():
        return "an asset URI cannot be empty or blank"
    if len(uri) > MAX_LENGTH:
        return f"an asset URI cannot exceed {MAX_LENGTH} characters"
    try:
        parsed = urllib.parse.urlsplit(uri)
        password = parsed.password
    except ValueError as exc:
        return f"invalid asset URI {uri!r}: {exc}"
    scheme = parsed.scheme.lower()
    if scheme == "airflow":
        return f"invalid asset URI {uri!r}: the scheme 'airflow' is reserved"
    if password:
        return "an asset URI must not contain a password (credentials belong in Airflow connections)"
    return None


def asset_name_problem(name: str) -> str | None:
    if not name or name.isspace():
        return "an asset name cannot be empty or blank"
    if len(name) > MAX_LENGTH:
        return f"an asset name cannot exceed {MAX_LENGTH} characters"
    if name in RESERVED_NAMES:
        return f"{name!r} is not allowed as an asset name"
    return None


def asset_problems(value: Any, loc: tuple, *, conditions: bool) -> Iterator[tuple[tuple, str]]:
    """(loc, message) for each bad URI or name in an asset condition (a string, ``{uri, name}``,
    ``{any: [...]}``, ``{all: [...]}`` or a list meaning all) given as parsed data or models;
    ``conditions=False`` (outlets): plain assets only."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from asset_problems(item, loc + (i,), conditions=conditions)
        return
    if isinstance(value, str):
        problem = asset_uri_problem(value)
        if problem:
            yield loc, problem
        return
    data = value if isinstance(value, dict) else value.model_dump(by_alias=True, exclude_none=True)
    for key in ("any", "all"):
        if data.get(key) is not None:
            if not conditions:
                yield loc + (key,), f"an outlet is one asset (a URI or {{uri, name}}), not a condition ({key})"
            else:
                yield from asset_problems(data[key], loc + (key,), conditions=True)
    for key, check in (("uri", asset_uri_problem), ("name", asset_name_problem)):
        if isinstance(data.get(key), str):
            problem = check(data[key])
            if problem:
                yield loc + (key,), problem
