"""Contacts and notifications against real parts: an SMTP server (aiosmtpd) and a local Slack
(incoming webhooks and the Web API's chat.postMessage) on loopback, reached through Airflow connections, with workflows run by
Airflow (dag.test)."""

from __future__ import annotations

import os

import pytest

from autopilot_provider.definitions.templating import FileTemplate, TemplateFileError
from autopilot_provider.repository.contacts import ContactError, Directory, email_addresses, slack_targets
from autopilot_provider.repository.folder import contacts_directory
from tests.conftest import REPO, task_states
from tests.fixtures.smtp import FROM_EMAIL, SMTP_PASSWORD


def _outputs(dag_run, task_id: str):
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id)


# ---------------------------------------------------------------------------------------------
# Contacts (the repository's definitions/contacts.yaml)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def directory() -> Directory:
    return contacts_directory(REPO / "definitions")


def _scope(requester=None, form_requester=None):
    return {"run": {"requester": requester}, "form": {"requester": form_requester} if form_requester else {}}


def test_references_resolve_to_people_groups_and_addresses(directory):
    alice = directory.resolve("person:alice")
    assert (alice.name, alice.email, alice.username) == ("Alice Martin", "alice@example.com", "alice")
    storage = directory.resolve("group:storage")
    assert (storage.email, storage.slack) == ("storage@example.com", "#storage")
    assert [(m.id, m.slack) for m in storage.members] == [("dave", "U0DAVE")]
    assert directory.resolve("email:x@corp.example").email == "x@corp.example"
    assert directory.resolve("user:bob").id == "bob"  # an Airflow user who is a person
    assert directory.resolve("user:zed").kind == "user"  # an Airflow user with no contact data
    assert directory.resolve("manager_of:alice").id == "carol"

    # the requester: the Airflow user who started the run, matched by username ...
    assert directory.resolve("requester", _scope("alice")).id == "alice"
    assert directory.resolve("manager_of:requester", _scope("alice")).id == "carol"
    assert directory.resolve("requester", _scope("alice", "alice@example.com")).id == "alice"  # herself
    assert directory.resolve("requester", _scope("zed")).username == "zed"  # an account, no person
    # ... or the form's requester field, when an account allowed to act on someone's behalf
    # ([autopilot] on_behalf_users) or no user (a schedule) started the run
    assert directory.resolve("requester", _scope("servicenow_bot", "bob")).id == "bob"
    assert directory.resolve("requester", _scope("servicenow_bot", "bob@example.com")).id == "bob"
    assert directory.resolve("requester", _scope(None, "ext@partner.example")).email == "ext@partner.example"
    assert directory.requester("robot", "bob", on_behalf={"robot"}).id == "bob"


def test_nobody_else_can_name_someone_else_as_the_requester(directory):
    from autopilot_provider.repository.contacts import OnBehalfRefused

    # a person, or an account not listed in on_behalf_users, naming someone else is refused: that
    # would choose who is asked, who may not approve, and who gets the mails
    for started_by, named in (("alice", "bob"), ("zed", "bob"), ("alice", "carol@example.com"), ("zed", "x@y.example")):
        with pytest.raises(OnBehalfRefused, match=f"{started_by!r} started this run and cannot request it"):
            directory.resolve("requester", _scope(started_by, named))
    with pytest.raises(OnBehalfRefused):
        directory.resolve("manager_of:requester", _scope("alice", "bob"))
    with pytest.raises(OnBehalfRefused):
        directory.requester("servicenow_bot", "bob", on_behalf=set())

    # delivery: a group's list address / channel, else its members'
    to = directory.resolve_all(["group:storage", "group:platform", "person:alice", "requester"], _scope("carol"))
    assert email_addresses(to) == (
        ["storage@example.com", "alice@example.com", "bob@example.com", "carol@example.com"],
        [],
    )
    targets, missing = slack_targets(to)
    assert targets == ["#storage"] and missing == ["Alice Martin", "Bob Chen", "Carol Diaz"]


