"""Approvals and mid-flow forms end to end, on a real Airflow deployment (API server with the
Autopilot plugin, dag-processor, scheduler with the LocalExecutor), a real SMTP server (aiosmtpd) for
the approval mails and their signed links, and real users voting through the API.

Runs are started through Airflow's REST API by ``alice``, so she is the requester. The contacts are
the example ones (definitions/contacts.yaml): carol manages alice and bob; group operations = bob,
storage = dave, platform = alice + bob.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import threading
import time
from pathlib import Path

import pytest

from autopilot_provider.hooks import choices as form_choices
from autopilot_provider.repository.hitl import load_request
from autopilot_provider.repository.quorum import Vote, needed, tally
from autopilot_provider.server.approval_links import sign, unsign
from autopilot_provider.server.approvals import validate_answer
from tests.fixtures.airflow_stack import AirflowStack
from tests.fixtures.backup_product import PASSWORD, USER
from tests.fixtures.slack import SlackWebhook
from tests.fixtures.smtp import SmtpServer

USERS = {"admin": "admin", "alice": "user", "bob": "user", "carol": "user", "dave": "user", "erin": "viewer"}
LINK = re.compile(r"(https?://\S+/autopilot/approvals/confirm\?token=([A-Za-z0-9_\-.]+))(&decision=(approve|reject))?")


# ---------------------------------------------------------------------------------------------
# The quorum, links and answers (pure)
# ---------------------------------------------------------------------------------------------


def _votes(*pairs):
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Vote(f"u{i}", slot, str(slot), d, None, start + timedelta(seconds=i), "api")
        for i, (slot, d) in enumerate(pairs)
    ]


def test_quorum_counts_approvers_not_people():
    spec = {"slots": [{}, {}, {}], "quorum": "all"}
    assert tally(load_request(spec), _votes((0, "approve"), (1, "approve"))) is None
    assert tally(load_request(spec), _votes((0, "approve"), (1, "approve"), (2, "approve"))) == "approved"
    assert (
        tally(load_request(spec), _votes((0, "approve"), (1, "reject"))) == "rejected"
    )  # all can no longer be reached
    # a second vote for a decided slot does not count (the first member decided for the group)
    assert tally(load_request(spec), _votes((0, "approve"), (0, "approve"), (1, "approve"))) is None
    assert tally(load_request({**spec, "quorum": "any"}), _votes((1, "approve"))) == "approved"
    assert tally(load_request({**spec, "quorum": "any"}), _votes((0, "reject"), (1, "reject"))) is None
    assert (
        tally(load_request({**spec, "quorum": "any"}), _votes((0, "reject"), (1, "reject"), (2, "reject")))
        == "rejected"
    )
    assert tally(load_request({**spec, "quorum": 2}), _votes((0, "reject"), (1, "approve"))) is None
    assert tally(load_request({**spec, "quorum": 2}), _votes((0, "reject"), (1, "reject"))) == "rejected"
    # after an escalation, the escalation contact decides alone
    assert tally(load_request(spec), _votes((0, "approve"), (-1, "reject"))) == "rejected"
    assert needed("all", 3) == 3 and needed("any", 3) == 1 and needed(2, 3) == 2


def test_links_are_signed():
    token = sign(b"k" * 32, {"a": "x.1", "j": "abc", "e": 1})
    assert unsign(b"k" * 32, token) == {"a": "x.1", "j": "abc", "e": 1}
    body, mac = token.split(".")
    from autopilot_provider.server.errors import Gone

    for forged in (f"{body}.{mac[:-2]}xx", token.replace(body, body[:-2] + "AA"), "garbage"):
        with pytest.raises(Gone):
            unsign(b"k" * 32, forged)
    with pytest.raises(Gone):
        unsign(b"other-key" * 4, token)


def test_slack_approval_messages_keep_request_text_as_text():
    """What a requester typed cannot become a live link or a channel-wide ping in approvers' Slack;
    the mail's text keeps it verbatim (its HTML part is escaped)."""
    from types import SimpleNamespace

    from autopilot_provider.server.approval_messages import message_text
    from autopilot_provider.server.approval_records import ApprovalRecord

    spec = {
        "subject": "Back up <!channel>",
        "requester": {"name": "Alice <https://evil.example|Approve>"},
        "request": {"justification": "<https://evil.example|Approve> & <!here>"},
        "slots": [{"label": "Storage"}],
    }
    row = SimpleNamespace(dag_id="d", run_id="r", kind="approval", deadline=None)
    links = {"approve": "https://airflow.example/autopilot/approvals/confirm?token=t&decision=approve"}
    slack = message_text(ApprovalRecord(row, load_request(spec), []), "Approval needed", "request", links, slack=True)
    assert "<!channel>" not in slack and "<!here>" not in slack and "<https://evil" not in slack
    assert "&lt;https://evil.example|Approve&gt; &amp; &lt;!here&gt;" in slack
    assert "<https://airflow.example/autopilot/approvals/confirm?token=t&decision=approve|Approve>" in slack
    text = message_text(ApprovalRecord(row, load_request(spec), []), "Approval needed", "request", links)
    assert "justification: <https://evil.example|Approve> & <!here>" in text
    assert "Approve: https://airflow.example/autopilot/approvals/confirm?token=t&decision=approve" in text


def test_form_answers_are_validated_field_by_field():
    schema = {
        "type": "object",
        "properties": {
            "window": {"type": "string", "enum": ["night", "weekend"]},
            "size": {"type": "integer", "minimum": 1},
        },
        "required": ["window"],
        "additionalProperties": False,
    }
    from autopilot_provider.server.errors import Unprocessable

    assert validate_answer(schema, {"window": "night"}) == {"window": "night"}
    with pytest.raises(Unprocessable) as missing:
        validate_answer(schema, {"size": 3})
    assert missing.value.field == "window"
    with pytest.raises(Unprocessable) as bad:
        validate_answer(schema, {"window": "noon", "size": 0})
    assert {e["field"] for e in bad.value.extra["errors"]} == {"window", "size"}
    with pytest.raises(Unprocessable) as extra:
        validate_answer(schema, {"window": "night", "colour": "red"})
    assert extra.value.field == "colour"


