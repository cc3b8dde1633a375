"""Autopilot's roles under Airflow's FAB auth manager, with real FAB users on PostgreSQL.

One deployment for the module, on a PostgreSQL database of its own: ``airflow db migrate`` and
``autopilot db migrate`` with the FAB auth manager, the four roles made by ``autopilot roles sync``,
users imported with ``airflow users import``, then the API server (FAB), the dag-processor and the
scheduler (LocalExecutor). The requests are real: alice (Autopilot Requester, no DAG edit access)
starts runs through the portal until an approval and a mid-flow form wait, and the approval's mails
carry signed links.

The table says, for every route of the plugin's API — listed from its router, so a route without a
row fails — what each role gets: through the permission check (any answer but 401/403, never a 5xx),
refused by it (403 whose message says what it needs) or unauthenticated (401). Everyone the approval
and the form could ask is named in them, so a refusal here is the permission's, not the request's
rules (those are tests/test_approvals.py's). The module runs once (``sqlite_only``: it does not use the
session's database, whichever pass).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from autopilot_plugin.api.permissions import Permission
from autopilot_plugin.api.routes import api_router

from autopilot_provider.server import fab_permissions as fab
from tests.fixtures.airflow_stack import AirflowStack
from tests.fixtures.api_server import FabServer
from tests.fixtures.postgres import create_database, drop_database, sqlalchemy_url
from tests.fixtures.smtp import SmtpServer
from tests.test_permissions import with_code

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.sqlite_only]

API = "/autopilot/api/v1"
FOLDER = "fab_roles"
TEAM_ROLE = "Team Designer"
#: table column → (FAB user, role). Airflow's own Viewer and Admin frame the four Autopilot roles.
USERS = {
    "viewer": ("vic", "Viewer"),
    "requester": ("alice", fab.REQUESTER),
    "approver": ("bob", fab.APPROVER),
    "designer": ("carol", fab.DESIGNER),
    "autopilot_admin": ("dave", fab.AUTOPILOT_ADMIN),
    "admin": ("admin", "Admin"),
}
ROLES = ("anonymous", *USERS)
#: a designer of one team: the designer permission and edit access to one workflow's DAG only
TEAM_USER = "tess"
#: everyone who may be asked, whatever their role: a refusal of one of them is their permission's
ASKED = "[user:bob, user:dave, user:admin, user:vic, user:carol, user:tess]"

WORKFLOWS = {
    "fab_vote": f"""\
        apiVersion: autopilot/v1
        kind: Workflow
        id: fab_vote
        form:
          properties:
            reason: {{type: string, title: Why}}
          required: [reason]
        steps:
          - id: approve
            approval:
              from: {ASKED}
              subject: "Roles test: {{{{ form.reason }}}}"
              timeout: 2h
          - id: done
            notify: {{to: [requester], subject: approved}}
        """,
    "fab_form": f"""\
        apiVersion: autopilot/v1
        kind: Workflow
        id: fab_form
        steps:
          - id: ask
            form:
              from: {ASKED}
              subject: "Roles test: how many?"
              properties:
                count: {{type: integer, title: How many}}
              required: [count]
              timeout: 2h
        """,
    "fab_team": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: fab_team
        title: The team's own workflow
        steps:
          - id: tell
            notify: {to: [requester], subject: hello}
        """,
}

NO_CODE = """\
apiVersion: autopilot/v1
kind: Workflow
id: {ident}
title: {title}
steps:
  - id: tell
    notify: {{to: [requester], subject: hi}}
"""

INVENTORY = """\
apiVersion: autopilot/v1
kind: Resources
id: {ident}
items:
  - {{id: lun1, type: lun}}
"""

#: makes roles and users with FAB's security manager (``Deployment.fab_setup``)
FAB_SETUP = """
import json, sys
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

wanted = json.loads(sys.argv[1])
with get_application_builder() as appbuilder:
    manager = appbuilder.sm
    for name, permissions in wanted["roles"].items():
        role = manager.add_role(name)
        for action, resource in permissions:
            manager.add_permission_to_role(role, manager.create_permission(action, resource))
    for user, role, password in wanted["users"]:
        made = manager.add_user(user, user, "Test", f"{user}@fab.example.com", manager.find_role(role), password)
        assert made, user
"""