@pytest.mark.parametrize(
    ("ref", "scope", "message"),
    [
        ("person:alise", None, "unknown person 'alise' (did you mean 'alice'?)"),
        ("group:storag", None, "unknown group 'storag' (did you mean 'storage'?)"),
        ("manager_of:carol", None, "Carol Diaz (carol) has no manager"),
        ("manager_of:requester", _scope("zed"), "the requester (zed) is not a person in the contacts"),
        ("requester", _scope("servicenow_bot", "nobody"), "the form's requester 'nobody' is not a person"),
        ("requester", _scope(), "this run has no requester"),
        ("team:x", None, "invalid contact reference 'team:x'"),
        ("owner", _scope(), "owner: no owner is set"),
        ("owner", {"run": {"owner": "Storage team"}}, "owner: the owner 'Storage team' is free text, not a contact"),
        (
            "owner_of:localhost",
            None,
            "owner_of:localhost: the owner 'Lab team' of inventory item 'localhost' is free text, not a contact",
        ),
        ("owner_of:no-such-host.invalid", None, "inventory item 'no-such-host.invalid' has no owner"),
        (
            "owner_of:db01.exmaple.com",
            None,
            "owner_of:db01.exmaple.com: no inventory item 'db01.exmaple.com' (did you mean 'db01.example.com'?)",
        ),
        ("owner_of:form.hostname", _scope(), "owner_of:form.hostname: the form's 'hostname' names no inventory item"),
    ],
)
def test_unknown_references_fail_clearly(directory, ref, scope, message):
    with pytest.raises(ContactError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        directory.resolve(ref, scope)


def test_owner_and_owner_of_reach_the_contacts_the_owners_name(directory):
    """`owner` is the run's workflow owner (``run.owner``); `owner_of:` an inventory item's."""
    from autopilot_provider.definitions import models as m

    items = m.Resources(
        apiVersion="autopilot/v1",
        kind="Resources",
        id="owned",
        items=[{"id": "web01", "type": "machine", "owner": "person:dave"}, {"id": "san01", "type": "array"}],
    )
    owned = Directory(
        [m.Contacts.model_validate({"apiVersion": "autopilot/v1", "kind": "Contacts", "id": "c", **_CONTACTS})],
        resources=[items],
    )
    scope = {"run": {"owner": "group:storage"}, "form": {"host": "web01"}}
    storage = owned.resolve("owner", scope)
    assert (storage.kind, storage.id, storage.ref, storage.email) == (
        "group",
        "storage",
        "owner",
        "storage@example.com",
    )
    assert [(r.id, r.ref) for r in owned.resolve_all(["owner_of:form.host", "owner_of:web01"], scope)] == [
        ("dave", "owner_of:form.host"),
        ("dave", "owner_of:web01"),
    ]
    assert owned.resolve("owner", {"run": {"owner": "person:dave"}}).email == "dave@example.com"
    # the example inventory: the SAN belongs to storage
    assert directory.resolve("owner_of:san01").email == "storage@example.com"


_CONTACTS = {
    "people": [{"id": "dave", "name": "Dave", "email": "dave@example.com", "username": "dave", "slack": "U0DAVE"}],
    "groups": [{"id": "storage", "members": ["dave"], "email": "storage@example.com", "slack_channel": "#storage"}],
}


# ---------------------------------------------------------------------------------------------
# Notify steps
# ---------------------------------------------------------------------------------------------

ORDER = """\
apiVersion: autopilot/v1
kind: Workflow
id: notify_order
title: Order a thing
form:
  properties:
    hostname: {type: string}
    note: {type: string, default: ""}
    requester: {type: string}
  required: [hostname, requester]
steps:
  - id: plan
    script:
      python: |
        output(size=len(form["hostname"]), slot="tuesday")
  - id: tell
    notify:
      to: [requester, manager_of:requester, group:storage]
      via: [email, slack]
      subject: "Planned: {{ form.hostname }} on {{ steps.plan.outputs.slot }}"
      template: order_note
  - id: after
    script:
      python: |
        output(mailed=steps["tell"]["outputs"]["email"], posted=steps["tell"]["outputs"]["slack"])
"""

ORDER_HTML = """\
<html><body><h1>Order for {{ form.hostname }}</h1>
<p>Size {{ steps.plan.outputs.size }}, note: {{ form.note }}</p>
<p>Storage team: {{ contacts.groups.storage.email }}</p></body></html>
"""
ORDER_TEXT = """\
Order for {{ form.hostname }}
Size {{ steps.plan.outputs.size }}, note: {{ form.note }}
Run {{ run.id }} of {{ run.dag_id }}
"""


def test_notify_step_mails_and_posts_with_rendered_templates(
    run_workflow, write_definition, smtp_server, slack_webhook
):
    write_definition("notify_order.yaml", ORDER)
    write_definition("templates/order_note.html.j2", ORDER_HTML)
    write_definition("templates/order_note.txt.j2", ORDER_TEXT)
    note = "<script>alert(1)</script> & <!channel>"
    dag_run = run_workflow("notify_order", {"hostname": "db01.example.com", "note": note, "requester": "alice"})
    assert str(dag_run.state) == "success", task_states(dag_run)

    [mail] = smtp_server.wait_for(1)
    # requester (alice: dag.test's user 'dag_test' is no person, so the form's requester field),
    # her manager carol, and the storage group's mailing list
    assert mail.rcpt_tos == ["alice@example.com", "carol@example.com", "storage@example.com"]
    assert mail.to == mail.rcpt_tos
    assert mail.subject == "Planned: db01.example.com on tuesday"
    assert mail.message["From"] == FROM_EMAIL
    assert mail.login == "autopilot"  # the connection's login and password were used
    assert mail.message.get_content_type() == "multipart/alternative"
    assert mail.text.splitlines()[:2] == ["Order for db01.example.com", f"Size 16, note: {note}"]
    assert f"Run {dag_run.run_id} of notify_order" in mail.text
    assert "<h1>Order for db01.example.com</h1>" in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt;" in mail.html  # autoescaped
    assert "<script>" not in mail.html
    assert "storage@example.com" in mail.html

    [post] = slack_webhook.wait_for(1)
    assert post.channel == "#storage"  # the group's channel (alice and carol have no Slack id)
    assert post.text.startswith("Order for db01.example.com\nSize 16, note: &lt;script&gt;")
    assert "<!channel>" not in post.text  # a form value cannot ping the channel

    expected = {
        "subject": "Planned: db01.example.com on tuesday",
        "email": ["alice@example.com", "carol@example.com", "storage@example.com"],
        "slack": ["#storage"],
    }
    assert _outputs(dag_run, "tell") == expected
    assert _outputs(dag_run, "after") == {"mailed": expected["email"], "posted": ["#storage"]}


WHO = """\
apiVersion: autopilot/v1
kind: Workflow
id: notify_who
form:
  properties:
    requester: {type: string, default: alice}
  required: [requester]
steps:
  - id: tell_requester
    notify:
      to: [requester, manager_of:requester]
      subject: "For {{ run.requester }}"
      body: "Hello from {{ run.dag_id }}"
  - id: tell_platform
    notify:
      to: [group:platform, person:dave, email:audit@example.net]
      via: [email, slack]
      body: "Platform and Dave: {{ form.requester }}"
"""

TESTERS = """\
apiVersion: autopilot/v1
kind: Contacts
id: test_people
people:
  - {id: tess, name: Tess Tester, email: tess@example.com, username: dag_test, manager: tom}
  - {id: tom, name: Tom Lead, email: tom@example.com}
"""


def test_requester_is_the_user_who_started_the_run_and_groups_fan_out(
    run_workflow, write_definition, smtp_server, slack_webhook, monkeypatch
):
    write_definition("notify_who.yaml", WHO)
    # dag.test() starts runs as the Airflow user "dag_test": make that user a person, and not one of
    # the accounts that may request on someone else's behalf
    write_definition("test_people.yaml", TESTERS)
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__ON_BEHALF_USERS", "")
    dag_run = run_workflow("notify_who", {"requester": "tess"})  # herself, by her person id
    assert str(dag_run.state) == "success", task_states(dag_run)
    mails = {tuple(m.rcpt_tos): m for m in smtp_server.wait_for(2)}
    # the user who started the run; manager_of follows that person
    first = mails[("tess@example.com", "tom@example.com")]
    assert first.subject == "For dag_test"
    assert first.text == "Hello from notify_who\n"
    assert "Hello from notify_who" in first.html and first.message.get_content_type() == "multipart/alternative"
    # a group with no list address gets a mail per member
    assert ("alice@example.com", "bob@example.com", "dave@example.com", "audit@example.net") in mails
    [post] = slack_webhook.wait_for(1)
    assert (post.channel, post.text) == ("U0DAVE", "Platform and Dave: tess")  # dave's Slack id

    # naming someone else without being allowed to is refused: the step fails and nothing is sent
    smtp_server.clear()
    dag_run = run_workflow("notify_who", {"requester": "alice"})
    states = task_states(dag_run)
    assert states == {"tell_requester": "failed", "tell_platform": "upstream_failed"}, states
    assert smtp_server.mails == []


def test_a_slack_api_connection_posts_with_the_bot_token_to_channels_and_members(
    run_workflow, write_definition, smtp_server, slack_api
):
    write_definition("notify_who.yaml", WHO)
    dag_run = run_workflow("notify_who", {"requester": "alice"})
    assert str(dag_run.state) == "success", task_states(dag_run)
    [post] = slack_api.wait_for(1)
    # chat.postMessage with the connection's bot token: dave's member id gets a direct message
    assert post.path == "/api/chat.postMessage"
    assert post.headers["Authorization"] == f"Bearer {slack_api.bot_token}"
    assert (post.channel, post.text) == ("U0DAVE", "Platform and Dave: alice")
    assert _outputs(dag_run, "tell_platform")["slack"] == ["U0DAVE"]
    assert slack_api.rejected == []


def test_a_slack_api_refusal_fails_the_step_with_slacks_error(run_workflow, write_definition, smtp_server, slack_api):
    write_definition("notify_who.yaml", WHO)
    slack_api.bot_token = "xoxb-rotated"  # the connection's token is no longer valid
    dag_run = run_workflow("notify_who", {"requester": "alice"})
    states = task_states(dag_run)
    assert states["tell_requester"] == "success" and states["tell_platform"] == "failed", states
    assert slack_api.posts == []
    assert [error for _, _, error in slack_api.rejected] == ["invalid_auth"]


# ---------------------------------------------------------------------------------------------
# Workflow notifications: on_start, on_success, on_failure
# ---------------------------------------------------------------------------------------------

BACKUP = """\
apiVersion: autopilot/v1
kind: Workflow
id: notify_backup
title: Add a machine to backups (notifications)
form:
  properties:
    hostname: {type: string}
    policy: {type: string, enum: [gold, silver, bronze], default: silver}
    retention_days: {type: integer}
    justification: {type: string}
    requester: {type: string}
    fail: {type: boolean, default: false}
  # Only fields with defaults are required here: Airflow 3.3.2's dag.test() runs DAG callbacks with
  # the serialized task's params and fails on a required param without a default (the dag-processor,
  # which runs them in a deployment, uses the parsed DAG and is not affected).
  required: [policy, fail]
notifications:
  on_start:
    to: [requester]
    template: request_received
  on_success:
    to: [requester, group:storage]
    via: [email, slack]
    template: request_done
  on_failure:
    to: [requester, group:operations]
    via: [email, slack]
    subject: "{{ run.dag_id }} failed at {{ run.failed_step }} for {{ form.hostname }}"
    body: "Request {{ run.id }} stopped at step {{ run.failed_step }}."
steps:
  - id: check
    script:
      python: |
        if form["fail"]:
            raise SystemExit("unreachable")
  - id: plan_backup
    script:
      python: |
        output(frequency="daily", retention_days=form["retention_days"] or 30)
"""


def test_on_start_and_on_success_use_the_scenario_templates(run_workflow, write_definition, smtp_server, slack_webhook):
    write_definition("notify_backup.yaml", BACKUP)
    conf = {"hostname": "db02.example.com", "policy": "gold", "justification": "new database", "requester": "bob"}
    dag_run = run_workflow("notify_backup", conf)
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states == {"_notify_start": "success", "check": "success", "plan_backup": "success"}
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert tis["_notify_start"].end_date <= tis["check"].start_date  # the first task of the run

    start, done = smtp_server.wait_for(2)
    assert start.rcpt_tos == ["bob@example.com"]
    assert start.subject == "Request received: back up db02.example.com (gold)"
    assert "We will add db02.example.com to backups with the gold policy." in start.text
    assert "Justification: new database" in start.text
    assert "Requested by:  Bob Chen" in start.text  # the requester's name from the contacts
    assert "<strong>db02.example.com</strong>" in start.html and "<title>Request received</title>" in start.html

    assert done.rcpt_tos == ["bob@example.com", "storage@example.com"]
    assert done.subject == "Done: db02.example.com is backed up (gold)"
    assert "Schedule:   daily, copies kept 30 days" in done.text
    assert "<h2" in done.html and "db02.example.com is now in backups" in done.html
    [post] = slack_webhook.wait_for(1)
    assert post.channel == "#storage"
    assert post.text.startswith(":white_check_mark: *db02.example.com* added to backups — policy *gold*, daily")


def test_on_failure_names_the_failed_step(run_workflow, write_definition, smtp_server, slack_webhook):
    write_definition("notify_backup.yaml", BACKUP)
    conf = {"hostname": "db03", "justification": "try", "requester": "alice", "fail": True}
    dag_run = run_workflow("notify_backup", conf)
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run)["plan_backup"] == "upstream_failed"
    mails = smtp_server.wait_for(2)
    assert [m.subject for m in mails] == [
        "Request received: back up db03 (silver)",
        "notify_backup failed at check for db03",
    ]
    failed = mails[1]
    assert failed.rcpt_tos == ["alice@example.com", "ops@example.com"]
    assert failed.text == f"Request {dag_run.run_id} stopped at step check.\n"
    posts = slack_webhook.wait_for(1)
    assert [(p.channel, p.text) for p in posts] == [("#ops", f"Request {dag_run.run_id} stopped at step check.")]