def test_a_signed_decision_holds_for_its_own_run_task_and_outcome_only():
    """What a guarded step accepts: the API server's signature over this run's approval and its
    outcome; the same seal for another run or task, an edited outcome or another key is refused."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from autopilot_provider.operators.guard import b64, seal_payload, verify

    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    where = {"dag_id": "d", "run_id": "r1", "task_id": "approve"}
    at = "2026-01-01T00:00:00+00:00"
    signed = private.sign(seal_payload(**where, map_index=-1, outcome="rejected", approved=False, decided_at=at))
    seal = {"outcome": "rejected", "approved": False, "decided_at": at, "signature": b64(signed)}
    outputs = {"outcome": "rejected", "approved": False, "seal": seal}
    assert verify(outputs, **where, key=public) is False
    assert verify(outputs, **{**where, "run_id": "r2"}, key=public) is None
    assert verify(outputs, **{**where, "task_id": "other"}, key=public) is None
    turned = {"outcome": "approved", "approved": True, "seal": {**seal, "outcome": "approved", "approved": True}}
    assert verify(turned, **where, key=public) is None
    assert verify({**outputs, "approved": True}, **where, key=public) is None  # outputs edited beside it
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert verify(outputs, **where, key=other) is None
    assert verify({"outcome": "approved", "approved": True}, **where, key=public) is None


def test_the_steps_after_an_approval_check_its_decision_before_they_run(definitions_dir):
    """The factory gives each guarded step a guard: the approve path needs `approved`, the else path
    `not_approved`; an `all_done` step, or one a path around the approval reaches, is not guarded."""
    import yaml

    from autopilot_provider.definitions import models as m
    from autopilot_provider.operators.guard import ApprovalGuard
    from autopilot_provider.repository.folder import Project
    from dag_factory.builder import build_dag

    text = textwrap.dedent(
        """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: guarded
        steps:
          - id: approve
            approval: {from: [group:storage], subject: "Go on?", else: tell_no}
          - id: change
            after: approve
            script: {bash: echo changed}
          - id: verify
            after: change
            script: {bash: echo verified}
          - id: tell_no
            script: {bash: echo no}
          - id: cleanup
            after: approve
            trigger_rule: all_done
            script: {bash: echo cleanup}
          - id: report
            after: [verify, elsewhere]
            trigger_rule: none_failed_min_one_success
            script: {bash: echo report}
          - id: elsewhere
            after: []
            script: {bash: echo elsewhere}
        """
    )
    dag = build_dag(m.Workflow.model_validate(yaml.safe_load(text)), Project(definitions_dir))
    hooks = {t.task_id: t._pre_execute_hook for t in dag.tasks}
    # cleanup runs whatever the approval did; report is also reached around the approval
    assert hooks["approve"] is None and hooks["cleanup"] is None and hooks["report"] is None
    assert hooks["change"] == ApprovalGuard((("approve", "approved"),))
    assert hooks["verify"] == ApprovalGuard((("approve", "approved"),))
    assert hooks["tell_no"] == ApprovalGuard((("approve", "not_approved"),))


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slack():
    webhook = SlackWebhook()
    webhook.start()
    yield webhook
    webhook.stop()


@pytest.fixture(scope="module")
def stack(airflow_db, smtp, slack, definitions_root, backup_product):
    for name, text in WORKFLOWS.items():
        (definitions_root / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    product = {"conn_type": "autopilot_openapi", "host": backup_product.host, "port": backup_product.port}
    env = {
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp.connection()),
        "AIRFLOW_CONN_SLACK_DEFAULT": json.dumps(slack.connection()),
        "AIRFLOW_CONN_BACKUP_API": json.dumps({**product, "schema": "http", "login": USER, "password": PASSWORD}),
        "AIRFLOW__AUTOPILOT__APPROVAL_SWEEP_SECONDS": "1",
        "AIRFLOW__AUTOPILOT__CHOICES_CACHE_SECONDS": "0",  # the product's answers change in a test
        # workers fetch the approval-verifying key from the API server, as a deployment does by default
        "AIRFLOW__AUTOPILOT__APPROVAL_PUBLIC_KEY": "",
    }
    deployment = AirflowStack(Path(os.environ["AIRFLOW_HOME"]), users=USERS, extra_env=env)
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()
        for name in WORKFLOWS:
            (definitions_root / f"{name}.yaml").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def definitions_root() -> Path:
    return Path(os.environ["AUTOPILOT_DEFINITIONS"])


WORKFLOWS = {
    "approval_all": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: approval_all
        title: Back up a machine (three approvals)
        form:
          properties:
            hostname: {type: string, default: db01.example.com}
        steps:
          - id: details
            title: Operations add the backup window
            form:
              from: [group:operations]
              subject: "Backup window for {{ form.hostname }}"
              properties:
                window: {type: string, enum: [night, weekend], title: Backup window}
                policy: {type: string, title: Policy, options: {api: backup_product, operation: listPolicies}}
                note: {type: string}
              required: [window, policy]
          - id: approve
            title: Manager, platform and storage approve
            approval:
              from: [manager_of:requester, group:platform, group:storage]
              quorum: all
              subject: "Back up {{ form.hostname }} ({{ steps.details.outputs.window }})?"
              body: "Requested by {{ run.requester }}."
              else: tell_rejected
          - id: change
            after: approve
            script:
              env: {HOST: "{{ form.hostname }}", WINDOW: "{{ steps.details.outputs.window }}"}
              bash: echo "backing up $HOST at $WINDOW"
          - id: tell_rejected
            script:
              env: {REJECTED_BY: "{{ steps.approve.outputs.rejected_by }}"}
              bash: echo "rejected by $REJECTED_BY"
        """,
    "approval_reject": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: approval_reject
        steps:
          - id: approve
            approval:
              from: [group:operations, group:storage]
              subject: Open port 22?
              via: [email, slack]
              else: tell_rejected
          - id: change
            after: approve
            script:
              bash: echo changed
          - id: tell_rejected
            script:
              env: {REJECTED_BY: "{{ steps.approve.outputs.rejected_by }}", COMMENT: "{{ steps.approve.outputs.comment }}"}
              bash: |
                echo "rejected by $REJECTED_BY: $COMMENT"
        """,
    "approval_on_behalf": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: approval_on_behalf
        form:
          properties:
            requester: {type: string, title: On behalf of}
        steps:
          - id: approve
            approval:
              from: [group:platform]
              subject: "Request by {{ run.requester_name }}"
        """,
    "approval_pinned": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: approval_pinned
        steps:
          - id: details
            form:
              from: [group:operations]
              subject: Which window?
              properties:
                window: {type: string, enum: [night, weekend]}
              required: [window]
          - id: approve
            approval:
              from: [group:storage]
              subject: "Grow the LUN at {{ steps.details.outputs.window }}?"
        """,
    "approval_timeout": """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: approval_timeout
        steps:
          - id: approve
            approval:
              from: [group:storage]
              subject: Allocate a LUN?
              timeout: 8s
              remind_every: 3s
              on_timeout: escalate
              escalate_to: [person:carol]
              else: tell_timed_out
          - id: change
            after: approve
            script:
              bash: echo changed
          - id: tell_timed_out
            script:
              env: {OUTCOME: "{{ steps.approve.outputs.outcome }}"}
              bash: echo "$OUTCOME"
        """,
}


def _pending(client, dag_id: str, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            a
            for a in client.get("/autopilot/api/v1/approvals", params={"state": "pending", "mine": False}).json()[
                "approvals"
            ]
            if a["dag_id"] == dag_id and a["run_id"] == run_id
        ]
        if found:
            return found[0]
        time.sleep(1)
    raise AssertionError(f"no pending request for {dag_id} {run_id}")


def _links(smtp, rcpt: str, subject_part: str, timeout: float = 30) -> list[tuple[str, str]]:
    """(token, decision) of the links in the newest mail to ``rcpt`` whose subject has ``subject_part``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = [m for m in smtp.mails if rcpt in m.rcpt_tos and subject_part in m.subject]
        if mails:
            return [(m.group(2), m.group(4) or "") for m in LINK.finditer(mails[-1].text)]
        time.sleep(0.5)
    raise AssertionError(f"no mail to {rcpt} about {subject_part!r}: {[(m.rcpt_tos, m.subject) for m in smtp.mails]}")


