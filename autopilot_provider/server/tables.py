"""Autopilot's tables in Airflow's metadata database, and their migrations (``autopilot db migrate``).
API server and CLI only; workers never touch these tables.

Every table is prefixed ``autopilot_`` and lives in the metadata database Airflow uses (SQLite in
standalone, PostgreSQL or MySQL in production):

* ``autopilot_definition_revision``: one row per create/update/delete of a definition (number, version =
  sha256 of the content, author, time, action, content, and the four-eyes review state); written by
  :mod:`autopilot_provider.server.revisions` for the definition store and the reviews.
* ``autopilot_definition_head``: the last revision number per path; a save bumps it first, which
  serializes concurrent saves of one path.
* ``autopilot_approval``, ``autopilot_approval_vote``, ``autopilot_approval_link``,
  ``autopilot_approval_event``: people in the loop (:mod:`autopilot_provider.server.approval_records`,
  :mod:`~autopilot_provider.server.approvals`, :mod:`~autopilot_provider.server.approval_links`).
* ``autopilot_alert_delivery``: every delivery to an alert endpoint, its outcome and the runs it
  started (:mod:`autopilot_provider.server.alerts`).
* ``autopilot_setting``: server-side settings: the keys that sign approval links and decisions
  (:mod:`autopilot_provider.server.approval_links`).
* ``autopilot_migration``: which migrations have been applied. Append new steps to
  :data:`MIGRATIONS`; never edit or reorder applied ones.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

from autopilot_provider.server.errors import (
    NotMigrated,
)

#: Longest definition path stored (characters).
MAX_PATH = 512
#: Engines (by URL) whose tables were found migrated.
_tables_ready: set[str] = set()


def _now() -> datetime:
    return datetime.now(UTC)


metadata = MetaData()


def _utc_datetime():
    from airflow.utils.sqlalchemy import UtcDateTime

    return UtcDateTime()


migration_table = Table(
    "autopilot_migration",
    metadata,
    Column("name", String(100), nullable=False),
    Column("applied_at", _utc_datetime(), nullable=False),
    PrimaryKeyConstraint("name", name="autopilot_migration_pkey"),
)


revision_table = Table(
    "autopilot_definition_revision",
    metadata,
    Column("path", String(MAX_PATH), nullable=False),
    Column("number", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("version", String(64), nullable=True),
    Column("author", String(250), nullable=True),
    Column("created_at", _utc_datetime(), nullable=False),
    # For create/update: the saved content. For delete: the content that was removed.
    Column("content", Text, nullable=True),
    # Four-eyes review (0004): NULL or "applied" for a change written at once; "pending_review" for a
    # change waiting for a second person, then "applied" (approved and written) or "rejected".
    Column("state", String(16), nullable=True),
    Column("base_version", String(64), nullable=True),  # the file version a pending change is based on
    Column("review_reasons", String(100), nullable=True),  # comma list: approvals, scripts
    Column("reviewer", String(250), nullable=True),
    Column("reviewed_at", _utc_datetime(), nullable=True),
    Column("review_comment", Text, nullable=True),
    PrimaryKeyConstraint("path", "number", name="autopilot_definition_revision_pkey"),
)


head_table = Table(
    "autopilot_definition_head",
    metadata,
    Column("path", String(MAX_PATH), nullable=False),
    Column("number", Integer, nullable=False),
    Column("updated_at", _utc_datetime(), nullable=False),
    PrimaryKeyConstraint("path", name="autopilot_definition_head_pkey"),
)


def _create_definition_tables(connection: Connection) -> None:
    metadata.create_all(connection, tables=[revision_table, head_table], checkfirst=True)


# People in the loop (autopilot_provider/server/approval_records.py, approvals.py): one row per human
# request (an approval or a mid-flow form, i.e. one try of one HITL task), every vote or answer, every
# signed link handed out, and the request's own events (asked, reminded, escalated, timed out, decided).
approval_table = Table(
    "autopilot_approval",
    metadata,
    Column("id", String(80), nullable=False),  # "<task instance id>.<try number>"
    Column("ti_id", String(40), nullable=False),
    Column("try_number", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # approval | form
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("map_index", Integer, nullable=False),
    Column("requester", String(250), nullable=True),
    Column("state", String(16), nullable=False),  # pending | approved | rejected | timed_out | answered | closed
    Column("spec", Text, nullable=False),  # the request description the task pushed (JSON)
    Column("created_at", _utc_datetime(), nullable=False),
    Column("deadline", _utc_datetime(), nullable=True),
    Column("asked_at", _utc_datetime(), nullable=True),  # when the approvers were first asked
    Column("escalated_at", _utc_datetime(), nullable=True),
    Column("next_reminder_at", _utc_datetime(), nullable=True),
    Column("decided_at", _utc_datetime(), nullable=True),
    Column("outcome", Text, nullable=True),  # JSON: what the task received
    # a delivery that failed is tried again at redeliver_at: {"reason", "to": [recipient keys], "attempt"}
    Column("redeliver_at", _utc_datetime(), nullable=True),
    Column("redeliver", Text, nullable=True),
    Column("revision", Integer, nullable=False),  # bumped by every change: the row lock that orders votes
    PrimaryKeyConstraint("id", name="autopilot_approval_pkey"),
)


vote_table = Table(
    "autopilot_approval_vote",
    metadata,
    Column("approval_id", String(80), nullable=False),
    Column("username", String(250), nullable=False),
    Column("slot", Integer, nullable=False),  # index into the request's slots; -1: an escalation contact
    Column("slot_label", String(250), nullable=False),
    Column("decision", String(16), nullable=False),  # approve | reject | answer
    Column("comment", Text, nullable=True),
    Column("answer", Text, nullable=True),  # a form step's values (JSON)
    Column("via", String(16), nullable=False),  # api | link
    Column("created_at", _utc_datetime(), nullable=False),
    PrimaryKeyConstraint("approval_id", "username", name="autopilot_approval_vote_pkey"),
)


link_table = Table(
    "autopilot_approval_link",
    metadata,
    Column("jti", String(64), nullable=False),
    Column("approval_id", String(80), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("created_at", _utc_datetime(), nullable=False),
    Column("expires_at", _utc_datetime(), nullable=False),
    Column("used_at", _utc_datetime(), nullable=True),
    Column("used_by", String(250), nullable=True),
    PrimaryKeyConstraint("jti", name="autopilot_approval_link_pkey"),
)


approval_event_table = Table(
    "autopilot_approval_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("approval_id", String(80), nullable=False, index=True),
    Column("event", String(32), nullable=False),  # requested | reminded | escalated | timed_out | decided | ...
    Column("detail", Text, nullable=True),
    Column("created_at", _utc_datetime(), nullable=False),
)


setting_table = Table(
    "autopilot_setting",
    metadata,
    Column("name", String(100), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("name", name="autopilot_setting_pkey"),
)


def _create_approval_tables(connection: Connection) -> None:
    import secrets

    tables = [approval_table, vote_table, link_table, approval_event_table, setting_table]
    metadata.create_all(connection, tables=tables, checkfirst=True)
    # The key that signs approval links; it never leaves the database.
    connection.execute(insert(setting_table).values(name="link_signing_key", value=secrets.token_hex(32)))


def _add_redelivery_columns(connection: Connection) -> None:
    """Columns added to ``autopilot_approval`` after 0002 (a table created by 0002 on this release
    already has them)."""
    present = {c["name"] for c in inspect(connection).get_columns(approval_table.name)}
    for name in ("redeliver_at", "redeliver"):
        if name not in present:
            column = approval_table.c[name]
            kind = column.type.compile(dialect=connection.dialect)
            connection.execute(text(f"ALTER TABLE {approval_table.name} ADD COLUMN {name} {kind}"))


REVIEW_COLUMNS = ("state", "base_version", "review_reasons", "reviewer", "reviewed_at", "review_comment")


def _add_review_columns(connection: Connection) -> None:
    """The four-eyes columns of ``autopilot_definition_revision`` (a table created by 0001 on this
    release already has them). Existing rows keep NULL: changes that were applied."""
    present = {c["name"] for c in inspect(connection).get_columns(revision_table.name)}
    for name in REVIEW_COLUMNS:
        if name not in present:
            kind = revision_table.c[name].type.compile(dialect=connection.dialect)
            connection.execute(text(f"ALTER TABLE {revision_table.name} ADD COLUMN {name} {kind}"))


# Events from outside (autopilot_provider/server/alerts.py): every delivery to an alert endpoint —
# accepted, duplicate, filtered, rejected, invalid or failed — with the runs it started; headers and
# payload masked and capped. Purged after [autopilot] alert_delivery_retention_days.
alert_delivery_table = Table(
    "autopilot_alert_delivery",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert", String(200), nullable=False),
    Column("delivery_id", String(250), nullable=False),
    Column("received_at", _utc_datetime(), nullable=False),
    Column("status", String(16), nullable=False),  # accepted | duplicate | filtered | rejected | invalid | failed
    Column("reason", Text, nullable=True),
    Column("http_status", Integer, nullable=False),
    Column("runs", Text, nullable=False),  # JSON list of {route, workflow, run_id, url}
    Column("replay_of", Integer, nullable=True),
    Column("headers", Text, nullable=True),  # JSON, masked
    Column("payload", Text, nullable=True),  # JSON, masked and capped
    Index("autopilot_alert_delivery_key", "alert", "delivery_id"),
    Index("autopilot_alert_delivery_received", "received_at"),
)


def _create_alert_delivery_table(connection: Connection) -> None:
    metadata.create_all(connection, tables=[alert_delivery_table], checkfirst=True)


def _add_approval_decision_key(connection: Connection) -> None:
    """The Ed25519 key the API server signs approval decisions with (``autopilot_provider.server.approval_links``);
    like the link key, it never leaves the database — workers get the public half only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    connection.execute(insert(setting_table).values(name="approval_signing_key", value=raw.hex()))


