"""The refusals of the API-server services (definitions, reviews, approvals, imports): one hierarchy
under :class:`~autopilot_provider.definitions.errors.Refused`, one HTTP status each. The plugin turns
any of them into ``{"detail": {"message", "field", ...}}`` with that status; the CLI prints the message.
"""

from __future__ import annotations

from typing import Any

from autopilot_provider.definitions.errors import Refused

__all__ = [
    "AlreadyExists",
    "Conflict",
    "DuplicateId",
    "Forbidden",
    "Gone",
    "InvalidDefinition",
    "InvalidDocument",
    "InvalidInput",
    "NotFound",
    "NotMigrated",
    "Refused",
    "StaleVersion",
    "Unprocessable",
]


class InvalidInput(Refused):
    """A malformed path, kind or similar (400)."""

    status = 400


class Forbidden(Refused):
    """Authenticated, but not allowed by Autopilot's own rules (403)."""

    status = 403


class NotFound(Refused):
    status = 404


class Conflict(Refused):
    """The request contradicts the current state (409)."""

    status = 409


class Gone(Refused):
    """Something that existed and no longer works: a used or expired link (410)."""

    status = 410


class Unprocessable(Refused):
    """Well-formed but invalid content (422)."""

    status = 422


class AlreadyExists(Conflict):
    pass


class StaleVersion(Conflict):
    """The client's ``version`` is not the current content hash; the body carries ``current_version``."""


class DuplicateId(Conflict):
    """The definition's kind and id are already used by another file (409, with diagnostics)."""


class InvalidDefinition(Unprocessable):
    """The content does not validate (422, with diagnostics); nothing was written."""


class InvalidDocument(Unprocessable):
    """An imported document that is not JSON/YAML text or not valid OpenAPI (422); ``pointer`` is the
    JSON pointer of the bad part (``""``: the whole document), shown before the message and in the body."""

    def __init__(self, message: str, *, field: str | None = None, pointer: str = "", **extra: Any):
        super().__init__(message, field=field, **extra)
        self.pointer = pointer

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": str(self)}
        if self.field:
            body["field"] = self.field
        body["pointer"] = self.pointer or "/"
        body.update(self.extra)
        return body


class NotMigrated(Refused):
    """The ``autopilot_*`` tables do not exist yet (503)."""

    status = 503
