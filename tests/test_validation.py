"""Problems in definitions are caught before anything runs, each as `path:line:col: message`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autopilot_provider.repository.folder import Project
from tests.conftest import REPO

# checks no metadata database: run once, in the SQLite pass of make test
pytestmark = pytest.mark.db_independent

HEADER = "apiVersion: autopilot/v1\nkind: Workflow\nid: wf\n"


def errors(tmp_path: Path, text: str, *, name: str = "wf.yaml", extra: dict[str, str] | None = None) -> list[str]:
    for rel, body in (extra or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(body))
    (tmp_path / name).write_text(textwrap.dedent(text))
    return [str(d) for d in Project(tmp_path, display_root="defs").load(name).diagnostics]


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    assert errors(tmp_path, HEADER + "steps:\n  - id: a\n    script: {bash: echo: x}\n") == [
        "defs/wf.yaml:6:24: YAML syntax error: did not find expected ',' or '}' (while parsing a flow mapping)"
    ]


def test_duplicate_yaml_key_is_an_error_not_an_overwrite(tmp_path):
    text = HEADER + "steps:\n  - id: a\n    script: {bash: echo 1}\n    script: {bash: echo 2}\n"
    assert errors(tmp_path, text) == ["defs/wf.yaml:7:5: duplicate key 'script' (first defined at line 6)"]


def test_unknown_field_suggests_the_nearest(tmp_path):
    text = HEADER + "steps:\n  - id: ping\n    script: {bash: echo}\n    retires: 3\n"
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:7:5: step 'ping': unknown field 'retires' (did you mean 'retries'?)"
    ]


def test_unknown_top_level_field_and_missing_steps(tmp_path):
    found = errors(tmp_path, HEADER + "titel: Hello\n")
    assert "defs/wf.yaml:4:1: unknown field 'titel' (did you mean 'title'?)" in found
    assert "defs/wf.yaml:1:1: missing required field 'steps'" in found


def test_wrong_api_version_and_kind(tmp_path):
    assert errors(tmp_path, "apiVersion: autopilot/v2\nkind: Workflow\n") == [
        "defs/wf.yaml:1:13: unsupported apiVersion 'autopilot/v2': expected 'autopilot/v1'"
    ]
    assert errors(tmp_path, "apiVersion: autopilot/v1\nkind: Workflw\n") == [
        "defs/wf.yaml:2:7: unknown kind 'Workflw': expected one of Workflow, Function, Contacts, Resources, Api, Alert,"
        " Trigger (did you mean 'Workflow'?)"
    ]


def test_a_step_needs_exactly_one_kind(tmp_path):
    text = HEADER + "steps:\n  - id: a\n    script: {bash: echo}\n    use: {function: f}\n"
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:5:5: step 'a': a step needs exactly one of task, script, form, approval, decision, notify,"
        " ticket, pipe, wait, use, workflow, metric (got script, use)"
    ]


def test_duplicate_step_ids(tmp_path):
    text = HEADER + "steps:\n  - id: a\n    script: {bash: echo}\n  - id: a\n    script: {bash: echo}\n"
    assert errors(tmp_path, text) == ["defs/wf.yaml:7:9: duplicate step id 'a' (first used by step 1)"]


def test_dangling_after_reference(tmp_path):
    text = (
        HEADER
        + "steps:\n  - id: fetch\n    script: {bash: echo}\n  - id: b\n    after: [fetc]\n    script: {bash: echo}\n"
    )
    assert errors(tmp_path, text) == ["defs/wf.yaml:8:13: step 'b': after: unknown step 'fetc' (did you mean 'fetch'?)"]


def test_dependency_cycle(tmp_path):
    text = HEADER + textwrap.dedent("""\
        steps:
          - id: a
            after: c
            script: {bash: echo}
          - id: b
            after: a
            script: {bash: echo}
          - id: c
            after: b
            script: {bash: echo}
        """)
    assert errors(tmp_path, text) == ["defs/wf.yaml:5:9: dependency cycle: a → b → c → a"]


def test_bad_templates_and_unknown_names(tmp_path):
    text = HEADER + textwrap.dedent("""\
        form:
          properties:
            hostname: {type: string}
        steps:
          - id: a
            script:
              env:
                HOST: "{{ form.hostnme }}"
                X: "{{ steps.b.outputs.x }}"
              bash: echo "$HOST $X"
          - id: b
            script: {env: {V: "{% if %}"}, bash: echo}
          - id: c
            script: {env: {P: "{{ secrets.password }}"}, bash: echo}
        """)
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:11:15: step 'a': unknown form field 'hostnme' in template (did you mean 'hostname'?)",
        "defs/wf.yaml:15:23: step 'b': invalid template: Expected an expression, got 'end of statement block'",
        "defs/wf.yaml:17:23: step 'c': unknown name 'secrets' in template; known names: form, steps, run, resources,"
        " contacts",
    ]


def test_later_step_outputs_are_known_to_templates(tmp_path):
    """Templates may name any step of the workflow (the run reads what has happened so far)."""
    text = (
        HEADER
        + "steps:\n  - id: a\n    script: {env: {B: '{{ steps.b.outputs }}'}, bash: echo}\n"
        + "  - id: b\n    script: {bash: echo}\n"
    )
    assert errors(tmp_path, text) == []


def test_bad_cron_and_timezone(tmp_path):
    text = (
        HEADER + "schedule: {cron: '61 * * * *', timezone: Mars/Olympus}\nsteps:\n  - id: a\n    script: {bash: echo}\n"
    )
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:4:18: invalid cron expression '61 * * * *'",
        "defs/wf.yaml:4:42: unknown timezone 'Mars/Olympus'",
    ]
    assert errors(tmp_path, HEADER + "schedule: '@dayly'\nsteps:\n  - id: a\n    script: {bash: echo}\n")[0].startswith(
        "defs/wf.yaml:4:11: invalid cron expression '@dayly'; presets are"
    )


def test_unknown_function_and_bad_inputs(tmp_path):
    function = """\
        apiVersion: autopilot/v1
        kind: Function
        id: check_host
        inputs:
          hostname: {type: string, required: true}
        steps:
          - id: probe
            script: {env: {HOST: "{{ inputs.hostname }}"}, bash: 'echo "$HOST"'}
        """
    text = HEADER + textwrap.dedent("""\
        steps:
          - id: a
            use: {function: chek_host}
          - id: b
            use:
              function: check_host
              with: {hostnme: x}
        """)
    assert errors(tmp_path, text, extra={"functions/check_host.yaml": function}) == [
        "defs/wf.yaml:6:21: step 'a': unknown function 'chek_host' (did you mean 'check_host'?)",
        "defs/wf.yaml:10:13: step 'b': missing required input 'hostname' of function 'check_host'",
        "defs/wf.yaml:10:14: step 'b': function 'check_host' has no input 'hostnme' (did you mean 'hostname'?)",
    ]


def test_a_broken_function_is_reported_where_it_is_used(tmp_path):
    function = (
        "apiVersion: autopilot/v1\nkind: Function\nid: f\nsteps:\n  - id: x\n    script: {bash: echo, cwd: [1]}\n"
    )
    text = HEADER + "steps:\n  - id: a\n    use: {function: f}\n"
    found = errors(tmp_path, text, extra={"f.yaml": function})
    assert found == [
        "defs/wf.yaml:6:21: step 'a': function 'f' has errors: defs/f.yaml:6:31: step 'x': script.cwd: "
        "Input should be a valid string"
    ]


def test_recursive_functions_are_rejected(tmp_path):
    function = "apiVersion: autopilot/v1\nkind: Function\nid: f\nsteps:\n  - id: x\n    use: {function: f}\n"
    (tmp_path / "f.yaml").write_text(function)
    found = [str(d) for d in Project(tmp_path, display_root="defs").load("f.yaml").diagnostics]
    assert found == ["defs/f.yaml:6:21: step 'x': function 'f' has errors: defs/f.yaml:1:1: function 'f' uses itself"]


def test_step_after_a_decision_must_be_one_of_its_branches(tmp_path):
    text = HEADER + textwrap.dedent("""\
        steps:
          - id: decide
            decision: {if: "true", then: go}
          - id: forgotten
            script: {bash: echo}
          - id: go
            script: {bash: echo}
        """)
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:7:9: step 'forgotten' waits for decision 'decide' but is not one of its branches, so it would"
        " always be skipped: list it under the decision's then/else/cases, or set `after:`"
    ]


def test_decision_to_unknown_step_and_bad_expression(tmp_path):
    text = HEADER + "steps:\n  - id: d\n    decision: {if: 'form.x ==', then: nope}\n"
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:6:20: step 'd': invalid expression: unexpected 'end of print statement'",
        "defs/wf.yaml:6:39: step 'd': branch to unknown step 'nope'",
    ]


def test_not_yet_supported_step_kinds_fail_clearly(tmp_path):
    text = HEADER + "steps:\n  - id: ok\n    metric: {name: requests, value: '1'}\n"
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:6:5: step 'ok': step kind 'metric' is not supported yet (metric steps arrive with"
        " the metrics integration)"
    ]


def test_scheduled_workflow_needs_defaults_for_required_fields(tmp_path):
    text = HEADER + "schedule: '@daily'\nform:\n  properties:\n    host: {type: string}\n  required: [host]\n"
    text += "steps:\n  - id: a\n    script: {bash: echo}\n"
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:7:11: field 'host' is required but has no default: a scheduled run has nobody to fill it in"
    ]


def test_form_default_must_match_its_schema(tmp_path):
    text = (
        HEADER
        + "form:\n  properties:\n    n: {type: integer, minimum: 5, default: 2}\nsteps:\n  - id: a\n    script: {bash: echo}\n"
    )
    assert errors(tmp_path, text) == [
        "defs/wf.yaml:6:45: field 'n': default 2 is invalid: 2 is less than the minimum of 5"
    ]


def test_the_same_bad_form_field_is_reported_in_every_definition_that_has_it(tmp_path):
    fields = "    n: {type: integer, minimum: 5, default: 2}\n    m: {type: [strng]}\n"
    text = HEADER + "form:\n  properties:\n" + fields + "steps:\n  - id: a\n    script: {bash: echo}\n"
    expected = [
        "defs/{}:6:45: field 'n': default 2 is invalid: 2 is less than the minimum of 5",
        "defs/{}:7:8: field 'm': invalid schema: ['strng'] is not valid under any of the given schemas",
    ]
    for name in ("first.yaml", "second.yaml"):
        assert errors(tmp_path, text, name=name) == [e.format(name) for e in expected]


# -- alerts (kind Alert) -------------------------------------------------------------------------

ALERT_FOLDER = {
    "contacts.yaml": """\
        apiVersion: autopilot/v1
        kind: Contacts
        id: people
        people:
          - {id: svc_monitoring, name: Monitoring, username: monitoring}
          - {id: nobody, name: No account}
        groups:
          - {id: storage, members: [svc_monitoring]}
        """,
    "sink.yaml": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: sink
        form:
          properties:
            hostname: {type: string}
            policy: {type: string, enum: [gold, silver], default: silver}
            count: {type: integer, minimum: 1}
          required: [hostname, policy]
        steps:
          - id: a
            script: {bash: echo}
        """,
}
ALERT = """\
    apiVersion: autopilot/v1
    kind: Alert
    id: events
    owner: group:storage
    auth: {scheme: github, connection: alert_events}
    routes:
      - id: add
        workflow: sink
        form: {hostname: "{{ payload.host }}"}
        requester: svc_monitoring
    """


