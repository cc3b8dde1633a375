"""Every example definition compiles, and every example workflow runs end to end in real Airflow."""

from __future__ import annotations

import pytest

from autopilot_provider.repository.folder import Project
from tests.conftest import REPO, task_states
from tests.fixtures.voters import voting

EXAMPLES = Project(REPO / "definitions")
WORKFLOWS = [e.id for e in EXAMPLES.index().values() if e.kind == "Workflow"]


@pytest.mark.parametrize("rel", sorted(EXAMPLES.index()))
def test_example_definition_is_valid(rel):
    loaded = EXAMPLES.load(rel)
    assert loaded.diagnostics == []
    assert loaded.ok


def test_hello_world_greets_and_counts(run_workflow):
    dag_run = run_workflow("hello_world", {"name": "Ada"})
    assert str(dag_run.state) == "success"
    assert task_states(dag_run) == {"greet": "success", "count": "success"}
    count = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "count")
    assert count.xcom_pull(task_ids="count") == {"letters": len("HelloAda")}


REQUEST = {"policy": "gold", "justification": "database server for team X", "requester": "alice"}
APPROVERS = {"alice": "approve", "carol": "approve", "bob": "approve", "dave": "approve"}
#: Gold backups: storage (dave) places the second copy in the mid-flow form; bob is not asked.
SECOND_COPY = {"bob": {"array": "san01", "copy_policy": "silver"}, "dave": {"array": "san01", "copy_policy": "silver"}}


def test_add_machine_to_backups_end_to_end(
    run_workflow, backup_connections, smtp_server, slack_webhook, servicenow_default
):
    """The reference scenario: a ServiceNow ticket, the acknowledgement with its number, checks, agent
    installation, three approvals (alice asks; her manager carol, operations' bob and storage's dave
    approve — alice's own vote is refused), the change, the confirmation by mail and Slack, and the
    ticket annotated along the way and closed."""
    with voting("add_machine_to_backups", APPROVERS, answers=SECOND_COPY) as votes:
        dag_run = run_workflow("add_machine_to_backups", {"hostname": "localhost", **REQUEST})
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    # the mid-flow form (gold only): bob may not answer for storage, dave does
    answered = [v for v in votes if v.decision == "answer"]
    assert [(v.user, v.state_after) for v in answered] == [("dave", "answered")]
    second_copy = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "gold_copy")
    assert second_copy.xcom_pull(task_ids="gold_copy") == {
        "array": "san01",
        "copy_policy": "silver",
        "answered_by": "dave",
    }
    assert states["report_unreachable"] == "skipped" and states["tell_rejected"] == "skipped"
    assert states["plan_backup"] == "success"
    plan = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "plan_backup")
    outputs = plan.xcom_pull(task_ids="plan_backup")
    assert outputs.pop("address") in ("127.0.0.1", "::1")
    assert outputs == {"hostname": "localhost", "frequency": "daily", "retention_days": 90}
    assert states["install_agent"] == states["wait_for_agent"] == states["add_client"] == "success"
    product = backup_connections
    assert [r.method for r in product.received("/hosts/localhost/agent/installations")] == ["POST"]
    assert len(product.received("/jobs/")) >= 2  # polled until done
    (added,) = product.received("/clients", method="POST")
    assert added.body == {"hostname": "localhost", "policy": "gold", "retention_days": 90, "tags": ["autopilot"]}
    assert added.headers["x-request-id"] == dag_run.run_id
    assert added.headers["authorization"].startswith("Bearer ")  # OAuth2 client credentials
    assert product.clients[-1]["hostname"] == "localhost"
    # the approvals: alice may not approve her own request; the three others decide
    assert sorted(v.user for v in votes if v.decision != "answer") == ["bob", "carol", "dave"]
    approve = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "approve")
    decided = approve.xcom_pull(task_ids="approve")
    assert decided["outcome"] == "approved" and len(decided["votes"]) == 3
    # the approvers read where the second copy goes
    from autopilot_provider.server.approvals import Approvals

    [asked] = [
        r
        for r in Approvals().for_runs([("add_machine_to_backups", dag_run.run_id)]).popitem()[1]
        if r.row.kind == "approval"
    ]
    assert "Second copy: san01 (silver policy), placed by dave." in asked.hitl.body
    # the mails: the acknowledgement to alice, then the confirmation to alice, carol and storage
    mails = {tuple(m.rcpt_tos): m for m in smtp_server.wait_for(2)}
    subjects = {rcpt: m.subject for rcpt, m in mails.items()}
    assert "received" in subjects[("alice@example.com",)].lower()
    # the ticket: opened first, its number in the acknowledgement, notes after the checks and the
    # approvals, closed at the end
    ticket = servicenow_default.record("REQ0010001")
    assert ticket["short_description"] == "Back up localhost (gold policy)"
    assert subjects[("alice@example.com",)].endswith("— REQ0010001")
    assert "Ticket:        REQ0010001" in mails[("alice@example.com",)].text
    notes = servicenow_default.work_notes("REQ0010001")
    assert len(notes) == 4 and notes[0].startswith("Request received")
    assert notes[1].startswith("Operations checks passed: localhost is reachable")
    assert notes[2] == (
        "Approved; Carol Diaz: carol; Operations: bob; Storage: dave. Adding the machine to backups."
    ), notes
    assert notes[3].startswith("localhost is backed up (client ")
    assert (ticket["state"], ticket["request_state"]) == ("3", "closed_complete")
    assert subjects[("alice@example.com", "carol@example.com", "storage@example.com")] == (
        "Done: localhost is backed up (gold)"
    )
    assert [p.channel for p in slack_webhook.wait_for(1)] == ["#storage"]


