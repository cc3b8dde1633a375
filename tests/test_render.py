"""`autopilot render`: the Python file it prints loads in real Airflow, is the same DAG as the one the
factory builds from the YAML, runs the same way, and is tidy, deterministic Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autopilot_provider.cli import main as cli
from autopilot_provider.repository.folder import Project
from dag_factory.loader import load_dag_file
from dag_factory.render import RenderError, render_dag, render_workflow
from tests.conftest import REPO, task_states
from tests.fixtures.voters import voting

EXAMPLES = Project(REPO / "definitions")
WORKFLOWS = sorted(e.id for e in EXAMPLES.index().values() if e.kind == "Workflow")
RUFF = Path(sys.executable).parent / "ruff"

#: Operator attributes set from the definition (the serialized DAG does not hold all of them).
OPERATOR_ARGS = ("language", "script", "env", "cwd", "scope", "cases", "default", "values", "schema")
#: What differs on purpose: where the DAG was defined, and the doc line that says so.
NOT_COMPARED = {"fileloc", "relative_fileloc", "doc_md"}


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def factory_dag(project: Project, workflow_id: str):
    """The DAG exactly as the Autopilot bundle serves it (the generated stub's code path)."""
    rel = project.find("Workflow", workflow_id)
    assert rel is not None
    return load_dag_file(str(project.root), rel)


def load_rendered(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder), bundle_path=str(folder), bundle_name="rendered")
    assert bag.import_errors == {}
    return bag


