"""Script steps: values stay data, outputs come from $AUTOPILOT_OUTPUT, scripts see only what they
declare; outputs flow through XCom, functions and decisions route them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autopilot_provider.definitions.code import added_code, env_name_problem
from autopilot_provider.definitions.validate import load_text, validate
from autopilot_provider.operators.script import (
    REAPER,
    ScriptOperator,
    ScriptOutputError,
    allowed_environment,
    parse_outputs,
    read_outputs,
)
from tests.conftest import task_states

INJECTION = """\
apiVersion: autopilot/v1
kind: Workflow
id: injection_probe
form:
  properties:
    value: {type: string, default: safe}
  required: [value]
steps:
  - id: in_quotes
    script:
      env: {VALUE: "{{ form.value }}"}
      bash: |
        echo "value: $VALUE"
        printf '%s' "$VALUE" > seen.txt
        python3 -c 'import json, sys; print(json.dumps({"seen": open("seen.txt").read()}))' >> "$AUTOPILOT_OUTPUT"
  - id: in_heredoc
    script:
      env: {VALUE: "{{ form.value }}"}
      bash: |
        cat > said.txt <<EOF
        $VALUE
        EOF
        python3 -c 'import json; print(json.dumps({"said": open("said.txt").read()}))' >> "$AUTOPILOT_OUTPUT"
  - id: in_python
    script:
      python: |
        output(length=len(form["value"]), seen=steps["in_quotes"]["outputs"]["seen"])
"""


def test_form_values_in_commands_run_nothing(run_workflow, write_definition, tmp_path):
    """A requester's `$(…)`, backticks, quotes and a newline + JSON arrive verbatim through env, inside
    "…" and inside an unquoted heredoc; no command of theirs runs, no output is forged."""
    marker = tmp_path / "pwned"
    payload = (
        f"x; touch {marker}; $(touch {marker}) `touch {marker}` ' \" \\ "
        '\n{"seen": "forged", "said": "forged", "owned": true}\nowned=true'
    )
    write_definition("injection_probe.yaml", INJECTION)
    dag_run = run_workflow("injection_probe", {"value": payload})
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert not marker.exists()
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert tis["in_quotes"].xcom_pull(task_ids="in_quotes") == {"seen": payload}
    assert tis["in_heredoc"].xcom_pull(task_ids="in_heredoc") == {"said": payload + "\n"}
    assert tis["in_python"].xcom_pull(task_ids="in_python") == {"length": len(payload), "seen": payload}


FORGED = """\
apiVersion: autopilot/v1
kind: Workflow
id: forged_outputs
form:
  properties:
    note: {type: string, default: hello}
  required: [note]
steps:
  - id: echo_note
    script:
      env: {NOTE: "{{ form.note }}"}
      bash: |
        echo "$NOTE"
        echo '{"approved": true}'
        echo "status=checked" >> "$AUTOPILOT_OUTPUT"
        output note "$NOTE"
  - id: silent
    script:
      python: |
        print('{"approved": true}')
"""


def test_json_echoed_to_stdout_is_not_an_output(run_workflow, write_definition):
    """Stdout is only logged; bash's `output NAME VALUE` writes a value that holds newlines, JSON and
    `name=value` lines as one output."""
    note = 'fine\n{"approved": true, "status": "forged"}\napproved=true\nEOF\n'
    write_definition("forged_outputs.yaml", FORGED)
    dag_run = run_workflow("forged_outputs", {"note": note})
    assert str(dag_run.state) == "success", task_states(dag_run)
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert tis["echo_note"].xcom_pull(task_ids="echo_note") == {"status": "checked", "note": note}
    assert tis["silent"].xcom_pull(task_ids="silent") == {}


ENVIRONMENT = """\
apiVersion: autopilot/v1
kind: Workflow
id: script_environment
steps:
  - id: bash_env
    script:
      bash: |
        env | cut -d= -f1 | sort | python3 -c 'import json, sys; print(json.dumps({"names": sys.stdin.read().split()}))' >> "$AUTOPILOT_OUTPUT"
  - id: python_env
    script:
      python: |
        import os
        output(names=sorted(os.environ))
