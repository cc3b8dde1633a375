"""``/api/v1/keys``: the public key that verifies approval decisions signed by this server. Public (no
login): workers fetch it to check, before a step an approval guards runs, that the approvers decided it."""

from __future__ import annotations

import base64

from autopilot_plugin.api.datamodels.keys import PublicKey
from fastapi import APIRouter

from autopilot_provider.server.approval_links import approval_public_key

router = APIRouter(prefix="/keys", tags=["Approvals"])


@router.get("/approvals", operation_id="get_approval_public_key")
def get_approval_public_key() -> PublicKey:
    """The key that verifies approval decisions signed by this server. Public, so no login: workers
    fetch it to check, before a step an approval guards runs, that the approvers decided it."""
    return PublicKey(public_key=base64.b64encode(approval_public_key()).decode())