def write_rendered(folder: Path, name: str, text: str):
    """Write one rendered file into its own folder and load it with Airflow's DagBag."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(text, encoding="utf-8")
    bag = load_rendered(folder)
    assert list(bag.dags) == [name]
    return bag.dags[name]


def serialized(dag) -> dict:
    from airflow.serialization.serialized_objects import DagSerialization

    data = DagSerialization.to_dict(dag)
    data["dag"] = {k: v for k, v in data["dag"].items() if k not in NOT_COMPARED}
    return data


def timetable(dag) -> dict:
    from airflow.serialization.serialized_objects import encode_timetable

    return encode_timetable(dag.timetable)


def group_facts(dag) -> dict:
    return {
        group_id: {
            "children": list(group.children),
            "tooltip": group.tooltip,
            "prefix_group_id": group.prefix_group_id,
            "upstream_group_ids": sorted(group.upstream_group_ids, key=str),
            "downstream_group_ids": sorted(group.downstream_group_ids, key=str),
            "upstream_task_ids": sorted(group.upstream_task_ids),
            "downstream_task_ids": sorted(group.downstream_task_ids),
        }
        for group_id, group in dag.task_group.get_task_group_dict().items()
    }


def task_facts(task) -> dict:
    facts = {
        "class": f"{type(task).__module__}.{type(task).__qualname__}",
        "upstream": sorted(task.upstream_task_ids),
        "downstream": sorted(task.downstream_task_ids),
        "trigger_rule": str(task.trigger_rule),
        "retries": task.retries,
        "retry_delay": task.retry_delay,
        "execution_timeout": task.execution_timeout,
        "doc_md": task.doc_md,
        "owner": task.owner,
        "group": task.task_group.group_id if task.task_group else None,
    }
    facts.update({name: getattr(task, name) for name in OPERATOR_ARGS if hasattr(task, name)})
    return facts


def assert_equivalent(rendered, expected) -> None:
    assert rendered.dag_id == expected.dag_id
    assert rendered.description == expected.description
    assert rendered.schedule == expected.schedule
    assert timetable(rendered) == timetable(expected)
    assert rendered.timezone.name == expected.timezone.name
    assert rendered.start_date == expected.start_date
    assert rendered.catchup == expected.catchup
    assert set(rendered.tags) == set(expected.tags)
    assert rendered.default_args == expected.default_args
    assert list(rendered.params) == list(expected.params)
    for name in expected.params:
        assert rendered.params.get_param(name).dump() == expected.params.get_param(name).dump(), name
    # the doc keeps the title and description; only the line naming the source changes
    assert rendered.doc_md.split("\n\nRendered from `")[0] == expected.doc_md.split("\n\nDefined in `")[0].rstrip()
    assert rendered.task_ids == expected.task_ids
    for task_id in expected.task_ids:
        assert task_facts(rendered.get_task(task_id)) == task_facts(expected.get_task(task_id)), task_id
    assert group_facts(rendered) == group_facts(expected)
    assert serialized(rendered) == serialized(expected)


# ------------------------------------------------------------------------------------------------
# Every example workflow
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered_examples(tmp_path_factory) -> dict[str, str]:
    return {workflow: render_workflow(EXAMPLES, workflow) for workflow in WORKFLOWS}


def test_there_are_examples_to_render():
    assert {"hello_world", "add_machine_to_backups", "nightly_disk_report"} <= set(WORKFLOWS)


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_rendered_example_is_the_factory_dag(workflow, rendered_examples, tmp_path):
    dag = write_rendered(tmp_path, workflow, rendered_examples[workflow])
    assert_equivalent(dag, factory_dag(EXAMPLES, workflow))


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_rendered_example_is_readable_python(workflow, rendered_examples):
    text = rendered_examples[workflow]
    compile(text, f"{workflow}.py", "exec")
    rel = EXAMPLES.find("Workflow", workflow)
    assert text.startswith(f"# Airflow DAG '{workflow}', rendered by `autopilot render` from\n# definitions/{rel} (")
    assert "no longer needs the YAML" in text and "airflow-provider-autopilot" in text
    assert "from airflow.sdk import DAG, Param" in text
    assert f'    dag_id="{workflow}",' in text
    assert "load_dag_file" not in text and ".yaml" not in text.split("\n\n", 1)[1].replace(f"`definitions/{rel}`", "")
    assert render_workflow(EXAMPLES, workflow) == text  # deterministic
    assert render_workflow(EXAMPLES, f"{rel}") == text  # by path too


def test_rendered_examples_pass_ruff(rendered_examples, tmp_path):
    if not RUFF.exists():
        pytest.skip("ruff is not installed in this environment")
    for workflow, text in rendered_examples.items():
        (tmp_path / f"{workflow}.py").write_text(text, encoding="utf-8")
    for extra in ([], ["--line-length", "120"]):
        result = subprocess.run(
            [str(RUFF), "format", "--isolated", "--check", "--diff", *extra, str(tmp_path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(
        [str(RUFF), "check", "--isolated", "--select", "E,F,W,I,B,UP", "--ignore", "E501", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # outside this repository: autopilot_provider is a third-party package there
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hello_world_reads_like_hand_written_airflow(rendered_examples):
    text = rendered_examples["hello_world"]
    assert 'start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),' in text
    assert 'params={"name": Param("world", type="string", title="Who to greet", maxLength=100)},' in text
    assert "    greet = ScriptOperator(\n" in text and "    count = ScriptOperator(\n" in text
    # multi-line scripts stay readable: triple-quoted, one script line per source line
    assert '        script="""\\\ntext = steps["greet"]["outputs"]["greeting"]\n' in text
    assert text.rstrip().endswith("    greet >> count")


