"""`workflow` steps are checked before anything runs, each problem as `path:line:col: message`: the
workflow they start exists, what they map fits its form, and no workflow starts itself, directly or
through others. A valid one compiles to Airflow's TriggerDagRunOperator, and a workflow with
`outputs` to a last `_outputs` task."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

from autopilot_provider.operators.workflow import started_run_id
from autopilot_provider.repository.folder import Project
from dag_factory.builder import build_dag

# checks no metadata database: run once, in the SQLite pass of make test
pytestmark = pytest.mark.db_independent

CHILD = """\
    apiVersion: autopilot/v1
    kind: Workflow
    id: allocate_lun
    form:
      properties:
        size_gb: {type: integer, minimum: 1}
        array: {type: string}
        label: {type: string, default: data}
        requester: {type: string}
      required: [size_gb, array, requester]
    outputs:
      lun: "{{ steps.carve.outputs.lun }}"
    steps:
      - id: carve
        script: {python: "output(lun=form['size_gb'])"}
    """


def problems(tmp_path: Path, text: str, *, extra: dict[str, str] | None = None, name: str = "order.yaml") -> list[str]:
    for rel, body in {"allocate_lun.yaml": CHILD, **(extra or {})}.items():
        (tmp_path / rel).write_text(textwrap.dedent(body))
    (tmp_path / name).write_text(textwrap.dedent(text))
    return [str(d) for d in Project(tmp_path, display_root="defs").load(name).diagnostics]


def order(*step_lines: str, workflow_id: str = "order") -> str:
    head = (
        f"apiVersion: autopilot/v1\nkind: Workflow\nid: {workflow_id}\n"
        "form:\n  properties:\n    size: {type: integer}\n  required: [size]\nsteps:\n"
    )
    return head + "".join(f"  {line}\n" for line in step_lines)


def test_a_step_that_maps_the_form_and_reads_the_outcome_is_valid_and_compiles(tmp_path):
    text = order(
        "- id: provision",
        "  workflow:",
        "    id: allocate_lun",
        "    form: {size_gb: '{{ form.size }}', array: san01}",
        "- id: verdict",
        "  decision: {if: \"steps.provision.outputs.state == 'success'\", then: done}",
        "- id: done",
        "  script: {env: {LUN: '{{ steps.provision.outputs.outputs.lun }}'}, bash: 'echo \"$LUN\"'}",
        "- id: fire",
        "  workflow: {id: allocate_lun, wait: false, form: {size_gb: 1, array: san02}}",
        "  after: []",
    )
    assert problems(tmp_path, text) == []
    project = Project(tmp_path)
    dag = build_dag(project.load("order.yaml").definition, project)
    provision, fire = dag.get_task("provision"), dag.get_task("fire")
    assert isinstance(provision, TriggerDagRunOperator) and isinstance(fire, TriggerDagRunOperator)
    assert (provision.trigger_dag_id, provision.wait_for_completion, provision.deferrable) == (
        "allocate_lun",
        True,
        True,
    )
    assert (fire.wait_for_completion, provision.poke_interval) == (False, 10.0)
    assert provision.template_fields == ()  # user text renders in the sandbox, never in Airflow's Jinja
    # the started workflow gets a last task that works out its outputs, after its last steps
    child = build_dag(project.load("allocate_lun.yaml").definition, project)
    assert child.get_task("_outputs").upstream_task_ids == {"carve"}
    assert "_outputs" not in dag.task_ids  # no outputs declared: no such task


def test_an_unknown_workflow_is_named_with_the_closest(tmp_path):
    text = order("- id: provision", "  workflow: {id: allocate_lnu, form: {size_gb: 1, array: a}}")
    assert problems(tmp_path, text) == [
        "defs/order.yaml:10:20: step 'provision': unknown workflow 'allocate_lnu' (did you mean 'allocate_lun'?)"
    ]


def test_mapped_fields_must_be_the_forms_and_fit_it_and_required_ones_are_mapped(tmp_path):
    text = order(
        "- id: provision",
        "  workflow:",
        "    id: allocate_lun",
        "    form:",
        "      size_gb: 0",
        "      arrya: san01",
    )
    assert problems(tmp_path, text) == [
        "defs/order.yaml:13:9: step 'provision': workflow 'allocate_lun' requires form field 'array' "
        "(it has no default): map it in `form`",
        "defs/order.yaml:13:18: step 'provision': 0 does not fit field 'size_gb' of workflow 'allocate_lun': "
        "0 is less than the minimum of 1",
        "defs/order.yaml:14:9: step 'provision': workflow 'allocate_lun' has no form field 'arrya' "
        "(did you mean 'array'?)",
    ]


def test_the_requester_is_carried_over_not_mapped(tmp_path):
    text = order(
        "- id: provision",
        "  workflow: {id: allocate_lun, form: {size_gb: 2, array: a, requester: mallory}}",
    )
    assert problems(tmp_path, text) == [
        "defs/order.yaml:10:63: step 'provision': `requester` cannot be mapped: the run it starts is for this "
        "run's requester, who is carried over"
    ]


def test_templates_in_the_mapping_are_checked_against_this_workflow(tmp_path):
    text = order("- id: provision", "  workflow: {id: allocate_lun, form: {size_gb: '{{ form.sise }}', array: a}}")
    assert problems(tmp_path, text) == [
        "defs/order.yaml:10:50: step 'provision': unknown form field 'sise' in template (did you mean 'size'?)"
    ]


def test_waiting_options_belong_to_a_step_that_waits(tmp_path):
    text = order("- id: fire", "  workflow: {id: allocate_lun, wait: false, on_failure: continue, form: {size_gb: 1}}")
    found = problems(tmp_path, text)
    assert found == ["defs/order.yaml:10:15: step 'fire': on_failure belongs to a step that waits (wait: true)"], found


def test_a_workflow_that_starts_itself_is_a_cycle(tmp_path):
    text = order("- id: again", "  workflow: {id: order, form: {size: 1}}")
    assert problems(tmp_path, text) == [
        "defs/order.yaml:10:20: step 'again': workflow 'order' makes a cycle of workflows: order → order "
        "(each run would start the next without end)"
    ]


def test_a_cycle_through_other_workflows_and_a_function_is_an_error_in_each_file(tmp_path):
    back = """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: audit
        steps:
          - id: call
            use: {function: reorder}
        """
    function = """\
        apiVersion: autopilot/v1
        kind: Function
        id: reorder
        steps:
          - id: start_order
            workflow: {id: order, form: {size: 1}}
        """
    text = order("- id: check", "  workflow: {id: audit}")
    extra = {"audit.yaml": back, "reorder.yaml": function}
    assert problems(tmp_path, text, extra=extra) == [
        "defs/order.yaml:10:20: step 'check': workflow 'audit' makes a cycle of workflows: order → audit → order "
        "(each run would start the next without end)"
    ]
    audit = [str(d) for d in Project(tmp_path, display_root="defs").load("audit.yaml").diagnostics]
    assert audit == [
        "defs/audit.yaml:6:21: step 'call': function 'reorder' starts workflow 'order' makes a cycle of "
        "workflows: audit → order → audit (each run would start the next without end)"
    ]
    # the function alone is fine: its cycles show in the workflows that use it
    assert Project(tmp_path).load("reorder.yaml").diagnostics == []


def test_workflows_that_start_each_other_without_a_cycle_are_valid(tmp_path):
    middle = """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: middle
        steps:
          - id: a
            workflow: {id: allocate_lun, form: {size_gb: 1, array: x}}
          - id: b
            workflow: {id: allocate_lun, form: {size_gb: 2, array: y}}
        """
    text = order(
        "- id: one",
        "  workflow: {id: middle}",
        "- id: two",
        "  workflow: {id: allocate_lun, form: {size_gb: 3, array: z}}",
    )
    assert problems(tmp_path, text, extra={"middle.yaml": middle}) == []


def test_the_started_run_id_is_stable_per_run_step_and_map_index():
    first = started_run_id("order", "manual__2030-01-01", "provision")
    assert first == started_run_id("order", "manual__2030-01-01", "provision")
    others = {
        started_run_id("order", "manual__2030-01-02", "provision"),
        started_run_id("order", "manual__2030-01-01", "again"),
        started_run_id("order", "manual__2030-01-01", "provision", 0),
    }
    assert first not in others and len(others) == 3
    assert first.startswith("started__order.provision__")
    long = started_run_id("o" * 200, "r" * 250, "t" * 200)
    assert len(long) <= 250
