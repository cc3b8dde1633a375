"""The definitions folder as a managed store: list, read, validate, create, update and delete definition
files, each save recorded as a revision in Airflow's metadata database. API server only (the plugin's
REST API, ``autopilot`` CLI commands that change definitions); workers and the factory read the folder
through :class:`~autopilot_provider.repository.folder.Project`.

Every operation the REST API offers (``autopilot_plugin.api.routes.definitions``) is a method of
:class:`DefinitionStore`, so a CLI or a test calls exactly what the API calls. Failures raise a
:class:`~autopilot_provider.definitions.errors.Refused` subclass (:mod:`autopilot_provider.server.errors`)
that names the field at fault and carries the HTTP status the API returns.

A save is one transaction (:mod:`autopilot_provider.server.revisions`): lock the path's head row, check
the version against the file on disk, insert the revision, write the file (atomically: temp file +
rename), then commit. If anything before the commit fails the transaction rolls back and the file is
untouched; if the commit itself fails the previous file content is put back. A create or update that
needs a second person's review (:mod:`autopilot_provider.server.reviews`) is stored as a pending
revision instead and written only when approved. The tables and their migrations are in
:mod:`autopilot_provider.server.tables`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from sqlalchemy.engine import Engine

from autopilot_provider import config
from autopilot_provider.definitions.errors import Diagnostic
from autopilot_provider.definitions.models import KINDS
from autopilot_provider.definitions.source import quick_header
from autopilot_provider.repository.folder import (
    Project,
    atomic_write,
    decode_path,
    encode_path,
    is_definition_path,
    misnamed_diagnostic,
    path_problem,
)
from autopilot_provider.server.errors import (
    AlreadyExists,
    DuplicateId,
    InvalidDefinition,
    InvalidInput,
    NotFound,
)
from autopilot_provider.server.reviews import Reviews
from autopilot_provider.server.revisions import (
    ACTIONS,
    PENDING_REVIEW,
    Revision,
    SaveResult,
    Validation,
    add_revision,
    content_version,
    expect_version,
    history,
    next_number,
    one,
    read_file,
    restore,
    transaction,
)
from autopilot_provider.server.tables import MAX_PATH, _engine, _require_tables

__all__ = [
    "ACTIONS",
    "MAX_CONTENT",
    "PENDING_REVIEW",
    "DefinitionDetail",
    "DefinitionStore",
    "DefinitionSummary",
    "Revision",
    "SaveResult",
    "Validation",
    "content_version",
    "diagnostic_dict",
]

#: Largest definition accepted (characters).
MAX_CONTENT = 1_000_000


def diagnostic_dict(diagnostic: Diagnostic) -> dict[str, Any]:
    """A diagnostic as JSON: ``path``, ``line``, ``column``, ``message`` and ``text`` (``path:line:col: message``)."""
    return {**diagnostic.as_dict(), "text": str(diagnostic)}


@dataclass
class DefinitionSummary:
    path: str
    kind: str | None
    id: str | None
    title: str | None
    version: str
    valid: bool
    error_count: int
    #: For a file whose name is not allowed: ``path`` is its name percent-encoded, and this says why
    #: it is not loaded (delete it with :meth:`DefinitionStore.delete_misnamed`).
    problem: str | None = None


@dataclass
class DefinitionDetail:
    path: str
    kind: str | None
    id: str | None
    title: str | None
    version: str
    valid: bool
    content: str
    diagnostics: list[Diagnostic] = field(default_factory=list)


class DefinitionStore:
    """The definitions under ``root`` (default: :func:`autopilot_provider.config.definitions_dir`) plus
    their revisions; ``refresh`` (the plugin: the DAG bundles' refresh) runs after every write."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        engine: Engine | None = None,
        refresh: Callable[[], list[str]] | None = None,
    ):
        self.root = Path(config.definitions_dir(root)).expanduser().resolve()
        self._engine = engine
        self.refresh = refresh
        self.reviews = Reviews(self)

    # -- helpers ------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine or _engine()

    def project(self) -> Project:
        return Project(self.root, display_root="")

    def clean_path(self, rel: Any, *, name: str = "path") -> str:
        """Check that ``rel`` names a definition file inside the folder; return it normalized."""
        if not isinstance(rel, str) or not rel.strip():
            raise InvalidInput(f"{name} is required", field=name)
        if len(rel) > MAX_PATH:
            raise InvalidInput(f"{name} is longer than {MAX_PATH} characters", field=name)
        if "\x00" in rel or "\\" in rel:
            raise InvalidInput(f"{name} must not contain backslashes or NUL characters", field=name)
        if rel.startswith("/") or PureWindowsPath(rel).drive:
            raise InvalidInput(f"{name} must be relative to the definitions folder, not absolute: {rel!r}", field=name)
        parts = rel.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise InvalidInput(f"{name} must not contain '..', '.' or empty segments: {rel!r}", field=name)
        problem = path_problem(rel)
        if problem is not None:
            raise InvalidInput(f"{name} {encode_path(rel)!r} is not an allowed definition path: {problem}", field=name)
        if not is_definition_path(rel):
            raise InvalidInput(
                f"{name} {rel!r} is not a definition path: it must end in .yaml or .yml, no segment may start "
                "with '.', and it must not be under schema/, templates/ or specs/",
                field=name,
            )
        full = (self.root / rel).resolve()
        if self.root not in full.parents:
            raise InvalidInput(f"{name} {rel!r} leaves the definitions folder", field=name)
        return rel

    def path_of(self, rel: str) -> Path:
        """The file of a checked path (:meth:`clean_path`)."""
        return self.root / rel

    def read_bytes(self, rel: str) -> bytes | None:
        """The bytes saved at a checked path, ``None`` when there is no such file."""
        return read_file(self.path_of(rel))

    def current_text(self, rel: str) -> str | None:
        """The text saved at ``rel`` now (``None`` when there is no such file); ``rel`` is checked first."""
        data = self.read_bytes(self.clean_path(rel))
        return None if data is None else data.decode("utf-8", errors="replace")

    @staticmethod
    def _check_content(content: Any) -> str:
        if not isinstance(content, str):
            raise InvalidInput("content must be a string (the YAML text)", field="content")
        if len(content) > MAX_CONTENT:
            raise InvalidInput(f"content is longer than {MAX_CONTENT} characters", field="content")
        return content

    @staticmethod
    def _title(loaded) -> str | None:
        if loaded.definition is not None:
            return loaded.definition.title
        data = loaded.located.data if loaded.located else None
        title = data.get("title") if isinstance(data, dict) else None
        return title if isinstance(title, str) else None

    @staticmethod
    def _ident(loaded, text: str) -> str | None:
        if loaded.definition is not None:
            return loaded.definition.id
        return quick_header(text)[1]

    def _duplicate(self, project, rel: str, loaded, text: str) -> Diagnostic | None:
        """A diagnostic when another file already defines this kind and id."""
        kind, ident = loaded.kind, self._ident(loaded, text)
        if not kind or not ident:
            return None
        for other, entry in sorted(project.index().items()):
            if other != rel and entry.kind == kind and entry.id == ident:
                line, column = loaded.located.position(("id",)) if loaded.located else (1, 1)
                what = "a DAG id, so it must be unique" if kind == "Workflow" else "ids must be unique per kind"
                return Diagnostic(rel, line, column, f"{kind} id '{ident}' is already defined in {other} ({what})")
        return None

    # -- reads --------------------------------------------------------------------------------

    def list(self, kind: str | None = None) -> list[DefinitionSummary]:
        """Every definition file (optionally of one kind) with its validity."""
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}", field="kind")
        project = self.project()
        duplicates: dict[str, int] = {}
        for diagnostic in project.duplicate_ids():
            duplicates[diagnostic.path] = duplicates.get(diagnostic.path, 0) + 1
        result = []
        for rel, entry in project.index().items():
            if kind is not None and entry.kind != kind:
                continue
            data = self.read_bytes(rel)
            if data is None:  # deleted meanwhile
                continue
            loaded = project.load(rel)
            errors = len(loaded.diagnostics) + duplicates.get(rel, 0)
            result.append(
                DefinitionSummary(
                    path=rel,
                    kind=loaded.kind if isinstance(loaded.kind, str) else entry.kind,
                    id=loaded.definition.id if loaded.definition is not None else entry.id,
                    title=self._title(loaded),
                    version=content_version(data),
                    valid=errors == 0 and loaded.definition is not None,
                    error_count=errors,
                )
            )
        if kind is None:
            result += self._misnamed_summaries(project)
        return result

    # -- files whose names are not allowed ------------------------------------------------------

    def _misnamed_summaries(self, project) -> list[DefinitionSummary]:
        result = []
        for rel in project.misnamed():
            try:
                data = self.path_of(rel).read_bytes()
            except OSError:  # gone meanwhile, or not a readable file
                continue
            encoded = encode_path(rel)
            result.append(
                DefinitionSummary(
                    path=encoded,
                    kind=None,
                    id=None,
                    title=None,
                    version=content_version(data),
                    valid=False,
                    error_count=1,
                    problem=misnamed_diagnostic(encoded, rel).message,
                )
            )
        return result

    def misnamed_file(self, encoded: Any) -> str:
        """The file that ``encoded`` (a ``path`` the listing shows for a file whose name is not allowed)
        names. Only such a file, found in the folder, is ever named this way: it can be deleted, never
        read or written as a definition."""
        if not isinstance(encoded, str) or not encoded.strip():
            raise InvalidInput("encoded is required", field="encoded")
        if len(encoded) > 4 * MAX_PATH:
            raise InvalidInput(f"encoded is longer than {4 * MAX_PATH} characters", field="encoded")
        rel = decode_path(encoded)
        if rel not in self.project().misnamed():
            raise NotFound(
                f"no definition file whose name is not allowed is listed as {encoded!r}; "
                "a file with an allowed name is deleted by its path",
                field="encoded",
            )
        return rel

    def file_version(self, rel: Any, *, encoded: bool = False) -> str | None:
        """The current version of the file at ``rel`` (or named by ``encoded``), None when missing."""
        data = self.read_bytes(self.misnamed_file(rel) if encoded else self.clean_path(rel))
        return None if data is None else content_version(data)

    def misnamed_text(self, encoded: Any) -> str | None:
        data = self.read_bytes(self.misnamed_file(encoded))
        return None if data is None else data.decode("utf-8", errors="replace")

    def delete_misnamed(self, encoded: Any, version: str, *, author: str | None) -> SaveResult:
        """Delete a definition file whose name is not allowed (listed with its name percent-encoded).
        Like :meth:`delete`: ``version`` must be current, and a revision records the removed content
        (under the encoded name, shortened with a hash when longer than the path column)."""
        rel = self.misnamed_file(encoded)
        key = encode_path(rel)
        if len(key) > MAX_PATH:
            key = f"{key[: MAX_PATH - 18]}#{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        file = self.path_of(rel)
        current = self.read_bytes(rel)
        expect_version(key, version, current)
        removed = current.decode("utf-8", errors="replace") if current is not None else None

        def apply(now: bytes | None) -> None:
            expect_version(key, version, now)
            file.unlink()

        checked = Validation(key, None, None, True)
        return self._save(key, "delete", removed, author, apply, checked, version=version, file=file)

    def get(self, rel: str) -> DefinitionDetail:
        rel = self.clean_path(rel)
        data = self.read_bytes(rel)
        if data is None:
            raise NotFound(f"no definition at path {rel!r}", field="path")
        text = data.decode("utf-8", errors="replace")
        project = self.project()
        loaded = project.check_text(rel, text)
        diagnostics = list(loaded.diagnostics)
        duplicate = self._duplicate(project, rel, loaded, text)
        if duplicate:
            diagnostics.append(duplicate)
        return DefinitionDetail(
            path=rel,
            kind=loaded.kind if isinstance(loaded.kind, str) else None,
            id=self._ident(loaded, text),
            title=self._title(loaded),
            version=content_version(data),
            valid=not diagnostics and loaded.definition is not None,
            content=text,
            diagnostics=sorted(diagnostics),
        )

    def validate(self, rel: str, content: str) -> Validation:
        """Check ``content`` as if saved at ``rel``, including id clashes with other files; writes nothing."""
        rel = self.clean_path(rel)
        content = self._check_content(content)
        project = self.project()
        loaded = project.check_text(rel, content)
        diagnostics = list(loaded.diagnostics)
        duplicate = self._duplicate(project, rel, loaded, content)
        if duplicate:
            diagnostics.append(duplicate)
        return Validation(
            path=rel,
            kind=loaded.kind if isinstance(loaded.kind, str) else None,
            id=self._ident(loaded, content),
            valid=not diagnostics and loaded.definition is not None,
            diagnostics=sorted(diagnostics),
        )

    def require_valid(self, rel: str, content: str) -> Validation:
        project = self.project()
        loaded = project.check_text(rel, content)
        if loaded.diagnostics or loaded.definition is None:
            diagnostics = sorted(loaded.diagnostics)
            raise InvalidDefinition(
                f"content has {len(diagnostics)} error(s); nothing was saved",
                field="content",
                diagnostics=[diagnostic_dict(d) for d in diagnostics],
            )
        duplicate = self._duplicate(project, rel, loaded, content)
        if duplicate:
            raise DuplicateId(duplicate.message, field="content", diagnostics=[diagnostic_dict(duplicate)])
        return Validation(rel, loaded.kind, loaded.definition.id, True)

    # -- writes -------------------------------------------------------------------------------

    def create(self, rel: str, content: str, *, author: str | None) -> SaveResult:
        rel = self.clean_path(rel)
        content = self._check_content(content)
        if self.path_of(rel).exists():
            raise AlreadyExists(f"a definition already exists at path {rel!r}; update it with PUT", field="path")
        checked = self.require_valid(rel, content)
        reasons = self.review_reasons(rel, None, content)
        if reasons:
            return self.reviews.propose(rel, "create", content, author, None, checked, reasons)

        def apply(current: bytes | None) -> None:
            if current is not None:
                raise AlreadyExists(f"a definition already exists at path {rel!r}; update it with PUT", field="path")
            atomic_write(self.path_of(rel), content)

        return self._save(rel, "create", content, author, apply, checked)

    def update(self, rel: str, content: str, version: str, *, author: str | None) -> SaveResult:
        rel = self.clean_path(rel)
        content = self._check_content(content)
        before = self.read_bytes(rel)
        expect_version(rel, version, before)
        checked = self.require_valid(rel, content)
        reasons = self.review_reasons(rel, before.decode("utf-8", errors="replace") if before else None, content)
        if reasons:
            return self.reviews.propose(rel, "update", content, author, version, checked, reasons)

        def apply(current: bytes | None) -> None:
            expect_version(rel, version, current)
            atomic_write(self.path_of(rel), content)

        return self._save(rel, "update", content, author, apply, checked)

    def delete(self, rel: str, version: str, *, author: str | None) -> SaveResult:
        rel = self.clean_path(rel)
        current = self.read_bytes(rel)
        expect_version(rel, version, current)
        removed = current.decode("utf-8", errors="replace") if current is not None else None

        def apply(now: bytes | None) -> None:
            expect_version(rel, version, now)
            self.path_of(rel).unlink()

        kind, ident = quick_header(removed or "")
        return self._save(rel, "delete", removed, author, apply, Validation(rel, kind, ident, True), version=version)

    def _save(
        self,
        rel: str,
        action: str,
        content: str | None,
        author: str | None,
        apply: Callable[[bytes | None], None],
        checked: Validation,
        *,
        version: str | None = None,
        file: Path | None = None,
    ) -> SaveResult:
        """``file``: the file changed, when ``rel`` (the revision's path) does not name it."""
        engine = self.engine
        _require_tables(engine)
        path = file or self.path_of(rel)
        with transaction(engine) as connection:
            number = next_number(connection, rel)
            # Under the lock: the file is exactly what the version check sees until we commit.
            previous = read_file(path)
            saved_version = version if action == "delete" else content_version(content or "")
            add_revision(connection, rel, number, action, version=saved_version, author=author, content=content)
            apply(previous)  # raises → rollback, file untouched
            try:
                connection.commit()
            except Exception:
                restore(path, previous)
                raise
        result = SaveResult(rel, action, number, saved_version, checked.kind, checked.id)
        if self.refresh:
            result.refreshed_bundles = self.refresh()
        return result

    # -- four-eyes review (:mod:`autopilot_provider.server.reviews`) ----------------------------

    def review_reasons(self, rel: str, before: str | None, after: str) -> list[str]:
        """What in a change needs a second person's review: :meth:`Reviews.reasons`."""
        return self.reviews.reasons(rel, before, after)

    def review(self, rel: str, number: int, decision: str, *, reviewer: str, comment: str | None = None) -> SaveResult:
        """Approve or reject a revision waiting for review: :meth:`Reviews.decide`."""
        return self.reviews.decide(rel, number, decision, reviewer=reviewer, comment=comment)

    def pending_reviews(self) -> list[Revision]:
        """Every revision waiting for review, oldest first (content left out)."""
        return self.reviews.pending()

    # -- revisions ----------------------------------------------------------------------------

    def revisions(self, rel: str) -> list[Revision]:
        """The history of a path, newest first (also for a deleted file)."""
        rel = self.clean_path(rel)
        found = history(self.engine, rel)
        if not found and not self.path_of(rel).exists():
            raise NotFound(f"no definition and no revisions at path {rel!r}", field="path")
        return found

    def revision(self, rel: str, number: int) -> Revision:
        """Revision ``number`` of a path, with its content."""
        rel = self.clean_path(rel)
        found = one(self.engine, rel, number)
        if found is None:
            raise NotFound(f"no revision {number} of {rel!r}", field="number")
        return found
