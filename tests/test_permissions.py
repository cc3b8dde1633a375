"""Every endpoint of the Autopilot API against every role (docs/security.md, "Who may call what").

One real API server with SimpleAuthManager users: ``viewer`` (viewer), ``designer`` (user: the
designer permission by default), ``author`` (op, made a code author by ``[autopilot]
code_author_roles``) and ``admin``. The table names what each role gets from each route; a route the
table does not list fails the first test, so a new endpoint cannot ship without a decision.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.api_server import ApiServer, migrate_autopilot

ROLES = ("anonymous", "viewer", "designer", "author", "admin")
USERS = {"viewer": "viewer", "designer": "user", "author": "op", "admin": "admin"}
API = "/autopilot/api/v1"
FOLDER = "perm_test"

NO_CODE = """\
apiVersion: autopilot/v1
kind: Workflow
id: {ident}
title: No code here
form:
  properties:
    size: {{type: integer, default: 1}}
steps:
  - id: big
    decision: {{if: form.size > 10, then: tell, else: done}}
  - id: tell
    notify: {{to: [requester], subject: big}}
  - id: done
    notify: {{to: [requester], subject: small}}
"""

WITH_CODE = """\
apiVersion: autopilot/v1
kind: Workflow
id: {ident}
title: {title}
steps:
  - id: greet
    script:
      bash: {body}
