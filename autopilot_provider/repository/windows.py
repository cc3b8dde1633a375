"""Maintenance windows by reference: `wait: {window: {resource: ID}}` reads the `maintenance_windows`
of that inventory item, `{group: ID}` those of that contact group, and `id:` picks one of them. The
checks resolve the references written as literals when a definition is validated; the `wait`
operator resolves every reference (templated ones too) when the step runs, so both say the same."""

from __future__ import annotations

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import suggest
from autopilot_provider.definitions.moments import Window
from autopilot_provider.repository.contacts import Directory
from autopilot_provider.repository.protocol import Definitions


class WindowError(ValueError):
    """A window reference that names nothing (the message says what exists)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field  # "resource", "group" or "id": what is wrong


def referenced_windows(project: Definitions, kind: str, ident: str, window_id: str | None) -> list[m.MaintenanceWindow]:
    """The windows ``{kind: ident, id: window_id}`` designates; :class:`WindowError` otherwise."""
    if kind == "resource":
        items = {item.id: item for item in project.resource_items()}
        owner = items.get(ident)
        if owner is None:
            known = suggest(ident, items) or (f"; items: {', '.join(list(items)[:10])}" if items else "")
            broken = [loaded.path for loaded in project.of_kind("Resources") if not loaded.ok]
            if broken:
                known += f" (Resources with errors, not read: {', '.join(broken)})"
            raise WindowError(f"unknown inventory item '{ident}'{known}", "resource")
        label = f"inventory item '{ident}'"
    else:
        directory = Directory.from_project(project)
        owner = directory.groups.get(ident)
        if owner is None:
            raise WindowError(
                f"unknown group '{ident}'{suggest(ident, directory.groups)}{directory._why_unknown()}", "group"
            )
        label = f"group '{ident}'"
    windows = list(owner.maintenance_windows)
    if not windows:
        raise WindowError(f"{label} has no maintenance_windows", kind)
    if window_id is None:
        return windows
    named = {w.id: w for w in windows if w.id}
    if window_id not in named:
        hint = suggest(window_id, named) or (
            f"; its windows: {', '.join(named)}" if named else " (its windows have no id)"
        )
        raise WindowError(f"{label} has no maintenance window '{window_id}'{hint}", "id")
    return [named[window_id]]


def resolve_windows(spec: m.WindowSpec, project: Definitions | None, timezone: str | None) -> list[Window]:
    """The windows a (rendered) ``window:`` of a wait stands for. An inline window without a zone
    is read in ``timezone`` (the step's or workflow's); a referenced one in its own, else UTC."""
    reference = spec.reference
    if reference is None:
        assert spec.cron is not None and spec.duration is not None
        return [Window.of(spec.cron, spec.duration, spec.timezone or timezone, label="inline window")]
    if project is None:
        raise WindowError("window references need the definitions folder", reference[0])
    kind, ident = reference
    found = referenced_windows(project, kind, ident, spec.id)
    owner = "inventory item" if kind == "resource" else "group"
    return [
        Window.of(w.cron, w.duration, w.timezone, label=f"{owner} '{ident}' window '{w.id or i + 1}'")
        for i, w in enumerate(found)
    ]
