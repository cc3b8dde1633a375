"""Request forms: choices from the inventory and from an API, the schema a form renderer gets,
server-side validation with field-level errors, the ``_check_form`` task, and the checks on
``options`` in definitions.

API choices come from the example backup product (tests/fixtures/backup_product.py: ``GET /hosts``
answers ``{"items": [...], "total": n}``, ``GET /policies`` a plain array), reached through the
``backup_api`` connection like the reference scenario's REST steps.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from autopilot_provider.definitions import models as m
from autopilot_provider.hooks import choices as form_choices
from autopilot_provider.repository import forms
from autopilot_provider.repository.folder import Project
from autopilot_provider.server import requests as requests_service
from tests.conftest import REPO, task_states
from tests.fixtures.loopback import RecordingServer

API_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: forms_api_choices
title: Back up a Paris host
tags: [backup, forms-test]
defaults: {retries: 0}
form:
  properties:
    hostname:
      type: string
      title: Host
      options: {api: backup_product, operation: listHosts, params: {site: paris}, value: hostname}
      section: Machine
    policy:
      type: string
      title: Policy
      options: {api: backup_product, operation: listPolicies}
      default: silver
      section: Backup
    notes: {type: string, format: multiline, section: Backup}
  required: [hostname, policy]
steps:
  - id: record
    script:
      env: {HOST: "{{ form.hostname }}", POLICY: "{{ form.policy }}"}
      bash: echo "backing up $HOST with $POLICY"
"""


@pytest.fixture(autouse=True)
def _fresh_api_cache():
    form_choices.API_CACHE.clear()
    yield
    form_choices.API_CACHE.clear()


def load_dag(definitions_dir: Path, dag_id: str):
    """The DAG as Airflow's dag-processor builds it from the Autopilot bundle."""
    from airflow.dag_processing.dagbag import DagBag

    from dag_factory.bundle import AutopilotDagBundle

    bundle = AutopilotDagBundle(name="autopilot", definitions=str(definitions_dir))
    bundle.initialize()
    bag = DagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name="autopilot")
    assert dag_id in bag.dags, bag.import_errors
    return bag.dags[dag_id]


def workflow(text: str) -> m.Workflow:
    return m.Workflow.model_validate(yaml.safe_load(text))


# ---------------------------------------------------------------------------------------------
# Choices from the inventory: compiled into the DAG's Params, so Airflow offers and enforces them
# ---------------------------------------------------------------------------------------------


def test_inventory_choices_become_the_params_enum_with_labels(airflow_db, definitions_dir):
    dag = load_dag(definitions_dir, "add_machine_to_backups")
    hostname = dag.params.get_param("hostname")
    assert hostname.schema["enum"] == ["localhost", "db01.example.com", "no-such-host.invalid"]
    assert hostname.schema["values_display"] == {
        "localhost": "localhost (lab)",
        "db01.example.com": "db01 (Paris database)",
        "no-such-host.invalid": "old01 (retired)",
    }
    assert "san01" not in hostname.schema["enum"]  # an array, not a machine
    assert "_check_form" not in dag.task_ids  # Airflow checks inventory choices itself
    # Airflow's trigger form groups fields by the Param's section, titles and describes them
    assert hostname.schema["section"] == "Machine" and hostname.schema["title"] == "Host name"
    assert dag.params.get_param("policy").schema["section"] == "Backup"
    assert dag.params.get_param("justification").schema["minLength"] == 10
    assert dag.params.get_param("policy").value == "silver"  # the default


def test_airflow_rejects_a_host_outside_the_inventory_when_a_run_starts(run_workflow):
    from airflow.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="hostname"):
        run_workflow(
            "add_machine_to_backups",
            {"hostname": "intruder.example.com", "policy": "gold", "justification": "not in the inventory"},
        )


# ---------------------------------------------------------------------------------------------
# The schema a form renderer gets
# ---------------------------------------------------------------------------------------------


