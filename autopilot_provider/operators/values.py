"""Deprecated: the operator of `use` steps lives in :mod:`autopilot_provider.operators.use`.

Kept so that DAG files written by ``autopilot render`` before the move keep importing.
"""

from __future__ import annotations

import warnings

from autopilot_provider.operators.use import ValuesOperator

__all__ = ["ValuesOperator"]

warnings.warn(
    "autopilot_provider.operators.values is deprecated: import ValuesOperator from autopilot_provider.operators.use",
    DeprecationWarning,
    stacklevel=2,
)
