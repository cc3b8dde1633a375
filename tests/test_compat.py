"""Files written by ``autopilot render`` before a module moved keep importing: the old operator paths
re-export the same classes and say where they went (a DeprecationWarning)."""

from __future__ import annotations

import importlib
import sys

import pytest

pytestmark = pytest.mark.db_independent


def import_fresh(module: str):
    """Import ``module`` as a rendered DAG file would in a new process (its warning fires on import)."""
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def test_the_old_values_module_warns_and_gives_the_use_operator():
    from autopilot_provider.operators.use import ValuesOperator

    with pytest.warns(DeprecationWarning, match="autopilot_provider.operators.use"):
        old = import_fresh("autopilot_provider.operators.values")
    assert old.ValuesOperator is ValuesOperator


def test_the_old_human_module_warns_and_gives_the_approval_and_form_operators():
    from autopilot_provider.operators.approval import AutopilotApprovalOperator
    from autopilot_provider.operators.form import AutopilotFormOperator

    with pytest.warns(DeprecationWarning, match="autopilot_provider.operators.approval"):
        old = import_fresh("autopilot_provider.operators.human")
    assert old.AutopilotApprovalOperator is AutopilotApprovalOperator
    assert old.AutopilotFormOperator is AutopilotFormOperator