def alert_errors(tmp_path: Path, text: str) -> list[str]:
    return errors(tmp_path, text, name="alert.yaml", extra=ALERT_FOLDER)


def test_a_valid_alert_has_no_diagnostics(tmp_path):
    assert alert_errors(tmp_path, ALERT) == []


def test_a_secret_in_an_alert_is_an_error_at_its_key(tmp_path):
    text = ALERT.replace("connection: alert_events}", "connection: alert_events, secret: s3cr3t}")
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:5:50: unknown field 'secret': secrets never go in a definition: put the secret (or token) "
        "in the password of the Airflow connection named by `connection`"
    ]
    text = ALERT.replace("connection: alert_events", "connection: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    (found,) = alert_errors(tmp_path, text)
    assert found.startswith("defs/alert.yaml:5:") and "looks like a secret, not a connection id" in found


def test_alert_fields_are_checked_like_every_kind(tmp_path):
    text = ALERT.replace("auth:", "auht:")
    assert "defs/alert.yaml:5:1: unknown field 'auht' (did you mean 'auth'?)" in alert_errors(tmp_path, text)
    text = ALERT.replace("scheme: github", "scheme: gitlab")
    (found,) = alert_errors(tmp_path, text)
    assert found.startswith("defs/alert.yaml:5:16: ") and "'github', 'stripe', 'standard' or 'bearer'" in found
    text = ALERT.replace("id: events", "id: deliveries")
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:3:5: id: 'deliveries' is reserved (the API's path /alerts/deliveries); choose another id"
    ]


def test_alert_expressions_and_templates_are_compiled_and_located(tmp_path):
    text = """\
        apiVersion: autopilot/v1
        kind: Alert
        id: events
        auth: {scheme: bearer, connection: alert_events}
        match:
          - payload.severity in ['critical',
        for_each: payload.alerts
        routes:
          - id: add
            workflow: sink
            when: event.status = 1
            form: {hostname: "{{ evnt.labels.host }}"}
            requester: svc_monitoring
        """
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:6:5: invalid expression: unexpected '}', expected ']'",
        "defs/alert.yaml:11:11: route 'add': invalid expression: expected token 'end of print statement', got '='",
        "defs/alert.yaml:12:22: route 'add': unknown name 'evnt' in template (did you mean 'event'?); "
        "known names: payload, headers, alert, event",
    ]