def test_add_machine_to_backups_rejected_tells_the_requester_why(
    run_workflow, backup_connections, smtp_server, slack_webhook, servicenow_default
):
    decisions = {"carol": "approve", "bob": "reject", "dave": "approve"}
    with voting("add_machine_to_backups", decisions, comment="no capacity left this quarter", answers=SECOND_COPY):
        dag_run = run_workflow("add_machine_to_backups", {"hostname": "localhost", **{**REQUEST, "policy": "silver"}})
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["tell_rejected"] == "success"
    assert states["add_client"] == states["confirm"] == states["tell_done"] == "skipped"
    assert backup_connections.received("/clients", method="POST") == []
    rejected = [m for m in smtp_server.wait_for(2) if m.subject.startswith("Rejected")]
    assert rejected and rejected[0].rcpt_tos == ["alice@example.com"]
    assert "Rejected by bob: no capacity left this quarter" in rejected[0].text
    # the ticket is closed as rejected, saying who rejected and why
    assert states["close_ticket"] == "skipped" and states["close_rejected"] == "success"
    ticket = servicenow_default.record("REQ0010001")
    assert (ticket["state"], ticket["request_state"]) == ("4", "closed_rejected")
    assert servicenow_default.work_notes("REQ0010001")[-1] == (
        "Not approved (rejected): rejected by bob: no capacity left this quarter. Nothing was changed."
    )


def test_add_machine_to_backups_fails_visibly_for_an_unknown_host(
    run_workflow, backup_connections, smtp_server, servicenow_default
):
    dag_run = run_workflow(
        "add_machine_to_backups",
        {
            "hostname": "no-such-host.invalid",
            "policy": "bronze",
            "justification": "should stop here",
            "requester": "alice",
        },
    )
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["report_unreachable"] == "failed"
    assert states["plan_backup"] == states["agent_status"] == states["add_client"] == "skipped"
    assert backup_connections.received() == []
    # the ticket does not stay open: it is cancelled, saying why
    assert states["close_unreachable"] == "success"
    ticket = servicenow_default.record("REQ0010001")
    assert (ticket["state"], ticket["request_state"]) == ("4", "closed_cancelled")
    assert "cannot be reached" in servicenow_default.work_notes("REQ0010001")[-1]


def test_nightly_disk_report_takes_exactly_one_branch(run_workflow):
    dag_run = run_workflow("nightly_disk_report", {"path": "/", "warn_at": 100, "critical_at": 100})
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["healthy"] == "success"
    assert states["warning"] == states["critical"] == "skipped"
    assert states["summary"] == "success"