# ---------------------------------------------------------------------------------------------
# Templates stay in their sandbox
# ---------------------------------------------------------------------------------------------

ESCAPE = """\
apiVersion: autopilot/v1
kind: Workflow
id: notify_escape
steps:
  - id: tell
    notify:
      to: [person:alice]
      template: {template}
"""


def test_a_template_cannot_reach_python_internals(run_workflow, write_definition, smtp_server):
    write_definition("notify_escape.yaml", ESCAPE.format(template="sneaky"))
    write_definition("templates/sneaky.txt.j2", "{{ run.__class__.__mro__[1].__subclasses__() }}\n")
    dag_run = run_workflow("notify_escape")
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run) == {"tell": "failed"}
    assert smtp_server.wait_for(1, timeout=0.5) == []
    with pytest.raises(TemplateFileError, match=r"templates/sneaky.txt.j2: SecurityError: access to attribute "):
        FileTemplate(os.environ["AUTOPILOT_DEFINITIONS"], "sneaky").render("text", {"run": {}})


def test_templates_cannot_read_outside_templates(definitions_dir, write_definition, tmp_path):
    from autopilot_provider.repository.folder import Project

    secret = tmp_path / "secret.txt.j2"
    secret.write_text("top secret\n")
    write_definition("notify_escape.yaml", ESCAPE.format(template="../contacts"))
    write_definition(
        "notify_include.yaml", ESCAPE.format(template="includer").replace("notify_escape", "notify_include")
    )
    write_definition("templates/includer.txt.j2", 'Hello {% include "../contacts.yaml" %}\n')
    link = definitions_dir / "templates" / "linked.txt.j2"
    link.symlink_to(secret)
    try:
        project = Project(definitions_dir)
        [escape] = project.load("notify_escape.yaml").diagnostics
        assert str(escape) == (
            "definitions/notify_escape.yaml:8:17: step 'tell': template '../contacts' is outside templates/: template names are relative to definitions/templates/ and may not use '..', "
            "absolute paths or hidden files"
        )
        [include] = project.load("notify_include.yaml").diagnostics
        assert str(include).startswith("definitions/notify_include.yaml:8:17: step 'tell': template 'includer': ")
        assert "templates/includer.txt.j2: template '../contacts.yaml' is outside templates/" in str(include)
        # and at run time, whatever validation said
        with pytest.raises(TemplateFileError, match="outside templates/"):
            FileTemplate(definitions_dir, "includer").render("text", {})
        with pytest.raises(TemplateFileError, match="resolves outside definitions/templates/"):
            FileTemplate(definitions_dir, "linked")
        with pytest.raises(TemplateFileError, match="outside templates/"):
            FileTemplate(definitions_dir, "/etc/passwd")
    finally:
        link.unlink()