def test_alert_names_only_what_a_delivery_gives(tmp_path):
    text = ALERT.replace("{{ payload.host }}", "{{ form.host }} {{ alert.deliveryid }}")
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:9:22: route 'add': unknown alert field 'deliveryid' in template (did you mean 'delivery_id'?)",
        "defs/alert.yaml:9:22: route 'add': unknown name 'form' in template; known names: payload, headers, "
        "alert, event",
    ]
    text = ALERT.replace("routes:", "match: [event.x]\n    routes:")
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:6:9: unknown name 'event' in expression; known names: payload, headers, alert"
    ]


def test_tolerance_belongs_to_timestamped_schemes(tmp_path):
    text = ALERT.replace("connection: alert_events}", "connection: alert_events, tolerance: 5m}")
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:5:50: `tolerance` belongs to the schemes with a signed timestamp (stripe, standard); "
        "github has none"
    ]
    assert alert_errors(tmp_path, text.replace("github", "stripe")) == []


def test_alert_routes_are_checked_against_the_folder(tmp_path):
    text = ALERT.replace("group:storage", "group:storag").replace("workflow: sink", "workflow: snk")
    text = text.replace("requester: svc_monitoring", "requester: svc_monitor")
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:4:8: owner: unknown group 'storag' (did you mean 'storage'?)",
        "defs/alert.yaml:8:15: route 'add': unknown workflow 'snk' (did you mean 'sink'?)",
        "defs/alert.yaml:10:16: route 'add': unknown person 'svc_monitor' (did you mean 'svc_monitoring'?): the "
        "requester is a person of the contacts",
    ]
    text = ALERT.replace("requester: svc_monitoring", "requester: nobody")
    (found,) = alert_errors(tmp_path, text)
    assert found.startswith("defs/alert.yaml:10:16: route 'add': person 'nobody' has no `username`")
    # a templated requester is resolved per delivery
    assert alert_errors(tmp_path, ALERT.replace("svc_monitoring", '"{{ payload.owner }}"')) == []