LINK = re.compile(r"/autopilot/approvals/confirm\?token=([A-Za-z0-9_\-.]+)")


def no_code(ident: str, title: str = "No code here") -> str:
    return NO_CODE.format(ident=ident, title=title)


def function(ident: str, title: str = "Has a script", body: str = "echo hello") -> str:
    """A function with a script. The table's per-role files are shared definitions, which are no
    DAGs: the dag-processor has nothing more to parse."""
    return with_code(ident, title, body).replace("kind: Workflow", "kind: Function", 1)


def definitions_root() -> Path:
    return Path(os.environ["AUTOPILOT_DEFINITIONS"])


def version_of(rel: str) -> str:
    return hashlib.sha256((definitions_root() / rel).read_bytes()).hexdigest()


@dataclass
class Deployment:
    stack: AirflowStack
    server: FabServer
    smtp: SmtpServer
    approval: str  # the pending approval's id
    form: str  # the pending form request's id
    token: str  # a signed link from bob's approval mail
    runs: dict[str, str]  # workflow → the run alice started

    def client(self, column: str) -> httpx.Client:
        if column == "anonymous":
            return self.server.client()
        return self.server.client(USERS[column][0] if column in USERS else column)

    def cli(self, *argv: str) -> str:
        done = subprocess.run(
            argv, env=self.server.env(), capture_output=True, text=True, timeout=300, cwd=self.server.home
        )
        assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def fab_setup(self, roles: dict[str, list[tuple[str, str]]], people: list[tuple[str, str]]) -> None:
        """Create ``roles`` and the users ``people`` (user, role) with their passwords through FAB's
        security manager, as ``airflow roles``/``airflow users create`` do — in one process, since
        every ``airflow`` command takes seconds to start."""
        users = [(user, role, self.server.passwords[user]) for user, role in people]
        self.cli(sys.executable, "-c", FAB_SETUP, json.dumps({"roles": roles, "users": users}))

    def airflow(self, *args: str) -> str:
        return self.cli(sys.executable, "-m", "airflow", *args)

    def autopilot(self, *args: str) -> str:
        return self.cli(sys.executable, "-m", "autopilot_provider.cli", *args)