#: Ordered (name, step) pairs. Append new steps; never edit or reorder applied ones.
MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_definition_revisions", _create_definition_tables),
    ("0002_approvals", _create_approval_tables),
    ("0003_approval_redelivery", _add_redelivery_columns),
    ("0004_definition_review", _add_review_columns),
    ("0005_approval_decision_key", _add_approval_decision_key),
    ("0006_alert_deliveries", _create_alert_delivery_table),
]


def _engine() -> Engine:
    from airflow import settings

    if settings.engine is None:  # pragma: no cover - import airflow configures the ORM
        settings.configure_orm()
    return settings.engine


def migrate(engine: Engine | None = None) -> list[str]:
    """Create or upgrade the ``autopilot_*`` tables; idempotent. Returns the names of the steps applied."""
    engine = engine or _engine()
    applied: list[str] = []
    with engine.begin() as connection:
        metadata.create_all(connection, tables=[migration_table], checkfirst=True)
        done = set(connection.scalars(select(migration_table.c.name)))
        for name, step in MIGRATIONS:
            if name in done:
                continue
            step(connection)
            connection.execute(insert(migration_table).values(name=name, applied_at=_now()))
            applied.append(name)
    _tables_ready.clear()
    return applied


def _require_tables(engine: Engine) -> None:
    key = str(engine.url)
    if key in _tables_ready:
        return
    inspector = inspect(engine)
    missing = [t.name for t in (revision_table, head_table) if not inspector.has_table(t.name)]
    if missing:
        raise NotMigrated(f"the Autopilot tables ({', '.join(missing)}) do not exist: run `autopilot db migrate`")
    if "state" not in {c["name"] for c in inspector.get_columns(revision_table.name)}:
        raise NotMigrated("the Autopilot tables are not up to date: run `autopilot db migrate`")
    _tables_ready.add(key)