def test_alert_form_values_fit_the_target_form(tmp_path):
    text = ALERT.replace(
        'form: {hostname: "{{ payload.host }}"}',
        'form: {hostname: "{{ payload.host }}", policy: platinum, count: 0, hostnme: x}',
    )
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:9:52: route 'add': 'platinum' does not fit field 'policy' of workflow 'sink': "
        "'platinum' is not one of ['gold', 'silver']",
        "defs/alert.yaml:9:69: route 'add': 0 does not fit field 'count' of workflow 'sink': 0 is less than the "
        "minimum of 1",
        "defs/alert.yaml:9:72: route 'add': workflow 'sink' has no form field 'hostnme' (did you mean 'hostname'?)",
    ]
    text = ALERT.replace('form: {hostname: "{{ payload.host }}"}', "form: {policy: gold}")
    assert alert_errors(tmp_path, text) == [
        "defs/alert.yaml:9:11: route 'add': workflow 'sink' requires form field 'hostname' (it has no default): "
        "map it in `form`"
    ]


def test_alerts_compile_to_no_dag(tmp_path):
    """The factory builds DAGs from workflows only: an alert is served by the API server."""
    from dag_factory.loader import load_dag_file

    for rel, body in ALERT_FOLDER.items():
        (tmp_path / rel).write_text(textwrap.dedent(body))
    (tmp_path / "alert.yaml").write_text(textwrap.dedent(ALERT))
    assert load_dag_file(str(tmp_path), "alert.yaml") is None