def _slack_posts(slack, channel: str, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        posts = [p for p in slack.posts if p.channel == channel]
        if posts:
            return posts
        time.sleep(0.3)
    raise AssertionError(f"nothing posted to {channel}: {[(p.channel, p.text[:40]) for p in slack.posts]}")


def test_validation_names_approvers_who_could_never_answer(write_definition, definitions_dir):
    from autopilot_provider.repository.folder import Project

    write_definition(
        "people_nobody.yaml",
        textwrap.dedent(
            """\
            apiVersion: autopilot/v1
            kind: Contacts
            id: nobody_contacts
            people:
              - {id: nologin, name: No Login, email: nologin@example.com}
            groups:
              - {id: ghosts, members: [nologin]}
            """
        ),
    )
    write_definition(
        "bad_approval.yaml",
        textwrap.dedent(
            """\
            apiVersion: autopilot/v1
            kind: Workflow
            id: bad_approval
            steps:
              - id: approve
                approval:
                  from: [email:x@example.com, person:nologin, group:ghosts, requester, person:bobb]
                  quorum: 5
                  else: nowhere
              - id: ask
                form:
                  from: [group:storage]
                  properties: {size: {type: integer}}
                  required: [sise]
            """
        ),
    )
    messages = [str(d) for d in Project(definitions_dir).load("bad_approval.yaml").diagnostics]
    text = "\n".join(messages)
    assert "bad_approval.yaml:9:13: step 'approve': else: unknown step 'nowhere'" in text
    assert "bad_approval.yaml:7:14: step 'approve': email:x@example.com cannot answer" in text
    assert "person:nologin has no Airflow `username`" in text
    assert "group:ghosts has no member with an Airflow `username`" in text
    assert "the requester cannot approve their own request" in text
    assert "unknown person 'bobb' (did you mean 'bob'?)" in text
    assert "required field 'sise' is not in properties" in text
    quorum = Project(definitions_dir).check_text("q.yaml", text_of_quorum := QUORUM_TOO_BIG).diagnostics
    assert any("quorum 3 is more than the 2 approvers" in str(d) for d in quorum), text_of_quorum


QUORUM_TOO_BIG = """\
apiVersion: autopilot/v1
kind: Workflow
id: quorum_too_big
steps:
  - id: approve
    approval: {from: [group:storage, group:operations], quorum: 3}
"""


def test_a_rejection_without_else_fails_the_run_visibly(run_workflow, write_definition):
    """In-process: dag.test() runs the workflow while a thread votes through the service the API
    calls (same database), so this needs no API server."""
    from autopilot_provider.server.approvals import Approvals
    from tests.conftest import task_states
    from tests.fixtures.voters import voting

    write_definition(
        "approval_no_else.yaml",
        textwrap.dedent(
            """\
            apiVersion: autopilot/v1
            kind: Workflow
            id: approval_no_else
            steps:
              - id: approve
                approval: {from: [group:storage], subject: Wipe the disk?}
              - id: wipe
                script: {bash: echo wiped}
            """
        ),
    )
    with voting("approval_no_else", {"dave": "reject"}, comment="this disk holds the only copy") as votes:
        dag_run = run_workflow("approval_no_else")
    states = task_states(dag_run)
    assert [(v.user, v.state_after) for v in votes] == [("dave", "rejected")]
    assert str(dag_run.state) == "failed", states
    assert states == {"approve": "failed", "wipe": "upstream_failed"}
    assert Approvals().get(votes[0].approval_id).votes[0].comment == "this disk holds the only copy"


def test_a_mid_flow_form_offers_inventory_and_api_choices(write_definition, definitions_dir, backup_connections):
    from autopilot_provider.repository.folder import Project
    from dag_factory.loader import load_dag_file

    text = textwrap.dedent(
        """\
        apiVersion: autopilot/v1
        kind: Workflow
        id: form_choices
        steps:
          - id: pick
            form:
              from: [group:storage]
              properties:
                array: {type: string, title: Storage array, options: {resources: array}}
                policy: {type: string, title: Policy, options: {api: backup_product, operation: listPolicy}}
              required: [array, policy]
        """
    )
    # the options are checked like the request form's, at the step's field
    write_definition("form_choices.yaml", text)
    messages = [str(d) for d in Project(definitions_dir).load("form_choices.yaml").diagnostics]
    assert messages == [
        "definitions/form_choices.yaml:10:89: step 'pick': field 'policy': api 'backup_product' has no operation "
        "'listPolicy' (did you mean 'listPolicies'?)"
    ]
    write_definition("form_choices.yaml", text.replace("listPolicy}", "listPolicies, label: name}"))
    assert not Project(definitions_dir).load("form_choices.yaml").diagnostics

    # inventory choices are resolved when the workflow is compiled, API ones when the form is shown
    form = load_dag_file(str(definitions_dir), "form_choices.yaml").get_task("pick").form
    assert form["schema"]["properties"]["array"]["enum"] == ["san01"]
    assert form["ui_schema"]["array"]["ui:enumNames"] == ["SAN 01"]
    assert "enum" not in form["schema"]["properties"]["policy"] and set(form["dynamic"]) == {"policy"}
    assert form["schema"]["required"] == ["array", "policy"] and form["schema"]["additionalProperties"] is False

    shown = form_choices.resolve_step_form(form, Project(definitions_dir), max_age=0)
    assert shown["schema"]["properties"]["policy"]["enum"] == ["gold", "silver", "bronze"]
    assert shown["ui_schema"]["policy"]["ui:enumNames"] == [
        "Gold (daily, 90 days)",
        "Silver (daily, 30 days)",
        "Bronze (weekly, 14 days)",
    ]
    assert backup_connections.received("/policies", method="GET")
    assert validate_answer(shown["schema"], {"array": "san01", "policy": "gold"}) == {
        "array": "san01",
        "policy": "gold",
    }
    from autopilot_provider.server.errors import Unprocessable

    with pytest.raises(Unprocessable) as wrong:
        validate_answer(shown["schema"], {"array": "san01", "policy": "platinum"})
    assert wrong.value.field == "policy"

    backup_connections.listings_fail = True
    try:
        with pytest.raises(form_choices.ChoicesUnavailable) as down:
            form_choices.resolve_step_form(form, Project(definitions_dir), max_age=0)
    finally:
        backup_connections.listings_fail = False  # the product is shared with the deployment below
    assert down.value.field == "policy" and "503" in down.value.message


TIMEOUT_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: {id}
steps:
  - id: approve
    approval:
      from: [group:storage]
      subject: Extend the retention of db01?
      timeout: 2s
      on_timeout: {on_timeout}
      escalate_to: [person:carol]
      else: tell_no
  - id: change
    after: approve
    script: {{env: {{OUTCOME: "{{{{ steps.approve.outputs.outcome }}}}"}}, bash: 'echo "$OUTCOME"'}}
  - id: tell_no
    script: {{env: {{OUTCOME: "{{{{ steps.approve.outputs.outcome }}}}"}}, bash: 'echo "$OUTCOME"'}}
"""


@pytest.mark.parametrize(
    ("on_timeout", "taken", "skipped"), [("approve", "change", "tell_no"), ("reject", "tell_no", "change")]
)
def test_an_unanswered_approval_times_out_with_the_configured_outcome(
    run_workflow, write_definition, smtp_server, monkeypatch, on_timeout, taken, skipped
):
    """In-process, with the API server's sweep running beside dag.test(): nobody answers, the
    timeout applies ``on_timeout`` and the escalation contacts are told."""
    from autopilot_provider.server.approvals import Approvals
    from tests.conftest import task_states
    from tests.fixtures.voters import voting

    monkeypatch.setenv("AIRFLOW__AUTOPILOT__RESUME_GRACE_SECONDS", "1")  # no scheduler race in dag.test()
    dag_id = f"approval_timeout_{on_timeout}"
    write_definition(f"{dag_id}.yaml", TIMEOUT_WF.format(id=dag_id, on_timeout=on_timeout))
    with voting(dag_id, {}, sweep=True) as votes:
        dag_run = run_workflow(dag_id)
    states = task_states(dag_run)
    assert votes == [] and str(dag_run.state) == "success", states
    assert (states[taken], states[skipped]) == ("success", "skipped"), states
    [request] = Approvals().list(dag_ids=[dag_id])
    assert request.row.state == "timed_out" and request.votes == []
    assert json.loads(request.row.outcome)["approved"] is (on_timeout == "approve")
    # dave (storage) was asked; carol, the escalation contact, is told how it ended
    subjects = {(tuple(m.rcpt_tos), m.subject) for m in smtp_server.wait_for(2)}
    assert (("dave@example.com",), "[Autopilot] Approval needed: Extend the retention of db01?") in subjects
    assert (("carol@example.com",), "[Autopilot] Timed out: Extend the retention of db01?") in subjects
    [told] = [m for m in smtp_server.mails if m.rcpt_tos == ["carol@example.com"]]
    outcome = "approved" if on_timeout == "approve" else "rejected"
    assert f"Nobody decided in time: the request was {outcome} automatically." in told.text
    assert "/autopilot/approvals/confirm" not in told.text  # nothing left to decide: no links
    events = [e["event"] for e in Approvals().events(request.id)]
    assert events.index("timed_out") < events.index("decided") and "timeout_sent" in events


QUORUM_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: approval_quorum_two
steps:
  - id: approve
    approval:
      from: [group:platform, group:storage, person:carol]
      quorum: 2
      subject: Open a firewall port?
      else: tell_no
  - id: change
    after: approve
    script: {bash: echo changed}
  - id: tell_no
    script: {bash: echo no}
"""


def test_one_member_decides_for_the_group_and_a_quorum_of_two_is_enough(run_workflow, write_definition, monkeypatch):
    """platform = alice + bob: bob decides for it, so alice's vote is refused; dave (storage) makes
    two of three and the run goes on without carol."""
    from autopilot_provider.server.approvals import Approvals
    from tests.conftest import task_states
    from tests.fixtures.voters import voting

    monkeypatch.setenv("AIRFLOW__AUTOPILOT__RESUME_GRACE_SECONDS", "1")
    write_definition("approval_quorum_two.yaml", QUORUM_WF)
    with voting("approval_quorum_two", {"bob": "approve", "alice": "approve", "dave": "approve"}) as votes:
        dag_run = run_workflow("approval_quorum_two")
    states = task_states(dag_run)
    assert (states["change"], states["tell_no"]) == ("success", "skipped"), states
    # alice's vote was refused (bob had answered for platform): not in the trail
    assert [(v.user, v.state_after) for v in votes] == [("bob", "pending"), ("dave", "approved")]
    [request] = Approvals().list(dag_ids=["approval_quorum_two"])
    assert [(v.username, v.slot_label) for v in request.votes] == [("bob", "Platform"), ("dave", "Storage")]
    from autopilot_provider.server.approvals import slot_state
    from autopilot_provider.server.errors import Conflict

    assert slot_state(request, 2) == {"state": "open", "decided_by": None}  # carol was not needed
    with pytest.raises(Conflict, match="already approved"):
        Approvals().vote(request.id, "carol", "approve")


def test_an_approval_mail_that_could_not_be_sent_is_sent_again(
    run_workflow, write_definition, smtp_server, slack_webhook, monkeypatch
):
    """The mail server is down when storage is first asked: the failure is recorded, the sweep tries
    again, and dave — mailed once the server is back — approves."""
    import threading

    from autopilot_provider.server.approval_sweep import sweep
    from autopilot_provider.server.approvals import Approvals
    from tests.conftest import task_states
    from tests.fixtures.api_server import free_port

    monkeypatch.setenv("AIRFLOW__AUTOPILOT__RESUME_GRACE_SECONDS", "1")
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__REDELIVER_SECONDS", "1")
    from autopilot_provider.server.tables import migrate

    migrate()
    working = os.environ["AIRFLOW_CONN_SMTP_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({**json.loads(working), "port": free_port()}))
    write_definition(
        "approval_redelivery.yaml",
        textwrap.dedent(
            """\
            apiVersion: autopilot/v1
            kind: Workflow
            id: approval_redelivery
            steps:
              - id: approve
                approval: {from: [group:storage], subject: Grow the LUN?, via: [email, slack]}
              - id: grow
                script: {bash: echo grown}
            """
        ),
    )
    stop, seen = threading.Event(), {}

    def api_server_sweep() -> None:
        approvals = Approvals()
        while not stop.is_set():
            sweep(approvals)
            for request in approvals.list(state="pending", dag_ids=["approval_redelivery"]):
                events = approvals.events(request.id)
                if any(e["event"] == "request_sent" for e in events) and "first" not in seen:
                    seen["first"] = [e["detail"] for e in events if e["event"] == "request_sent"][0]
                    os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = working  # the mail server is back
                if any("dave@example.com" in m.rcpt_tos for m in smtp_server.mails):
                    approvals.vote(request.id, "dave", "approve")
            time.sleep(0.3)

    thread = threading.Thread(target=api_server_sweep, daemon=True)
    thread.start()
    try:
        dag_run = run_workflow("approval_redelivery")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert str(dag_run.state) == "success", task_states(dag_run)
    # first try: the mail failed (so dave's Slack message was not sent either), the channel heard
    assert seen["first"]["email"] == [] and seen["first"]["slack"] == ["#storage"]
    assert "Dave" in seen["first"]["failed"][0]
    # then the sweep delivered both to dave, with working links
    [request] = Approvals().list(dag_ids=["approval_redelivery"])
    sent = [e["detail"] for e in Approvals().events(request.id) if e["event"] == "request_sent"]
    assert sent[1] == {"email": ["dave@example.com"], "slack": ["U0DAVE"], "failed": []}
    [mail] = [m for m in smtp_server.mails if m.rcpt_tos == ["dave@example.com"]]
    assert mail.subject == "[Autopilot] Approval needed: Grow the LUN?" and "confirm?token=" in mail.text
    assert [p.channel for p in slack_webhook.posts] == ["#storage", "U0DAVE"]
    assert [v.username for v in request.votes] == ["dave"] and request.row.state == "approved"


def _parked_request(spec: dict, *, escalated: bool = False) -> str:
    """A pending approval request recorded as the API server records one (a real row of the real
    tables; no HITL row behind it, so the tests using it never reach a decision)."""
    import uuid
    from datetime import UTC, datetime

    from airflow.utils.session import create_session
    from sqlalchemy import insert

    from autopilot_provider.server.tables import approval_table, migrate

    migrate()
    approval_id = f"{uuid.uuid4()}.1"
    now = datetime.now(UTC)
    with create_session() as session:
        session.execute(
            insert(approval_table).values(
                id=approval_id,
                ti_id=approval_id[:-2],
                try_number=1,
                kind="approval",
                dag_id="self_approval_service",
                run_id="manual__1",
                task_id="approve",
                map_index=-1,
                requester="alice",
                state="pending",
                spec=json.dumps(spec),
                created_at=now,
                escalated_at=now if escalated else None,
                revision=0,
            )
        )
    return approval_id


SELF_APPROVAL_SPEC = {
    "kind": "approval",
    "requester": {"username": "alice"},
    "exclude_requester": False,
    "quorum": "all",
    "slots": [
        {"ref": "group:platform", "label": "Platform", "members": [{"username": "alice"}, {"username": "bob"}]},
        {"ref": "group:storage", "label": "Storage", "members": [{"username": "dave"}]},
    ],
    "escalate_to": [{"ref": "person:alice", "label": "Alice", "members": [{"username": "alice"}]}],
}


#: A request as the previous release's operator wrote it (a plain dict, ``version: 1``) and the API
#: server stored it: what an approval in flight during an upgrade has in ``autopilot_approval.spec``.
VERSION_1_SPEC = {
    "version": 1,
    "kind": "approval",
    "step_id": "approve",
    "title": "approve",
    "workflow_title": "Grow a volume",
    "subject": "Grow vol7 by 10 GB?",
    "body": "Requested for the nightly backups.",
    "requester": {"username": "alice", "id": "alice", "name": "Alice Example", "email": "alice@example.com"},
    "request": {"volume": "vol7", "size_gb": 10},
    "slots": [
        {
            "ref": "group:storage",
            "label": "Storage",
            "kind": "group",
            "email": "storage@example.com",
            "slack": "#storage",
            "members": [{"id": "dave", "username": "dave", "name": "Dave", "email": "dave@example.com", "slack": None}],
        },
        {
            "ref": "group:operations",
            "label": "Operations",
            "kind": "group",
            "email": None,
            "slack": "#ops",
            "members": [{"id": "bob", "username": "bob", "name": "Bob", "email": "bob@example.com", "slack": None}],
        },
    ],
    "timeout_seconds": None,
    "remind_every_seconds": None,
    "via": ["email"],
    "definitions": "/opt/airflow/definitions",
    "quorum": "all",
    "exclude_requester": True,
    "on_timeout": "reject",
    "escalate_to": [],
    "comment_required_on_reject": True,
}


def test_an_approval_stored_by_the_previous_release_still_loads_and_takes_votes(airflow_db, monkeypatch):
    """Upgrading with approvals in flight: a request stored as the old plain dict (and one from before
    requests carried a version) is read with today's defaults, its people may vote, the quorum counts
    them and the requester is still refused."""
    from autopilot_provider.repository.quorum import eligibility
    from autopilot_provider.server.approvals import Approvals, slot_state
    from autopilot_provider.server.errors import Forbidden

    monkeypatch.delenv("AIRFLOW__AUTOPILOT__ALLOW_SELF_APPROVAL", raising=False)
    approvals = Approvals()
    approval_id = _parked_request(VERSION_1_SPEC)
    stored = approvals.get(approval_id)
    assert stored.hitl.version == 2 and stored.hitl.kind == "approval"
    assert [s.ref for s in stored.hitl.slots] == ["group:storage", "group:operations"]
    assert stored.hitl.requester.username == "alice" and stored.hitl.request == {"volume": "vol7", "size_gb": 10}
    assert approval_id in [r.id for r in approvals.list(state="pending", dag_ids=["self_approval_service"])]
    with pytest.raises(Forbidden, match="own request"):
        approvals.vote(approval_id, "alice", "approve")
    voted = approvals.vote(approval_id, "dave", "approve", "fine by storage")
    assert [(v.username, v.slot_label, v.decision) for v in voted.votes] == [("dave", "Storage", "approve")]
    assert slot_state(voted, 0) == {"state": "approved", "decided_by": "dave"}
    assert voted.row.state == "pending"  # quorum all: operations has not decided yet
    assert eligibility(voted.hitl, voted.votes, "bob", state=voted.row.state, escalated=False).slot == 1
    assert eligibility(voted.hitl, voted.votes, "dave", state=voted.row.state, escalated=False).why_not == (
        "you have already answered"
    )
    # older still: no version at all, and only the keys the rules read; the defaults apply
    minimal = {k: VERSION_1_SPEC[k] for k in ("requester", "slots")}
    bare = approvals.get(_parked_request(minimal)).hitl
    assert (bare.kind, bare.quorum, bare.exclude_requester, bare.on_timeout, bare.via) == (
        "approval",
        "all",
        True,
        "reject",
        ["email"],
    )
    assert bare.comment_required_on_reject is True and bare.escalate_to == []


def test_a_request_is_written_complete_and_read_back_unchanged():
    """What an operator hands over (``HitlRequest.as_dict``) reads back as the same request; a request
    from a newer release than this one is refused rather than misread."""
    from autopilot_provider.repository.hitl import HitlRequest, HitlRules

    request = load_request(VERSION_1_SPEC)
    written = request.as_dict()
    assert written["version"] == 2 and load_request(written) == request
    assert load_request(json.dumps(written)) == request
    assert {k: v for k, v in written.items() if k != "version"} == {
        k: v for k, v in VERSION_1_SPEC.items() if k != "version"
    } | {"requester": {**VERSION_1_SPEC["requester"], "slack": None}, "form": None}
    assert HitlRequest().quorum == "all"
    with pytest.raises(ValueError, match="newer"):
        load_request({**written, "version": 3})
    # the rules a DAG version keeps (the operator's autopilot_rules) read back as written, only the fields set
    form_rules = '{"from": ["group:storage"], "timeout_seconds": null}'
    assert HitlRules.model_validate_json(form_rules).to_json() == form_rules
    assert HitlRules.model_validate_json(form_rules).settings() == {"timeout_seconds": None}


def test_a_requester_never_approves_her_own_request_whatever_the_step_says(airflow_db, monkeypatch):
    """The finding: a requester who could edit the workflow listed herself and set exclude_requester:
    false. Without the deployment's [autopilot] allow_self_approval her vote is refused on every path
    — the API's vote, a mail link sent to her, and as the escalation contact."""
    from datetime import UTC, datetime, timedelta

    from autopilot_provider.server.approvals import Approvals
    from autopilot_provider.server.errors import Forbidden

    monkeypatch.delenv("AIRFLOW__AUTOPILOT__ALLOW_SELF_APPROVAL", raising=False)
    approvals = Approvals()
    approval_id = _parked_request(SELF_APPROVAL_SPEC)
    with pytest.raises(Forbidden, match="own request"):
        approvals.vote(approval_id, "alice", "approve")
    request = approvals.get(approval_id)
    with approvals._session() as session:
        token = approvals.issue_link(session, request, "alice", datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(Forbidden, match="own request"):
        approvals.redeem_link(token, "alice", "approve")
    assert approvals.check_link(token, "alice").votes == []  # refused: the link is not spent
    escalated = _parked_request(SELF_APPROVAL_SPEC, escalated=True)
    with pytest.raises(Forbidden, match="own request"):
        approvals.vote(escalated, "alice", "approve", slot="escalation")
    assert approvals.get(approval_id).votes == [] and approvals.get(escalated).votes == []
    # the setting alone does not let her: the step must say exclude_requester: false too
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__ALLOW_SELF_APPROVAL", "True")
    default = _parked_request({**SELF_APPROVAL_SPEC, "exclude_requester": True})
    with pytest.raises(Forbidden, match="own request"):
        approvals.vote(default, "alice", "approve")


def test_allow_self_approval_lets_the_requester_approve_and_records_it(run_workflow, write_definition, monkeypatch):
    """With the admin's [autopilot] allow_self_approval on, a step's exclude_requester: false takes
    effect (and validates): the requester's vote counts, is logged and leaves a self_approval event."""
    from autopilot_provider.server.approvals import Approvals
    from tests.conftest import task_states
    from tests.fixtures.voters import voting

    monkeypatch.setenv("AIRFLOW__AUTOPILOT__ALLOW_SELF_APPROVAL", "True")
    write_definition(
        "approval_self.yaml",
        textwrap.dedent(
            """\
            apiVersion: autopilot/v1
            kind: Workflow
            id: approval_self
            form:
              properties:
                requester: {type: string}
            steps:
              - id: approve
                approval: {from: [group:platform], exclude_requester: false, subject: Restart my own box?}
            """
        ),
    )
    with voting("approval_self", {"alice": "approve"}) as votes:
        dag_run = run_workflow("approval_self", {"requester": "alice"})
    assert task_states(dag_run) == {"approve": "success"}, task_states(dag_run)
    assert [(v.user, v.state_after) for v in votes] == [("alice", "approved")]
    events = Approvals().events(votes[0].approval_id)
    [self_approval] = [e for e in events if e["event"] == "self_approval"]
    assert self_approval["detail"] == {"user": "alice", "decision": "approve"}
    # the run's rules were read from the DAG version it started with
    assert "rules_pinned" in [e["event"] for e in events]


MIDRUN_STARTED = """\
apiVersion: autopilot/v1
kind: Workflow
id: approval_midrun
steps:
  - id: approve
    approval: {from: [group:storage], subject: Extend the volume?, timeout: 1h}
"""
MIDRUN_EDITED = MIDRUN_STARTED.replace(
    "{from: [group:storage], subject: Extend the volume?, timeout: 1h}",
    "{from: [group:platform], subject: Extend the volume?, timeout: 5m, on_timeout: approve}",
)


def test_a_run_keeps_the_approval_rules_of_the_dag_version_it_started_with(
    airflow_db, definitions_dir, write_definition
):
    """In-process: Airflow serializes the definition as it is on disk when the run starts, while the
    task runs a DAG parsed from an edited definition — as a worker that parses after a mid-run edit
    does. The request keeps the run's approvers, and Airflow's own timeout and default answer follow
    the run's rules too, not the edit's `on_timeout: approve`."""
    # configure Airflow's ORM in this thread before the approver thread uses it (tests/fixtures/voters.py)
    import airflow.models.dagbag  # noqa: F401
    import airflow.models.dagrun  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from autopilot_provider.repository.hitl import BACKSTOP
    from autopilot_provider.server.approvals import Approvals
    from autopilot_provider.server.errors import Refused
    from autopilot_provider.server.tables import migrate
    from dag_factory.bundle import AutopilotDagBundle
    from tests.conftest import task_states

    write_definition("approval_midrun.yaml", MIDRUN_EDITED)
    bundle = AutopilotDagBundle(name="autopilot", definitions=str(definitions_dir))
    bundle.initialize()
    edited = DagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name="autopilot").dags["approval_midrun"]
    write_definition("approval_midrun.yaml", MIDRUN_STARTED)  # what the run starts with
    seen: dict[str, object] = {}
    finished = threading.Event()

    def approver() -> None:
        try:
            look_then_vote()
        except BaseException as exc:  # reported by the test's thread; dave still ends the run
            seen["error"] = exc
            if "id" in seen:
                Approvals().vote(seen["id"], "dave", "approve")

    def look_then_vote() -> None:
        """The API server's part: record the request, look at Airflow's rows, then vote."""
        approvals = Approvals()
        while not finished.is_set():
            approvals.resume_answered()
            approvals.sync()
            pending = approvals.list(state="pending", dag_ids=["approval_midrun"])
            if pending and "defaults" not in seen:
                request = pending[0]
                seen["id"] = request.id
                with create_session() as session:
                    key = _uuid(request.row.ti_id)
                    hitl = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == key))
                    seen.update(
                        defaults=hitl.defaults, created=hitl.created_at, timeout=session.get(TI, key).trigger_timeout
                    )
                for user in ("alice", "bob", "dave"):
                    try:
                        seen[user] = approvals.vote(request.id, user, "approve").row.state
                    except Refused as exc:
                        seen[user] = exc.status
            time.sleep(0.3)

    migrate()
    Approvals().sync()  # configures Airflow's ORM mappers here first, as voting() does
    thread = threading.Thread(target=approver, name="approver-midrun", daemon=True)
    thread.start()
    try:
        dag_run = edited.test()
    finally:
        finished.set()
        thread.join(timeout=10)
    if "error" in seen:
        raise seen["error"]
    assert task_states(dag_run) == {"approve": "success"}, task_states(dag_run)
    # platform (alice, bob) of the edit is not asked; storage (dave) of the run's version decides
    assert (seen["alice"], seen["bob"], seen["dave"]) == (403, 403, "approved")
    request = Approvals().get(seen["id"])
    assert [s.label for s in request.hitl.slots] == ["Storage"]
    assert (request.hitl.timeout_seconds, request.hitl.on_timeout) == (3600, "reject")
    [changed] = [e for e in Approvals().events(request.id) if e["event"] == "rules_changed"]
    assert changed["detail"] == {"kept": ["on_timeout", "timeout_seconds", "from"]}
    # Airflow's own backstop follows the run's rules: 1 h (+ the backstop margin), then reject
    assert seen["defaults"] == ["Reject"]
    waited = (seen["timeout"] - seen["created"]).total_seconds()
    assert 3600 < waited < 3600 + BACKSTOP.total_seconds() + 60, waited


