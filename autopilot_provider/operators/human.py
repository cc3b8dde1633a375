"""Deprecated: the approval and form operators moved to :mod:`autopilot_provider.operators.approval`
and :mod:`autopilot_provider.operators.form`; the request they hand to the API server and its
constants to :mod:`autopilot_provider.repository.hitl`.

Kept so that DAG files written by ``autopilot render`` with an earlier release keep importing.
"""

from __future__ import annotations

import warnings

from autopilot_provider import config
from autopilot_provider.operators.approval import (
    AutopilotApprovalOperator,
    HitlStepError,
    HitlStepOperator,
    within,
)
from autopilot_provider.operators.form import AutopilotFormOperator
from autopilot_provider.repository.hitl import (
    APPROVE,
    AUTOPILOT_USER,
    AUTOPILOT_USER_ID,
    BACKSTOP,
    REJECT,
    REQUEST_XCOM_KEY,
    RULES_FIELD,
    SUBMIT,
    resolve_slots,
)

warnings.warn(
    "autopilot_provider.operators.human is deprecated: import AutopilotApprovalOperator from "
    "autopilot_provider.operators.approval and AutopilotFormOperator from autopilot_provider.operators.form "
    "(`autopilot render` writes the new paths)",
    DeprecationWarning,
    stacklevel=2,
)

HumanStepOperator = HitlStepOperator
HumanStepError = HitlStepError
self_approval_allowed = config.allow_self_approval

__all__ = [
    "APPROVE",
    "AUTOPILOT_USER",
    "AUTOPILOT_USER_ID",
    "BACKSTOP",
    "REJECT",
    "REQUEST_XCOM_KEY",
    "RULES_FIELD",
    "SUBMIT",
    "AutopilotApprovalOperator",
    "AutopilotFormOperator",
    "HumanStepError",
    "HumanStepOperator",
    "resolve_slots",
    "self_approval_allowed",
    "within",
]
