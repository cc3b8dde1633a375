"""Signed approval outcomes, checked by the steps an approval guards.

Anyone who may edit a run's task instances in Airflow (with the SimpleAuthManager: the ``user`` role,
so every requester) can mark an approval task ``success`` or write its XCom through Airflow's REST
API, and the steps after it would run as if the approvers had agreed. So the API server signs each
decision it makes (Ed25519, with a private key that never leaves the metadata database:
``autopilot_provider.server.approval_links.approval_signing_key``) and hands the signature to the task with the
HITL answer; the approval step keeps it in its outputs (``seal``). Before a guarded step runs, its
:class:`ApprovalGuard` (attached by the factory as the task's ``pre_execute`` hook) checks that the
approval's outputs carry a valid signature for *this* run and task with the outcome that path needs.

Workers verify with the public key: ``[autopilot] approval_public_key`` when an admin sets it, else
fetched once per process from the API server the worker already talks to (``GET
/autopilot/api/v1/keys/approvals`` next to ``[core] execution_api_server_url``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from autopilot_provider import config

#: The reserved ``params_input`` key of an approval's HITL answer that holds the signed decision.
SEAL_KEY = "_autopilot_seal"
#: What an approval's outcome must be for a guarded step to run.
APPROVED, NOT_APPROVED, DECIDED = "approved", "not_approved", "decided"
#: Where the API server publishes the public key (under its base URL).
KEY_ROUTE = "/autopilot/api/v1/keys/approvals"

_public_key: bytes | None = None


def seal_payload(
    *, dag_id: str, run_id: str, task_id: str, map_index: int, outcome: str, approved: bool, decided_at: str
) -> bytes:
    """The canonical bytes a decision's signature covers (``approved`` too: a time-out may approve)."""
    data = {
        "approved": approved,
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "map_index": map_index,
        "outcome": outcome,
        "decided_at": decided_at,
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def public_key() -> bytes:
    """The raw Ed25519 public key approvals are verified with (cached per process)."""
    global _public_key
    if _public_key is None:
        configured = config.get("approval_public_key")
        key = base64.b64decode(configured) if configured else _fetch_public_key()
        if len(key) != 32:
            raise RuntimeError("[autopilot] approval_public_key is not an Ed25519 public key (32 bytes, base64)")
        _public_key = key
    return _public_key


def _fetch_public_key() -> bytes:
    import httpx

    execution = config.execution_api_server_url() or f"{config.api_base_url()}/execution/"
    url = execution.rstrip("/").removesuffix("/execution") + KEY_ROUTE
    try:
        response = httpx.get(url, timeout=30)
        response.raise_for_status()
        return base64.b64decode(response.json()["public_key"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise RuntimeError(
            f"cannot fetch the key that verifies approvals from {url} ({exc}); "
            "the API server must be reachable, or set [autopilot] approval_public_key"
        ) from None


def verify(outputs: Any, *, dag_id: str, run_id: str, task_id: str, key: bytes) -> bool | None:
    """Whether approval ``task_id`` of this run was approved (True/False) by a signed decision, or
    None when ``outputs`` (its XCom) carries no valid signature for it."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    seal = outputs.get("seal") if isinstance(outputs, Mapping) else None
    if not isinstance(seal, Mapping):
        return None
    outcome, decided_at, signature = seal.get("outcome"), seal.get("decided_at"), seal.get("signature")
    approved = seal.get("approved")
    if not all(isinstance(v, str) for v in (outcome, decided_at, signature)) or not isinstance(approved, bool):
        return None
    payload = seal_payload(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=-1,
        outcome=outcome,
        approved=approved,
        decided_at=decided_at,
    )
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError):
        return None
    if outputs.get("outcome") != outcome or outputs.get("approved") is not approved:
        return None  # the readable outputs were edited beside a genuine seal
    return approved


@dataclass(frozen=True)
class ApprovalGuard:
    """A ``pre_execute`` hook: the task runs only if each approval it follows was decided by its
    approvers with the outcome its path needs (``approved``, ``not_approved`` for `else` steps, or
    ``decided`` for steps both paths lead to)."""

    requires: Sequence[Sequence[str]]  # (approval task id, APPROVED | NOT_APPROVED | DECIDED) pairs

    def __post_init__(self) -> None:
        # as tuples, whether built by the factory or written out by `autopilot render` as lists
        object.__setattr__(self, "requires", tuple((str(t), str(n)) for t, n in self.requires))

    def __call__(self, context: Any) -> None:
        ti = context["ti"]
        key = public_key()
        for task_id, needs in self.requires:
            outputs = ti.xcom_pull(task_ids=task_id, key="return_value")
            approved = verify(outputs, dag_id=ti.dag_id, run_id=ti.run_id, task_id=task_id, key=key)
            step = task_id.rsplit(".", 1)[-1]
            if approved is None:
                raise AirflowFailException(
                    f"approval '{step}' was not decided by its approvers: the task was marked success or its "
                    "outputs were edited"
                )
            if (needs == APPROVED and not approved) or (needs == NOT_APPROVED and approved):
                raise AirflowFailException(
                    f"approval '{step}' was {'approved' if approved else 'not approved'}: this step runs only "
                    f"when it is {'approved' if needs == APPROVED else 'not approved'}"
                )