def test_functions_become_task_groups_and_branches_are_wired(rendered_examples):
    text = rendered_examples["add_machine_to_backups"]
    assert '    with TaskGroup(\n        group_id="check_host",\n' in text
    assert "        check_host_inputs >> check_host_probe >> check_host_outputs\n" in text
    assert "    check_host >> reachable\n    reachable >> [close_unreachable, agent_status]\n" in text
    assert "    gold_copy >> approve >> [note_approved, tell_rejected]\n" in text  # an approval's else branch
    assert "    gold_policy >> [gold_copy, approve]\n" in text  # the gold-only form, then the approval
    assert "    agent_status >> agent_installed >> [install_agent, plan_backup]\n" in text
    assert "scope=CHECK_HOST_SCOPE," in text and "scope=SCOPE," in text
    # a script with backslashes (echo "{\"reachable\": ...}") is a raw string, so it reads as written
    assert 'script=r"""address=$(getent hosts "$HOST"' in text
    assert 'echo "{\\"reachable\\": $reachable}" >> "$AUTOPILOT_OUTPUT"\n' in text
    assert 'env={"HOST": "{{ inputs.hostname }}", "PING": "{{ inputs.ping }}"},' in text
    nightly = rendered_examples["nightly_disk_report"]
    assert 'schedule="0 6 * * *",' in nightly
    assert 'start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Paris"),' in nightly
    assert "    measure >> classify >> [critical, warning, healthy] >> summary\n" in nightly


# ------------------------------------------------------------------------------------------------
# Harder cases: keywords as ids, awkward strings, a function used twice, timezones, defaults
# ------------------------------------------------------------------------------------------------

TRICKY_FUNCTION = """\
apiVersion: autopilot/v1
kind: Function
id: fan
title: Fan out and in
inputs:
  label: {type: string, required: true}
  times: {type: integer, default: 2}
outputs:
  total: "{{ steps.join.outputs.total }}"
steps:
  - id: start
    script: {env: {LABEL: "{{ inputs.label }}"}, bash: 'echo start "$LABEL"'}
  - id: left
    after: start
    script: {python: "output(n=1)"}
  - id: right
    after: start
    timeout: 90s
    script: {python: "output(n=inputs['times'])"}
  - id: join
    after: [left, right]
    script:
      python: |
        output(total=steps["left"]["outputs"]["n"] + steps["right"]["outputs"]["n"])
"""

TRICKY_WORKFLOW = '''\
apiVersion: autopilot/v1
kind: Workflow
id: tricky
title: "Tricky: quotes ''\\" and \\\\ backslashes"
description: |
  Exercises the renderer.
  Second line with a """ triple quote.
owner: person:alice
tags: [zeta, alpha]
schedule:
  cron: "30 2 * * 1"
  timezone: America/New_York
  start_date: "2025-03-10"
  catchup: true
form:
  properties:
    mode:
      type: string
      enum: [fast, slow]
      values_display: {fast: Fast, slow: Slow}
      description: How to run.
    count: {type: integer, minimum: 0, maximum: 10, default: 3}
    note: {type: string, format: multiline, description_md: "**Markdown** help"}
    flags: {type: array, items: {type: string}, default: [a, b]}
  required: [count]
defaults:
  retries: 2
  retry_delay: 1m30s
  timeout: 1h
steps:
  - id: class
    title: A keyword as a step id
    description: |
      Its script holds a triple quote,
      so it cannot be a triple-quoted string.
    script:
      env: {MODE: "{{ form.mode }}", EMPTY: ""}
      cwd: /tmp
      bash: |
        echo 'a """ b'
        echo done
  - id: None
    retries: 0
    script:
      bash: |-
        echo one
        echo "two"
  - id: first_call
    use: {function: fan, with: {label: first}}
  - id: second_call
    after: class
    use: {function: fan, with: {label: second, times: 5}}
  - id: route
    after: [None, first_call, second_call]
    decision:
      cases:
        - when: form.mode == 'fast'
          then: [quick, log]
        - when: form.count > 5
          then: slow
      default: log
  - id: quick
    script: {bash: "echo quick\\tdone"}
  - id: slow
    script: {python: "print('slow')\\nprint(\\"\\\\\\\\\\")\\n"}
  - id: log
    script: {bash: echo log}
  - id: finish
    after: [quick, slow, log]
    trigger_rule: all_done
    script: {bash: echo finish}
'''


