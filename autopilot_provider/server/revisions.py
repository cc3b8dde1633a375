"""The revision history of the definitions folder: what a save returns and how revisions are written
and read. API server only; used by :mod:`autopilot_provider.server.definition_store` (the saves) and
:mod:`autopilot_provider.server.reviews` (changes waiting for a second person).

Revisions live in ``autopilot_definition_revision``, numbered per path under the lock of the path's
``autopilot_definition_head`` row (:mod:`autopilot_provider.server.tables`): :func:`next_number` bumps
that row first, which holds a row lock (PostgreSQL) or the database write lock (SQLite) until the
save commits, so two saves of one path are serialized and the optimistic version check
(:func:`expect_version`) cannot race. A save writes its file inside that transaction; if the commit
fails, :func:`restore` puts the previous content back.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from autopilot_provider.definitions.errors import Diagnostic
from autopilot_provider.server.errors import InvalidInput, NotFound, StaleVersion
from autopilot_provider.server.tables import REVIEW_COLUMNS, _now, _require_tables, head_table, revision_table

log = logging.getLogger(__name__)

#: What a revision records: the three writes.
ACTIONS = ("create", "update", "delete")

#: A revision's ``state``: written (``NULL`` in rows older than the review columns), waiting for a
#: second person's review, or turned down by the reviewer.
APPLIED = "applied"
PENDING_REVIEW = "pending_review"
REJECTED = "rejected"

#: The columns a :class:`Revision` is read from (its content only where asked for).
REVISION_COLUMNS = tuple(
    revision_table.c[name] for name in ("path", "number", "action", "version", "author", "created_at", *REVIEW_COLUMNS)
)


def content_version(content: str | bytes) -> str:
    """The version of a definition: the sha256 (hex) of its UTF-8 bytes."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


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
    state: str = APPLIED
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
        self.state = self.state or APPLIED


# -- writing -----------------------------------------------------------------------------------


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A connection whose work is rolled back unless the caller commits it."""
    connection = engine.connect()
    try:
        yield connection
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()


def next_number(connection: Connection, rel: str) -> int:
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


def lock_path(connection: Connection, rel: str) -> None:
    """Take the lock of the path's head row (until commit) without a new revision number."""
    connection.execute(update(head_table).where(head_table.c.path == rel).values(updated_at=_now()))


def add_revision(connection: Connection, rel: str, number: int, action: str, **values: Any) -> None:
    """Insert revision ``number`` of ``rel`` (``values``: version, author, content, review columns)."""
    connection.execute(
        insert(revision_table).values(path=rel, number=number, action=action, created_at=_now(), **values)
    )


def expect_version(rel: str, version: Any, current: bytes | None) -> None:
    """Refuse a change of ``rel`` unless ``version`` is the version of ``current``, the file now."""
    if current is None:
        raise NotFound(f"no definition at path {rel!r}", field="path")
    if not isinstance(version, str) or not version:
        raise InvalidInput("version is required: the version returned when the definition was read", field="version")
    now = content_version(current)
    if version != now:
        raise StaleVersion(
            "version is stale: the definition changed since it was read; reload it and apply the change again",
            field="version",
            current_version=now,
        )


def read_file(path: Path) -> bytes | None:
    """The bytes of ``path``, ``None`` when there is no such file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def restore(path: Path, previous: bytes | None) -> None:
    """Put ``previous`` back at ``path`` (remove it when ``None``) after a commit that failed."""
    try:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.restore")
            tmp.write_bytes(previous)
            os.replace(tmp, path)
    except OSError:
        log.exception("could not restore %s after a failed commit", path)


# -- reading -----------------------------------------------------------------------------------


def history(engine: Engine, rel: str) -> list[Revision]:
    """The revisions of a path, newest first (content left out)."""
    _require_tables(engine)
    t = revision_table
    with engine.connect() as connection:
        rows = connection.execute(select(*REVISION_COLUMNS).where(t.c.path == rel).order_by(t.c.number.desc())).all()
    return [Revision(**row._mapping) for row in rows]


def one(engine: Engine, rel: str, number: int) -> Revision | None:
    """Revision ``number`` of ``rel`` with its content, ``None`` when there is none."""
    _require_tables(engine)
    t = revision_table
    with engine.connect() as connection:
        row = connection.execute(
            select(*REVISION_COLUMNS, t.c.content).where(t.c.path == rel, t.c.number == number)
        ).first()
    return None if row is None else Revision(**row._mapping)


def pending(engine: Engine) -> list[Revision]:
    """Every revision waiting for review, oldest first (content left out)."""
    _require_tables(engine)
    t = revision_table
    with engine.connect() as connection:
        rows = connection.execute(
            select(*REVISION_COLUMNS).where(t.c.state == PENDING_REVIEW).order_by(t.c.created_at)
        ).all()
    return [Revision(**row._mapping) for row in rows]
