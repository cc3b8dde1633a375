"""The definitions folder as a managed store, with a revision history in Airflow's metadata database.

Every operation the REST API offers (``autopilot_plugin.api.definitions``) is a method of
:class:`DefinitionStore`, so a CLI or a test calls exactly what the API calls. Failures raise a
:class:`Refused` subclass that names the field at fault and carries the HTTP status the API returns.

Durable state lives in tables prefixed ``autopilot_`` in the Airflow metadata database (SQLite in
standalone, PostgreSQL in production), created by ``autopilot db migrate`` (:func:`migrate`):

* ``autopilot_definition_revision``: one row per create/update/delete of a path (number, version =
  sha256 of the content, author = Airflow user name, time, action, content).
* ``autopilot_definition_head``: the last revision number per path. Every save first bumps this row,
  which takes a row lock (PostgreSQL) or the database write lock (SQLite) until the save commits, so
  two concurrent saves of one path are serialized and the optimistic version check cannot race.
* ``autopilot_migration``: which migrations have been applied.

A save is one transaction: lock the head row, check the version against the file on disk, insert the
revision, write the file (atomically: temp file + rename), then commit. If anything before the commit
fails the transaction rolls back and the file is untouched; if the commit itself fails the previous
file content is put back."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PureWindowsPath
from typing import Any

from sqlalchemy import (
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from autopilot_provider.definitions.code import text_code_parts
from autopilot_provider.definitions.errors import Diagnostic
from autopilot_provider.definitions.graph import dependencies, downstream_of_decision
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
    Conflict,
    DuplicateId,
    Forbidden,
    InvalidDefinition,
    InvalidInput,
    NotFound,
    StaleVersion,
)
from autopilot_provider.server.tables import (
    MAX_PATH,
    REVIEW_COLUMNS,
    _engine,
    _now,
    _require_tables,
    head_table,
    revision_table,
)

log = logging.getLogger(__name__)


#: Largest definition accepted (characters).
MAX_CONTENT = 1_000_000


ACTIONS = ("create", "update", "delete")


def diagnostic_dict(diagnostic: Diagnostic) -> dict[str, Any]:
    """A diagnostic as JSON: ``path``, ``line``, ``column``, ``message`` and ``text`` (``path:line:col: message``)."""
    return {**diagnostic.as_dict(), "text": str(diagnostic)}


def definitions_root() -> Path:
    """``[autopilot] definitions_dir``, else env ``AUTOPILOT_DEFINITIONS``, else ``[core] dags_folder``."""
    from airflow.configuration import conf

    configured = (
        conf.get("autopilot", "definitions_dir", fallback=None)
        or os.environ.get("AUTOPILOT_DEFINITIONS")
        or conf.get("core", "dags_folder")
    )
    return Path(configured).expanduser().resolve()


def content_version(content: str | bytes) -> str:
    """The version of a definition: the sha256 (hex) of its UTF-8 bytes."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


PENDING_REVIEW = "pending_review"


#: What ``[autopilot] review_required_for`` may name.
REVIEWABLE = ("approvals", "scripts")


#: The approval rules a change is compared on (``timeout`` also comes from the step's own; ``else_``:
#: what runs when the request is not approved).
APPROVAL_RULES = ("from_", "quorum", "exclude_requester", "escalate_to", "timeout", "on_timeout", "else_")


#: Trigger rules under which a step runs only if every upstream step succeeded, or at least one did;
#: under any other rule (``all_done``, ``always``, ``one_failed``…) a step runs whatever an approval
#: upstream decided, so it counts as not behind the approval.
ALL_SUCCEED = ("all_success",)


ONE_SUCCEEDS = ("one_success", "none_failed_min_one_success", "all_done_min_one_success")


#: Trigger rules under which a failed upstream step (an approval without ``else``, rejected) stops a step.
STOPPED_BY_FAILURE = ("all_success", "none_failed", "none_failed_min_one_success")