TRICKY_CONTACTS = """\
apiVersion: autopilot/v1
kind: Contacts
id: tricky_contacts
people:
  - {id: alice, name: Alice, email: alice@example.com}
"""


@pytest.fixture(scope="module")
def tricky_project(tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("tricky") / "definitions"
    (root / "functions").mkdir(parents=True)
    (root / "functions" / "fan.yaml").write_text(TRICKY_FUNCTION, encoding="utf-8")
    (root / "tricky.yaml").write_text(TRICKY_WORKFLOW, encoding="utf-8")
    # the owner is a contact reference: it must name someone of the contacts
    (root / "contacts.yaml").write_text(TRICKY_CONTACTS, encoding="utf-8")
    project = Project(root)
    loaded = project.load("tricky.yaml")
    assert loaded.diagnostics == []
    return project


def test_tricky_workflow_renders_to_the_same_dag(tricky_project, tmp_path):
    text = render_workflow(tricky_project, "tricky")
    dag = write_rendered(tmp_path / "dags", "tricky", text)
    assert_equivalent(dag, factory_dag(tricky_project, "tricky"))
    # keywords get a trailing underscore, function calls their own names, scopes their own constants
    assert "    class_ = ScriptOperator(\n" in text and "    None_ = ScriptOperator(\n" in text
    assert "as first_call:" in text and "as second_call:" in text
    assert "FIRST_CALL_SCOPE = {" in text and "SECOND_CALL_SCOPE = {" in text
    assert 'start_date=pendulum.datetime(2025, 3, 10, tz="America/New_York"),' in text
    assert "retry_delay=timedelta(minutes=1, seconds=30)," in text
    assert "execution_timeout=timedelta(hours=1)," in text
    # strings that triple quotes cannot hold safely fall back to one escaped line
    assert "script='echo \\'a \"\"\" b\\'\\necho done\\n'," in text
    assert "script='echo one\\necho \"two\"'," in text
    assert 'script="echo quick\\tdone",' in text
    assert 'script=r"""print(\'slow\')\nprint("\\\\")\n""",' in text
    assert "    class_ >> [None_, second_call]\n    None_ >> [first_call, route]\n" in text
    assert "    [first_call, second_call] >> route >> [quick, slow, log] >> finish\n" in text
    assert f"DEFINITIONS = {str(tricky_project.root)!r}".replace("'", '"') in text
    compile(text, "tricky.py", "exec")
    if RUFF.exists():
        result = subprocess.run(
            [str(RUFF), "format", "--isolated", "--check", "--diff", str(tmp_path / "dags")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_hand_made_dag_round_trips_edges_the_factory_never_makes(tmp_path):
    """Edges that join only some of a group's tasks are written task by task."""
    import pendulum
    from airflow.sdk import DAG, TaskGroup

    from autopilot_provider.operators.script import ScriptOperator

    with DAG("hand_made", schedule="@daily", start_date=pendulum.datetime(2024, 5, 6, 7, 30, tz="Asia/Tokyo")) as dag:
        first = ScriptOperator(task_id="first", language="bash", script="echo 1")
        with TaskGroup("left") as left:
            a = ScriptOperator(task_id="a", language="bash", script="echo a")
            b = ScriptOperator(task_id="b", language="bash", script="echo b")
        with TaskGroup("right", tooltip="Right side") as right:
            c = ScriptOperator(task_id="c", language="python", script="print('c')\n")
        last = ScriptOperator(task_id="last", language="bash", script="echo last", trigger_rule="one_success")
        first >> left >> right
        a >> last  # only one of left's two leaves
        c >> last
        b >> c  # already implied by left >> right: nothing new
    text = render_dag(dag, source="hand_made.py")
    rendered = write_rendered(tmp_path, "hand_made", text)
    for task_id in dag.task_ids:
        assert task_facts(rendered.get_task(task_id)) == task_facts(dag.get_task(task_id)), task_id
    assert group_facts(rendered) == group_facts(dag)
    assert timetable(rendered) == timetable(dag)
    assert 'pendulum.datetime(2024, 5, 6, 7, 30, tz="Asia/Tokyo")' in text
    assert "    first >> left >> right\n" in text
    assert "    [left_a, right_c] >> last\n" in text  # c >> last was set task to task
    assert "DEFINITIONS" not in text and "SCOPE" not in text


# ------------------------------------------------------------------------------------------------
# End to end: the rendered DAG runs like the factory-built one
# ------------------------------------------------------------------------------------------------

RUNS = [
    ("hello_world", {"name": "Ada"}),
    (
        "add_machine_to_backups",
        {"hostname": "localhost", "policy": "gold", "justification": "database server for X", "requester": "alice"},
    ),
    ("nightly_disk_report", {"path": "/", "warn_at": 100, "critical_at": 100}),
]

_RUN_RENDERED = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag

    folder, runs = sys.argv[1], json.loads(sys.argv[2])
    bag = DagBag(dag_folder=folder, bundle_path=folder, bundle_name="rendered")
    assert not bag.import_errors, bag.import_errors
    results = {}
    for dag_id, conf in runs:
        dag_run = bag.dags[dag_id].test(run_conf=conf)
        results[dag_id] = {
            "state": str(dag_run.state),
            "tasks": {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()},
            "outputs": {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in dag_run.get_task_instances()},
        }
    print("RESULTS=" + json.dumps(results, default=str))
    """
)


def run_rendered(folder: Path, runs: list[tuple[str, dict]]) -> dict:
    """Run rendered DAGs with dag.test() in a subprocess whose only DAG bundle is ``folder``.

    dag.test() serializes the DAG from a configured bundle, and the test session's bundle serves
    the YAML definitions; the subprocess shares the session's AIRFLOW_HOME and database."""
    bundles = [
        {
            "name": "rendered",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder), "refresh_interval": 0},
        }
    ]
    env = {
        **os.environ,
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
    }
    result = subprocess.run(
        [sys.executable, "-c", _RUN_RENDERED, str(folder), json.dumps(runs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=600,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULTS=")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-5000:]
    return json.loads(lines[-1].removeprefix("RESULTS="))


def test_rendered_dags_run_like_the_factory_dags(
    run_workflow, definitions_dir, tmp_path, backup_connections, smtp_server, slack_webhook, servicenow_default
):
    project = Project(definitions_dir)
    folder = tmp_path / "rendered"
    folder.mkdir()
    for dag_id, _ in RUNS:
        (folder / f"{dag_id}.py").write_text(render_workflow(project, dag_id), encoding="utf-8")
    # the scenario's three approvals: alice's manager carol, operations (bob) and storage (dave); for
    # gold, storage first places the second copy
    approvers = {"carol": "approve", "bob": "approve", "dave": "approve"}
    second_copy = {"dave": {"array": "san01", "copy_policy": "silver"}}
    with voting("add_machine_to_backups", approvers, answers=second_copy):
        rendered = run_rendered(folder, RUNS)
    backup_connections.reset()  # the factory runs meet the backup product as the rendered runs did
    for dag_id, conf in RUNS:
        with voting(dag_id, approvers, answers=second_copy):
            factory_run = run_workflow(dag_id, conf)
        assert rendered[dag_id]["state"] == str(factory_run.state), dag_id
        assert rendered[dag_id]["tasks"] == task_states(factory_run), dag_id
    assert rendered["hello_world"]["outputs"]["count"] == {"letters": len("HelloAda")}
    assert rendered["add_machine_to_backups"]["tasks"]["report_unreachable"] == "skipped"
    assert rendered["add_machine_to_backups"]["outputs"]["approve"]["outcome"] == "approved"
    assert rendered["add_machine_to_backups"]["outputs"]["gold_copy"]["array"] == "san01"
    plan = rendered["add_machine_to_backups"]["outputs"]["plan_backup"]
    assert {k: plan[k] for k in ("hostname", "frequency", "retention_days")} == {
        "hostname": "localhost",
        "frequency": "daily",
        "retention_days": 90,
    }


# ------------------------------------------------------------------------------------------------
# Errors and the command line
# ------------------------------------------------------------------------------------------------


def test_unknown_workflow_suggests_the_closest_id():
    with pytest.raises(RenderError, match=r"unknown workflow 'helo_world' \(did you mean 'hello_world'\?\)"):
        render_workflow(EXAMPLES, "helo_world")
    with pytest.raises(RenderError, match="workflows in definitions: add_machine_to_backups, hello_world"):
        render_workflow(EXAMPLES, "zzz")
    with pytest.raises(
        RenderError, match=r"no such definition file: helo_world.yaml \(did you mean 'hello_world.yaml'\?\)"
    ):
        render_workflow(EXAMPLES, "helo_world.yaml")


def test_only_workflows_render():
    with pytest.raises(RenderError, match=r"definitions/functions/check_host.yaml defines a Function, not a Workflow"):
        render_workflow(EXAMPLES, "functions/check_host.yaml")


def test_invalid_definition_lists_its_diagnostics(tmp_path):
    shutil.copytree(REPO / "definitions", tmp_path / "definitions")
    broken = tmp_path / "definitions" / "broken.yaml"
    broken.write_text(
        "apiVersion: autopilot/v1\nkind: Workflow\nid: broken\nsteps:\n  - id: a\n    script: {bash: echo, python: x}\n"
        "  - id: b\n    aftr: a\n    script: {bash: echo}\n",
        encoding="utf-8",
    )
    with pytest.raises(RenderError) as caught:
        render_workflow(Project(tmp_path / "definitions"), "broken")
    message = str(caught.value)
    assert message.startswith("definitions/broken.yaml is not a valid definition:\n")
    assert "\n  definitions/broken.yaml:6:13: step 'a': a script needs exactly one of bash" in message
    assert "\n  definitions/broken.yaml:8:5: " in message and "did you mean 'after'" in message


def test_cli_prints_python(capsys):
    assert cli(["render", "hello_world", "--definitions", str(REPO / "definitions")]) == 0
    out = capsys.readouterr().out
    compile(out, "hello_world.py", "exec")
    assert out.startswith("# Airflow DAG 'hello_world', rendered by `autopilot render` from\n")
    assert "with DAG(\n" in out


def test_cli_unknown_workflow_exits_1_with_a_suggestion(capsys):
    assert cli(["render", "hello_wrld", "--definitions", str(REPO / "definitions")]) == 1
    err = capsys.readouterr().err
    assert "autopilot render: unknown workflow 'hello_wrld' (did you mean 'hello_world'?)" in err


def test_cli_writes_the_file_and_accepts_paths(tmp_path, monkeypatch, capsys):
    target = tmp_path / "hello_world.py"
    assert cli(["render", "hello_world", "--definitions", str(REPO / "definitions"), "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    by_id = target.read_text(encoding="utf-8")
    monkeypatch.chdir(REPO)
    assert cli(["render", "definitions/hello_world.yaml"]) == 0  # relative to the current directory
    assert capsys.readouterr().out == by_id
    assert cli(["render", "hello_world.yaml"]) == 0  # relative to the definitions folder
    assert capsys.readouterr().out == by_id


def test_cli_runs_as_a_command(tmp_path):
    """The installed entry point, as a user runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "autopilot_provider.cli", "render", "nightly_disk_report", "-o", str(tmp_path / "n.py")],
        capture_output=True,
        text=True,
        cwd=str(REPO),
    )
    assert result.returncode == 0, result.stderr
    assert "with DAG(" in (tmp_path / "n.py").read_text(encoding="utf-8")
