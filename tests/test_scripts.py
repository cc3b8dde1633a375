"""Script steps: values are quoted, outputs flow through XCom, functions and decisions route them."""

from __future__ import annotations

from pathlib import Path

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
  - id: echo_value
    script:
      bash: |
        echo {{ form.value }}
        python3 -c 'import json, sys; print(json.dumps({"seen": sys.argv[1]}))' {{ form.value }}
  - id: env_value
    script:
      env: {VALUE: "{{ form.value }}"}
      bash: |
        python3 -c 'import json, os; print(json.dumps({"env": os.environ["VALUE"]}))'
  - id: in_python
    script:
      python: |
        output(length=len(form["value"]), seen=steps["echo_value"]["outputs"]["seen"])
"""


def test_form_values_in_commands_run_nothing(run_workflow, write_definition, tmp_path):
    marker = tmp_path / "pwned"
    payload = f"x; touch {marker}; $(touch {marker}) `touch {marker}` ' \" \\"
    write_definition("injection_probe.yaml", INJECTION)
    dag_run = run_workflow("injection_probe", {"value": payload})
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert not marker.exists()
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert tis["echo_value"].xcom_pull(task_ids="echo_value") == {"seen": payload}
    assert tis["env_value"].xcom_pull(task_ids="env_value") == {"env": payload}
    assert tis["in_python"].xcom_pull(task_ids="in_python") == {"length": len(payload), "seen": payload}


FAILING = """\
apiVersion: autopilot/v1
kind: Workflow
id: failing_script
steps:
  - id: first
    script:
      bash: |
        false
        echo "not reached" > {{ run.conf.marker }}
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
      bash: |
        echo "{\\"result\\": $(( {{ inputs.number }} * 2 ))}"
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
