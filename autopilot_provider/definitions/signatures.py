"""What an Alert's ``auth.scheme`` means on the wire, once for both sides: how a sender signs a
delivery (:func:`sign`, used by a trigger's task through ``hooks/alerts.py``) and how the endpoint
checks it (:func:`signature_problem`, used by ``server/alerts.py``). No Airflow: the secret is given.

* ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``, the delivery id in
  ``X-GitHub-Delivery``;
* ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``, the
  timestamp within the alert's tolerance;
* ``standard`` (Standard Webhooks 1.0): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")>``, the key being
  the base64 after ``whsec_`` in the secret;
* ``bearer``: ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import timedelta

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.durations import parse_duration

#: Default window for signed timestamps (stripe, standard).
DEFAULT_TOLERANCE = timedelta(minutes=5)


def tolerance_of(auth: m.AlertAuth) -> timedelta:
    return parse_duration(auth.tolerance) if auth.tolerance else DEFAULT_TOLERANCE


def hmac_sha256(key: bytes, content: bytes) -> bytes:
    return hmac.new(key, content, hashlib.sha256).digest()


def standard_key(secret: str) -> bytes:
    """The signing key of a Standard Webhooks secret (``whsec_`` + base64); ValueError if it is none."""
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def sign(scheme: str, secret: str, body: bytes, *, delivery_id: str, timestamp: int) -> dict[str, str]:
    """The headers that authenticate ``body`` under ``scheme`` with ``secret``, and carry
    ``delivery_id`` where the scheme puts it (github ``X-GitHub-Delivery``, standard ``webhook-id``;
    stripe and bearer have no such header: the sender puts it in the payload or another header)."""
    key = secret.encode("utf-8")
    if scheme == "github":
        return {
            "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256": "sha256=" + hmac_sha256(key, body).hex(),
        }
    if scheme == "stripe":
        signature = hmac_sha256(key, f"{timestamp}.".encode() + body).hex()
        return {"Stripe-Signature": f"t={timestamp},v1={signature}"}
    if scheme == "standard":
        content = f"{delivery_id}.{timestamp}.".encode() + body
        signature = base64.b64encode(hmac_sha256(standard_key(secret), content)).decode()
        return {"webhook-id": delivery_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{signature}"}
    if scheme == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    raise ValueError(f"unknown scheme {scheme!r}: expected one of {', '.join(m.ALERT_SCHEMES)}")


def _same(expected: bytes, given: str) -> bool:
    return hmac.compare_digest(expected, given.strip().encode("latin-1", errors="replace"))


def _timestamp(text: str | None, now: float, tolerance: timedelta) -> str | None:
    """Why a signed timestamp is refused, or None."""
    try:
        stamp = int(text or "")
    except ValueError:
        return "the signed timestamp is not a number of seconds"
    if abs(now - stamp) > tolerance.total_seconds():
        return f"the signed timestamp is {int(now - stamp)} s from now, outside the tolerance of {tolerance}"
    return None


def signature_problem(
    auth: m.AlertAuth, secret: str, headers: Mapping[str, str], body: bytes, *, now: float
) -> str | None:
    """Why a delivery's signature (or token) is refused, or None when it is valid. ``headers`` by
    lower-case name; ``body`` exactly as received. Every comparison is constant-time."""
    key = secret.encode("utf-8")
    if auth.scheme == "github":
        given = headers.get("x-hub-signature-256")
        if not given:
            return "missing header X-Hub-Signature-256"
        expected = b"sha256=" + hmac_sha256(key, body).hex().encode()
        return None if _same(expected, given) else "X-Hub-Signature-256 does not match the body"
    if auth.scheme == "stripe":
        given = headers.get("stripe-signature")
        if not given:
            return "missing header Stripe-Signature"
        parts = [item.strip().partition("=") for item in given.split(",")]
        stamps = [value for name, _, value in parts if name == "t"]
        signatures = [value for name, _, value in parts if name == "v1"]
        if len(stamps) != 1 or not signatures:
            return "Stripe-Signature needs one t= and at least one v1="
        late = _timestamp(stamps[0], now, tolerance_of(auth))
        if late:
            return late
        expected = hmac_sha256(key, stamps[0].encode() + b"." + body).hex().encode()
        matched = [_same(expected, candidate) for candidate in signatures]  # every one: constant work
        return None if any(matched) else "no v1 signature of Stripe-Signature matches the body"
    if auth.scheme == "standard":
        ident, stamp, given = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
        missing = [
            h for h, v in (("webhook-id", ident), ("webhook-timestamp", stamp), ("webhook-signature", given)) if not v
        ]
        if missing:
            return f"missing header {', '.join(missing)}"
        late = _timestamp(stamp, now, tolerance_of(auth))
        if late:
            return late
        try:
            signing_key = standard_key(secret)
        except ValueError:
            return "the connection's secret is not a Standard Webhooks key (whsec_ + base64)"
        content = f"{ident}.{stamp}.".encode() + body
        expected = base64.b64encode(hmac_sha256(signing_key, content))
        candidates = [entry.partition(",") for entry in (given or "").split()]
        matched = [_same(expected, value) for version, _, value in candidates if version == "v1"]
        return None if any(matched) else "no v1 signature of webhook-signature matches the body"
    # bearer
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "missing header Authorization: Bearer <token>"
    return None if _same(key, token) else "the bearer token does not match"