# -- triggers (kind Trigger) -----------------------------------------------------------------------

TRIGGER_FOLDER = {
    **ALERT_FOLDER,
    "alert.yaml": ALERT,
    "api.yaml": """\
        apiVersion: autopilot/v1
        kind: Api
        id: gauges
        spec: specs/gauges.yaml
        connection: gauges
        """,
    "specs/gauges.yaml": """\
        openapi: 3.0.3
        info: {title: Gauges, version: "1"}
        paths:
          /gauges/{name}:
            get:
              operationId: getGauge
              parameters:
                - {name: name, in: path, required: true, schema: {type: string}}
              responses: {"200": {description: ok}}
          /gauges:
            post:
              operationId: setGauge
              requestBody:
                required: true
                content: {application/json: {schema: {type: object}}}
              responses: {"200": {description: ok}}
        """,
}
TRIGGER = """\
    apiVersion: autopilot/v1
    kind: Trigger
    id: disk_full
    owner: group:storage
    schedule: "*/5 * * * *"
    rest:
      api: gauges
      operation: getGauge
      params: {name: disk}
    value: response.body.value
    condition: value >= 90
    for: 10m
    resolve: value < 80
    alert: events
    notify:
      to: [group:storage]
      subject: "{{ trigger.title }} {{ trigger.status }}"
    """


def trigger_errors(tmp_path: Path, text: str) -> list[str]:
    return errors(tmp_path, text, name="trigger.yaml", extra=TRIGGER_FOLDER)


def test_a_valid_trigger_has_no_diagnostics(tmp_path):
    assert trigger_errors(tmp_path, TRIGGER) == []


def test_trigger_fields_are_checked_like_every_kind(tmp_path):
    text = TRIGGER.replace("condition:", "conditon:")
    assert trigger_errors(tmp_path, text) == [
        "defs/trigger.yaml:1:1: missing required field 'condition'",
        "defs/trigger.yaml:11:1: unknown field 'conditon' (did you mean 'condition'?)",
    ]
    text = TRIGGER.replace("    alert: events\n", "")
    assert trigger_errors(tmp_path, text.replace("notify:", "notfy:")) == [
        "defs/trigger.yaml:14:1: unknown field 'notfy' (did you mean 'notify'?)",
    ]
    assert trigger_errors(tmp_path, text.split("notify:")[0]) == [
        "defs/trigger.yaml:1:1: a trigger needs `alert` or `notify` (or both): what firing and resolving do"
    ]
    text = TRIGGER.replace("for: 10m", "for: 10 minutes")
    (found,) = trigger_errors(tmp_path, text)
    assert found == "defs/trigger.yaml:12:6: for: invalid duration '10 minutes': use forms like 30s, 5m, 2h, 3d or PT2H"


def test_trigger_schedule_expressions_and_templates_are_compiled_and_located(tmp_path):
    text = (
        TRIGGER.replace('"*/5 * * * *"', '"*/5 * * *"')
        .replace("{name: disk}", '{name: "{{ form.x }}"}')
        .replace("response.body.value", "respons.body.value")
        .replace("value >= 90", "value >=")
        .replace("value < 80", "valeu < 80")
        .replace("{{ trigger.status }}", "{{ trigger.state }}")
    )
    assert trigger_errors(tmp_path, text) == [
        "defs/trigger.yaml:5:11: invalid cron expression '*/5 * * *'",
        "defs/trigger.yaml:9:18: unknown name 'form' in template; known names: run",
        "defs/trigger.yaml:10:8: unknown name 'respons' in expression (did you mean 'response'?); known names: "
        "response",
        "defs/trigger.yaml:11:12: invalid expression: unexpected 'end of print statement'",
        "defs/trigger.yaml:13:10: unknown name 'valeu' in expression (did you mean 'value'?); known names: value, "
        "response",
        "defs/trigger.yaml:17:12: unknown event field 'state' in template (did you mean 'status'?)",
    ]
    text = TRIGGER.replace('schedule: "*/5 * * * *"', "schedule: {cron: '@hourly', catchup: true}")
    assert trigger_errors(tmp_path, text) == [
        "defs/trigger.yaml:5:38: a trigger reads the current value, so catchup would read it again for every "
        "missed interval: leave catchup off"
    ]


