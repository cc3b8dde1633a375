"""Files written by ``autopilot render`` before a module moved keep importing: the old operator paths
re-export the same classes and say where they went (a DeprecationWarning)."""

from __future__ import annotations

import importlib
import sys

import pytest
from airflow.sdk import DAG

from autopilot_provider.operators.use import ValuesOperator
from autopilot_provider.repository.folder import Project
from dag_factory.render import render_workflow
from tests.conftest import REPO

pytestmark = pytest.mark.db_independent


def import_fresh(module: str):
    """Import ``module`` as a rendered DAG file would in a new process (its warning fires on import)."""
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def test_the_old_values_module_warns_and_gives_the_use_operator():
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


def test_a_file_rendered_before_the_move_still_builds_the_same_dag():
    text = render_workflow(Project(REPO / "definitions"), "add_machine_to_backups")
    assert "from autopilot_provider.operators.use import ValuesOperator" in text
    before = text.replace(
        "from autopilot_provider.operators.use import", "from autopilot_provider.operators.values import"
    )

    def dag_of(source: str) -> DAG:
        namespace: dict = {}
        exec(compile(source, "rendered.py", "exec"), namespace)
        (dag,) = [value for value in namespace.values() if isinstance(value, DAG)]
        return dag

    sys.modules.pop("autopilot_provider.operators.values", None)
    with pytest.warns(DeprecationWarning, match="autopilot_provider.operators.use"):
        old = dag_of(before)
    new = dag_of(text)
    assert {t.task_id: type(t) for t in old.tasks} == {t.task_id: type(t) for t in new.tasks}
    assert any(isinstance(t, ValuesOperator) for t in old.tasks)