def _uuid(text: str):
    import uuid

    return uuid.UUID(text)


# The deployment (module-scoped) starts with the first test that needs it: in-process runs above
# never share the database with its scheduler.
def test_one_rejection_takes_the_else_path(stack, smtp, slack):
    bob, dave = stack.client("bob"), stack.client("dave")
    run_id = stack.trigger("approval_reject", as_user="alice")
    approval = _pending(bob, "approval_reject", run_id)
    # asked by mail (bob, dave) and on Slack (dave has a Slack id), each with their own links
    _links(smtp, "bob@example.com", "Open port 22")
    posts = _slack_posts(slack, "U0DAVE")
    assert "Open port 22?" in posts[0].text
    assert {m.group(4) for m in LINK.finditer(posts[0].text)} == {"approve", "reject"}
    # the groups' channels hear that their group is asked, without anybody's links
    for channel, group in (("#ops", "Operations"), ("#storage", "Storage")):
        [notice] = _slack_posts(slack, channel)
        assert "Open port 22?" in notice.text and f"{group} is asked" in notice.text
        assert "confirm?token=" not in notice.text
    url = f"/autopilot/api/v1/approvals/{approval['id']}/votes"
    missing = bob.post(url, json={"decision": "reject"})
    assert missing.status_code == 422 and missing.json()["detail"]["field"] == "comment"
    rejected = bob.post(url, json={"decision": "reject", "comment": "port 22 stays closed"})
    assert rejected.status_code == 201 and rejected.json()["state"] == "rejected"
    assert dave.post(url, json={"decision": "approve"}).status_code == 409
    assert stack.wait_for_run("approval_reject", run_id) == "success", stack.explain("approval_reject", run_id)
    states = stack.task_states("approval_reject", run_id)
    assert states["change"] == "skipped" and states["tell_rejected"] == "success"
    outputs = stack.xcom("approval_reject", run_id, "approve")
    assert (outputs["outcome"], outputs["rejected_by"], outputs["comment"]) == (
        "rejected",
        "bob",
        "port 22 stays closed",
    )