# ---------------------------------------------------------------------------------------------
# Validation: unknown people and groups, missing and broken templates
# ---------------------------------------------------------------------------------------------

UNKNOWN = """\
apiVersion: autopilot/v1
kind: Workflow
id: notify_unknown
form:
  properties:
    hostname: {type: string}
notifications:
  on_failure: {to: [group:nobody], body: failed}
steps:
  - id: tell
    notify:
      to: [requester, person:alise, group:storgae, manager_of:carol, user:anyone, email:a@b.example]
      template: missing_one
  - id: broken
    notify:
      to: [manager_of:requester]
      template: broken
"""


def test_unknown_contacts_and_templates_fail_validation_with_positions(definitions_dir, write_definition):
    from autopilot_provider.repository.folder import Project

    write_definition("notify_unknown.yaml", UNKNOWN)
    write_definition("templates/broken.txt.j2", "Host {{ form.hostnme }}\n{% if %}\n")
    write_definition("templates/broken.html.j2", "<p>{{ steps.nope.outputs.x }} {{ secrets }}</p>\n")
    messages = [str(d) for d in Project(definitions_dir).load("notify_unknown.yaml").diagnostics]
    path = "definitions/notify_unknown.yaml"
    assert messages == [
        f"{path}:8:21: notifications.on_failure: unknown group 'nobody'",
        f"{path}:12:23: step 'tell': unknown person 'alise' (did you mean 'alice'?)",
        f"{path}:12:37: step 'tell': unknown group 'storgae' (did you mean 'storage'?)",
        f"{path}:12:52: step 'tell': manager_of: person 'carol' has no manager in the contacts",
        f"{path}:13:17: step 'tell': template 'missing_one' not found: expected "
        "definitions/templates/missing_one.html.j2, missing_one.txt.j2 (one file per part) or missing_one.j2 "
        "(with blocks subject, text, html, slack)",
        f"{path}:17:17: step 'broken': template 'broken': templates/broken.html.j2: unknown name 'secrets'; "
        "known names: form, steps, run, resources, contacts",
        f"{path}:17:17: step 'broken': template 'broken': templates/broken.html.j2:1: unknown step 'nope'",
        f"{path}:17:17: step 'broken': template 'broken': templates/broken.txt.j2:2: invalid template: "
        "Expected an expression, got 'end of statement block'",
    ]