def review_required_for() -> set[str]:
    """``[autopilot] review_required_for`` (default ``approvals``): a comma list of approvals, scripts."""
    from airflow.configuration import conf

    value = conf.get("autopilot", "review_required_for", fallback="approvals")
    wanted = {part.strip() for part in (value or "").split(",") if part.strip()}
    unknown = wanted - set(REVIEWABLE)
    if unknown:
        log.warning("[autopilot] review_required_for: unknown %s (known: %s)", sorted(unknown), ", ".join(REVIEWABLE))
    return wanted & set(REVIEWABLE)


def review_facts(definition: Any) -> dict[str, dict[str, Any]]:
    """The approval rules a review guards: a workflow's or function's approval rules (with ``else``)
    by step id, and in contacts who approves (a person's Airflow user name and manager, a group's
    members). Other kinds (and content that does not load) have none."""
    facts: dict[str, Any] = {}
    for step in getattr(definition, "steps", None) or []:
        if step.approval is not None:
            rules = step.approval.model_dump(include=set(APPROVAL_RULES), mode="json")
            rules["timeout"] = rules.get("timeout") or step.timeout
            facts[step.id] = rules
    # contacts say who a `from` entry is: which Airflow user a person is, their manager, group members
    for person in getattr(definition, "people", None) or []:
        if person.username or person.manager:
            facts[f"person:{person.id}"] = [person.username, person.manager]
    for group in getattr(definition, "groups", None) or []:
        facts[f"group:{group.id}"] = sorted(group.members)
    return facts


def not_behind_approval(definition: Any) -> dict[str, Any]:
    """The steps of a definition with approvals that can run when no approval says yes: step id → the
    step. Not approved, an approval with ``else`` skips its other direct downstream steps (whatever
    their trigger rule) and one without fails, which stops a step whose trigger rule needs its
    upstream to succeed or not fail. Beyond that a step runs when it has no upstream step, or, by its
    trigger rule, when all (``all_success``) or one (the ``one_success`` family) of its upstream steps
    can run and succeed, or always (any other rule: counted as running, to be safe). Empty for a
    definition without approvals."""
    steps = list(getattr(definition, "steps", None) or [])
    approvals = {step.id: step.approval for step in steps if step.approval is not None}
    if not approvals:
        return {}
    upstream = dependencies(steps)
    joins = downstream_of_decision(steps)
    reached: dict[str, Any] = {}
    changed = True
    while changed:  # grows monotonically: at most len(steps) rounds
        changed = False
        for step in steps:
            if step.id in reached:
                continue
            rule = step.trigger_rule or ("none_failed_min_one_success" if step.id in joins else "all_success")
            parents = upstream.get(step.id, [])
            otherwise = {p: approvals[p].else_ or [] for p in parents if p in approvals}
            if any(targets and step.id not in targets for targets in otherwise.values()):
                continue  # skipped by an approval's else branch
            if rule in STOPPED_BY_FAILURE and any(not targets for targets in otherwise.values()):
                continue  # stopped by a rejected approval's failure
            # open: the parent runs and succeeds (an approval without else fails when not approved)
            edges = [parent in reached and (parent not in otherwise or bool(otherwise[parent])) for parent in parents]
            if not edges or (all(edges) if rule in ALL_SUCCEED else any(edges) if rule in ONE_SUCCEEDS else True):
                reached[step.id] = step
                changed = True
    return reached


def _step_print(step: Any) -> str:
    """What a step does: everything but its place in the graph and its wording."""
    body = step.model_dump(mode="json", exclude={"after", "trigger_rule", "title", "description"})
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def ungated(before: Any, after: Any) -> bool:
    """Whether what can run without an approval's yes grows: a step not behind any approval in
    ``after`` that ``before`` did not have, by id and by what it does (approval steps are compared on
    their rules instead). This covers a guarded step moved out, renamed out, copied out or put in an
    ``else``, and a step outside changed to do something else; adding steps behind an approval is no
    such change."""

    def outside(definition: Any) -> set[tuple[str, str]]:
        # approval steps themselves are compared on their rules (review_facts), not on their wording
        return {(i, _step_print(s)) for i, s in not_behind_approval(definition).items() if s.approval is None}

    return bool(outside(after) - outside(before))


