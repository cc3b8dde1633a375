"""REST `task` and `wait` steps against a real HTTP server (tests/fixtures/backup_product.py).

Each test writes the backup product's Api definition (its OpenAPI document under ``apis/specs/``),
a workflow and an Airflow connection (``AIRFLOW_CONN_<ID>``, JSON form), runs the workflow with
``dag.test()`` (which runs the wait step's trigger inline), and checks what the server received and
the steps' outputs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time

import httpx
import pytest
from airflow.sdk._shared.secrets_masker import _secrets_masker, redact

from autopilot_provider.hooks import openapi as openapi_hook
from autopilot_provider.openapi.request import RetryPolicy, build_request
from tests.conftest import task_states
from tests.fixtures.backup_product import (  # noqa: F401 - backup_product is a fixture
    API_KEY,
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    SPEC_PATH,
    TOKEN,
    USER,
    backup_product,
)
from tests.fixtures.loopback import RecordingServer

BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class Backup:
    """The backup product plus helpers to declare Airflow connections to it."""

    def __init__(self, product, monkeypatch):
        self.product = product
        self.monkeypatch = monkeypatch

    def connect(self, conn_id: str, *, host: bool = True, **fields) -> None:
        extra = fields.pop("extra", None)
        conn = {"conn_type": "autopilot_openapi", **fields}
        if host:
            conn.update(host=self.product.host, port=self.product.port, schema="http")
        if extra:
            conn["extra"] = extra
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    def received(self, path=None, **kwargs):
        return self.product.received(path, **kwargs)


@pytest.fixture
def backup(definitions_dir, backup_product, monkeypatch) -> Backup:  # noqa: F811
    # the example Api (definitions/apis/backup_product.yaml) and its spec are in the served folder
    assert (definitions_dir / "apis/backup_product.yaml").exists()
    backup_product.reset()
    helper = Backup(backup_product, monkeypatch)
    helper.connect("backup_api", login=USER, password=PASSWORD)
    return helper


def outputs(dag_run) -> dict:
    return {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in dag_run.get_task_instances()}


# ------------------------------------------------------------------------------------------------
# Auth schemes, parameters, bodies, outputs
# ------------------------------------------------------------------------------------------------

BASIC_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_basic
form:
  properties:
    hostname: {type: string, default: db01.example.com}
  required: [hostname]
steps:
  - id: check
    task:
      api: backup_product
      operation: getAgent
      params: {hostname: "{{ form.hostname }}"}
      outputs:
        installed: response.body.agent.installed
        version: response.body.agent.version
  - id: odd_name
    task:
      api: backup_product
      operation: getAgent
      params: {hostname: "web 01/a"}
"""


def test_basic_auth_path_parameters_and_outputs(backup, write_definition, run_workflow):
    _secrets_masker().reset_masker()
    write_definition("rest_basic.yaml", BASIC_WF)
    dag_run = run_workflow("rest_basic")
    assert str(dag_run.state) == "success", task_states(dag_run)
    first, second = backup.received()
    assert (first.method, first.raw_path, first.authorization) == ("GET", "/api/v1/hosts/db01.example.com/agent", BASIC)
    assert first.body is None and first.query == {}
    assert second.raw_path == "/api/v1/hosts/web%2001%2Fa/agent"  # a path parameter is one segment
    values = outputs(dag_run)
    assert values["check"] == {"installed": True, "version": "7.1"}
    masked = redact(f"{PASSWORD} {BASIC}")  # what task logs show
    assert PASSWORD not in masked and BASIC.split()[1] not in masked
    # Without outputs, a step's outputs are the status and the body.
    assert values["odd_name"] == {
        "status": 200,
        "body": {"hostname": "web 01/a", "agent": {"installed": False, "version": None}},
    }


def test_bearer_token(backup, write_definition, run_workflow):
    backup.connect("backup_bearer", extra={"token": TOKEN})
    write_definition(
        "rest_bearer.yaml",
        BASIC_WF.replace("id: rest_basic", "id: rest_bearer").replace(
            'operation: getAgent\n      params: {hostname: "{{',
            'connection: backup_bearer\n      operation: getAgent\n      params: {hostname: "{{',
        ),
    )
    dag_run = run_workflow("rest_bearer")
    assert str(dag_run.state) == "success", task_states(dag_run)
    check, other = backup.received()
    assert check.authorization == f"Bearer {TOKEN}"
    assert other.authorization == BASIC  # the step without `connection:` uses the Api's


API_KEYS_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_api_keys
form:
  properties:
    limit: {type: integer, default: 5}
  required: [limit]
steps:
  - id: clients
    task:
      api: backup_product
      operation: listClients
      connection: backup_key
      params:
        policy: gold
        tag: [nightly, "db tier"]
        fields: [id, hostname]
        limit: "{{ form.limit }}"
      outputs:
        count: response.body["items"] | length
  - id: report
    task:
      api: backup_product
      operation: getReport
      connection: backup_key
      params: {report_id: "7"}
      outputs: {ok: response.body.ok, id: response.body.id}
  - id: status
    task:
      api: backup_product
      operation: getStatus
      connection: backup_key
      outputs: {healthy: response.body.healthy}