def test_the_example_definitions_and_templates_are_valid():
    from autopilot_provider.repository.folder import Project

    project = Project(REPO / "definitions")
    problems = [str(d) for loaded in project.load_all().values() for d in loaded.diagnostics]
    assert problems == []
    assert set(FileTemplate(REPO / "definitions", "request_received").parts) == {"subject", "text", "html"}
    assert set(FileTemplate(REPO / "definitions", "request_done").parts) == {"subject", "text", "html", "slack"}


def test_secrets_stay_in_connections(run_workflow, write_definition, smtp_server, slack_webhook, capfd):
    """The SMTP password and the webhook token come from Airflow connections, are registered with
    Airflow's secrets masker, and appear in no output of the run."""
    from airflow.sdk._shared.secrets_masker import redact

    write_definition("notify_who.yaml", WHO)
    dag_run = run_workflow("notify_who", {"requester": "bob"})
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert smtp_server.logins == ["autopilot", "autopilot"] and slack_webhook.posts  # one login per mail
    token = slack_webhook.token
    assert SMTP_PASSWORD not in str(redact(f"password={SMTP_PASSWORD}"))
    assert token not in str(redact(f"url={slack_webhook.base_url}/{token}"))
    out, err = capfd.readouterr()
    assert "Not notified: Alice Martin (no Slack id or channel)" in out + err  # the task logs were captured
    assert SMTP_PASSWORD not in out + err and token not in out + err