def test_a_requester_who_marks_her_approval_done_or_forges_its_outputs_runs_nothing(stack):
    """Airflow lets the `user` role (every requester) set a task's state and XComs. alice marks her
    approval step success before anyone votes, or first writes it outputs that say approved: the
    steps it guards refuse to run — the change and the else step alike."""
    alice, bob = stack.client("alice"), stack.client("bob")
    dag_id = "approval_reject"
    runs = f"/api/v2/dags/{dag_id}/dagRuns"
    forged_seal = {
        "outcome": "approved",
        "approved": True,
        "decided_at": "2026-01-01T00:00:00+00:00",
        "signature": "A" * 86 + "==",
    }
    for forge in (None, {"outcome": "approved", "approved": True, "votes": [], "seal": forged_seal}):
        run_id = stack.trigger(dag_id, as_user="alice")
        _pending(bob, dag_id, run_id)
        if forge is not None:
            written = alice.post(
                f"{runs}/{run_id}/taskInstances/approve/xcomEntries", json={"key": "return_value", "value": forge}
            )
            assert written.status_code in (200, 201), written.text
        marked = alice.patch(f"{runs}/{run_id}/taskInstances/approve", json={"new_state": "success"})
        assert marked.status_code == 200, marked.text
        assert stack.wait_for_run(dag_id, run_id) == "failed", stack.explain(dag_id, run_id)
        states = stack.task_states(dag_id, run_id)
        assert (states["approve"], states["change"], states["tell_rejected"]) == ("success", "failed", "failed")
        log = stack.task_log(dag_id, run_id, "change")
        assert "approval 'approve' was not decided by its approvers" in log, log[-2000:]