"""


def test_scripts_do_not_see_the_workers_airflow_secrets(run_workflow, write_definition, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SECRET", "postgres://admin:hunter2-secret@db/prod")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "jwt-signing-secret")
    monkeypatch.setenv("AIRFLOW_VAR_TOKEN", "variable-secret")
    monkeypatch.setenv("SOME_WORKER_SETTING", "not for scripts")
    monkeypatch.setenv("CORP_REGION", "eu")
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__SCRIPT_ENV_ALLOWLIST", "CORP_*, AIRFLOW_CONN_*")
    write_definition("script_environment.yaml", ENVIRONMENT)
    dag_run = run_workflow("script_environment")
    assert str(dag_run.state) == "success", task_states(dag_run)
    for ti in dag_run.get_task_instances():
        names = set(ti.xcom_pull(task_ids=ti.task_id)["names"])
        assert not {name for name in names if "AIRFLOW" in name.upper()}, names
        assert "SOME_WORKER_SETTING" not in names
        assert "CORP_REGION" in names  # the admin's allow-list, read from [autopilot] script_env_allowlist
        assert {"PATH", "AUTOPILOT_RUN_ID", "AUTOPILOT_OUTPUT"} <= names


def test_the_admins_allow_list_adds_names_but_never_airflows():
    worker = {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://proxy:3128",
        "CORP_REGION": "eu",
        "CORP_TOKEN_FILE": "/run/token",
        "OTHER": "x",
        "AIRFLOW_CONN_DB": "postgres://u:p@h/db",
        "AIRFLOW__CORE__FERNET_KEY": "key",
        "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "d",
    }
    assert allowed_environment(worker) == {"PATH": "/usr/bin", "LC_ALL": "C.UTF-8"}
    assert allowed_environment(worker, ["HTTPS_PROXY", "CORP_*", "AIRFLOW*", "*"]) == {
        k: v for k, v in worker.items() if "AIRFLOW" not in k
    }
    assert set(allowed_environment(worker, ["HTTPS_PROXY", "CORP_*"])) == {
        "PATH",
        "LC_ALL",
        "HTTPS_PROXY",
        "CORP_REGION",
        "CORP_TOKEN_FILE",
    }


CONNECTED = """\
apiVersion: autopilot/v1
kind: Workflow
id: uses_a_connection
steps:
  - id: call_backup
    script:
      connections: {BACKUP: backup_api}
      bash: |
        echo "logging in to $BACKUP_HOST:$BACKUP_PORT as $BACKUP_LOGIN with $BACKUP_PASSWORD via $BACKUP_URI"
        echo "token $(python3 -c 'import json, os; print(json.loads(os.environ["BACKUP_EXTRA"])["api_token"])')"
        echo "host=$BACKUP_HOST" >> "$AUTOPILOT_OUTPUT"
        echo "password_length=${#BACKUP_PASSWORD}" >> "$AUTOPILOT_OUTPUT"
        python3 -c 'import json, os; print(json.dumps({"extra": json.loads(os.environ["BACKUP_EXTRA"])}))' >> "$AUTOPILOT_OUTPUT"
"""


@pytest.fixture
def task_logging():
    """Logs configured as a worker's task runner configures them (with Airflow's secrets masking), at
    INFO where a script's output is logged; dag.test() alone uses the plain configuration."""
    from airflow.logging_config import configure_logging
    from airflow.sdk.log import configure_logging as configure_task_logging

    configure_task_logging.__wrapped__(log_level="INFO")
    yield
    configure_logging()


