"""Parsing stubs remembers which definitions passed their checks (next to the stubs), so the
dag-processor's re-parses and workers' task starts skip them — and never report anything different
from a parse without that cache."""

from __future__ import annotations

import shutil
from pathlib import Path

from autopilot_provider.repository import folder as project
from dag_factory.stubs import sync_stubs, validated_dir

FUNCTION = """\
apiVersion: autopilot/v1
kind: Function
id: greet
inputs:
  name: {type: string, required: true}
steps:
  - id: say
    script:
      env: {NAME: "{{ inputs.name }}"}
      bash: echo "hello $NAME"
"""
WORKFLOW = """\
apiVersion: autopilot/v1
kind: Workflow
id: cached_greeting
form:
  properties:
    who: {type: string, default: world}
steps:
  - id: greet
    use: {function: greet, with: {name: "{{ form.who }}"}}
  - id: done
    script:
      env: {WHO: "{{ form.who }}"}
      bash: echo "done for $WHO"
"""


def _bag(stubs: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=stubs, bundle_path=stubs, bundle_name="autopilot")


def _fresh_bag(stubs: Path):
    """The same parse with nothing remembered (on disk or in this process)."""
    shutil.rmtree(validated_dir(stubs), ignore_errors=True)
    project._PASSED.clear()
    return _bag(stubs)


def test_a_reparse_builds_the_same_dag_from_the_remembered_checks(airflow_db, tmp_path):
    definitions, stubs = tmp_path / "definitions", tmp_path / "stubs"
    (definitions / "functions").mkdir(parents=True)
    (definitions / "functions" / "greet.yaml").write_text(FUNCTION, encoding="utf-8")
    (definitions / "cached_greeting.yaml").write_text(WORKFLOW, encoding="utf-8")
    sync_stubs(definitions, stubs)

    first = _fresh_bag(stubs)
    assert not first.import_errors
    remembered = {p.relative_to(validated_dir(stubs)).as_posix() for p in validated_dir(stubs).rglob("*.ok")}
    assert remembered == {"cached_greeting.yaml.ok", "functions/greet.yaml.ok"}

    project._PASSED.clear()  # a new process: only what is on disk
    again = _bag(stubs)
    assert not again.import_errors
    dag, before = again.dags["cached_greeting"], first.dags["cached_greeting"]
    assert sorted(dag.task_dict) == sorted(before.task_dict)
    assert dag.params.dump() == before.params.dump()


def test_a_broken_function_is_reported_by_its_users_after_a_refresh(airflow_db, tmp_path):
    definitions, stubs = tmp_path / "definitions", tmp_path / "stubs"
    (definitions / "functions").mkdir(parents=True)
    (definitions / "functions" / "greet.yaml").write_text(FUNCTION, encoding="utf-8")
    (definitions / "cached_greeting.yaml").write_text(WORKFLOW, encoding="utf-8")
    sync_stubs(definitions, stubs)
    assert not _fresh_bag(stubs).import_errors

    # the function's input is renamed: the (unchanged) workflow now passes an unknown input
    (definitions / "functions" / "greet.yaml").write_text(FUNCTION.replace("name", "person"), encoding="utf-8")
    sync_stubs(definitions, stubs)  # the bundle's refresh
    cached = _bag(stubs)
    assert "cached_greeting" not in cached.dags
    assert "function 'greet' has no input 'name'" in cached.import_errors["cached_greeting.yaml.py"]
    assert cached.import_errors == _fresh_bag(stubs).import_errors


def test_a_file_with_errors_is_never_remembered(airflow_db, tmp_path):
    definitions, stubs = tmp_path / "definitions", tmp_path / "stubs"
    definitions.mkdir()
    (definitions / "typo.yaml").write_text(WORKFLOW.replace("use:", "uze:"), encoding="utf-8")
    sync_stubs(definitions, stubs)
    errors = _bag(stubs).import_errors
    assert "unknown field 'uze'" in errors["typo.yaml.py"]
    assert not list(validated_dir(stubs).rglob("*.ok"))
    assert _bag(stubs).import_errors == errors
