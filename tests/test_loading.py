"""How definitions reach Airflow: one stub module per definition, so a broken file is its own import
error (naming file:line:col) and never hides the others — through DagBag and the real dag-processor."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from dag_factory.stubs import sync_stubs

BROKEN = """\
apiVersion: autopilot/v1
kind: Workflow
id: broken_example
steps:
  - id: ping
    script:
      bash: echo hi
      comand: ping
"""


def _bag(definitions: Path, stubs: Path):
    from airflow.dag_processing.dagbag import DagBag

    sync_stubs(definitions, stubs)
    return DagBag(dag_folder=stubs, bundle_path=stubs, bundle_name="autopilot")


def test_a_broken_definition_is_its_own_import_error(airflow_db, definitions_dir, write_definition, tmp_path):
    write_definition("team/broken_example.yaml", BROKEN)
    bag = _bag(definitions_dir, tmp_path / "stubs")
    assert set(bag.dags) >= {"hello_world", "add_machine_to_backups", "nightly_disk_report"}
    assert list(bag.import_errors) == ["team/broken_example.yaml.py"]
    message = bag.import_errors["team/broken_example.yaml.py"]
    assert f"{definitions_dir.name}/team/broken_example.yaml:8:7: step 'ping': unknown field 'comand'" in message


def test_stubs_follow_the_definitions_folder(definitions_dir, write_definition, tmp_path):
    stubs = tmp_path / "stubs"
    sync_stubs(definitions_dir, stubs)
    before = {p.relative_to(stubs).as_posix() for p in stubs.rglob("*.py")}
    assert "hello_world.yaml.py" in before and "functions/check_host.yaml.py" in before
    mtime = (stubs / "hello_world.yaml.py").stat().st_mtime_ns

    path = write_definition("extra.yaml", BROKEN.replace("broken_example", "extra"))
    sync_stubs(definitions_dir, stubs)
    assert (stubs / "extra.yaml.py").exists()
    assert (stubs / "hello_world.yaml.py").stat().st_mtime_ns == mtime, "unchanged stubs are not rewritten"

    path.unlink()
    sync_stubs(definitions_dir, stubs)
    assert not (stubs / "extra.yaml.py").exists()
    # schema/ and templates/ hold no definitions
    assert not any(p.parts[0] in ("schema", "templates") for p in (q.relative_to(stubs) for q in stubs.rglob("*.py")))


def test_a_worker_re_syncs_the_stubs_only_after_something_changed(
    definitions_dir, write_definition, tmp_path, monkeypatch
):
    """A worker initializes the bundle before every task: with nothing changed it leaves the stubs
    alone; a new, edited or deleted definition, or a lost stub, brings a full sync."""
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH", str(tmp_path / "bundles"))
    from dag_factory.bundle import AutopilotDagBundle
    from dag_factory.stubs import INDEX_NAME

    def task_start() -> Path:
        bundle = AutopilotDagBundle(name="autopilot", definitions=str(definitions_dir))
        bundle.initialize()
        return Path(bundle.path)

    stubs = task_start()
    assert (stubs / "hello_world.yaml.py").exists()
    synced = (stubs / INDEX_NAME).stat().st_mtime_ns
    task_start()
    assert (stubs / INDEX_NAME).stat().st_mtime_ns == synced, "nothing changed, yet the stubs were synced"

    path = write_definition("extra.yaml", BROKEN.replace("broken_example", "extra"))
    task_start()
    assert "sha256 " + hashlib.sha256(path.read_bytes()).hexdigest()[:16] in (stubs / "extra.yaml.py").read_text()

    path.write_text(BROKEN.replace("broken_example", "extra_renamed"), encoding="utf-8")
    task_start()
    assert "sha256 " + hashlib.sha256(path.read_bytes()).hexdigest()[:16] in (stubs / "extra.yaml.py").read_text()

    (stubs / "hello_world.yaml.py").unlink()
    task_start()
    assert (stubs / "hello_world.yaml.py").exists()

    path.unlink()
    task_start()
    assert not (stubs / "extra.yaml.py").exists()


def test_worker_parse_compiles_only_the_task_s_workflow(airflow_db, definitions_dir, tmp_path):
    """With the parsing context set (as on a worker), a stub for another workflow builds nothing."""
    stubs = tmp_path / "stubs"
    sync_stubs(definitions_dir, stubs)
    code = (
        "import runpy, sys\nns = runpy.run_path(sys.argv[1])\nprint('DAG' if ns.get('dag') is not None else 'NONE')\n"
    )
    env = {**os.environ, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "hello_world", "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "greet"}
    own = subprocess.run(
        [sys.executable, "-c", code, str(stubs / "hello_world.yaml.py")], env=env, capture_output=True, text=True
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(stubs / "add_machine_to_backups.yaml.py")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert own.stdout.strip() == "DAG", own.stderr
    assert other.stdout.strip() == "NONE", other.stderr


def test_the_real_dag_processor_stores_the_error_and_the_other_dags(airflow_db, definitions_dir, write_definition):
    write_definition("broken_example.yaml", BROKEN)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dag-processor", "--num-runs", "2", "--bundle-name", "autopilot"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]

    from airflow.models import DagModel
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session

    with create_session() as session:
        errors = {e.filename: e.stacktrace for e in session.query(ParseImportError).filter_by(bundle_name="autopilot")}
        dags = {d.dag_id for d in session.query(DagModel).filter_by(bundle_name="autopilot", is_stale=False)}
    assert "broken_example.yaml.py" in errors
    assert "broken_example.yaml:8:7: step 'ping': unknown field 'comand'" in errors["broken_example.yaml.py"]
    assert {"hello_world", "add_machine_to_backups", "nightly_disk_report"} <= dags
    assert "broken_example" not in dags