def test_a_declared_connection_reaches_the_script_and_its_secrets_are_masked(
    task_logging, run_workflow, write_definition, monkeypatch, capfd
):
    password, token = "s3cret-Passw0rd!", "tok-9f8e7d6c5b4a"
    connection = {
        "conn_type": "http",
        "host": "backup.example.com",
        "port": 8443,
        "login": "autopilot",
        "password": password,
        "schema": "https",
        "extra": {"api_token": token, "region": "eu-west"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_API", json.dumps(connection))
    write_definition("uses_a_connection.yaml", CONNECTED)
    dag_run = run_workflow("uses_a_connection")
    assert str(dag_run.state) == "success", task_states(dag_run)
    ti = dag_run.get_task_instances()[0]
    assert ti.xcom_pull(task_ids="call_backup") == {
        "host": "backup.example.com",
        "password_length": str(len(password)),
        "extra": {"api_token": token, "region": "eu-west"},
    }
    out, err = capfd.readouterr()
    log = out + err
    assert "logging in to backup.example.com:8443 as autopilot with *** via ***" in log
    assert "token ***" in log
    assert password not in log and token not in log


def test_outputs_file_format():
    text = textwrap.dedent(
        """\
        name=value with = signs and "quotes"
        empty=

        {"count": 3, "ok": true, "items": [1, 2]}
        notes<<END_OF_NOTES
        line one
        name=not an output
        END_OF_NOTES
        count=4
        """
    )
    assert parse_outputs(text) == {
        "name": 'value with = signs and "quotes"',
        "empty": "",
        "count": "4",
        "ok": True,
        "items": [1, 2],
        "notes": "line one\nname=not an output",
    }
    for bad, message in [
        ("just text", "line 1: expected name=value"),
        ("a=1\n{not json", "line 2: invalid JSON"),
        ("[1, 2]", "line 1: expected name=value"),
        ("notes<<EOF\nnever closed", "line 1: the value of 'notes' is not closed"),
        ("bad-name=1", "invalid output name 'bad-name'"),
    ]:
        with pytest.raises(ScriptOutputError, match=message.replace("[", r"\[")):
            parse_outputs(bad)


def test_an_outputs_file_over_the_limit_fails_the_step(run_workflow, write_definition, tmp_path):
    write_definition(
        "large_outputs.yaml",
        "apiVersion: autopilot/v1\nkind: Workflow\nid: large_outputs\nsteps:\n  - id: big\n    script:\n"
        '      bash: head -c 2000000 /dev/zero | tr "\\\\0" a | sed "s/^/blob=/" >> "$AUTOPILOT_OUTPUT"\n',
    )
    dag_run = run_workflow("large_outputs")
    assert str(dag_run.state) == "failed"
    big = tmp_path / "big"
    big.write_text("blob=" + "a" * (1024 * 1024))
    with pytest.raises(ScriptOutputError, match="outputs are limited to 1048576 bytes"):
        read_outputs(str(big))
    link = tmp_path / "link"
    link.symlink_to(big)
    with pytest.raises(ScriptOutputError, match="symbolic link"):
        read_outputs(str(link))


TEMPLATED_BASH = """\
apiVersion: autopilot/v1
kind: Workflow
id: templated_bash
form:
  properties:
    hostname: {type: string, default: web01}
steps:
  - id: ping
    script:
      bash: |
        echo start
        ping -c 1 "{{ form.hostname }}"
  - id: inline
    script: {bash: "echo {% if form.hostname %}yes{% endif %}"}
  - id: fine
    script:
      env: {HOST: "{{ form.hostname }}", BACKUP_PASSWORD: x, AIRFLOW_HOME: /tmp, PS4: "{{ form.hostname }}"}
      connections: {BACKUP: backup_api}
      bash: |
        echo "${#HOST}" '{"a": 1}'
"""


def test_templates_in_bash_are_validation_errors_that_show_the_env_form():
    loaded = validate(load_text(TEMPLATED_BASH, "templated_bash.yaml"), lambda name: None)
    messages = [str(d) for d in loaded.diagnostics]
    assert messages[0] == (
        "templated_bash.yaml:12:20: step 'ping': bash scripts are not templated: {{ form.hostname }} would be "
        "pasted into shell code. Pass the value as an environment variable and use it quoted: env: {HOSTNAME: "
        '"{{ form.hostname }}"}, then "$HOSTNAME" in the script'
    )
    assert messages[1].startswith(
        "templated_bash.yaml:14:26: step 'inline': bash scripts are not templated: {% ... %} is not allowed"
    )
    assert messages[2:] == [
        "templated_bash.yaml:18:21: step 'fine': connection 'backup_api' as BACKUP sets BACKUP_PASSWORD, which "
        "env: also sets",
        "templated_bash.yaml:17:62: step 'fine': AIRFLOW_HOME cannot be set: it is reserved: Airflow's "
        "configuration (AIRFLOW*), Autopilot's own variables (AUTOPILOT_*) and names that change which code a "
        "shell, loader or interpreter runs (BASH*, SHELLOPTS, PS4, ENV, IFS, LD_*, PYTHON*, PATH, HOME, …) "
        "cannot be set by a step; choose another name",
        "templated_bash.yaml:17:82: step 'fine': PS4 cannot be set: it is reserved: Airflow's "
        "configuration (AIRFLOW*), Autopilot's own variables (AUTOPILOT_*) and names that change which code a "
        "shell, loader or interpreter runs (BASH*, SHELLOPTS, PS4, ENV, IFS, LD_*, PYTHON*, PATH, HOME, …) "
        "cannot be set by a step; choose another name",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "SHELLOPTS",
        "PS4",
        "BASH_ENV",
        "BASH_FUNC_x%%",
        "ENV",
        "IFS",
        "LD_PRELOAD",
        "PYTHONSTARTUP",
        "PATH",
        "HOME",
        "NODE_OPTIONS",
        "_AIRFLOW_X",
        "1X",
        "A-B",
    ],
)
def test_names_that_change_what_runs_cannot_be_set_by_a_step(name):
    assert env_name_problem(name) is not None
    with pytest.raises(ValueError, match="cannot be a script's environment variable"):
        ScriptOperator(task_id="t", language="bash", script="true", env={name: "x"})


def test_env_names_are_code_and_env_values_are_data():
    """A designer may change what a reviewed script is handed, not add a name a shell acts on."""
    old = 'steps:\n  - id: a\n    script:\n      bash: echo "$X"\n      env: {X: hi}\n'
    assert added_code(old, old.replace("X: hi", "X: '{{ form.x }}'")) == []
    assert added_code(old, old.replace("{X: hi}", "{X: hi, SHELLOPTS: xtrace}")) == ["step 'a' (bash script)"]


FAILING = """\
apiVersion: autopilot/v1
kind: Workflow
id: failing_script
steps:
  - id: first
    script:
      env: {MARKER: "{{ run.conf.marker }}"}
      bash: |
        false
        echo "not reached" > "$MARKER"
  - id: second
    script: {bash: echo never}
"""


def test_a_failing_command_fails_the_step_and_the_run(run_workflow, write_definition, tmp_path: Path):
    marker = tmp_path / "reached"
    write_definition("failing_script.yaml", FAILING)
    dag_run = run_workflow("failing_script", {"marker": str(marker)})
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run) == {"first": "failed", "second": "upstream_failed"}
    assert not marker.exists()


