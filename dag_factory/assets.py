"""Asset schedules and outlets → Airflow ``Asset``, ``AssetAny`` and ``AssetAll``.

Constructing Airflow's ``Asset`` applies every rule Airflow has for a URI, including the normaliser
of the provider that owns its scheme (``postgres://`` needs a database, schema and table, ...); the
format checked the generic rules already (``autopilot_provider.definitions.assets``). A URI a
provider refuses raises :class:`AssetDefinitionError` with its location in the definition, which the
loader reports as ``file:line:col: message``."""

from __future__ import annotations

import warnings
from typing import Any

from airflow.sdk import Asset, AssetAll, AssetAny

from autopilot_provider.definitions import models as m


class AssetDefinitionError(ValueError):
    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


def asset(value: str | m.AssetExpr, loc: tuple) -> Asset:
    """One asset: a URI (its name is the URI, as ``Asset(uri)``) or ``{uri, name}``."""
    if isinstance(value, str):
        uri, name = value, None
    else:
        if value.any_ is not None or value.all_ is not None:
            raise AssetDefinitionError(loc, "an outlet is one asset (a URI or {uri, name}), not a condition")
        uri, name = value.uri, value.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # e.g. a password Airflow would drop
            if name is None:
                return Asset(uri=uri)
            return Asset(name=name, uri=uri) if uri is not None else Asset(name=name)
    except (ValueError, TypeError, UserWarning) as exc:
        where = loc + (("uri",) if not isinstance(value, str) and uri is not None else ())
        raise AssetDefinitionError(where, f"invalid asset URI {uri or name!r}: {exc}") from None


def condition(value: Any, loc: tuple) -> Any:
    """An asset condition: a list (all of them), ``{any: [...]}``, ``{all: [...]}`` or one asset."""
    if isinstance(value, list):
        members = [condition(v, loc + (i,)) for i, v in enumerate(value)]
        return members[0] if len(members) == 1 else AssetAll(*members)
    if isinstance(value, m.AssetExpr) and value.any_ is not None:
        return AssetAny(*(condition(v, loc + ("any", i)) for i, v in enumerate(value.any_)))
    if isinstance(value, m.AssetExpr) and value.all_ is not None:
        return AssetAll(*(condition(v, loc + ("all", i)) for i, v in enumerate(value.all_)))
    return asset(value, loc)


def outlets(step: m.Step, loc: tuple) -> list[Asset]:
    """The assets a step updates."""
    return [asset(v, loc + ("outlets", i)) for i, v in enumerate(step.outlets)]
