"""Diagnostics: every problem in a definition names its file, line, column and what is wrong."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"

    def as_dict(self) -> dict:
        return asdict(self)


class DefinitionError(Exception):
    """Raised when a definition cannot be compiled; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


def suggest(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest of ``choices`` to a misspelt ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Refused(Exception):
    """A request Autopilot refuses, whoever asked (the plugin's API, the CLI): ``message`` says why,
    ``field`` names the input at fault, ``status`` is the HTTP status the API answers with and
    ``extra`` goes into the answer's body. Every refusal in the product is one of these, so the
    plugin turns them into responses in one place."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body