def test_trigger_references_are_checked_against_the_folder(tmp_path):
    text = (
        TRIGGER.replace("api: gauges", "api: gauge")
        .replace("alert: events", "alert: event")
        .replace("group:storage", "group:storag")
        .replace("to: [group:storag]", "to: [requester]")
    )
    assert trigger_errors(tmp_path, text) == [
        "defs/trigger.yaml:4:8: owner: unknown group 'storag' (did you mean 'storage'?)",
        "defs/trigger.yaml:7:8: rest: unknown api 'gauge' (did you mean 'gauges'?)",
        "defs/trigger.yaml:14:8: unknown alert 'event' (did you mean 'events'?)",
        "defs/trigger.yaml:16:8: notify: 'requester': a trigger's run has no requester; name people or groups "
        "(e.g. the owner)",
    ]
    text = TRIGGER.replace("operation: getGauge", "operation: getGauges").replace("{name: disk}", "{nme: disk}")
    assert trigger_errors(tmp_path, text) == [
        "defs/trigger.yaml:8:14: rest: api 'gauges' has no operation 'getGauges' (did you mean 'getGauge'?)"
    ]
    assert trigger_errors(tmp_path, TRIGGER.replace("{name: disk}", "{nme: disk}")) == [
        "defs/trigger.yaml:9:3: rest: missing required path parameter 'name' of operation 'getGauge'",
        "defs/trigger.yaml:9:12: rest: operation 'getGauge' has no parameter 'nme' (did you mean 'name'?)",
    ]
    text = TRIGGER.replace("operation: getGauge", "operation: setGauge").replace("      params: {name: disk}\n", "")
    assert trigger_errors(tmp_path, text) == [
        "defs/trigger.yaml:8:14: rest: operation 'setGauge' requires a request body; a trigger reads its data "
        "point without one"
    ]


def test_sql_and_metric_data_points_are_not_supported_yet(tmp_path):
    rest = "rest:\n      api: gauges\n      operation: getGauge\n      params: {name: disk}\n"
    text = TRIGGER.replace(rest, "sql: {connection: warehouse, query: 'select 1'}\n")
    assert trigger_errors(tmp_path, text) == [
        "defs/trigger.yaml:6:1: data point 'sql' is not supported yet (SQL data points arrive with pipes); read a "
        "REST operation with `rest`"
    ]
    text = TRIGGER.replace(rest, "metric: {query: 'avg(disk_used)'}\n")
    assert trigger_errors(tmp_path, text) == [
        "defs/trigger.yaml:6:1: data point 'metric' is not supported yet (metric data points arrive with the "
        "metrics integration); read a REST operation with `rest`"
    ]
    both = TRIGGER.replace("rest:", "metric: {query: x}\n    rest:")
    assert trigger_errors(tmp_path, both) == [
        "defs/trigger.yaml:1:1: a trigger needs exactly one data point: one of rest, sql, metric (got rest, metric)"
    ]


def test_a_trigger_may_not_take_a_workflow_s_id(tmp_path):
    (tmp_path / "trigger.yaml").write_text(textwrap.dedent(TRIGGER.replace("id: disk_full", "id: sink")))
    for rel, body in TRIGGER_FOLDER.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(body))
    assert [str(d) for d in Project(tmp_path, display_root="defs").duplicate_ids()] == [
        "defs/trigger.yaml:1:1: Trigger id 'sink' is already the id of the Workflow (a DAG id) in defs/sink.yaml"
    ]


def test_a_trigger_compiles_to_its_own_dag(tmp_path):
    """One task on the trigger's schedule, one run at a time, no catch-up."""
    from dag_factory.loader import load_dag_file

    for rel, body in TRIGGER_FOLDER.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(body))
    (tmp_path / "trigger.yaml").write_text(textwrap.dedent(TRIGGER.replace("owner:", "start_paused: true\n    owner:")))
    dag = load_dag_file(str(tmp_path), "trigger.yaml")
    assert dag.dag_id == "disk_full" and [t.task_id for t in dag.tasks] == ["check"]
    assert dag.max_active_runs == 1 and dag.catchup is False and dag.is_paused_upon_creation is True
    assert "trigger" in dag.tags and dag.schedule == "*/5 * * * *"
    check = dag.get_task("check")
    assert (check.trigger_id, check.alert, check.hold, check.retries) == ("disk_full", "events", 600.0, 2)
    assert check.notify["to"] == ["group:storage"] and check.resolve == "value < 80"