_REVISION_COLUMNS = tuple(
    revision_table.c[name] for name in ("path", "number", "action", "version", "author", "created_at", *REVIEW_COLUMNS)
)


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


@dataclass
class Validation:
    path: str
    kind: str | None
    id: str | None
    valid: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class SaveResult:
    path: str
    action: str
    revision: int
    version: str | None
    kind: str | None = None
    id: str | None = None
    #: Names of the Autopilot DAG bundles refreshed after the save.
    refreshed_bundles: list[str] = field(default_factory=list)
    #: ``applied`` (written), ``pending_review`` (stored, waiting for a second person) or ``rejected``.
    state: str = "applied"
    #: Why the change waits for review: ``approvals`` and/or ``scripts``.
    review_reasons: list[str] = field(default_factory=list)


@dataclass
class Revision:
    path: str
    number: int
    action: str
    version: str | None
    author: str | None
    created_at: datetime
    content: str | None = None
    state: str | None = None
    base_version: str | None = None
    review_reasons: str | None = None
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    review_comment: str | None = None

    def __post_init__(self) -> None:
        self.state = self.state or "applied"


class DefinitionStore:
    """The definitions under ``root`` (default: :func:`definitions_root`) plus their revisions."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        engine: Engine | None = None,
        refresh: Callable[[], list[str]] | None = None,
    ):
        self.root = Path(root).resolve() if root is not None else definitions_root()
        self._engine = engine
        self.refresh = refresh

    # -- helpers ------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine or _engine()

    def project(self):

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

    def _file(self, rel: str) -> Path:
        return self.root / rel

    def _read(self, rel: str) -> bytes | None:
        return self._read_file(self._file(rel))

    @staticmethod
    def _read_file(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def current_text(self, rel: str) -> str | None:
        """The text saved at ``rel`` now (``None`` when there is no such file); ``rel`` is checked first."""
        data = self._read(self.clean_path(rel))
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
            data = self._read(rel)
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
                data = self._file(rel).read_bytes()
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
        data = self._read(self.misnamed_file(rel) if encoded else self.clean_path(rel))
        return None if data is None else content_version(data)

    def misnamed_text(self, encoded: Any) -> str | None:
        data = self._read(self.misnamed_file(encoded))
        return None if data is None else data.decode("utf-8", errors="replace")

    def delete_misnamed(self, encoded: Any, version: str, *, author: str | None) -> SaveResult:
        """Delete a definition file whose name is not allowed (listed with its name percent-encoded).
        Like :meth:`delete`: ``version`` must be current, and a revision records the removed content
        (under the encoded name, shortened with a hash when longer than the path column)."""

        rel = self.misnamed_file(encoded)
        key = encode_path(rel)
        if len(key) > MAX_PATH:
            key = f"{key[: MAX_PATH - 18]}#{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        file = self._file(rel)
        current = self._read(rel)
        self._expect(key, version, current)
        removed = current.decode("utf-8", errors="replace") if current is not None else None

        def apply(now: bytes | None) -> None:
            self._expect(key, version, now)
            file.unlink()

        checked = Validation(key, None, None, True)
        return self._save(key, "delete", removed, author, apply, checked, version=version, file=file)

    def get(self, rel: str) -> DefinitionDetail:
        rel = self.clean_path(rel)
        data = self._read(rel)
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

    def _require_valid(self, rel: str, content: str) -> Validation:
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
        if self._file(rel).exists():
            raise AlreadyExists(f"a definition already exists at path {rel!r}; update it with PUT", field="path")
        checked = self._require_valid(rel, content)
        reasons = self.review_reasons(rel, None, content)
        if reasons:
            return self._propose(rel, "create", content, author, None, checked, reasons)

        def apply(current: bytes | None) -> None:
            if current is not None:
                raise AlreadyExists(f"a definition already exists at path {rel!r}; update it with PUT", field="path")

            atomic_write(self._file(rel), content)

        return self._save(rel, "create", content, author, apply, checked)

    def update(self, rel: str, content: str, version: str, *, author: str | None) -> SaveResult:
        rel = self.clean_path(rel)
        content = self._check_content(content)
        before = self._read(rel)
        self._expect(rel, version, before)
        checked = self._require_valid(rel, content)
        reasons = self.review_reasons(rel, before.decode("utf-8", errors="replace") if before else None, content)
        if reasons:
            return self._propose(rel, "update", content, author, version, checked, reasons)

        def apply(current: bytes | None) -> None:
            self._expect(rel, version, current)

            atomic_write(self._file(rel), content)

        return self._save(rel, "update", content, author, apply, checked)

    def delete(self, rel: str, version: str, *, author: str | None) -> SaveResult:
        rel = self.clean_path(rel)
        current = self._read(rel)
        self._expect(rel, version, current)
        removed = current.decode("utf-8", errors="replace") if current is not None else None

        def apply(now: bytes | None) -> None:
            self._expect(rel, version, now)
            self._file(rel).unlink()

        kind, ident = quick_header(removed or "")
        return self._save(rel, "delete", removed, author, apply, Validation(rel, kind, ident, True), version=version)

    @staticmethod
    def _expect(rel: str, version: Any, current: bytes | None) -> None:
        if current is None:
            raise NotFound(f"no definition at path {rel!r}", field="path")
        if not isinstance(version, str) or not version:
            raise InvalidInput(
                "version is required: the version returned when the definition was read", field="version"
            )
        now = content_version(current)
        if version != now:
            raise StaleVersion(
                "version is stale: the definition changed since it was read; reload it and apply the change again",
                field="version",
                current_version=now,
            )

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
        path = file or self._file(rel)
        with self._transaction(engine) as connection:
            number = self._next_number(connection, rel)
            # Under the lock: the file is exactly what the version check sees until we commit.
            previous = self._read_file(path)
            saved_version = version if action == "delete" else content_version(content or "")
            connection.execute(
                insert(revision_table).values(
                    path=rel,
                    number=number,
                    action=action,
                    version=saved_version,
                    author=author,
                    created_at=_now(),
                    content=content,
                )
            )
            apply(previous)  # raises → rollback, file untouched
            try:
                connection.commit()
            except Exception:
                self._restore(path, previous)
                raise
        result = SaveResult(rel, action, number, saved_version, checked.kind, checked.id)
        if self.refresh:
            result.refreshed_bundles = self.refresh()
        return result

    @staticmethod
    def _restore(path: Path, previous: bytes | None) -> None:
        try:
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                tmp = path.with_name(f".{path.name}.{os.getpid()}.restore")
                tmp.write_bytes(previous)
                os.replace(tmp, path)
        except OSError:
            log.exception("could not restore %s after a failed commit", path)

    @contextmanager
    def _transaction(self, engine: Engine) -> Iterator[Connection]:
        connection = engine.connect()
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()

    @staticmethod
    def _next_number(connection: Connection, rel: str) -> int:
        """Bump the path's head row (taking its lock until commit) and return the new revision number."""
        bumped = connection.execute(
            update(head_table).where(head_table.c.path == rel).values(number=head_table.c.number + 1, updated_at=_now())
        )
        if bumped.rowcount:
            return connection.scalar(select(head_table.c.number).where(head_table.c.path == rel))
        try:
            connection.execute(insert(head_table).values(path=rel, number=1, updated_at=_now()))
        except IntegrityError:
            raise StaleVersion(
                f"{rel!r} was saved by someone else at the same moment; reload it and try again", field="path"
            ) from None
        return 1

    # -- four-eyes review -----------------------------------------------------------------------

    def review_reasons(self, rel: str, before: str | None, after: str) -> list[str]:
        """What in the change from ``before`` to ``after`` needs a second person's review, among
        ``[autopilot] review_required_for``: ``approvals`` (an approval step added, removed or changed
        in who approves, quorum, exclude_requester, escalation, timeout or ``else``; or what can run
        without an approval's yes grows, see :func:`ungated`) and ``scripts`` (code added, removed or
        changed: a script's code, connections, working directory and environment variable names, as
        :func:`~autopilot_provider.definitions.code.code_parts` tells them). The change is also
        compared with the last recorded content at its path and with the last recorded definition of
        its kind and id (a file deleted, or renamed, and written again), so a workflow deleted with its
        approval cannot come back without it unreviewed. Empty: the change applies at once."""
        wanted = review_required_for()
        if not wanted:
            return []
        bases = [before, *self._history(rel, before, after)]
        changed: set[str] = set()
        for base in bases:
            changed |= self._changed(rel, base, after)
        return [what for what in REVIEWABLE if what in wanted and what in changed]

    def _changed(self, rel: str, before: str | None, after: str) -> set[str]:
        project = self.project()
        old_definition = project.check_text(rel, before).definition if before is not None else None
        new_definition = project.check_text(rel, after).definition
        changed = set()
        if review_facts(old_definition) != review_facts(new_definition) or ungated(old_definition, new_definition):
            changed.add("approvals")
        if set(text_code_parts(before, rel)) != set(text_code_parts(after, rel)):
            changed.add("scripts")
        return changed

    def _history(self, rel: str, before: str | None, after: str) -> list[str]:
        """Recorded contents a change is also compared with, beyond the file now at ``rel``: the last
        applied revision at ``rel`` when the file is gone, and the last applied revision elsewhere of a
        definition with the new content's kind and id, when that is not what ``before`` was."""
        kind, ident = quick_header(after)
        old_kind, old_ident = quick_header(before) if before is not None else (None, None)
        engine = self.engine
        _require_tables(engine)
        t = revision_table
        applied = or_(t.c.state.is_(None), t.c.state == "applied")
        found: list[str] = []
        with engine.connect() as connection:
            if before is None:
                last = connection.scalar(
                    select(t.c.content).where(t.c.path == rel, applied).order_by(t.c.number.desc()).limit(1)
                )
                if last:
                    found.append(last)
            if ident and (kind, ident) != (old_kind, old_ident):
                rows = connection.execute(
                    select(t.c.content)
                    .where(applied, t.c.content.is_not(None), t.c.content.contains(ident, autoescape=True))
                    .order_by(t.c.created_at.desc(), t.c.number.desc())
                ).scalars()
                for content in rows:
                    if quick_header(content) == (kind, ident):
                        found.append(content)
                        break
        return found

    def _propose(
        self,
        rel: str,
        action: str,
        content: str,
        author: str | None,
        base_version: str | None,
        checked: Validation,
        reasons: list[str],
    ) -> SaveResult:
        """Store a change as a revision waiting for review; the file is not touched."""
        engine = self.engine
        _require_tables(engine)
        with engine.begin() as connection:
            number = self._next_number(connection, rel)
            connection.execute(
                insert(revision_table).values(
                    path=rel,
                    number=number,
                    action=action,
                    version=content_version(content),
                    author=author,
                    created_at=_now(),
                    content=content,
                    state=PENDING_REVIEW,
                    base_version=base_version,
                    review_reasons=",".join(reasons),
                )
            )
        log.info("%s revision %s by %s waits for review (%s)", rel, number, author, ", ".join(reasons))
        return SaveResult(
            rel,
            action,
            number,
            content_version(content),
            checked.kind,
            checked.id,
            state=PENDING_REVIEW,
            review_reasons=reasons,
        )

    def review(self, rel: str, number: int, decision: str, *, reviewer: str, comment: str | None = None) -> SaveResult:
        """Approve (the change is written, if the file is still what it was based on: else 409) or
        reject a revision waiting for review. Its author cannot review it (403)."""
        rel = self.clean_path(rel)
        if decision not in ("approve", "reject"):
            raise InvalidInput("decision must be 'approve' or 'reject'", field="decision")
        proposed = self.revision(rel, number)
        if proposed.state != PENDING_REVIEW:
            raise Conflict(f"revision {number} of {rel!r} is {proposed.state}, not waiting for review", field="number")
        if not reviewer or reviewer == proposed.author:
            raise Forbidden("you wrote this revision: someone else must review it", field="user")
        content = proposed.content or ""
        reasons = (proposed.review_reasons or "").split(",") if proposed.review_reasons else []
        checked = Validation(rel, None, None, True)
        if decision == "approve":
            checked = self._require_valid(rel, content)
        engine = self.engine
        path = self._file(rel)
        t = revision_table
        with self._transaction(engine) as connection:
            # the head row's lock serializes this with saves of the same path, as in _save
            connection.execute(update(head_table).where(head_table.c.path == rel).values(updated_at=_now()))
            previous = self._read(rel)
            claimed = connection.execute(
                update(t)
                .where(t.c.path == rel, t.c.number == number, t.c.state == PENDING_REVIEW)
                .values(
                    state="applied" if decision == "approve" else "rejected",
                    reviewer=reviewer,
                    reviewed_at=_now(),
                    review_comment=(comment or "").strip() or None,
                )
            )
            if claimed.rowcount != 1:
                raise Conflict(f"revision {number} of {rel!r} was reviewed meanwhile", field="number")
            if decision == "approve":
                if proposed.action == "create":
                    if previous is not None:
                        raise AlreadyExists(
                            f"a definition was created at path {rel!r} since this revision was proposed", field="path"
                        )
                else:
                    self._expect(rel, proposed.base_version, previous)

                atomic_write(path, content)
            try:
                connection.commit()
            except Exception:
                if decision == "approve":
                    self._restore(path, previous)
                raise
        log.info("%s revision %s: %s by %s", rel, number, decision, reviewer)
        result = SaveResult(
            rel,
            proposed.action,
            number,
            proposed.version,
            checked.kind,
            checked.id,
            state="applied" if decision == "approve" else "rejected",
            review_reasons=reasons,
        )
        if decision == "approve" and self.refresh:
            result.refreshed_bundles = self.refresh()
        return result

    def pending_reviews(self) -> list[Revision]:
        """Every revision waiting for review, oldest first (content left out)."""
        engine = self.engine
        _require_tables(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                select(*_REVISION_COLUMNS)
                .where(revision_table.c.state == PENDING_REVIEW)
                .order_by(revision_table.c.created_at)
            ).all()
        return [Revision(**row._mapping) for row in rows]

    # -- revisions ----------------------------------------------------------------------------

    def revisions(self, rel: str) -> list[Revision]:
        """The history of a path, newest first (also for a deleted file)."""
        rel = self.clean_path(rel)
        engine = self.engine
        _require_tables(engine)
        t = revision_table
        with engine.connect() as connection:
            rows = connection.execute(
                select(*_REVISION_COLUMNS).where(t.c.path == rel).order_by(t.c.number.desc())
            ).all()
        if not rows and not self._file(rel).exists():
            raise NotFound(f"no definition and no revisions at path {rel!r}", field="path")
        return [Revision(**row._mapping) for row in rows]

    def revision(self, rel: str, number: int) -> Revision:
        rel = self.clean_path(rel)
        engine = self.engine
        _require_tables(engine)
        t = revision_table
        with engine.connect() as connection:
            row = connection.execute(
                select(*_REVISION_COLUMNS, t.c.content).where(t.c.path == rel, t.c.number == number)
            ).first()
        if row is None:
            raise NotFound(f"no revision {number} of {rel!r}", field="number")
        return Revision(**row._mapping)