def _wait(what: str, check: Callable[[], Any], timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("fab-roles")
    database = create_database("autopilot_fab")
    smtp = SmtpServer()
    smtp.start()
    passwords = {user: secrets.token_urlsafe(12) for user, _ in USERS.values()} | {TEAM_USER: secrets.token_urlsafe(12)}
    server = FabServer(
        home,
        sqlalchemy_url(database),
        passwords,
        extra_env={
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp.connection()),
            "AIRFLOW__AUTOPILOT__APPROVAL_SWEEP_SECONDS": "1",
            # workers fetch the approval-verifying key from the API server, as a deployment does
            "AIRFLOW__AUTOPILOT__APPROVAL_PUBLIC_KEY": "",
        },
    )
    stack = AirflowStack(home, users={}, api=server)
    root = definitions_root()
    (root / FOLDER).mkdir(exist_ok=True)
    for name, text in WORKFLOWS.items():
        (root / FOLDER / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    for column in ROLES:  # one file per role, so each role's change does not depend on another's
        (root / FOLDER / f"code_{column}.yaml").write_text(function(f"fab_code_{column}"), encoding="utf-8")
        (root / FOLDER / f"gone_{column}.yaml").write_text(INVENTORY.format(ident=f"fab_gone_{column}"), "utf-8")
    setup = Deployment(stack, server, smtp, "", "", "", {})
    try:
        setup.airflow("db", "migrate")
        migrated = setup.autopilot("db", "migrate")
        for resource in fab.RESOURCES:
            assert f"can_edit on {resource}" in migrated, migrated
        synced = setup.autopilot("roles", "sync")
        for role in fab.ROLES:
            assert f"role {role!r} created" in synced, synced
        people = [(user, role) for user, role in USERS.values()] + [(TEAM_USER, TEAM_ROLE)]
        grants = {
            # a team's designers: Autopilot's designer permission, read access, and edit access to
            # their workflow's DAG only (FAB's per-DAG resource, as the dag-processor makes it)
            TEAM_ROLE: [("can_edit", "Autopilot Definitions"), ("can_read", "DAGs"), ("can_edit", "DAG:fab_team")],
            # an admin widened the approvers' role by hand, globally and on one DAG: what the next
            # `autopilot roles sync` takes back and keeps (test_roles_sync_restores_…); neither
            # lets approvers do more in the table
            fab.APPROVER: [("can_read", "DAG Runs"), ("can_read", "DAG:fab_team")],
        }
        setup.fab_setup(grants, people)

        stack.start(migrate=False)
        for name in WORKFLOWS:
            stack.wait_for_dag(name)
        alice = setup.client("requester")
        for name, form in (("fab_vote", {"reason": "roles test"}), ("fab_form", {})):
            started = alice.post(f"{API}/workflows/{name}/runs", json={"form": form})
            assert started.status_code == 201, started.text
            setup.runs[name] = started.json()["run_id"]
        admin = setup.client("admin")

        def pending(dag_id: str) -> str | None:
            listed = admin.get(f"{API}/approvals", params={"mine": False, "dag_id": dag_id})
            assert listed.status_code == 200, listed.text
            found = [a["id"] for a in listed.json()["approvals"] if a["state"] == "pending"]
            return found[0] if found else None

        setup.approval = _wait("the approval waiting", lambda: pending("fab_vote"))
        setup.form = _wait("the form waiting", lambda: pending("fab_form"))

        def bobs_link() -> str | None:
            mails = [m for m in smtp.mails if "bob@example.com" in m.rcpt_tos and "Roles test" in m.subject]
            found = LINK.search(mails[-1].text or "") if mails else None
            return found.group(1) if found else None

        setup.token = _wait("bob's approval mail with its links", bobs_link, timeout=60)
        yield setup
    finally:
        stack.stop()
        smtp.stop()
        shutil.rmtree(root / FOLDER, ignore_errors=True)
        drop_database(database)


# -- what each role gets, route by route -------------------------------------------------------------

OK, NO, ANON = "ok", 403, 401


def given(*allowed: str) -> dict[str, Any]:
    """The expectation of a row: ``allowed`` roles pass the check, other users are refused (403),
    anonymous callers unauthenticated (401)."""
    return {column: OK if column in allowed else (ANON if column == "anonymous" else NO) for column in ROLES}


SIGNED_IN = given(*USERS)
READ = SIGNED_IN  # every role reads DAGs
DESIGN = given("designer", "autopilot_admin", "admin")
CODE = given("autopilot_admin", "admin")
REQUEST = given("requester", "autopilot_admin", "admin")
HITL_READ = given("viewer", "approver", "autopilot_admin", "admin")
ANSWER = given("approver", "autopilot_admin", "admin")
ALERT_LOG = given("designer", "autopilot_admin", "admin")
ALERT_ADMIN = given("autopilot_admin", "admin")
PUBLIC = {column: OK for column in ROLES}
#: an alert delivery: whoever calls, without the alert's signature it is the same 401
SIGNATURE = {column: ANON for column in ROLES}

Body = Callable[[str], Any] | None


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    url: str  # {role} {approval} {form} {token} {version} are filled in
    expect: dict[str, Any]
    body: Body = None
    note: str = ""


ROWS = [
    Row("GET", "/api/v1/definitions", "/definitions", READ),
    Row(
        "POST",
        "/api/v1/definitions",
        "/definitions",
        DESIGN,
        lambda role: {"path": f"{FOLDER}/new_{role}.yaml", "content": no_code(f"fab_new_{role}")},
        "a new workflow of reviewed parts",
    ),
    Row(
        "POST",
        "/api/v1/definitions",
        "/definitions",
        CODE,
        lambda role: {"path": f"{FOLDER}/script_{role}.yaml", "content": with_code(f"fab_script_{role}")},
        "a workflow with a script",
    ),
    Row(
        "POST",
        "/api/v1/definitions/validate",
        "/definitions/validate",
        READ,
        lambda role: {"path": f"{FOLDER}/v.yaml", "content": with_code("fab_v")},
    ),
    Row("GET", "/api/v1/definitions/{path}", "/definitions/hello_world.yaml", READ),
    Row("GET", "/api/v1/definitions/{path}/revisions", "/definitions/hello_world.yaml/revisions", READ),
    Row("GET", "/api/v1/definitions/{path}/revisions/{number}", "/definitions/hello_world.yaml/revisions/1", READ),
    Row(
        "PUT",
        "/api/v1/definitions/{path}",
        f"/definitions/{FOLDER}/code_{{role}}.yaml",
        DESIGN,
        lambda role: {
            "content": function(f"fab_code_{role}", title="Retitled"),
            "version": version_of(f"{FOLDER}/code_{role}.yaml"),
        },
        "retitling a function whose script is unchanged",
    ),
    Row(
        "PUT",
        "/api/v1/definitions/{path}",
        f"/definitions/{FOLDER}/code_{{role}}.yaml",
        CODE,
        lambda role: {
            "content": function(f"fab_code_{role}", title="Retitled", body="echo changed"),
            "version": version_of(f"{FOLDER}/code_{role}.yaml"),
        },
        "changing a script",
    ),
    Row(
        "DELETE", "/api/v1/definitions/{path}", f"/definitions/{FOLDER}/gone_{{role}}.yaml?version={{version}}", DESIGN
    ),
    Row("DELETE", "/api/v1/definitions", "/definitions?encoded=fab_roles%252Fno%250Asuch.yaml&version=x", DESIGN),
    Row(
        "POST",
        "/api/v1/definitions/{path}/revisions/{number}/review",
        "/definitions/hello_world.yaml/revisions/999/review",
        DESIGN,
        lambda role: {"decision": "approve"},
    ),
    Row("GET", "/api/v1/reviews", "/reviews", READ),
    Row("GET", "/api/v1/apis", "/apis", READ),
    Row("POST", "/api/v1/apis", "/apis", DESIGN, lambda role: {"name": f"fab_{role}"}, "an incomplete body: 422"),
    Row("GET", "/api/v1/apis/{name}", "/apis/backup_product", READ),
    Row("GET", "/api/v1/apis/{name}/operations", "/apis/backup_product/operations", READ),
    Row("GET", "/api/v1/apis/{name}/operations/{operation_id}", "/apis/backup_product/operations/listPolicies", READ),
    Row("GET", "/api/v1/workflows", "/workflows", SIGNED_IN),
    Row("GET", "/api/v1/workflows/{workflow_id}/form", "/workflows/fab_vote/form", READ),
    Row(
        "POST",
        "/api/v1/workflows/{workflow_id}/runs",
        "/workflows/fab_vote/runs",
        REQUEST,
        lambda role: {"form": {}},
        "a form without its required field: 422, nothing started",
    ),
    Row("GET", "/api/v1/requests", "/requests", SIGNED_IN),
    Row(
        "POST",
        "/api/v1/requests/{workflow_id}/{run_id}/cancel",
        "/requests/fab_vote/no_such_run/cancel",
        REQUEST,
        None,
        "no such request: 404, nothing cancelled",
    ),
    Row("GET", "/api/v1/session", "/session", SIGNED_IN),
    Row("GET", "/api/v1/schema", "/schema", READ),
    Row("GET", "/api/v1/approvals", "/approvals", SIGNED_IN),
    Row("GET", "/api/v1/approvals/history", "/approvals/history", SIGNED_IN),
    Row("GET", "/api/v1/approvals/{approval_id}", "/approvals/{approval}", HITL_READ),
    Row(
        "POST",
        "/api/v1/approvals/{approval_id}/votes",
        "/approvals/{approval}/votes",
        ANSWER,
        lambda role: {"decision": "reject"},
        "a rejection without its comment: 422, nothing recorded",
    ),
    Row(
        "POST",
        "/api/v1/approvals/{approval_id}/responses",
        "/approvals/{form}/responses",
        ANSWER,
        lambda role: {"values": {}},
        "an answer without its required field: 422",
    ),
    Row("GET", "/api/v1/approvals/links/{token}", "/approvals/links/{token}", HITL_READ),
    Row(
        "POST",
        "/api/v1/approvals/links/redeem",
        "/approvals/links/redeem",
        ANSWER,
        lambda role: {"token": "{token}"},
        "without a decision: 422, the link unspent",
    ),
    Row("GET", "/api/v1/keys/approvals", "/keys/approvals", PUBLIC),
    Row("GET", "/api/v1/alerts", "/alerts", READ),
    Row("POST", "/api/v1/alerts/{alert_id}", "/alerts/no_such_alert", SIGNATURE, lambda role: {"status": "firing"}),
    Row("GET", "/api/v1/alerts/deliveries", "/alerts/deliveries", ALERT_LOG),
    Row("GET", "/api/v1/alerts/deliveries/{delivery}", "/alerts/deliveries/999999", ALERT_LOG),
    Row("POST", "/api/v1/alerts/deliveries/{delivery}/replay", "/alerts/deliveries/999999/replay", ALERT_ADMIN),
]


def test_the_roles_name_fab_resources_and_autopilot_permissions():
    """FAB creates any resource a permission names, so a misspelt one would grant nothing: every
    resource of the roles is one of FAB's or one of Autopilot's, which are the plugin's checks'."""
    from airflow.providers.fab.www.security import permissions

    known = {
        value for name, value in vars(permissions).items() if name.startswith("RESOURCE_") and isinstance(value, str)
    }
    named = {resource for spec in fab.ROLES.values() for _, resource in spec.permissions}
    assert named - known - set(fab.RESOURCES) == set()
    assert {permission.value for permission in Permission} == set(fab.RESOURCES)


def test_every_route_is_in_the_table():
    # as the OpenAPI document writes them: {path:path} is {path}
    routes = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in api_router.routes
        for method in route.methods - {"HEAD"}
    }
    listed = {(row.method, row.route) for row in ROWS}
    assert routes - listed == set(), "routes without a decision for the FAB roles in tests/test_fab_roles.py"
    assert listed - routes == set(), "the table lists routes the API does not have"