def test_render_writes_notifications_back_out(definitions_dir, write_definition):
    """`autopilot render` keeps notify steps, the start task and the DAG callbacks."""
    from autopilot_provider.repository.folder import Project
    from dag_factory.render import render_workflow

    write_definition("notify_backup.yaml", BACKUP)
    source = render_workflow(Project(definitions_dir), "notify_backup")
    assert "on_success_callback=AutopilotNotifier(" in source and "on_failure_callback=AutopilotNotifier(" in source
    namespace: dict = {}
    exec(compile(source, "notify_backup.py", "exec"), namespace)
    dag = namespace["dag"]
    assert dag.task_ids == ["_notify_start", "check", "plan_backup"]
    assert dag.get_task("check").upstream_task_ids == {"_notify_start"}
    assert dag.on_success_callback.arguments()["template"] == "request_done"
    assert dag.on_failure_callback.arguments()["to"] == ["requester", "group:operations"]


OWNED = """\
apiVersion: autopilot/v1
kind: Workflow
id: notify_owners
owner: group:storage
form:
  properties:
    host: {type: string, options: {resources: owned_machine}}
  required: [host]
notifications:
  on_start: {to: [owner], subject: "Started for {{ run.owner }}"}
steps:
  - id: tell_owners
    notify:
      to: [owner, owner_of:form.host]
      via: [email, slack]
      subject: "{{ form.host }} changes"
"""