def test_form_view_has_schema_ui_schema_and_sections():
    project = Project(REPO / "definitions")
    view = requests_service.form_view(forms.find_workflow(project, "add_machine_to_backups"), project)
    schema, ui = view["schema"], view["ui_schema"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["hostname", "policy", "justification"]
    assert schema["properties"]["hostname"]["enum"] == ["localhost", "db01.example.com", "no-such-host.invalid"]
    assert schema["properties"]["policy"] == {
        "type": "string",
        "title": "Backup policy",
        "default": "silver",
        "enum": ["gold", "silver", "bronze"],
    }
    # Airflow-only keys and widget-only formats stay out of the JSON Schema, in the uiSchema instead
    assert "format" not in schema["properties"]["justification"]
    assert ui["justification"] == {"ui:widget": "textarea"}
    assert ui["hostname"]["ui:enumNames"] == ["localhost (lab)", "db01 (Paris database)", "old01 (retired)"]
    assert ui["policy"]["ui:enumNames"][0] == "Gold (daily, 90 days)"
    assert ui["ui:order"] == ["hostname", "policy", "retention_days", "justification", "requester", "ticket"]
    assert view["sections"] == [
        {"title": "Machine", "fields": ["hostname"]},
        {"title": "Backup", "fields": ["policy", "retention_days", "justification"]},
        {"title": "Request", "fields": ["requester", "ticket"]},
    ]


def test_widgets_hidden_constants_markdown_and_fields_without_a_section():
    form = workflow(
        textwrap.dedent("""\
        apiVersion: autopilot/v1
        kind: Workflow
        id: w
        form:
          properties:
            secret: {type: string, format: password}
            source: {type: string, const: portal}
            when: {type: string, format: date, description_md: "**UTC** date"}
            disks: {type: array, items: {type: object, properties: {size: {type: integer, minimum: 1}}}, section: Storage}
        steps: [{id: s, script: {bash: echo}}]
        """)
    ).form
    ui = forms.ui_schema(form)
    assert ui["secret"] == {"ui:widget": "password"}
    assert ui["source"] == {"ui:widget": "hidden"}
    assert ui["when"] == {"ui:description": "**UTC** date", "ui:enableMarkdownInDescription": True}
    schema = forms.request_schema(form)
    assert schema["properties"]["when"]["format"] == "date" and "format" not in schema["properties"]["secret"]
    assert schema["properties"]["source"]["default"] == "portal"
    assert forms.sections(form) == [
        {"title": None, "fields": ["secret", "source", "when"]},
        {"title": "Storage", "fields": ["disks"]},
    ]


# ---------------------------------------------------------------------------------------------
# Server-side validation
# ---------------------------------------------------------------------------------------------


def test_validation_names_each_field_applies_defaults_and_rejects_unknown_fields():
    project = Project(REPO / "definitions")
    wf = forms.find_workflow(project, "add_machine_to_backups")
    choices = form_choices.resolve_choices(wf.form, project)
    values, errors = forms.check_form(
        wf.form,
        {"hostname": "intruder", "policy": "platinum", "retention_days": 0, "justifcation": "because"},
        choices,
    )
    assert [e.as_dict() for e in errors] == [
        {"field": "justifcation", "message": "unknown field (did you mean 'justification'?)"},
        {"field": "hostname", "message": "\"intruder\" is not one of the choices from the inventory's 'machine' items"},
        {"field": "policy", "message": '"platinum" is not one of "gold", "silver", "bronze"'},
        {"field": "retention_days", "message": "0 is less than the minimum of 1"},
        {"field": "justification", "message": "is required"},
    ]
    values = forms.validate_form(wf.form, {"hostname": "localhost", "justification": "a new lab machine"}, choices)
    # every field: the default for policy, None for the optional field left out
    assert values == {
        "hostname": "localhost",
        "policy": "silver",
        "retention_days": None,
        "justification": "a new lab machine",
        "requester": None,
        "ticket": None,
    }
    with pytest.raises(forms.FormInvalid) as caught:
        forms.validate_form(wf.form, ["not", "an", "object"], choices)
    assert caught.value.as_dict()["errors"] == [
        {"field": "", "message": "the form must be a JSON object of field values"}
    ]


def test_nested_errors_have_dotted_paths():
    form = workflow(
        textwrap.dedent("""\
        apiVersion: autopilot/v1
        kind: Workflow
        id: w
        form:
          properties:
            disks:
              type: array
              items:
                type: object
                required: [size]
                properties: {size: {type: integer, minimum: 1}, name: {type: string}}
            source: {type: string, const: portal}
          required: [disks]
        steps: [{id: s, script: {bash: echo}}]
        """)
    ).form
    values, errors = forms.check_form(form, {"disks": [{"size": 10}, {"size": 0}, {"name": "x"}]})
    assert [str(e) for e in errors] == ["disks[1].size: 0 is less than the minimum of 1", "disks[2].size: is required"]
    assert values["source"] == "portal"  # a constant is always sent
    _, errors = forms.check_form(form, {"disks": [], "source": "elsewhere"})
    assert [e.field for e in errors] == ["source"]


# ---------------------------------------------------------------------------------------------
# Choices from an API
# ---------------------------------------------------------------------------------------------


def test_api_choices_from_an_items_object_and_from_a_plain_array(backup_connections, definitions_dir):
    project = Project(definitions_dir)
    wf = workflow(API_WF)
    choices = form_choices.resolve_choices(wf.form, project)
    assert [c.value for c in choices["hostname"]] == ["db01.example.com", "web01.example.com"]  # site=paris
    assert [(c.value, c.label) for c in choices["policy"]][0] == ("gold", "Gold (daily, 90 days)")
    (hosts,) = backup_connections.received("/hosts")
    assert hosts.query == {"site": ["paris"]} and hosts.authorization.startswith("Basic ")
    # the answer is reused for a while, and asked again when it must be live
    form_choices.resolve_choices(wf.form, project)
    assert len(backup_connections.received("/hosts")) == 1
    form_choices.resolve_choices(wf.form, project, max_age=0)
    assert len(backup_connections.received("/hosts")) == 2
    values, errors = forms.check_form(wf.form, {"hostname": "localhost"}, choices)
    assert [str(e) for e in errors] == [
        "hostname: \"localhost\" is not one of the choices from api 'backup_product' operation 'listHosts'"
    ]


def test_an_api_that_fails_is_reported_for_the_field(backup_connections, definitions_dir):
    backup_connections.listings_fail = True
    with pytest.raises(form_choices.ChoicesUnavailable) as caught:
        form_choices.resolve_choices(workflow(API_WF).form, Project(definitions_dir))
    assert caught.value.field == "hostname"
    assert caught.value.message.startswith("field 'hostname': cannot fetch its choices: api 'backup_product'")
    assert "answered HTTP 503" in caught.value.message and "inventory service unavailable" in caught.value.message


def test_choices_never_come_from_a_server_only_the_document_names(definitions_dir, write_definition, monkeypatch):
    """The API server calls only hosts a connection names: a connection without a host (the base URL
    would be the document's server, here an internal address) is refused before anything is sent."""
    internal = RecordingServer({"/hosts": (200, {"Content-Type": "application/json"}, b'["db01"]')})
    try:
        document = {
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "servers": [{"url": internal.url}],
            "paths": {"/hosts": {"get": {"operationId": "listHosts", "responses": {"200": {"description": "ok"}}}}},
        }
        write_definition("apis/specs/nohost.json", json.dumps(document))
        write_definition(
            "apis/nohost.yaml",
            "apiVersion: autopilot/v1\nkind: Api\nid: nohost\nspec: specs/nohost.json\nconnection: nohost_api\n",
        )
        monkeypatch.setenv("AIRFLOW_CONN_NOHOST_API", json.dumps({"conn_type": "autopilot_openapi"}))
        form = workflow(
            API_WF.replace(
                "api: backup_product, operation: listHosts, params: {site: paris}", "api: nohost, operation: listHosts"
            )
        ).form
        with pytest.raises(form_choices.ChoicesUnavailable) as caught:
            form_choices.resolve_choices(form, Project(definitions_dir))
        assert caught.value.field == "hostname"
        assert "connection 'nohost_api' has no host" in caught.value.message
        assert "calls only hosts that a connection names" in caught.value.message
        assert internal.requests == []
    finally:
        internal.stop()


def test_answers_that_hold_no_single_list_are_errors():
    assert form_choices.items_of({"items": [1], "total": 1}) == [1]
    with pytest.raises(ValueError, match="several array properties"):
        form_choices.items_of({"a": [], "b": []})
    with pytest.raises(ValueError, match="without an array property"):
        form_choices.items_of({"a": 1})


# ---------------------------------------------------------------------------------------------
# _check_form: runs started outside the portal are checked against the live choices
# ---------------------------------------------------------------------------------------------


def test_check_form_fails_a_run_with_a_value_the_api_does_not_offer(
    run_workflow, write_definition, backup_connections, capfd
):
    write_definition("forms_api_choices.yaml", API_WF)
    dag_run = run_workflow("forms_api_choices", {"hostname": "localhost", "policy": "gold"})
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run) == {"_check_form": "failed", "record": "upstream_failed"}
    log = capfd.readouterr().out
    assert "the request form is invalid, nothing else ran" in log
    assert "hostname: \"localhost\" is not one of the choices from api 'backup_product' operation 'listHosts'" in log
    assert [r.path for r in backup_connections.received()] == ["/api/v1/hosts", "/api/v1/policies"]