def _fill(text: str, deployment: Deployment, role: str) -> str:
    values = {"role": role, "approval": deployment.approval, "form": deployment.form, "token": deployment.token}
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    if "{version}" in text:
        text = text.replace("{version}", version_of(f"{FOLDER}/gone_{role}.yaml"))
    return text


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.method} {r.route} {r.note}".strip() for r in ROWS])
def test_each_role_gets_what_the_table_says(deployment, row):
    got = {}
    for role in ROLES:
        body = row.body(role) if row.body else None
        if isinstance(body, dict):
            body = {k: _fill(v, deployment, role) if isinstance(v, str) else v for k, v in body.items()}
        response = deployment.client(role).request(row.method, API + _fill(row.url, deployment, role), json=body)
        assert response.status_code < 500, f"{role}: {response.status_code} {response.text}"
        if response.status_code in (401, 403):
            detail = response.json().get("detail")
            message = detail.get("message", "") if isinstance(detail, dict) else str(detail)
            # a refusal of the permission check says what it needs (not a rule of the request)
            got[role] = response.status_code if response.status_code == 401 or "that needs" in message else message
        else:
            got[role] = OK
    assert got == row.expect


# -- the roles at work -----------------------------------------------------------------------------


def test_a_requester_starts_runs_and_follows_them_without_dag_edit_access(deployment):
    alice = deployment.client("requester")
    session = alice.get(f"{API}/session").json()
    assert (session["can_trigger"], session["can_edit_definitions"], session["can_author_code"]) == (True, False, False)
    catalog = {w["id"]: w["can_request"] for w in alice.get(f"{API}/workflows").json()["workflows"]}
    assert catalog["fab_vote"] is True
    mine = alice.get(f"{API}/requests").json()["requests"]
    assert {r["run_id"] for r in mine} >= set(deployment.runs.values())
    [vote] = [r for r in mine if r["run_id"] == deployment.runs["fab_vote"]]
    assert [a["state"] for a in vote["approvals"]] == ["pending"]
    # Airflow's own paths need DAG edit access under FAB: the role has none
    assert alice.post("/api/v2/dags/fab_vote/dagRuns", json={"logical_date": None}).status_code == 403
    assert alice.patch("/api/v2/dags/fab_vote", json={"is_paused": True}).status_code == 403
    # approvers' pages are not hers
    assert deployment.client("approver").get(f"{API}/session").json()["can_trigger"] is False