"""


def test_api_key_in_header_query_and_cookie(backup, write_definition, run_workflow):
    backup.connect("backup_key", extra={"api_key": API_KEY})
    write_definition("rest_api_keys.yaml", API_KEYS_WF)
    dag_run = run_workflow("rest_api_keys")
    assert str(dag_run.state) == "success", task_states(dag_run)
    clients, report, status = backup.received()
    assert clients.headers["x-api-key"] == API_KEY and "authorization" not in clients.headers
    # form style: `tag` exploded (repeated), `fields` not (comma-separated, commas literal).
    assert clients.query == {
        "policy": ["gold"],
        "tag": ["nightly", "db tier"],
        "fields": ["id,hostname"],
        "limit": ["5"],
    }
    assert "fields=id,hostname" in clients.raw_query
    assert report.raw_path == "/api/v1/reports/7" and report.query == {"api_key": [API_KEY]}
    assert status.cookies == {"backup_session": API_KEY}
    assert outputs(dag_run) == {"clients": {"count": 0}, "report": {"ok": True, "id": 7}, "status": {"healthy": True}}


OAUTH_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_oauth
form:
  properties:
    hostname: {type: string}
    policy: {type: string, enum: [gold, silver, bronze], default: silver}
    retention: {type: integer, default: 90}
  required: [hostname, policy, retention]
steps:
  - id: add
    task:
      api: backup_product
      operation: addClient
      connection: backup_oauth
      params: {X-Request-Id: "{{ run.id }}"}
      body:
        hostname: "{{ form.hostname }}"
        policy: "{{ form.policy }}"
        retention_days: "{{ form.retention }}"
        tags: [autopilot]
      outputs: {client_id: response.body.id, policy: response.body.policy}
  - id: add_replica
    task:
      api: backup_product
      operation: addClient
      connection: backup_oauth
      body: {hostname: "{{ form.hostname }}-replica", policy: bronze}
      outputs: {client_id: response.body.id}
"""


