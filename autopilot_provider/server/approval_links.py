"""What the API server signs for approvals: the single-use links in approval mails (HMAC tokens,
``autopilot_approval_link``) and the approval decisions themselves (Ed25519 seals, which the steps an
approval guards check on the worker: :mod:`autopilot_provider.operators.guard`).

Both keys are made once by ``autopilot db migrate`` and kept in ``autopilot_setting`` — the metadata
database, which workers cannot reach; only the public half of the decision key leaves it. API server
only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from autopilot_provider.operators.guard import b64, seal_payload
from autopilot_provider.server.errors import Gone, Refused
from autopilot_provider.server.tables import link_table, setting_table

#: The ``autopilot_setting`` rows holding the link key (HMAC) and the decision key (Ed25519).
LINK_KEY_SETTING = "link_signing_key"
APPROVAL_KEY_SETTING = "approval_signing_key"


# -- signed, expiring, single-use links ------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: Mapping[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def unsign(key: bytes, token: str) -> dict[str, Any]:
    """The payload of a token signed with ``key``; Gone (410) for anything forged or malformed."""
    try:
        body, mac = token.split(".", 1)
        expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            raise ValueError("bad signature")
        payload = json.loads(_unb64(body))
        if not isinstance(payload, dict):
            raise ValueError("not an object")
        return payload
    except (ValueError, TypeError, json.JSONDecodeError):
        raise Gone("this link is not valid", field="token") from None


def link_key(session) -> bytes:
    """The HMAC key links are signed with."""
    value = session.scalar(select(setting_table.c.value).where(setting_table.c.name == LINK_KEY_SETTING))
    if value is None:
        raise Refused("the Autopilot tables are not migrated: run `autopilot db migrate`")
    return bytes.fromhex(value)


def issue_link(session, approval_id: str, recipient: str, *, created_at: datetime, expires_at: datetime) -> str:
    """A new single-use link to ``approval_id`` for ``recipient`` (a user name, else an address)."""
    jti = secrets.token_urlsafe(16)
    session.execute(
        insert(link_table).values(
            jti=jti, approval_id=approval_id, recipient=recipient, created_at=created_at, expires_at=expires_at
        )
    )
    return sign(link_key(session), {"a": approval_id, "j": jti, "e": int(expires_at.timestamp())})


# -- signed decisions ----------------------------------------------------------------------------------


def approval_signing_key(session) -> Any:
    """The Ed25519 key that signs approval decisions: made once by ``autopilot db migrate``, kept in
    ``autopilot_setting`` (the metadata database, which workers cannot reach), never sent anywhere."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    value = session.scalar(select(setting_table.c.value).where(setting_table.c.name == APPROVAL_KEY_SETTING))
    if value is None:
        raise Refused("the Autopilot tables are not migrated: run `autopilot db migrate`")
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(value))


def approval_public_key(session_factory=None) -> bytes:
    """The raw public half of :func:`approval_signing_key` (what workers verify with)."""
    from cryptography.hazmat.primitives import serialization

    if session_factory is None:
        from airflow.utils.session import create_session as session_factory
    with session_factory() as session:
        key = approval_signing_key(session)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal(session, row: Any, outcome: str, approved: bool, decided_at: datetime) -> dict[str, Any]:
    """The signed decision the approval task receives with its answer and keeps in its outputs."""
    at = decided_at.isoformat()
    payload = seal_payload(
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        outcome=outcome,
        approved=approved,
        decided_at=at,
    )
    signature = approval_signing_key(session).sign(payload)
    return {"outcome": outcome, "approved": approved, "decided_at": at, "signature": b64(signature)}