def test_timeout_reminds_escalates_then_rejects(stack, smtp):
    dave, carol = stack.client("dave"), stack.client("carol")
    run_id = stack.trigger("approval_timeout", as_user="alice")
    approval = _pending(dave, "approval_timeout", run_id)
    first_links = _links(smtp, "dave@example.com", "Allocate a LUN")
    # a reminder to dave, then (at the timeout) the escalation to carol
    _links(smtp, "dave@example.com", "Reminder", timeout=30)
    escalation = _links(smtp, "carol@example.com", "Escalated", timeout=60)
    assert escalation
    detail = carol.get(f"/autopilot/api/v1/approvals/{approval['id']}").json()
    assert detail["escalated"] and detail["state"] == "pending"
    # nobody answers the escalation either: the request times out and takes the else path
    assert stack.wait_for_run("approval_timeout", run_id) == "success", stack.explain("approval_timeout", run_id)
    states = stack.task_states("approval_timeout", run_id)
    assert states["change"] == "skipped" and states["tell_timed_out"] == "success"
    assert stack.xcom("approval_timeout", run_id, "approve")["outcome"] == "timed_out"
    events = [e["event"] for e in carol.get(f"/autopilot/api/v1/approvals/{approval['id']}").json()["events"]]
    assert events.index("escalated") < events.index("timed_out")
    # dave's link from the first mail has expired: refused, and the vote count does not change
    token = next(t for t, d in first_links if d == "approve")
    late = dave.post("/autopilot/api/v1/approvals/links/redeem", json={"token": token, "decision": "approve"})
    assert late.status_code == 410
    assert carol.get(f"/autopilot/api/v1/approvals/{approval['id']}").json()["votes"] == []