def test_an_approver_answers_in_autopilot_without_dag_edit_access(deployment):
    bob = deployment.client("approver")
    inbox = bob.get(f"{API}/approvals").json()["approvals"]
    asked = {a["id"]: a for a in inbox}
    assert asked[deployment.approval]["can_vote"] is True and asked[deployment.form]["can_vote"] is True
    # named in the request but without the permission to answer: the inbox says so
    vic = {a["id"]: a for a in deployment.client("viewer").get(f"{API}/approvals").json()["approvals"]}
    assert vic[deployment.approval]["can_vote"] is False
    assert "Autopilot Approvals" in vic[deployment.approval]["why_not"]
    # Airflow's own write paths stay closed to the role (no DAG edit, no HITL edit)
    assert bob.patch("/api/v2/dags/fab_vote", json={"is_paused": True}).status_code == 403
    run_id, task_id = deployment.runs["fab_vote"], asked[deployment.approval]["task_id"]
    answer = bob.patch(
        f"/api/v2/dags/fab_vote/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
        json={"chosen_options": ["Approve"]},
    )
    assert answer.status_code == 403, answer.text


def test_a_team_designer_saves_only_its_own_workflows(deployment):
    """Per-DAG access, Airflow's model under FAB: a role with the designer permission and edit access
    to one DAG (``DAG:fab_team``) saves that workflow and new ones, not another team's, and not
    shared definitions; scripts need the code-author permission, granted with Airflow's command."""
    tess = deployment.client(TEAM_USER)
    rel = f"{FOLDER}/fab_team.yaml"
    own = tess.put(
        f"{API}/definitions/{rel}",
        json={"content": no_code("fab_team", title="Renamed by the team"), "version": version_of(rel)},
    )
    assert own.status_code == 200, own.text
    theirs = tess.put(
        f"{API}/definitions/{FOLDER}/fab_vote.yaml",
        json={"content": no_code("fab_vote"), "version": version_of(f"{FOLDER}/fab_vote.yaml")},
    )
    assert theirs.status_code == 403 and "edit access to its DAG" in theirs.json()["detail"]["message"]
    new = tess.post(f"{API}/definitions", json={"path": f"{FOLDER}/team_new.yaml", "content": no_code("fab_team_new")})
    assert new.status_code == 201, "a workflow id no DAG has yet needs no DAG permission: " + new.text
    shared = tess.post(
        f"{API}/definitions",
        json={"path": f"{FOLDER}/team_items.yaml", "content": INVENTORY.format(ident="team_items")},
    )
    assert shared.status_code == 403 and "all DAGs" in shared.json()["detail"]["message"]

    scripted = {"path": f"{FOLDER}/team_script.yaml", "content": with_code("fab_team_script")}
    refused = tess.post(f"{API}/definitions", json=scripted)
    assert refused.status_code == 403 and "Autopilot Code" in refused.json()["detail"]["message"]
    assert tess.get(f"{API}/session").json()["can_author_code"] is False
    deployment.airflow("roles", "add-perms", TEAM_ROLE, "-r", "Autopilot Code", "-a", "can_edit")
    assert tess.get(f"{API}/session").json()["can_author_code"] is True
    saved = tess.post(f"{API}/definitions", json=scripted)
    assert saved.status_code == 201, saved.text


def test_roles_sync_restores_each_role_and_keeps_per_dag_grants(deployment):
    """The fixture widened the approvers' role (``can_read`` on all DAG runs and on ``DAG:fab_team``):
    a sync takes the first back, keeps the per-DAG grant and leaves the other roles as they are."""
    synced = deployment.autopilot("roles", "sync")
    assert (
        f"role {fab.APPROVER!r} updated: 8 permission(s); removed can_read on DAG Runs; 1 per-DAG permission(s) kept"
        in synced
    ), synced
    for role in (fab.REQUESTER, fab.DESIGNER, fab.AUTOPILOT_ADMIN):
        assert f"role {role!r} unchanged: " in synced, synced
