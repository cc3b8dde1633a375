"""What the checks, the contacts and the forms read from a repository of definitions, as a protocol:
they take any object with these methods (:class:`~autopilot_provider.repository.folder.Project` is
the one the product uses), so they need not import the repository, which imports them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from autopilot_provider.definitions.validate import Loaded
from autopilot_provider.openapi.spec import Spec


class Definitions(Protocol):
    """A folder of definitions (see :class:`autopilot_provider.repository.folder.Project`)."""

    root: Path

    def display(self, rel: str) -> str: ...

    def ids(self, kind: str) -> list[str]:
        """The ids of the valid definitions of ``kind`` (``Workflow``, ``Api``, ``Contacts``, …)."""

    def of_kind(self, kind: str) -> list[Loaded]:
        """The loaded definitions of ``kind``."""

    def find(self, kind: str, ident: str) -> str | None:
        """The path of the definition of ``kind`` with id ``ident``."""

    def load(self, rel: str) -> Loaded:
        """The definition at ``rel`` (relative to ``root``), validated."""

    def parsed(self, rel: str) -> Loaded:
        """The definition at ``rel``, its model only (no checks): for following references that may
        lead back to the definition being checked."""

    def function(self, function_id: str) -> Loaded | None: ...

    def api_spec(self, api_id: str) -> tuple[Loaded, Spec | None] | None:
        """The Api definition and its parsed OpenAPI document (None when the definition has errors);
        None when there is no such Api."""

    def resource_items(self) -> list[Any]: ...

    def resource_types(self) -> list[str]: ...