OWNED_INVENTORY = """\
apiVersion: autopilot/v1
kind: Resources
id: owned_inventory
items:
  - {id: web-o1, type: owned_machine, owner: person:dave}
  - {id: web-o2, type: owned_machine, owner: The web team}
"""


def test_notifications_reach_the_workflows_owner_and_the_owner_of_the_item_the_form_picked(
    run_workflow, write_definition, smtp_server, slack_webhook, capfd
):
    write_definition("notify_owners.yaml", OWNED)
    write_definition("owned_inventory.yaml", OWNED_INVENTORY)
    dag_run = run_workflow("notify_owners", {"host": "web-o1"})
    assert str(dag_run.state) == "success", task_states(dag_run)
    start, tell = smtp_server.wait_for(2)
    # the workflow's owner (group:storage: its list address), at the start and in the step
    assert (start.subject, start.rcpt_tos) == ("Started for group:storage", ["storage@example.com"])
    # ... and the owner of the machine the form picked (web-o1: person:dave)
    assert (tell.subject, tell.rcpt_tos) == ("web-o1 changes", ["storage@example.com", "dave@example.com"])
    assert sorted(p.channel for p in slack_webhook.wait_for(2)) == ["#storage", "U0DAVE"]

    # an item whose owner is free text reaches nobody: the step fails saying why, and sends nothing
    smtp_server.clear()
    capfd.readouterr()
    dag_run = run_workflow("notify_owners", {"host": "web-o2"})
    assert task_states(dag_run)["tell_owners"] == "failed"
    out, err = capfd.readouterr()  # the task logs
    assert "the owner 'The web team' of inventory item 'web-o2' is free text, not a contact" in out + err
    assert [m.subject for m in smtp_server.wait_for(1)] == ["Started for group:storage"]