# -- the CLI -----------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autopilot_provider.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def test_cli_validate_reports_every_broken_file_and_exits_1(tmp_path):
    defs = tmp_path / "definitions"
    defs.mkdir()
    (defs / "good.yaml").write_text(
        HEADER.replace("id: wf", "id: good") + "steps:\n  - id: a\n    script: {bash: echo}\n"
    )
    (defs / "bad1.yaml").write_text(HEADER.replace("id: wf", "id: bad1") + "steps:\n  - id: a\n    scrip: {}\n")
    (defs / "bad2.yaml").write_text("apiVersion: autopilot/v1\nkind: [\n")
    result = run_cli("validate", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "definitions/bad1.yaml:6:5: step 'a': unknown field 'scrip' (did you mean 'script'?)"
    assert lines[-1].startswith("definitions/bad2.yaml:3:1: YAML syntax error")
    assert not any(line.startswith("definitions/good.yaml") for line in lines)
    assert "3 definition(s) checked" in result.stderr

    as_json = json.loads(run_cli("validate", "--format", "json", cwd=tmp_path).stdout)
    assert as_json["files"] == 3
    assert {e["path"] for e in as_json["errors"]} == {"definitions/bad1.yaml", "definitions/bad2.yaml"}
    assert {"line", "column", "message"} <= set(as_json["errors"][0])

    (defs / "bad1.yaml").unlink()
    (defs / "bad2.yaml").unlink()
    assert run_cli("validate", "definitions/good.yaml", cwd=tmp_path).returncode == 0


def test_pre_commit_hook_runs_validate():
    hooks = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "entry: autopilot validate" in hooks and "id: autopilot-validate" in hooks


def test_exported_json_schema_is_current():
    """definitions/schema/ is generated from the models; regenerate with `autopilot schema`."""
    result = run_cli("schema", "--check", cwd=REPO)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("rel", sorted(Project(REPO / "definitions").index()))
def test_examples_validate_against_the_published_schema(rel):
    import jsonschema
    import yaml

    schema = json.loads((REPO / "definitions/schema/definition.schema.json").read_text())
    document = yaml.safe_load((REPO / "definitions" / rel).read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(document)) == []


# -- owners are contacts ---------------------------------------------------------------------------

OWNERS_FOLDER = {
    "contacts.yaml": """\
        apiVersion: autopilot/v1
        kind: Contacts
        id: people
        people:
          - {id: dave, name: Dave, email: dave@example.com, username: dave}
        groups:
          - {id: storage, members: [dave], email: storage@example.com}
        """,
    "inventory.yaml": """\
        apiVersion: autopilot/v1
        kind: Resources
        id: inventory
        items:
          - {id: web01, type: machine, owner: person:dave}
          - {id: web02, type: machine, owner: The web team}
        """,
}

OWNED = """\
    apiVersion: autopilot/v1
    kind: Workflow
    id: wf
    owner: group:storage
    form:
      properties:
        host: {type: string, options: {resources: machine}}
        note: {type: string, default: ""}
    steps:
      - id: tell
        notify: {to: [owner, owner_of:form.host, owner_of:web01]}
    """


def test_owners_that_are_contacts_are_reached_and_free_text_owners_stay_valid(tmp_path):
    assert errors(tmp_path, OWNED, extra=OWNERS_FOLDER) == []
    # free text is Airflow's owner field as before: valid, as long as nothing asks to reach it
    free = OWNED.replace("owner: group:storage", "owner: Storage team (Paris)").replace("to: [owner, ", "to: [")
    assert errors(tmp_path, free, extra=OWNERS_FOLDER) == []
    assert errors(tmp_path, OWNED.replace("owner: group:storage", "owner: airflow"), extra=OWNERS_FOLDER) == [
        "defs/wf.yaml:11:19: step 'tell': 'owner': the owner 'airflow' is free text, not a contact: make it a "
        "reference such as group:ID or person:ID to reach it"
    ]
    assert errors(tmp_path, OWNED.replace("    owner: group:storage\n", ""), extra=OWNERS_FOLDER) == [
        "defs/wf.yaml:10:19: step 'tell': 'owner': no owner is set"
    ]


def test_an_owner_naming_nobody_known_is_an_error_with_a_suggestion(tmp_path):
    assert errors(tmp_path, OWNED.replace("owner: group:storage", "owner: group:storag"), extra=OWNERS_FOLDER) == [
        "defs/wf.yaml:4:8: owner: unknown group 'storag' (did you mean 'storage'?)"
    ]
    # a reference with a misspelt kind is not taken for free text
    assert errors(tmp_path, OWNED.replace("owner: group:storage", "owner: grop:storage"), extra=OWNERS_FOLDER)[0] == (
        "defs/wf.yaml:4:8: owner: unknown reference kind 'grop' (did you mean 'group'?): write a contact "
        "reference, or free text without 'kind:'"
    )
    # an owner is the same for every run
    assert errors(tmp_path, OWNED.replace("owner: group:storage", "owner: requester"), extra=OWNERS_FOLDER)[0] == (
        "defs/wf.yaml:4:8: owner: 'requester' depends on the run; an owner is a fixed contact (person:ID, "
        "group:ID, user:NAME, email:ADDRESS) or free text"
    )


def test_owner_of_names_an_inventory_item_with_an_owner_or_a_field_that_picks_one(tmp_path):
    text = OWNED.replace(
        "[owner, owner_of:form.host, owner_of:web01]",
        "[owner_of:form.hots, owner_of:form.note, owner_of:web1, owner_of:web02]",
    )
    assert errors(tmp_path, text, extra=OWNERS_FOLDER) == [
        "defs/wf.yaml:11:19: step 'tell': owner_of:form.hots: 'hots' is not a form field that picks an inventory "
        "item (options: {resources: TYPE}) (did you mean 'host'?)",
        "defs/wf.yaml:11:39: step 'tell': owner_of:form.note: 'note' is not a form field that picks an inventory "
        "item (options: {resources: TYPE})",
        "defs/wf.yaml:11:59: step 'tell': owner_of:web1: unknown inventory item 'web1' (did you mean 'web01'?)",
        "defs/wf.yaml:11:74: step 'tell': owner_of:web02: the owner 'The web team' of inventory item 'web02' is "
        "free text, not a contact: make it a reference such as group:ID or person:ID to reach it",
    ]


def test_an_inventory_items_owner_is_checked_like_a_workflows(tmp_path):
    folder = dict(OWNERS_FOLDER)
    folder["inventory.yaml"] = folder["inventory.yaml"].replace("person:dave", "person:dav")
    for rel, body in folder.items():
        (tmp_path / rel).write_text(textwrap.dedent(body))
    found = [str(d) for d in Project(tmp_path, display_root="defs").load("inventory.yaml").diagnostics]
    assert found == ["defs/inventory.yaml:5:39: item 'web01': owner: unknown person 'dav' (did you mean 'dave'?)"]


def test_an_approval_from_the_owner_is_checked_as_the_owner_it_names(tmp_path):
    approval = OWNED.replace(
        "notify: {to: [owner, owner_of:form.host, owner_of:web01]}", "approval: {from: [owner, owner_of:form.host]}"
    )
    assert errors(tmp_path, approval, extra=OWNERS_FOLDER) == []  # storage's dave can answer
    by_mail = approval.replace("owner: group:storage", "owner: email:storage@example.com")
    assert errors(tmp_path, by_mail, extra=OWNERS_FOLDER) == [
        "defs/wf.yaml:11:23: step 'tell': owner email:storage@example.com cannot answer: an e-mail address is not "
        "an Airflow user"
    ]


def test_a_functions_owner_references_are_resolved_where_it_is_used(tmp_path):
    """A function has no owner or form of its own: `owner` is the calling workflow's, at run time."""
    function = """\
        apiVersion: autopilot/v1
        kind: Function
        id: tell_owner
        steps:
          - id: tell
            notify: {to: [owner, owner_of:form.host]}
        """
    assert errors(tmp_path, function, name="fn.yaml", extra=OWNERS_FOLDER) == []
