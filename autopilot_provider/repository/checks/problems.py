"""The one shape of a check's finding, and the kinds and script languages the format names but that
do not run yet (a definition that uses one fails validation instead of compiling to a no-op)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from autopilot_provider.definitions import models as m
from autopilot_provider.repository.protocol import Definitions


class Problem(NamedTuple):
    """A finding at ``loc`` (the path of keys into the definition); ``key``: point at the key itself
    rather than its value."""

    loc: tuple
    message: str
    key: bool = False


NOT_YET: dict[str, str] = {
    "pipe": "pipe steps arrive with the SQL and ticket-data integration",
    "metric": "metric steps arrive with the metrics integration",
}
#: A trigger's data points that do not run yet (``rest`` does).
TRIGGER_SOURCES_NOT_YET: dict[str, str] = {
    "sql": "SQL data points arrive with pipes",
    "metric": "metric data points arrive with the metrics integration",
}
SCRIPT_LANGUAGES_NOT_YET = {
    "ansible": "ansible scripts arrive with the ansible runner",
    "terraform": "terraform scripts arrive with the terraform runner",
    "ssh": "ssh scripts arrive with the SSH runner",
}


def unsupported_problems(definition: m.Workflow | m.Function, project: Definitions | None = None) -> Iterator[Problem]:
    """Steps of kinds and script languages that do not run yet, and timers."""
    for i, step in enumerate(definition.steps):
        if step.kind in NOT_YET:
            yield Problem(
                ("steps", i, step.kind),
                f"step '{step.id}': step kind '{step.kind}' is not supported yet ({NOT_YET[step.kind]})",
                key=True,
            )
        elif step.script is not None and step.script.language in SCRIPT_LANGUAGES_NOT_YET:
            lang = step.script.language
            yield Problem(
                ("steps", i, "script", lang),
                f"step '{step.id}': script language '{lang}' is not supported yet ({SCRIPT_LANGUAGES_NOT_YET[lang]})",
                key=True,
            )
    if isinstance(definition, m.Workflow):
        for i, _ in enumerate(definition.timers):
            yield Problem(
                ("timers", i), "timers are not supported yet (they arrive as Deadline Alerts with SLA timers)", True
            )