def test_the_confirmation_page_needs_a_login(stack):
    anonymous = stack.api.client()
    page = anonymous.get("/autopilot/approvals/confirm", params={"token": "abc"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login?next=")
    logged_in = stack.client("bob").get("/autopilot/approvals/confirm", params={"token": "abc"})
    assert logged_in.status_code == 200 and "Confirm your decision" in logged_in.text
    assert anonymous.get("/autopilot/api/v1/approvals").status_code == 401


def test_only_allowed_accounts_request_on_someone_elses_behalf(stack):
    """admin is in [autopilot] on_behalf_users (tests/conftest.py); alice is not."""
    alice, bob = stack.client("alice"), stack.client("bob")
    # the portal refuses before any run exists
    refused = alice.post("/autopilot/api/v1/workflows/approval_on_behalf/runs", json={"form": {"requester": "bob"}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"]["errors"][0]["field"] == "requester"
    assert "cannot request it on behalf of 'bob'" in refused.json()["detail"]["message"]
    # Airflow's own trigger endpoint cannot check it: the step that needs the requester fails visibly
    run_id = stack.trigger("approval_on_behalf", {"requester": "bob"}, as_user="alice")
    assert stack.wait_for_run("approval_on_behalf", run_id) == "failed"
    assert stack.task_states("approval_on_behalf", run_id) == {"approve": "failed"}
    assert "cannot request it on behalf of 'bob'" in stack.task_log("approval_on_behalf", run_id, "approve")
    # an allowed account files it for bob: bob is the requester, so he may not approve; alice may
    run_id = stack.trigger("approval_on_behalf", {"requester": "bob"}, as_user="admin")
    approval = _pending(bob, "approval_on_behalf", run_id)
    assert approval["requester"] == "bob" and approval["subject"] == "Request by Bob Chen"
    votes = f"/autopilot/api/v1/approvals/{approval['id']}/votes"
    assert bob.post(votes, json={"decision": "approve"}).status_code == 403
    assert alice.post(votes, json={"decision": "approve"}).json()["state"] == "approved"
    assert stack.wait_for_run("approval_on_behalf", run_id) == "success"


def _dag_versions(stack, dag_id: str) -> int:
    return stack.client("admin").get(f"/api/v2/dags/{dag_id}/dagVersions").json()["total_entries"]


def _answer_form(stack, dag_id: str, run_id: str, values: dict) -> None:
    bob = stack.client("bob")
    form = _pending(bob, dag_id, run_id)
    assert form["kind"] == "form", form
    answered = bob.post(f"/autopilot/api/v1/approvals/{form['id']}/responses", json={"values": values})
    assert answered.status_code == 201, answered.text
    stack.wait_for_task(dag_id, run_id, "details", {"success"})


def _approval(stack, dag_id: str, run_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = _pending(stack.client("admin"), dag_id, run_id)
        if found["kind"] == "approval":
            return found
        time.sleep(1)
    raise AssertionError(f"no approval request for {dag_id} {run_id}")


def test_a_requester_who_edits_the_approvers_still_cannot_approve_her_own_request(stack, definitions_root):
    """The finding, end to end: alice may edit workflows. She makes her own group the approvers of a
    workflow with a run of hers in flight. The change waits for a second person's review (she cannot
    review it herself); once bob approves it, it applies to runs started after it, never to hers in
    flight; and on a new run she still cannot approve her own request — whatever the workflow says."""
    alice, bob, dave = (stack.client(u) for u in ("alice", "bob", "dave"))
    dag_id = "approval_pinned"
    url = f"/autopilot/api/v1/definitions/{dag_id}.yaml"
    in_flight = stack.trigger(dag_id, as_user="alice")
    _pending(bob, dag_id, in_flight)  # the run waits at its form, before its approval step starts
    versions = _dag_versions(stack, dag_id)

    current = alice.get(url).json()
    lifted = current["content"].replace(
        "from: [group:storage]", "from: [group:platform]\n      exclude_requester: false"
    )
    refused = alice.put(url, json={"content": lifted, "version": current["version"]})
    assert refused.status_code == 422 and "allow_self_approval" in refused.text, refused.text
    mine = current["content"].replace("from: [group:storage]", "from: [group:platform]")
    proposed = alice.put(url, json={"content": mine, "version": current["version"]})
    assert proposed.status_code == 202 and proposed.json()["state"] == "pending_review", proposed.text
    review = f"{url}/revisions/{proposed.json()['revision']}/review"
    assert alice.post(review, json={"decision": "approve"}).status_code == 403
    assert (definitions_root / f"{dag_id}.yaml").read_text() == current["content"]
    approved = bob.post(review, json={"decision": "approve", "comment": "platform may decide"})
    assert approved.status_code == 200 and approved.json()["state"] == "applied", approved.text
    assert (definitions_root / f"{dag_id}.yaml").read_text() == mine
    deadline = time.monotonic() + 120
    while _dag_versions(stack, dag_id) == versions:  # Airflow parsed the change: a new DAG version
        assert time.monotonic() < deadline, "the reviewed change never reached Airflow"
        time.sleep(1)

    # the run in flight keeps the approvers it started with, though its task parsed the new ones
    _answer_form(stack, dag_id, in_flight, {"window": "night"})
    approval = _approval(stack, dag_id, in_flight)
    assert [s["label"] for s in approval["slots"]] == ["Storage"] and approval["requester"] == "alice"
    events = stack.client("admin").get(f"/autopilot/api/v1/approvals/{approval['id']}").json()["events"]
    assert {"event": "rules_changed", "detail": {"kept": ["from"]}} in [
        {"event": e["event"], "detail": e["detail"]} for e in events
    ], events
    votes = f"/autopilot/api/v1/approvals/{approval['id']}/votes"
    assert alice.post(votes, json={"decision": "approve"}).status_code == 403
    assert bob.post(votes, json={"decision": "approve"}).status_code == 403  # platform is not asked here
    assert dave.post(votes, json={"decision": "approve"}).json()["state"] == "approved"
    assert stack.wait_for_run(dag_id, in_flight) == "success", stack.explain(dag_id, in_flight)

    # a run started after the change asks platform — and still never its requester
    later = stack.trigger(dag_id, as_user="alice")
    _answer_form(stack, dag_id, later, {"window": "weekend"})
    approval = _approval(stack, dag_id, later)
    assert [s["label"] for s in approval["slots"]] == ["Platform"]
    votes = f"/autopilot/api/v1/approvals/{approval['id']}/votes"
    own = alice.post(votes, json={"decision": "approve"})
    assert own.status_code == 403 and "own request" in own.json()["detail"]["message"], own.text
    assert alice.get(f"/autopilot/api/v1/approvals/{approval['id']}").json()["why_not"] == (
        "you cannot approve your own request"
    )
    assert bob.post(votes, json={"decision": "approve"}).json()["state"] == "approved"
    assert stack.wait_for_run(dag_id, later) == "success", stack.explain(dag_id, later)


# Last: it stops and restarts the scheduler, which the other deployment tests need not live through.
def test_three_team_approval_with_a_form_a_link_and_a_scheduler_restart(stack, smtp, backup_product):
    alice, bob, carol, dave = (stack.client(u) for u in ("alice", "bob", "carol", "dave"))
    run_id = stack.trigger("approval_all", {"hostname": "db01.example.com"}, as_user="alice")

    # -- the mid-flow form: operations (bob) are asked and answer; answers are validated server-side
    form = _pending(bob, "approval_all", run_id)
    assert form["kind"] == "form" and form["can_vote"] and form["subject"] == "Backup window for db01.example.com"
    assert [s["label"] for s in form["slots"]] == ["Operations"]
    # the policy's choices come from the backup product's API, fetched while the form waits
    assert form["form"].get("error") is None, form["form"]
    assert form["form"]["schema"]["properties"]["policy"]["enum"] == ["gold", "silver", "bronze"]
    assert form["form"]["ui_schema"]["policy"]["ui:enumNames"][0] == "Gold (daily, 90 days)"
    _links(smtp, "bob@example.com", "Backup window")
    responses = f"/autopilot/api/v1/approvals/{form['id']}/responses"
    assert alice.post(responses, json={"values": {"window": "night", "policy": "gold"}}).status_code == 403
    bad = bob.post(responses, json={"values": {"window": "noon", "policy": "gold"}})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "window"
    bad = bob.post(responses, json={"values": {"window": "night", "policy": "platinum"}})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "policy"
    # the product cannot list its policies: the form says so, and an answer is refused, not guessed
    backup_product.listings_fail = True
    try:
        shown = bob.get(f"/autopilot/api/v1/approvals/{form['id']}").json()["form"]
        assert shown["error"]["field"] == "policy" and "503" in shown["error"]["message"]
        down = bob.post(responses, json={"values": {"window": "weekend", "policy": "gold"}})
        assert down.status_code == 502 and down.json()["detail"]["field"] == "policy"
    finally:
        backup_product.listings_fail = False
    ok = bob.post(responses, json={"values": {"window": "weekend", "policy": "gold"}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["state"] == "answered"
    stack.wait_for_task("approval_all", run_id, "details", {"success"})
    assert stack.xcom("approval_all", run_id, "details") == {
        "window": "weekend",
        "policy": "gold",
        "answered_by": "bob",
    }

    # -- the approval: carol (alice's manager), platform (alice or bob), storage (dave)
    approval = _pending(carol, "approval_all", run_id)
    assert approval["kind"] == "approval" and approval["subject"] == "Back up db01.example.com (weekend)?"
    assert [s["label"] for s in approval["slots"]] == ["Carol Diaz", "Platform", "Storage"]
    assert approval["requester"] == "alice"
    approval_id = approval["id"]
    votes_url = f"/autopilot/api/v1/approvals/{approval_id}/votes"

    # everyone asked got a mail with their own single-use links; alice (the requester) got none
    carol_links = _links(smtp, "carol@example.com", "Back up db01")
    bob_links = _links(smtp, "bob@example.com", "Back up db01")
    _links(smtp, "dave@example.com", "Back up db01")
    assert {d for _, d in carol_links} == {"approve", "reject"}
    assert not [m for m in smtp.mails if "alice@example.com" in m.rcpt_tos and "Back up db01" in m.subject]

    # the requester is in the platform group, but can never approve her own request
    own = alice.post(votes_url, json={"decision": "approve"})
    assert own.status_code == 403 and "own request" in own.json()["detail"]["message"]
    # someone who is not asked cannot vote either
    assert stack.client("admin").post(votes_url, json={"decision": "approve"}).status_code == 403
    # Airflow's own Required Actions answer is refused: it would bypass the quorum
    hitl = stack.client("admin").patch(
        f"/api/v2/dags/approval_all/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
        json={"chosen_options": ["Approve"], "params_input": {}},
    )
    assert hitl.status_code == 403, hitl.text
    assert stack.task_states("approval_all", run_id)["approve"] == "awaiting_input"

    # carol approves through the API
    first = carol.post(votes_url, json={"decision": "approve", "comment": "fine"})
    assert first.status_code == 201, first.text
    assert first.json()["state"] == "pending" and [v["user"] for v in first.json()["votes"]] == ["carol"]
    assert carol.post(votes_url, json={"decision": "approve"}).status_code == 409  # one vote per person

    # the scheduler goes away while the request waits; votes keep being recorded
    stack.stop_scheduler()
    token = next(t for t, d in bob_links if d == "approve")
    # a link votes only for a logged-in user it was sent to: not anonymously, not for someone who
    # got it forwarded (even an admin, or another approver), and a refusal leaves it unspent
    redeem = "/autopilot/api/v1/approvals/links/redeem"
    assert stack.api.client().post(redeem, json={"token": token, "decision": "approve"}).status_code == 401
    for other in ("admin", "erin", "dave"):
        refused = stack.client(other).post(redeem, json={"token": token, "decision": "approve"})
        assert refused.status_code == 403, (other, refused.text)
    assert "sent to someone else" in refused.json()["detail"]["message"]
    assert len(bob.get(f"/autopilot/api/v1/approvals/{approval_id}").json()["votes"]) == 1
    page = bob.get(f"/autopilot/api/v1/approvals/links/{token}")
    assert page.status_code == 200 and page.json()["can_vote"]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert (
        bob.post("/autopilot/api/v1/approvals/links/redeem", json={"token": forged, "decision": "approve"}).status_code
        == 410
    )
    redeemed = bob.post("/autopilot/api/v1/approvals/links/redeem", json={"token": token, "decision": "approve"})
    assert redeemed.status_code == 201, redeemed.text
    assert [(v["user"], v["slot"], v["via"]) for v in redeemed.json()["votes"]] == [
        ("carol", "Carol Diaz", "api"),
        ("bob", "Platform", "link"),
    ]
    reused = bob.post("/autopilot/api/v1/approvals/links/redeem", json={"token": token, "decision": "approve"})
    assert reused.status_code == 410 and "already been used" in reused.json()["detail"]["message"]
    assert len(bob.get(f"/autopilot/api/v1/approvals/{approval_id}").json()["votes"]) == 2

    # dave decides for storage while the scheduler is still down: the quorum is reached, and the run
    # continues once a scheduler is back
    last = dave.post(votes_url, json={"decision": "approve"})
    assert last.status_code == 201 and last.json()["state"] == "approved"
    stack.start_scheduler()
    assert stack.wait_for_run("approval_all", run_id) == "success", stack.explain("approval_all", run_id)
    states = stack.task_states("approval_all", run_id)
    assert states["change"] == "success" and states["tell_rejected"] == "skipped"
    outputs = stack.xcom("approval_all", run_id, "approve")
    assert outputs["outcome"] == "approved" and outputs["approved"] is True
    assert [v["user"] for v in outputs["votes"]] == ["carol", "bob", "dave"]

    # the trail survives, also a restart of the API server: every vote and event, through the API
    stack.api.stop()
    stack.api.start()
    carol, dave = stack.client("carol"), stack.client("dave")
    trail = carol.get(f"/autopilot/api/v1/approvals/{approval_id}").json()
    assert [v["user"] for v in trail["votes"]] == ["carol", "bob", "dave"]
    assert {"created", "request_sent", "voted", "decided"} <= {e["event"] for e in trail["events"]}
    assert dave.post(votes_url, json={"decision": "reject", "comment": "late"}).status_code == 409
    history = carol.get("/autopilot/api/v1/approvals/history").json()["votes"]
    assert [(h["approval_id"], h["decision"]) for h in history if h["approval_id"] == approval_id] == [
        (approval_id, "approve")
    ]