def test_oauth2_client_credentials_token_fetched_once_and_json_body(backup, write_definition, run_workflow):
    openapi_hook._TOKENS.clear()
    _secrets_masker().reset_masker()
    backup.connect("backup_oauth", extra={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    write_definition("rest_oauth.yaml", OAUTH_WF)
    dag_run = run_workflow("rest_oauth", {"hostname": "oauth01.example.com", "policy": "gold", "retention": 90})
    assert str(dag_run.state) == "success", task_states(dag_run)
    token, add, replica = backup.received()
    assert (token.method, token.path) == ("POST", "/api/v1/oauth/token")
    client_basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token.authorization == client_basic
    assert token.body == {"grant_type": ["client_credentials"], "scope": ["clients:write"]}
    assert add.method == "POST" and add.path == "/api/v1/clients"
    assert add.authorization == replica.authorization == "Bearer oauth-token-1"  # cached for the second step
    assert add.headers["content-type"] == "application/json"
    assert add.headers["x-request-id"] == dag_run.run_id
    assert add.body == {
        "hostname": "oauth01.example.com",
        "policy": "gold",
        "retention_days": 90,
        "tags": ["autopilot"],
    }
    values = outputs(dag_run)
    assert values["add"]["policy"] == "gold" and values["add_replica"]["client_id"] > 0
    # The client secret and the fetched token are registered with Airflow's secrets masker.
    masked = redact(f"{CLIENT_SECRET} Bearer oauth-token-1")
    assert CLIENT_SECRET not in masked and "oauth-token-1" not in masked


def test_oauth2_token_fetched_again_after_401(backup, write_definition, run_workflow):
    backup.connect(
        "backup_oauth", extra={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "client_auth": "body"}
    )
    write_definition("rest_oauth.yaml", OAUTH_WF)
    openapi_hook._TOKENS.clear()
    backup.product.revoke_next_token_use = True
    dag_run = run_workflow("rest_oauth", {"hostname": "oauth02.example.com", "policy": "silver", "retention": 30})
    assert str(dag_run.state) == "success", task_states(dag_run)
    paths = [(r.path, r.authorization) for r in backup.received()]
    assert [p for p, _ in paths] == [
        "/api/v1/oauth/token",
        "/api/v1/clients",
        "/api/v1/oauth/token",
        "/api/v1/clients",
        "/api/v1/clients",
    ]
    first_token, retried = paths[1][1], paths[3][1]
    assert first_token != retried and retried.startswith("Bearer oauth-token-")
    token_request = backup.received("/oauth/token")[0]
    assert token_request.authorization is None  # client_auth: body
    assert token_request.body["client_id"] == [CLIENT_ID] and token_request.body["client_secret"] == [CLIENT_SECRET]


FORM_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_form_body
steps:
  - id: label
    task:
      api: backup_product
      operation: labelHost
      params: {hostname: db01.example.com}
      body: {label: production, color: green}
"""


def test_form_body(backup, write_definition, run_workflow):
    write_definition("rest_form_body.yaml", FORM_WF)
    dag_run = run_workflow("rest_form_body")
    assert str(dag_run.state) == "success", task_states(dag_run)
    (label,) = backup.received()
    assert label.headers["content-type"] == "application/x-www-form-urlencoded"
    assert label.body == {"label": ["production"], "color": ["green"]}
    assert outputs(dag_run)["label"] == {"status": 204, "body": None}


RESPONSE_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_response_check
steps:
  - id: strict
    task:
      api: backup_product
      operation: getAgent
      params: {hostname: weird.example.com}
  - id: lenient
    after: []
    task:
      api: backup_product
      operation: getAgent
      params: {hostname: weird.example.com}
      validate_response: warn
      outputs: {installed: response.body.agent.installed}
"""


def test_response_checked_against_the_declared_schema(backup, write_definition, run_workflow, capfd):
    write_definition("rest_response_check.yaml", RESPONSE_WF)
    dag_run = run_workflow("rest_response_check")
    assert task_states(dag_run) == {"strict": "failed", "lenient": "success"}
    assert outputs(dag_run)["lenient"] == {"installed": "yes"}
    log = capfd.readouterr().out
    assert "the response does not match the OpenAPI document" in log
    assert "response.body.agent.installed: 'yes' is not of type 'boolean'" in log


# ------------------------------------------------------------------------------------------------
# Failing before sending, retries, timeouts
# ------------------------------------------------------------------------------------------------

INVALID_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_invalid
form:
  properties:
    hostname: {type: string}
    policy: {type: string, default: silver}
    retention: {type: integer, default: 0}
  required: [policy, retention]
steps:
  - id: add
    task:
      api: backup_product
      operation: addClient
      connection: backup_oauth
      body:
        hostname: "{{ form.hostname }}"
        policy: "{{ form.policy }}"
        retention_days: "{{ form.retention }}"
"""


def test_invalid_request_fails_before_anything_is_sent(backup, write_definition, run_workflow, capfd):
    openapi_hook._TOKENS.clear()
    backup.connect("backup_oauth", extra={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    write_definition("rest_invalid.yaml", INVALID_WF)
    dag_run = run_workflow("rest_invalid", {"hostname": "x1", "policy": "platinum"})
    assert task_states(dag_run) == {"add": "failed"}
    assert backup.received() == []  # not even a token request
    log = capfd.readouterr().out
    assert "request for operation 'addClient' is invalid, nothing was sent" in log
    assert "body.policy: 'platinum' is not one of ['gold', 'silver', 'bronze']" in log
    assert "body.retention_days: 0 is less than the minimum of 1" in log


def test_missing_required_parameter_at_run_time(backup, write_definition, run_workflow, capfd):
    write_definition(
        "rest_missing.yaml",
        BASIC_WF.replace("id: rest_basic", "id: rest_missing").replace(
            "hostname: {type: string, default: db01.example.com}\n  required: [hostname]",
            "hostname: {type: string}\n  required: []",
        ),
    )
    dag_run = run_workflow("rest_missing", {"hostname": None})
    assert task_states(dag_run)["check"] == "failed"
    assert backup.received() == []
    assert "params.hostname: missing required path parameter" in capfd.readouterr().out


RETRY_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_retries
form:
  properties:
    key: {type: string}
  required: [key]
steps:
  - id: flaky
    task:
      api: backup_product
      operation: getFlaky
      params: {key: "{{ form.key }}"}
      backoff: 10ms
      outputs: {attempts: response.body.attempts}
  - id: broken
    task:
      api: backup_product
      operation: getBroken
      http_retries: 2
      backoff: 10ms
"""


def test_429_is_retried_after_retry_after_and_5xx_until_retries_run_out(backup, write_definition, run_workflow, capfd):
    write_definition("rest_retries.yaml", RETRY_WF)
    dag_run = run_workflow("rest_retries", {"key": "k1"})
    assert task_states(dag_run) == {"flaky": "success", "broken": "failed"}
    first, second = backup.received("/flaky")
    assert second.at - first.at >= 0.95  # Retry-After: 1 wins over the 10ms backoff
    assert outputs(dag_run)["flaky"] == {"attempts": 2}
    assert len(backup.received("/broken")) == 3  # the first try and 2 retries
    log = capfd.readouterr().out
    assert "answered HTTP 503 after 3 attempts" in log
    assert "under maintenance" in log  # an excerpt of the body


TIMEOUT_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_timeouts
steps:
  - id: request_timeout
    task:
      api: backup_product
      operation: getSlow
      params: {seconds: 2}
      request_timeout: 300ms
      http_retries: 1
      backoff: 10ms
  - id: step_timeout
    after: []
    timeout: 1s
    task:
      api: backup_product
      operation: getSlow
      params: {seconds: 4}
"""


def test_request_timeout_and_step_timeout(backup, write_definition, run_workflow, capfd):
    write_definition("rest_timeouts.yaml", TIMEOUT_WF)
    dag_run = run_workflow("rest_timeouts")
    assert task_states(dag_run) == {"request_timeout": "failed", "step_timeout": "failed"}
    assert len(backup.received("/slow")) == 3  # request_timeout: 2 attempts; step_timeout: 1
    assert sorted(r.query["seconds"][0] for r in backup.received("/slow")) == ["2", "2", "4"]
    log = capfd.readouterr().out
    assert "timed out (ReadTimeout) (after 2 attempt(s))" in log
    assert "Timeout" in log.split("step_timeout", 1)[-1]


def test_connection_errors_are_retried(backup, write_definition, run_workflow, capfd):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backup.monkeypatch.setenv(
        "AIRFLOW_CONN_BACKUP_DOWN",
        json.dumps(
            {"conn_type": "autopilot_openapi", "host": f"http://127.0.0.1:{port}/api/v1", "extra": {"api_key": API_KEY}}
        ),
    )
    write_definition(
        "rest_down.yaml",
        "apiVersion: autopilot/v1\nkind: Workflow\nid: rest_down\nsteps:\n  - id: report\n    task:\n"
        "      api: backup_product\n      operation: getReport\n      connection: backup_down\n"
        "      params: {report_id: 1}\n      http_retries: 1\n      backoff: 10ms\n",
    )
    dag_run = run_workflow("rest_down")
    assert task_states(dag_run) == {"report": "failed"}
    log = capfd.readouterr().out
    assert "ConnectError" in log and "(after 2 attempt(s))" in log
    # The URL holds the key: it is registered with Airflow's secrets masker, which masks task logs
    # (in a worker the supervisor applies it; dag.test's console logger does not).
    assert redact(f"GET /reports/1?api_key={API_KEY}") == "GET /reports/1?api_key=***"


# ------------------------------------------------------------------------------------------------
# Long-running operations: wait steps (deferred to the triggerer) and decisions on outputs
# ------------------------------------------------------------------------------------------------

ENSURE_AGENT = """\
apiVersion: autopilot/v1
kind: Workflow
id: ensure_agent
form:
  properties:
    hostname: {type: string}
    polls: {type: integer, default: 2}
    fail: {type: boolean, default: false}
    wait_timeout: {type: string, default: 30s}
  required: [hostname, polls, fail]
steps:
  - id: check
    task:
      api: backup_product
      operation: getAgent
      params: {hostname: "{{ form.hostname }}"}
      outputs: {installed: response.body.agent.installed}
  - id: installed_yet
    decision:
      if: steps.check.outputs.installed
      then: already_there
      else: install
  - id: already_there
    script: {bash: "echo already installed"}
  - id: install
    task:
      api: backup_product
      operation: installAgent
      params: {hostname: "{{ form.hostname }}"}
      body: {version: "7.3", simulate_polls: "{{ form.polls }}", simulate_failure: "{{ form.fail }}"}
      outputs: {job_id: response.body.job_id, status: response.status}
  - id: installed
    wait:
      api: backup_product
      operation: getJob
      params: {job_id: "{{ steps.install.outputs.job_id }}"}
      until: response.body.status == 'done'
      fail_if: response.body.status == 'failed'
      every: 200ms
      timeout: __TIMEOUT__
      outputs: {progress: response.body.progress, job: response.body.job_id}
  - id: verify
    task:
      api: backup_product
      operation: getAgent
      params: {hostname: "{{ form.hostname }}"}
      outputs: {version: response.body.agent.version}
"""


def test_long_running_operation_waits_in_the_trigger_and_a_decision_routes_on_outputs(
    backup, write_definition, run_workflow
):
    write_definition("ensure_agent.yaml", ENSURE_AGENT.replace("__TIMEOUT__", "30s"))
    dag_run = run_workflow("ensure_agent", {"hostname": "web01.example.com", "polls": 2, "fail": False})
    assert task_states(dag_run) == {
        "check": "success",
        "installed_yet": "success",
        "already_there": "skipped",
        "install": "success",
        "installed": "success",
        "verify": "success",
    }
    values = outputs(dag_run)
    assert values["install"] == {"job_id": "job-1", "status": 202}
    assert values["installed"] == {"progress": 100, "job": "job-1"}
    assert values["verify"] == {"version": "7.3"}
    polls = backup.received("/jobs/job-1")
    assert len(polls) == 3 and all(p.authorization == BASIC for p in polls)  # pending, running, done
    assert all(b.at - a.at >= 0.15 for a, b in zip(polls, polls[1:], strict=False))  # `every: 200ms`
    install = backup.received("/hosts/web01.example.com/agent/installations")[0]
    assert install.body == {"version": "7.3", "simulate_polls": 2, "simulate_failure": False}

    # The agent is there now: the decision takes the other branch and nothing is installed.
    backup.product.requests.clear()  # keep the installed agent, forget the calls
    dag_run = run_workflow("ensure_agent", {"hostname": "web01.example.com", "polls": 2, "fail": False})
    states = task_states(dag_run)
    assert states["already_there"] == "success"
    assert {states[t] for t in ("install", "installed", "verify")} == {"skipped"}
    assert [r.path for r in backup.received()] == ["/api/v1/hosts/web01.example.com/agent"]


def test_wait_times_out_clearly(backup, write_definition, run_workflow, capfd):
    write_definition("ensure_agent.yaml", ENSURE_AGENT.replace("__TIMEOUT__", "1s"))
    dag_run = run_workflow("ensure_agent", {"hostname": "slow01.example.com", "polls": 1000, "fail": False})
    states = task_states(dag_run)
    assert states["install"] == "success" and states["installed"] == "failed"
    assert 3 <= len(backup.received("/jobs/")) <= 8
    log = capfd.readouterr().out
    assert "gave up waiting after 1s" in log and "`response.body.status == 'done'` is still false" in log
    assert "last response: HTTP 200" in log


def test_wait_fail_if_fails_at_once(backup, write_definition, run_workflow, capfd):
    write_definition("ensure_agent.yaml", ENSURE_AGENT.replace("__TIMEOUT__", "30s"))
    dag_run = run_workflow("ensure_agent", {"hostname": "bad01.example.com", "polls": 1, "fail": True})
    assert task_states(dag_run)["installed"] == "failed"
    assert len(backup.received("/jobs/")) == 2
    assert "fail_if is true: response.body.status == 'failed' (after 2 polls)" in capfd.readouterr().out


# ------------------------------------------------------------------------------------------------
# Base URL from the spec's server
# ------------------------------------------------------------------------------------------------


def test_credentials_never_go_to_a_base_url_only_the_document_names(backup, write_definition, run_workflow):
    backup.connect("backup_nohost", host=False, extra={"token": TOKEN})
    # the product's own document: its server is the product, but the connection names no host
    write_definition("apis/specs/backup_remote.yaml", httpx.get(f"{backup.product.url}/openapi.yaml").text)
    write_definition(
        "apis/backup_remote.yaml",
        "apiVersion: autopilot/v1\nkind: Api\nid: backup_remote\nspec: specs/backup_remote.yaml\n"
        "connection: backup_nohost\n",
    )
    write_definition(
        "rest_remote.yaml",
        "apiVersion: autopilot/v1\nkind: Workflow\nid: rest_remote\nsteps:\n  - id: check\n    task:\n"
        "      api: backup_remote\n      operation: getAgent\n      params: {hostname: db01.example.com}\n"
        "      outputs: {installed: response.body.agent.installed}\n",
    )
    dag_run = run_workflow("rest_remote")
    assert str(dag_run.state) == "failed", task_states(dag_run)
    assert [r.path for r in backup.received()] == ["/openapi.yaml"]  # the test's own download; no API call


@pytest.fixture
def listeners():
    """Two loopback listeners on different ports: two origins."""
    first, second = RecordingServer(), RecordingServer()
    yield first, second
    first.stop()
    second.stop()


def _hook_for(monkeypatch, document: dict, conn: dict, conn_id: str = "redirecting_api"):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "autopilot_openapi", **conn}))
    spec = _spec(document)
    return openapi_hook.OpenApiHook(conn_id, spec=spec, retries=0), spec


def _document(server: str | None = None, *, security: bool = True) -> dict:
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/old": {"get": {"operationId": "getOld", "responses": {"200": {"description": "ok"}}}},
            "/submit": {
                "post": {
                    "operationId": "submit",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": {"description": "ok"}},
                }
            },
        },
    }
    if server:
        document["servers"] = [{"url": server}]
    if security:
        document["components"] = {"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}}
        document["security"] = [{"key": []}]
    return document


def _call(hook, spec, operation: str, body=None):
    op = spec.operation(operation)
    return hook.run(op, build_request(spec, op, {}, body))


def test_extra_headers_never_reach_a_base_url_only_the_document_names(listeners, monkeypatch):
    document_server, _ = listeners
    document_server.routes["/old"] = (200, {"Content-Type": "application/json"}, b'["a"]')
    # no host, an operation without security: the connection's extra headers would be all it sends
    hook, spec = _hook_for(
        monkeypatch, _document(document_server.url, security=False), {"extra": {"headers": {"X-Tenant": "s3cret"}}}
    )
    with pytest.raises(openapi_hook.OpenApiAuthError, match="extra headers are only sent to a host the connection"):
        _call(hook, spec, "getOld")
    assert document_server.requests == []
    # without extra headers a worker still calls the document's server (nothing of the connection's goes there)
    hook, spec = _hook_for(monkeypatch, _document(document_server.url, security=False), {}, "plain_api")
    assert _call(hook, spec, "getOld")["body"] == ["a"]
    ((method, path, headers, _),) = document_server.requests
    assert (method, path) == ("GET", "/old") and "x-tenant" not in headers
    # the API server (form choices) calls no base URL that only the document chose
    hook = openapi_hook.OpenApiHook("plain_api", spec=spec, retries=0, document_base_url=False)
    with pytest.raises(openapi_hook.OpenApiError, match="calls only hosts that a connection names"):
        _call(hook, spec, "getOld")
    assert len(document_server.requests) == 1


def test_a_redirect_to_another_origin_fails_and_sends_nothing_there(listeners, monkeypatch):
    named, other = listeners
    named.routes["/old"] = (302, {"Location": f"{other.url}/stolen"}, b"")
    other.routes["/stolen"] = (200, {"Content-Type": "application/json"}, b"{}")
    conn = {
        "host": named.host,
        "port": named.port,
        "schema": "http",
        "extra": {"api_key": "k3y-not-for-others", "headers": {"X-Tenant": "s3cret"}},
    }
    hook, spec = _hook_for(monkeypatch, _document(), conn)
    with pytest.raises(openapi_hook.OpenApiError) as caught:
        _call(hook, spec, "getOld")
    assert f"redirecting to another origin ({other.url}/stolen)" in str(caught.value)
    ((_, _, headers, _),) = named.requests
    assert headers["x-api-key"] == "k3y-not-for-others" and headers["x-tenant"] == "s3cret"
    assert other.requests == []

    # the trigger's send loop (asend, with a client built like the trigger's) refuses it the same way
    async def poll():
        async with httpx.AsyncClient(follow_redirects=False) as client:
            op = spec.operation("getOld")
            auth = hook.auth_for(op)
            request = build_request(spec, op, {}, None)
            return await openapi_hook.asend(
                client, request, hook.base_url, auth, policy=RetryPolicy(retries=0), extra_headers={"X-Tenant": "s"}
            )

    with pytest.raises(openapi_hook.OpenApiError, match="redirecting to another origin"):
        asyncio.run(poll())
    assert len(named.requests) == 2 and other.requests == []


def test_same_origin_redirects_are_followed_with_the_same_headers(listeners, monkeypatch):
    named, _ = listeners
    named.routes["/old"] = (307, {"Location": "/new?x=1"}, b"")
    named.routes["/new"] = (200, {"Content-Type": "application/json"}, b'{"moved": true}')
    named.routes["/submit"] = (303, {"Location": f"{named.url}/result"}, b"")
    named.routes["/result"] = (200, {"Content-Type": "application/json"}, b'{"done": true}')
    named.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    conn = {"host": named.host, "port": named.port, "schema": "http", "extra": {"api_key": "k3y"}}
    hook, spec = _hook_for(monkeypatch, _document(), conn)
    assert _call(hook, spec, "getOld")["body"] == {"moved": True}
    assert [(m, p, h["x-api-key"]) for m, p, h, _ in named.requests] == [
        ("GET", "/old", "k3y"),
        ("GET", "/new?x=1", "k3y"),
    ]
    # 303 after a POST: the answer is fetched with GET, without the body
    named.requests.clear()
    assert _call(hook, spec, "submit", {"a": 1})["body"] == {"done": True}
    (post, get) = named.requests
    assert (post[0], post[1], json.loads(post[3])) == ("POST", "/submit", {"a": 1})
    assert (get[0], get[1], get[3], get[2]["x-api-key"]) == ("GET", "/result", b"", "k3y")
    assert "content-type" not in get[2]
    # a redirect loop ends after a few hops
    named.routes["/old"] = (302, {"Location": "/loop"}, b"")
    named.requests.clear()
    with pytest.raises(openapi_hook.OpenApiError, match="redirects more than 5 times"):
        _call(hook, spec, "getOld")
    assert len(named.requests) == 1 + openapi_hook.MAX_REDIRECTS


# ------------------------------------------------------------------------------------------------
# Validation time: file:line:col
# ------------------------------------------------------------------------------------------------

BAD_STEPS = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_bad
form:
  properties:
    hostname: {type: string}
  required: [hostname]
steps:
  - id: unknown_api
    task: {api: backup_prodcut, operation: getAgent, params: {hostname: x}}
  - id: unknown_operation
    task: {api: backup_product, operation: getAgnet, params: {hostname: x}}
  - id: params
    task:
      api: backup_product
      operation: getAgent
      params:
        hostnme: "{{ form.hostname }}"
  - id: literal_body
    task:
      api: backup_product
      operation: addClient
      body:
        hostname: "{{ form.hostname }}"
        policy: platinum
  - id: no_body
    task:
      api: backup_product
      operation: getJob
      params: {job_id: "1"}
      body: {x: 1}
  - id: waiting
    wait:
      api: backup_product
      operation: getJob
      until: response.body.status == form.hostnme
      outputs: {bad: "response.body.(status"}
"""


def test_validation_errors_name_file_line_and_column(backup, definitions_dir):
    from autopilot_provider.repository.folder import Project

    loaded = Project(definitions_dir).check_text("rest_bad.yaml", BAD_STEPS)
    messages = [str(d) for d in loaded.diagnostics]
    assert messages == [
        "definitions/rest_bad.yaml:10:17: step 'unknown_api': unknown api 'backup_prodcut' (did you mean "
        "'backup_product'?)",
        "definitions/rest_bad.yaml:12:44: step 'unknown_operation': api 'backup_product' has no operation "
        "'getAgnet' (did you mean 'getAgent'?)",
        "definitions/rest_bad.yaml:17:7: step 'params': missing required path parameter 'hostname' of operation "
        "'getAgent'",
        "definitions/rest_bad.yaml:18:9: step 'params': operation 'getAgent' has no parameter 'hostnme' (did you "
        "mean 'hostname'?)",
        "definitions/rest_bad.yaml:25:17: step 'literal_body': body.policy: 'platinum' is not one of ['gold', "
        "'silver', 'bronze']",
        "definitions/rest_bad.yaml:31:7: step 'no_body': operation 'getJob' takes no request body",
        "definitions/rest_bad.yaml:33:5: step 'waiting': missing required path parameter 'job_id' of operation "
        "'getJob'",
        "definitions/rest_bad.yaml:36:14: step 'waiting': unknown form field 'hostnme' in expression (did you "
        "mean 'hostname'?)",
        "definitions/rest_bad.yaml:37:22: step 'waiting': invalid expression: expected name or number",
    ]


# ------------------------------------------------------------------------------------------------
# The connection type, render (eject), and the request builder on its own
# ------------------------------------------------------------------------------------------------


def test_the_connection_type_is_registered_without_warnings():
    import warnings

    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager = ProvidersManager()
        manager.initialize_providers_hooks()
        hook = manager._hooks_lazy_dict["autopilot_openapi"]
        hook = hook() if callable(hook) else hook
        widgets = manager.connection_form_widgets
        behaviour = manager.field_behaviours["autopilot_openapi"]
    assert hook.hook_class_name == "autopilot_provider.hooks.openapi.OpenApiHook"
    assert hook.connection_testable
    fields = {k.rsplit("__", 1)[1]: w for k, w in widgets.items() if k.startswith("extra__autopilot_openapi__")}
    assert {"token", "api_key", "client_id", "client_secret", "token_url", "scopes"} <= set(fields)
    assert {name for name, w in fields.items() if w.is_sensitive} == {"token", "api_key", "client_secret"}
    assert behaviour["relabeling"]["host"] == "Base URL or host"
    assert [str(w.message) for w in caught if "autopilot" in str(w.message).lower()] == []


def test_render_writes_rest_steps_as_plain_operator_arguments(backup, write_definition, definitions_dir, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    from autopilot_provider.repository.folder import Project
    from dag_factory.render import render_workflow

    write_definition("ensure_agent.yaml", ENSURE_AGENT.replace("__TIMEOUT__", "30s"))
    source = render_workflow(Project(definitions_dir), "ensure_agent")
    assert "OpenApiWaitOperator(" in source and "until=\"response.body.status == 'done'\"" in source
    (tmp_path / "ensure_agent.py").write_text(source, encoding="utf-8")
    bag = DagBag(dag_folder=str(tmp_path), bundle_path=str(tmp_path), bundle_name="rendered")
    assert bag.import_errors == {}
    rendered = bag.dags["ensure_agent"]
    from dag_factory.loader import load_dag_file

    factory = load_dag_file(str(definitions_dir), "ensure_agent.yaml")
    for task in factory.tasks:
        other = rendered.get_task(task.task_id)
        assert type(other) is type(task)
        for attr in ("api", "operation", "parameters", "body", "outputs", "until", "fail_if", "every", "scope"):
            assert getattr(other, attr, None) == getattr(task, attr, None), (task.task_id, attr)


def _spec(document: dict):
    from autopilot_provider.openapi.cache import load_spec

    return load_spec(document, validate=False)


STYLES = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/items/{label}/{matrix}/{plain}": {
            "get": {
                "operationId": "styles",
                "parameters": [
                    {
                        "name": "label",
                        "in": "path",
                        "required": True,
                        "style": "label",
                        "explode": True,
                        "schema": {"type": "array", "items": {"type": "string"}},
                    },
                    {"name": "matrix", "in": "path", "required": True, "style": "matrix", "schema": {"type": "object"}},
                    {"name": "plain", "in": "path", "required": True, "schema": {"type": "integer"}},
                    {
                        "name": "filter",
                        "in": "query",
                        "style": "deepObject",
                        "explode": True,
                        "schema": {"type": "object"},
                    },
                    {
                        "name": "ids",
                        "in": "query",
                        "style": "pipeDelimited",
                        "explode": False,
                        "schema": {"type": "array", "items": {"type": "integer"}},
                    },
                    {
                        "name": "words",
                        "in": "query",
                        "style": "spaceDelimited",
                        "explode": False,
                        "schema": {"type": "array", "items": {"type": "string"}},
                    },
                    {"name": "flag", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "X-Trace", "in": "header", "schema": {"type": "array", "items": {"type": "string"}}},
                    {"name": "pref", "in": "cookie", "schema": {"type": "string"}},
                    {"name": "skipped", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/upload": {
            "post": {
                "operationId": "upload",
                "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "ok"}},
            }
        },
    },
}


def test_parameter_styles_and_bodies():
    from autopilot_provider.openapi.request import build_request

    spec = _spec(STYLES)
    request = build_request(
        spec,
        spec.operation("styles"),
        {
            "label": ["a", "b c"],
            "matrix": {"x": 1, "y": "z"},
            "plain": "42",
            "filter": {"status": "on", "kind": "db"},
            "ids": [1, 2, 3],
            "words": ["hello", "world"],
            "flag": True,
            "X-Trace": ["a", "b"],
            "pref": "dark",
            "skipped": None,
        },
        None,
    )
    assert request.path == "/items/.a.b%20c/;matrix=x,1,y,z/42"
    url = request.url("https://h/api")
    assert url.startswith("https://h/api/items/")
    assert url.split("?", 1)[1] == "ids=1|2|3&words=hello%20world&filter%5Bstatus%5D=on&filter%5Bkind%5D=db&flag=true"
    assert request.headers["X-Trace"] == "a,b" and request.cookies == {"pref": "dark"}
    upload = build_request(spec, spec.operation("upload"), {}, {"name": "x", "tags": ["a", "b"]})
    assert upload.content_type.startswith("multipart/form-data; boundary=")
    assert upload.content.count("Content-Disposition: form-data;") == 3


def test_swagger_2_collection_formats_and_form_data():
    from autopilot_provider.openapi.request import build_request

    spec = _spec(
        {
            "swagger": "2.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/pets": {
                    "post": {
                        "operationId": "addPet",
                        "consumes": ["application/x-www-form-urlencoded"],
                        "parameters": [
                            {
                                "name": "tags",
                                "in": "query",
                                "type": "array",
                                "items": {"type": "string"},
                                "collectionFormat": "multi",
                            },
                            {"name": "ids", "in": "query", "type": "array", "items": {"type": "integer"}},
                            {"name": "name", "in": "formData", "type": "string", "required": True},
                        ],
                        "responses": {"200": {"description": "ok"}},
                    }
                }
            },
        }
    )
    request = build_request(spec, spec.operation("addPet"), {"tags": ["a", "b"], "ids": [1, 2]}, {"name": "rex"})
    assert request.url("http://h").split("?", 1)[1] == "ids=1,2&tags=a&tags=b"
    assert (request.content, request.content_type) == ("name=rex", "application/x-www-form-urlencoded")


def test_request_problems_are_all_reported_with_their_field():
    from autopilot_provider.openapi.cache import load_spec
    from autopilot_provider.openapi.request import RequestValidationError, build_request

    spec = load_spec(SPEC_PATH)
    with pytest.raises(RequestValidationError) as caught:
        build_request(
            spec,
            spec.operation("addClient"),
            {"X-Request-Idd": "1"},
            {"hostname": "", "policy": "platinum", "tags": ["ok", 3], "extra": 1},
        )
    assert caught.value.problems == [
        "params.X-Request-Idd: operation 'addClient' has no parameter 'X-Request-Idd' (did you mean 'X-Request-Id'?)",
        "body: Additional properties are not allowed ('extra' was unexpected)",
        "body.hostname: '' should be non-empty",
        "body.policy: 'platinum' is not one of ['gold', 'silver', 'bronze']",
        "body.tags[1]: 3 is not of type 'string'",
    ]


def test_base_url_and_auth_selection():
    from types import SimpleNamespace

    from autopilot_provider.hooks.openapi import Credentials, OpenApiAuthError, base_url, select_auth
    from autopilot_provider.openapi.cache import load_spec

    spec = load_spec(SPEC_PATH)

    def creds(**fields):
        conn = SimpleNamespace(
            conn_id="c", host=None, schema=None, port=None, login=None, password=None, extra_dejson={}
        )
        for key, value in fields.items():
            setattr(conn, key, value)
        return Credentials.from_connection(conn)

    assert base_url(spec, creds(host="backup.internal")) == "https://backup.internal/api/v1"
    assert base_url(spec, creds(host="10.0.0.5", schema="http", port=8080)) == "http://10.0.0.5:8080/api/v1"
    assert base_url(spec, creds(host="https://gw.example.com/backup")) == "https://gw.example.com/backup"
    assert base_url(spec, creds(host="gw", extra_dejson={"base_path": "/v2"})) == "https://gw/v2"
    assert base_url(spec, creds()) == "https://backup.example.com/api/v1"
    regional = _spec(
        {
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "servers": [{"url": "https://{region}.example.com/v1", "variables": {"region": {"default": "eu"}}}],
            "paths": {},
        }
    )
    assert base_url(regional, creds()) == "https://eu.example.com/v1"

    agent, add = spec.operation("getAgent"), spec.operation("addClient")
    both = creds(host="b", login="u", password="p", extra_dejson={"token": "t0ken"})
    assert select_auth(spec, agent, both, "https://b")["headers"] == {"Authorization": "Basic dTpw"}
    forced = creds(host="b", login="u", password="p", extra_dejson={"token": "t0ken", "security_scheme": "bearerAuth"})
    assert select_auth(spec, agent, forced, "https://b")["headers"] == {"Authorization": "Bearer t0ken"}
    oauth = select_auth(
        spec, add, creds(host="b", extra_dejson={"client_id": "i", "client_secret": "s"}), "https://b/api/v1"
    )
    assert oauth["oauth2"]["token_url"] == "https://b/api/v1/oauth/token"
    assert oauth["oauth2"]["scopes"] == ["clients:write"]
    # login/password double as OAuth2 client credentials
    assert select_auth(spec, add, creds(host="b", login="u", password="p"), "https://b")["oauth2"]["client_id"] == "u"
    # a token URL that only the document chose gets no credentials, nor does a base URL only the document chose
    with pytest.raises(OpenApiAuthError, match="comes from the OpenAPI document, not from the connection"):
        select_auth(spec, add, creds(login="u", password="p"), "https://b")
    with pytest.raises(OpenApiAuthError, match="has no host, so the base URL"):
        select_auth(spec, agent, creds(login="u", password="p"), "https://backup.example.com/api/v1")
    with pytest.raises(OpenApiAuthError) as caught:
        select_auth(spec, add, creds(extra_dejson={"api_key": "k3y"}), "https://b")
    assert "has no credentials that operation 'addClient' accepts" in str(caught.value)
    assert "client_id" in str(caught.value)


def test_retry_policy():
    from email.utils import formatdate

    from autopilot_provider.openapi.request import RetryPolicy, retry_after

    policy = RetryPolicy(retries=3, backoff=1, max_backoff=5)
    assert policy.retriable(429) and policy.retriable(503) and not policy.retriable(501) and not policy.retriable(404)
    assert policy.delay(0, {"retry-after": "7"}) == 7
    assert 0.5 <= policy.delay(0) <= 1 and 2.5 <= policy.delay(3) <= 5
    assert 8 <= retry_after(formatdate(time.time() + 10, usegmt=True)) <= 10


IDEMPOTENT_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: rest_idempotent
defaults: {retries: 1, retry_delay: 1s}
steps:
  - id: create
    task:
      api: backup_product
      operation: getFlaky
      params: {key: idem}
      backoff: 10ms
      idempotency_header: Idempotency-Key
  - id: other
    after: []
    task:
      api: backup_product
      operation: getBroken
      http_retries: 0
      idempotency_header: X-Request-Key
  - id: plain
    after: []
    task:
      api: backup_product
      operation: getFlaky
      params: {key: plain}
      backoff: 10ms
"""


def test_idempotency_header_is_stable_across_resends_and_tries(backup, write_definition, run_workflow):
    """`idempotency_header` sends one key per step and run: the same on an HTTP re-send and on the
    step's next try (so an API that honours such keys creates once), another for another step."""
    write_definition("rest_idempotent.yaml", IDEMPOTENT_WF)
    dag_run = run_workflow("rest_idempotent", {})
    assert task_states(dag_run) == {"create": "success", "other": "failed", "plain": "success"}
    created = [r.headers.get("idempotency-key") for r in backup.received("/flaky") if r.query["key"] == ["idem"]]
    assert len(created) == 2 and created[0] == created[1] and created[0].startswith("autopilot-")
    tries = [r.headers.get("x-request-key") for r in backup.received("/broken")]
    assert len(tries) == 2 and tries[0] == tries[1] != created[0]  # two tries of the step, one key
    assert all("idempotency-key" not in r.headers for r in backup.received("/flaky") if r.query["key"] == ["plain"])