"""


def with_code(ident: str, title: str = "Has a script", body: str = "echo hello") -> str:
    return WITH_CODE.format(ident=ident, title=title, body=body)


@pytest.fixture(scope="module")
def server(airflow_db):
    migrate_autopilot()
    server = ApiServer(
        Path(os.environ["AIRFLOW_HOME"]),
        users=USERS,
        extra_env={"AIRFLOW__AUTOPILOT__CODE_AUTHOR_ROLES": "op,admin"},
    )
    server.start()
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    (root / FOLDER).mkdir(exist_ok=True)
    for role in ROLES:  # one file per role, so each role's change does not depend on another's
        (root / FOLDER / f"code_{role}.yaml").write_text(with_code(f"perm_code_{role}"), encoding="utf-8")
        (root / FOLDER / f"gone_{role}.yaml").write_text(NO_CODE.format(ident=f"perm_gone_{role}"), encoding="utf-8")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root / FOLDER, ignore_errors=True)


@pytest.fixture(scope="module")
def clients(server):
    return {role: server.client(None if role == "anonymous" else role) for role in ROLES}


def _version(rel: str) -> str:
    path = Path(os.environ["AUTOPILOT_DEFINITIONS"]) / rel
    return hashlib.sha256(path.read_bytes()).hexdigest()


# what a role may get: "ok" (the permission check passed: any answer but 401/403, never a 5xx), 401 or 403
OK, NO, ANON = "ok", 403, 401
READ = {"anonymous": ANON, "viewer": OK, "designer": OK, "author": OK, "admin": OK}
DESIGN = {"anonymous": ANON, "viewer": NO, "designer": OK, "author": OK, "admin": OK}
CODE = {"anonymous": ANON, "viewer": NO, "designer": NO, "author": OK, "admin": OK}
RUN = {"anonymous": ANON, "viewer": NO, "designer": OK, "author": OK, "admin": OK}
SIGNED_IN = READ
PUBLIC = {"anonymous": OK, "viewer": OK, "designer": OK, "author": OK, "admin": OK}
#: an alert delivery: whoever calls, without the alert's signature it is the same 401
SIGNATURE = {"anonymous": ANON, "viewer": ANON, "designer": ANON, "author": ANON, "admin": ANON}
ALERT_ADMIN = {"anonymous": ANON, "viewer": NO, "designer": NO, "author": NO, "admin": OK}

Body = Callable[[str], Any] | None


def _case(method: str, route: str, url: str, body: Body, expect: dict[str, Any], note: str = "") -> tuple:
    return (method, route, url, body, expect, note)


CASES = [
    _case("GET", "/api/v1/definitions", f"{API}/definitions", None, READ),
    _case(
        "POST",
        "/api/v1/definitions",
        f"{API}/definitions",
        lambda role: {"path": f"{FOLDER}/new_{role}.yaml", "content": NO_CODE.format(ident=f"perm_new_{role}")},
        DESIGN,
        "a workflow of reviewed parts",
    ),
    _case(
        "POST",
        "/api/v1/definitions",
        f"{API}/definitions",
        lambda role: {"path": f"{FOLDER}/script_{role}.yaml", "content": with_code(f"perm_script_{role}")},
        CODE,
        "a workflow with a script",
    ),
    _case(
        "POST",
        "/api/v1/definitions/validate",
        f"{API}/definitions/validate",
        lambda role: {"path": f"{FOLDER}/v.yaml", "content": with_code("perm_v")},
        READ,
        "validating saves nothing, so code is fine",
    ),
    _case("GET", "/api/v1/definitions/{path}", f"{API}/definitions/hello_world.yaml", None, READ),
    _case("GET", "/api/v1/definitions/{path}/revisions", f"{API}/definitions/hello_world.yaml/revisions", None, READ),
    _case(
        "GET",
        "/api/v1/definitions/{path}/revisions/{number}",
        f"{API}/definitions/hello_world.yaml/revisions/1",
        None,
        READ,
    ),
    _case(
        "PUT",
        "/api/v1/definitions/{path}",
        f"{API}/definitions/{FOLDER}/code_{{role}}.yaml",
        lambda role: {
            "content": with_code(f"perm_code_{role}", title="Retitled"),
            "version": _version(f"{FOLDER}/code_{role}.yaml"),
        },
        DESIGN,
        "retitling a workflow whose script is unchanged",
    ),
    _case(
        "PUT",
        "/api/v1/definitions/{path}",
        f"{API}/definitions/{FOLDER}/code_{{role}}.yaml",
        lambda role: {
            "content": with_code(f"perm_code_{role}", title="Retitled", body="echo changed"),
            "version": _version(f"{FOLDER}/code_{role}.yaml"),
        },
        CODE,
        "changing a script",
    ),
    _case(
        "DELETE",
        "/api/v1/definitions/{path}",
        f"{API}/definitions/{FOLDER}/gone_{{role}}.yaml?version={{version}}",
        None,
        DESIGN,
    ),
    _case(
        "DELETE",
        "/api/v1/definitions",
        f"{API}/definitions?encoded=perm_test%252Fno%250Asuch.yaml&version=x",
        None,
        DESIGN,
        "a file whose name is not allowed",
    ),
    _case(
        "POST",
        "/api/v1/definitions/{path}/revisions/{number}/review",
        f"{API}/definitions/hello_world.yaml/revisions/999/review",
        lambda role: {"decision": "approve"},
        DESIGN,
        "then not the revision's author (tests/test_api_definitions.py)",
    ),
    _case("GET", "/api/v1/reviews", f"{API}/reviews", None, READ, "revisions waiting for a second person"),
    _case("GET", "/api/v1/apis", f"{API}/apis", None, READ),
    _case(
        "POST", "/api/v1/apis", f"{API}/apis", lambda role: {"name": f"perm_{role}"}, DESIGN, "an incomplete body: 422"
    ),
    _case("GET", "/api/v1/apis/{name}", f"{API}/apis/backup_product", None, READ),
    _case("GET", "/api/v1/apis/{name}/operations", f"{API}/apis/backup_product/operations", None, READ),
    _case(
        "GET",
        "/api/v1/apis/{name}/operations/{operation_id}",
        f"{API}/apis/backup_product/operations/no_such_operation",
        None,
        READ,
    ),
    _case("GET", "/api/v1/workflows", f"{API}/workflows", None, READ, "lists only the workflows the caller may read"),
    _case("GET", "/api/v1/workflows/{workflow_id}/form", f"{API}/workflows/hello_world/form", None, READ),
    _case(
        "POST",
        "/api/v1/workflows/{workflow_id}/runs",
        f"{API}/workflows/no_such_workflow/runs",
        lambda role: {"values": {}},
        RUN,
        "DAG run create access on that workflow",
    ),
    _case("GET", "/api/v1/requests", f"{API}/requests", None, SIGNED_IN, "the caller's own requests"),
    _case(
        "POST",
        "/api/v1/requests/{workflow_id}/{run_id}/cancel",
        f"{API}/requests/hello_world/no_such_run/cancel",
        None,
        RUN,
        "DAG run create access on that workflow, then only its requester (tests/test_api_workflows.py)",
    ),
    _case("GET", "/api/v1/session", f"{API}/session", None, SIGNED_IN),
    _case("GET", "/api/v1/schema", f"{API}/schema", None, READ),
    _case("GET", "/api/v1/approvals", f"{API}/approvals", None, SIGNED_IN, "only requests the caller may answer"),
    _case("GET", "/api/v1/approvals/history", f"{API}/approvals/history", None, SIGNED_IN, "the caller's own votes"),
    _case(
        "GET",
        "/api/v1/approvals/{approval_id}",
        f"{API}/approvals/00000000-0000-0000-0000-000000000000",
        None,
        SIGNED_IN,
        "then HITL read access on its DAG (tests/test_api_approvals_inbox.py)",
    ),
    _case(
        "POST",
        "/api/v1/approvals/{approval_id}/votes",
        f"{API}/approvals/00000000-0000-0000-0000-000000000000/votes",
        lambda role: {"decision": "approve"},
        SIGNED_IN,
        "then HITL edit access and being a named approver (tests/test_approvals.py)",
    ),
    _case(
        "POST",
        "/api/v1/approvals/{approval_id}/responses",
        f"{API}/approvals/00000000-0000-0000-0000-000000000000/responses",
        lambda role: {"values": {}},
        SIGNED_IN,
        "then HITL edit access and being named in the form step",
    ),
    _case(
        "GET",
        "/api/v1/approvals/links/{token}",
        f"{API}/approvals/links/not-a-token",
        None,
        SIGNED_IN,
        "then only the recipient of the signed link",
    ),
    _case(
        "POST",
        "/api/v1/approvals/links/redeem",
        f"{API}/approvals/links/redeem",
        lambda role: {"token": "not-a-token", "decision": "approve"},
        SIGNED_IN,
        "then only the recipient of the signed link",
    ),
    _case("GET", "/api/v1/keys/approvals", f"{API}/keys/approvals", None, PUBLIC, "a public key"),
    _case("GET", "/api/v1/alerts", f"{API}/alerts", None, READ),
    _case(
        "POST",
        "/api/v1/alerts/{alert_id}",
        f"{API}/alerts/no_such_alert",
        lambda role: {"status": "firing"},
        SIGNATURE,
        "a sender's delivery: no Airflow credential counts, only the alert's signature",
    ),
    _case("GET", "/api/v1/alerts/deliveries", f"{API}/alerts/deliveries", None, DESIGN, "designers and alert admins"),
    _case("GET", "/api/v1/alerts/deliveries/{delivery}", f"{API}/alerts/deliveries/999999", None, DESIGN),
    _case(
        "POST",
        "/api/v1/alerts/deliveries/{delivery}/replay",
        f"{API}/alerts/deliveries/999999/replay",
        None,
        ALERT_ADMIN,
        "the 'Autopilot Alerts' permission (admins by default)",
    ),
]


def test_every_route_is_in_the_table(clients):
    spec = clients["anonymous"].get("/autopilot/openapi.json").json()
    routes = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    listed = {(method, route) for method, route, *_ in CASES}
    assert routes - listed == set(), "routes without a permission decision in tests/test_permissions.py"
    assert listed - routes == set(), "the table lists routes the API does not have"


@pytest.mark.parametrize(
    ("method", "route", "url", "body", "expect", "note"),
    CASES,
    ids=[f"{c[0]} {c[1]} {c[5]}".strip() for c in CASES],
)
@pytest.mark.parametrize("role", ROLES)
def test_role_gets_what_the_table_says(clients, role, method, route, url, body, expect, note):
    url = url.replace("{role}", role)
    if "{version}" in url:
        url = url.replace("{version}", _version(f"{FOLDER}/gone_{role}.yaml"))
    response = clients[role].request(method, url, json=body(role) if body else None)
    wanted = expect[role]
    assert response.status_code < 500, response.text
    if wanted == OK:
        assert response.status_code not in (401, 403), f"{role} was refused: {response.text}"
    else:
        assert response.status_code == wanted, f"{role}: {response.status_code} {response.text}"


def test_a_refused_save_changes_nothing(clients):
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    target = root / FOLDER / "code_viewer.yaml"
    before = target.read_text(encoding="utf-8")
    response = clients["designer"].put(
        f"{API}/definitions/{FOLDER}/code_viewer.yaml",
        json={
            "content": with_code("perm_code_viewer", body="cat /etc/passwd"),
            "version": _version(f"{FOLDER}/code_viewer.yaml"),
        },
    )
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail["field"] == "content" and "Autopilot Code" in detail["message"] and "greet" in detail["message"]
    assert target.read_text(encoding="utf-8") == before


def test_a_designer_may_move_a_reviewed_script_but_not_add_one(clients):
    """Code is compared by content: renaming the step that holds a reviewed script adds no code."""
    rel = f"{FOLDER}/code_designer.yaml"
    current = (Path(os.environ["AUTOPILOT_DEFINITIONS"]) / rel).read_text(encoding="utf-8")
    renamed = current.replace("id: greet", "id: say_hello")
    response = clients["designer"].put(f"{API}/definitions/{rel}", json={"content": renamed, "version": _version(rel)})
    assert response.status_code == 200, response.text
    named = renamed.replace("bash: echo hello", "bash: echo hello\n      env: {GREETING: hi}")
    response = clients["designer"].put(f"{API}/definitions/{rel}", json={"content": named, "version": _version(rel)})
    assert response.status_code == 403, "a new environment variable name is code (a shell may act on it)"
    copied = renamed + "  - id: again\n    script:\n      bash: echo hello\n      cwd: /tmp\n"
    response = clients["designer"].put(f"{API}/definitions/{rel}", json={"content": copied, "version": _version(rel)})
    assert response.status_code == 403, response.text


def test_session_tells_the_ui_what_the_caller_may_do(clients):
    flags = {role: clients[role].get(f"{API}/session").json() for role in ROLES if role != "anonymous"}
    assert {r: (f["can_edit_definitions"], f["can_author_code"]) for r, f in flags.items()} == {
        "viewer": (False, False),
        "designer": (True, False),
        "author": (True, True),
        "admin": (True, True),
    }
    assert {r: (f["can_read_alert_deliveries"], f["can_replay_alerts"]) for r, f in flags.items()} == {
        "viewer": (False, False),
        "designer": (True, False),
        "author": (True, False),
        "admin": (True, True),
    }


def test_query_string_dag_id_grants_nothing(clients):
    """A DAG id in the query string is not the one a permission is checked against."""
    response = clients["viewer"].post(
        f"{API}/definitions?dag_id=hello_world",
        json={"path": f"{FOLDER}/sneaky.yaml", "content": NO_CODE.format(ident="perm_sneaky")},
    )
    assert response.status_code == 403
    assert not (Path(os.environ["AUTOPILOT_DEFINITIONS"]) / FOLDER / "sneaky.yaml").exists()