def test_check_form_lets_a_valid_run_through(run_workflow, write_definition, backup_connections):
    write_definition("forms_api_choices.yaml", API_WF)
    dag_run = run_workflow("forms_api_choices", {"hostname": "web01.example.com", "policy": "bronze"})
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert task_states(dag_run) == {"_check_form": "success", "record": "success"}


def test_a_workflow_with_api_choices_renders_its_check_task(definitions_dir, write_definition):
    from dag_factory.render import render_workflow

    write_definition("forms_api_choices.yaml", API_WF)
    text = render_workflow(Project(definitions_dir), "forms_api_choices")
    assert '    check_form = CheckFormOperator(\n        task_id="_check_form",\n' in text
    assert "    check_form >> record\n" in text


# ---------------------------------------------------------------------------------------------
# Checks on `options` in definitions
# ---------------------------------------------------------------------------------------------


def test_bad_options_fail_validation_with_positions(tmp_path):
    shutil.copytree(REPO / "definitions" / "apis", tmp_path / "apis")
    shutil.copy(REPO / "definitions" / "inventory.yaml", tmp_path / "inventory.yaml")
    shutil.copy(REPO / "definitions" / "contacts.yaml", tmp_path / "contacts.yaml")  # the items' owners
    (tmp_path / "wf.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: autopilot/v1
        kind: Workflow
        id: wf
        form:
          properties:
            a: {type: string, enum: [x], options: {resources: machine}}
            b: {type: string, options: {resources: machine, api: backup_product}}
            c: {type: string, options: {label: name}}
            d: {type: string, options: {resources: machin}}
            e: {type: string, default: web99, options: {resources: machine}}
            f: {type: string, options: {api: backup_prodcut, operation: listHosts}}
            g: {type: string, options: {api: backup_product, operation: listhosts}}
            h: {type: string, options: {api: backup_product, operation: addClient}}
            i: {type: string, options: {api: backup_product, operation: listHosts, params: {sit: paris}}}
            j: {type: string, options: {api: backup_product}}
        steps: [{id: s, script: {bash: echo}}]
        """)
    )
    found = [str(d) for d in Project(tmp_path, display_root="defs").load("wf.yaml").diagnostics]
    assert found == [
        "defs/wf.yaml:6:23: field 'a': use either a static `enum` or dynamic `options`, not both",
        "defs/wf.yaml:7:23: field 'b': options need exactly one of `resources` (an inventory type) and `api` (got both)",
        "defs/wf.yaml:8:23: field 'c': options need exactly one of `resources` (an inventory type) and `api` (got neither)",
        "defs/wf.yaml:9:44: field 'd': unknown resource type 'machin' (did you mean 'machine'?)",
        "defs/wf.yaml:10:32: field 'e': default \"web99\" is not one of the inventory's 'machine' items",
        "defs/wf.yaml:11:38: field 'f': unknown api 'backup_prodcut' (did you mean 'backup_product'?)",
        "defs/wf.yaml:12:65: field 'g': api 'backup_product' has no operation 'listhosts' (did you mean 'listHosts'?)",
        "defs/wf.yaml:13:65: field 'h': choices must come from a GET operation; 'addClient' is POST (it would run "
        "every time the form is shown)",
        "defs/wf.yaml:14:85: field 'i': options params.sit: operation 'listHosts' has no parameter 'sit' (did you "
        "mean 'site'?)",
        "defs/wf.yaml:15:23: field 'j': options from an `api` need the `operation` that lists them",
    ]


def test_function_inputs_cannot_have_options(tmp_path):
    (tmp_path / "fn.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: autopilot/v1
        kind: Function
        id: fn
        inputs:
          host: {type: string, options: {resources: machine}}
        steps: [{id: s, script: {bash: echo}}]
        """)
    )
    found = [str(d) for d in Project(tmp_path, display_root="defs").load("fn.yaml").diagnostics]
    assert found == [
        "defs/fn.yaml:5:24: input 'host': `options` belong to a workflow's form fields (a function's inputs come "
        "from the calling step's `with:`)"
    ]