ROUTING = """\
apiVersion: autopilot/v1
kind: Workflow
id: routing
form:
  properties:
    size: {type: integer, default: 5}
  required: [size]
steps:
  - id: measure
    use:
      function: double
      with: {number: "{{ form.size }}"}
  - id: route
    decision:
      cases:
        - when: steps.measure.outputs.result > 100
          then: [big]
        - when: steps.measure.outputs.result > 10
          then: medium
      default: small
  - id: big
    script: {bash: echo big}
  - id: medium
    script: {bash: echo medium}
  - id: small
    script: {bash: echo small}
  - id: report
    after: [big, medium, small]
    script:
      python: |
        output(route=steps["route"]["outputs"], result=steps["measure"]["outputs"]["result"])
"""

DOUBLE = """\
apiVersion: autopilot/v1
kind: Function
id: double
inputs:
  number: {type: integer, required: true, minimum: 0}
outputs:
  result: "{{ steps.compute.outputs.result }}"
steps:
  - id: compute
    script:
      env: {NUMBER: "{{ inputs.number }}"}
      bash: |
        echo "{\\"result\\": $(( 10#$NUMBER * 2 ))}" >> "$AUTOPILOT_OUTPUT"
"""


def _run_routing(run_workflow, size):
    dag_run = run_workflow("routing", {"size": size})
    states = task_states(dag_run)
    report = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "report")
    return dag_run, states, report.xcom_pull(task_ids="report")


def test_function_outputs_drive_a_decision(run_workflow, write_definition):
    write_definition("routing.yaml", ROUTING)
    write_definition("functions/double.yaml", DOUBLE)

    dag_run, states, report = _run_routing(run_workflow, 30)
    assert str(dag_run.state) == "success", states
    assert (states["big"], states["medium"], states["small"]) == ("skipped", "success", "skipped")
    assert states["measure._inputs"] == states["measure.compute"] == states["measure._outputs"] == "success"
    assert report == {"route": {"case": 1, "taken": ["medium"]}, "result": 60}

    dag_run, states, report = _run_routing(run_workflow, 2)
    assert (states["big"], states["medium"], states["small"]) == ("skipped", "skipped", "success")
    assert report["route"] == {"case": "default", "taken": ["small"]}


def test_function_inputs_are_checked_at_run_time(run_workflow, write_definition):
    write_definition("routing.yaml", ROUTING)
    write_definition("functions/double.yaml", DOUBLE)
    dag_run = run_workflow("routing", {"size": -4})
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["measure._inputs"] == "failed"
    assert states["measure.compute"] == "upstream_failed"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_until(predicate, what: str, timeout: float = 180.0) -> None:
    """Poll ``predicate`` until it holds; the deadline is generous (a task process imports Airflow
    first, which took over 30 s on a loaded 2-core machine running two test modules at once)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


@pytest.mark.db_independent
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_a_script_dies_with_its_task_process(tmp_path: Path, signal_number: int):
    """A task process that dies (kill -9 by an OOM killer or a dying worker, or SIGTERM) takes its
    script's whole process group with it, background children included, so a retry never runs
    beside an earlier attempt."""
    script = f"sleep 300 & echo $! > {tmp_path}/bg; echo $$ > {tmp_path}/fg; wait"
    task = textwrap.dedent(
        f"""
        from autopilot_provider.operators.script import ScriptOperator
        op = ScriptOperator(task_id="long", language="bash", script={script!r})
        op._run(["bash", "-c", {script!r}], {{"PATH": "/usr/bin:/bin"}}, None, {str(tmp_path)!r})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", task], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until(
            lambda: all((tmp_path / f).exists() and (tmp_path / f).read_text().strip() for f in ("bg", "fg")),
            "the script started",
        )
        pids = [int((tmp_path / f).read_text()) for f in ("bg", "fg")]
        assert all(_alive(pid) for pid in pids)
        os.kill(process.pid, signal_number)
        process.wait(timeout=30)
        _wait_until(lambda: not any(_alive(pid) for pid in pids), "the script and its background child are gone")
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.db_independent
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_script_dies_when_its_task_process_is_orphaned(tmp_path: Path):
    """A Celery worker killed with kill -9 takes its supervisors with it, but the task process, in a
    process group of its own, lives on, reparented: its script is killed all the same, so the retry
    the scheduler starts elsewhere never runs beside it."""
    script = f"sleep 300 & echo $! > {tmp_path}/bg; echo $$ > {tmp_path}/fg; wait"
    task = textwrap.dedent(
        f"""
        import os
        from autopilot_provider.operators.script import ScriptOperator
        with open({str(tmp_path / "task")!r}, "w") as handle:
            handle.write(str(os.getpid()))
        op = ScriptOperator(task_id="long", language="bash", script={script!r})
        op._run(["bash", "-c", {script!r}], {{"PATH": "/usr/bin:/bin"}}, None, {str(tmp_path)!r})
        """
    )
    # the supervisor: starts the task process in a process group of its own, as Airflow's does
    supervisor = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {task!r}], process_group=0,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(300)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", supervisor])
    task_pid = None
    try:
        _wait_until(
            lambda: all((tmp_path / f).exists() and (tmp_path / f).read_text().strip() for f in ("bg", "fg", "task")),
            "the script started",
        )
        task_pid = int((tmp_path / "task").read_text())
        pids = [int((tmp_path / f).read_text()) for f in ("bg", "fg")]
        assert all(_alive(pid) for pid in pids)
        process.kill()  # the supervisor dies; the task process does not
        process.wait(timeout=30)
        _wait_until(lambda: not any(_alive(pid) for pid in pids), "the script and its background child are gone")
    finally:
        if process.poll() is None:
            process.kill()
        if task_pid is not None and _alive(task_pid):
            os.kill(task_pid, signal.SIGKILL)


@pytest.mark.db_independent
def test_the_reaper_passes_the_exit_status_on(tmp_path: Path):
    reaper = [sys.executable, "-I", REAPER, str(os.getpid()), "--"]
    assert subprocess.run([*reaper, "bash", "-c", "exit 7"]).returncode == 7
    assert subprocess.run([*reaper, "bash", "-c", "kill -TERM $$"]).returncode == -signal.SIGTERM
    done = subprocess.run([*reaper, "no-such-program-here"], capture_output=True, text=True)
    assert done.returncode == 127 and "cannot run no-such-program-here" in done.stderr
