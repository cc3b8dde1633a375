"""Faults a distributed Autopilot survives, on the native cluster (`make cluster`, scripts/cluster.py):
each test breaks one component while work is under way and checks that the work is done all the
same — nothing lost, nothing done twice.

* a Celery worker killed with ``kill -9`` while a script step runs: the step is retried on the other
  worker, the killed try's script does not run beside it, the run completes;
* the scheduler stopped and started while an approval waits and votes arrive: no vote is lost, the
  run completes;
* the triggerer restarted while a REST wait is deferred: the wait resumes (same try) and completes;
* the API server restarted amid a burst of form submissions (clients retrying with their
  Idempotency-Key): every accepted request has exactly one run, and every run — those accepted just
  before the restart, whose tasks were launched while the server was down, included — is executed,
  at its first try;
* every database connection of the cluster dropped (``pg_terminate_backend``): the components
  reconnect — a run started afterwards completes, a new definition is parsed, a deferred wait resumes.

Not part of `make test`: `make test-faults` runs them (AUTOPILOT_FAULTS=1), about 11 minutes on two
cores, most of it the worker-loss test waiting for Airflow to notice the lost task (the heartbeat
timeout of deploy/airflow.env). docs/deploy.md ("Faults") describes the faults and the settings.
Each test prints what it measured (``pytest -s`` shows it), and leaves every component running.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg2
import pytest

from scripts import cluster as topology
from tests.fixtures.cluster import REPO, RunningCluster, native_cluster
from tests.fixtures.scenario import wait

pytestmark = [
    pytest.mark.faults,
    pytest.mark.sqlite_only,  # the cluster has a PostgreSQL database of its own, whatever the pass
    pytest.mark.skipif(
        os.environ.get("AUTOPILOT_FAULTS") != "1", reason="the fault suite runs with `make test-faults`"
    ),
]

API = "/autopilot/api/v1"
FAULT_DEFINITIONS = sorted((REPO / "tests" / "data" / "faults").glob("*.yaml"))
WORKERS = ("airflow-worker-1", "airflow-worker-2")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, backup_product) -> Iterator[RunningCluster]:
    """The cluster, serving the fault workflows (tests/data/faults/), with the connection
    ``fault_product`` to a backup product this module controls (``backup_product``)."""
    with native_cluster(
        tmp_path_factory.mktemp("faults"),
        definitions=FAULT_DEFINITIONS,
        connections={"fault_product": json.dumps(backup_product.connection())},
    ) as started:
        admin = started.client("admin")
        for dag_id in (path.stem for path in FAULT_DEFINITIONS):
            wait(lambda d=dag_id: admin.get(f"/api/v2/dags/{d}").status_code == 200, 300, f"the DAG {dag_id}")
        yield started


@pytest.fixture
def cluster(faulty: RunningCluster) -> Iterator[RunningCluster]:
    """The cluster with every component running, before the test and after it (a test that failed
    half-way leaves nothing stopped for the next)."""
    _whole(faulty)
    yield faulty
    _whole(faulty)


def _whole(cluster: RunningCluster) -> None:
    stopped = [name for name in topology.COMPONENTS if name not in cluster.native.running()]
    if stopped:
        started = cluster.script("start", *stopped)
        assert started.returncode == 0, started.stdout + started.stderr


def _run(client: httpx.Client, workflow: str, form: dict, **headers: str) -> str:
    response = client.post(f"{API}/workflows/{workflow}/runs", json={"form": form}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["run_id"]


def _task_instances(client: httpx.Client, dag_id: str, run_id: str) -> dict[str, dict]:
    body = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def _finished(client: httpx.Client, dag_id: str, run_id: str, timeout: float = 300) -> str:
    def done():
        state = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state in ("success", "failed") and state

    return wait(done, timeout, f"run {run_id} of {dag_id}")


def _stop(cluster: RunningCluster, name: str, *, kill: bool = False) -> float:
    """Stop (or kill -9) one component through scripts/cluster.py; returns when it was asked to."""
    asked = time.time()
    stopped = cluster.script("stop", name, *(["--kill"] if kill else []))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    print(stopped.stdout.strip())
    assert name not in cluster.native.running()
    return asked


def _start(cluster: RunningCluster, name: str) -> None:
    started = cluster.script("start", name)
    assert started.returncode == 0, started.stdout + started.stderr
    print(started.stdout.strip())


def _alive(pid: int) -> bool:
    return not topology._stat(pid)[2]


def _report(fault: str, **numbers: object) -> None:
    print(
        f"\nFAULT {fault}: "
        + ", ".join(f"{k}={v:.1f}s" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())
    )


# -- a Celery worker dies -----------------------------------------------------------------------


def test_a_script_step_whose_celery_worker_is_killed_is_retried_on_the_other_worker(cluster, tmp_path):
    alice, admin = cluster.client("alice"), cluster.client("admin")
    release, pids = tmp_path / "release", tmp_path / "pids"
    run_id = _run(alice, "fault_script", {"release": str(release), "pids": str(pids)})

    def tries() -> list[int]:
        return [int(line) for line in pids.read_text().split()] if pids.exists() else []

    [first] = wait(tries, 300, "the script step's first try")
    [worker] = [name for name in WORKERS if first in cluster.native.members([name])]
    [other] = [name for name in WORKERS if name != worker]
    assert _task_instances(admin, "fault_script", run_id)["long"]["try_number"] == 1

    killed = _stop(cluster, worker, kill=True)  # kill -9 of the Celery worker's process
    # the task process outlives its worker (a process group of its own); the script does not
    wait(lambda: not _alive(first), 60, f"the killed try's script ({first}) to end")
    script_gone = time.time() - killed
    # Airflow notices the lost task when its heartbeats stop ([scheduler] task_instance_heartbeat_timeout)
    # and retries it; only the other worker is left to take it
    second = wait(lambda: tries()[1:], 600, "the step's second try")[0]
    retried = time.time() - killed
    assert not _alive(first), "the first try's script still runs beside the second"
    assert second in cluster.native.members([other]), f"the second try ({second}) does not run on {other}"
    long = _task_instances(admin, "fault_script", run_id)["long"]
    assert (long["state"], long["try_number"]) == ("running", 2), long

    release.touch()
    assert _finished(admin, "fault_script", run_id) == "success"
    states = {
        task: (ti["state"], ti["try_number"]) for task, ti in _task_instances(admin, "fault_script", run_id).items()
    }
    assert states == {"long": ("success", 2), "after": ("success", 1)}, states
    assert tries() == [first, second]  # two tries, no third
    _report("worker killed", script_ended_after=script_gone, retried_after=retried, retried_on=other)


# -- the scheduler restarts while people vote ----------------------------------------------------


def _pending_approval(client: httpx.Client, run_id: str) -> dict:
    def found():
        listed = client.get(f"{API}/approvals", params={"state": "pending", "mine": False}).json()["approvals"]
        return [a for a in listed if a["run_id"] == run_id]

    return wait(found, 300, "the approval request")[0]


def test_votes_that_arrive_while_the_scheduler_restarts_are_kept_and_the_run_completes(cluster):
    alice, admin = cluster.client("alice"), cluster.client("admin")
    carol, bob, dave = (cluster.client(user) for user in ("carol", "bob", "dave"))
    run_id = _run(alice, "fault_approval", {"what": "the scheduler restart"})
    approval = _pending_approval(carol, run_id)
    votes = f"{API}/approvals/{approval['id']}/votes"
    assert _task_instances(admin, "fault_approval", run_id)["approve"]["state"] == "awaiting_input"

    first = carol.post(votes, json={"decision": "approve", "comment": "before the restart"})
    assert first.status_code == 201 and first.json()["state"] == "pending", first.text

    stopped = _stop(cluster, "airflow-scheduler")
    second = bob.post(votes, json={"decision": "approve", "comment": "while the scheduler is down"})
    assert second.status_code == 201 and second.json()["state"] == "pending", second.text

    # the last vote arrives while the scheduler starts again: it decides the request
    starting = threading.Thread(target=_start, args=(cluster, "airflow-scheduler"))
    starting.start()
    try:
        last = dave.post(votes, json={"decision": "approve", "comment": "while the scheduler starts"})
    finally:
        starting.join()
    back = time.time()
    assert last.status_code == 201 and last.json()["state"] == "approved", last.text

    assert _finished(admin, "fault_approval", run_id) == "success"
    done = time.time()
    trail = carol.get(f"{API}/approvals/{approval['id']}").json()
    assert [(v["user"], v["decision"]) for v in trail["votes"]] == [
        ("carol", "approve"),
        ("bob", "approve"),
        ("dave", "approve"),
    ]
    outputs = admin.get(
        f"/api/v2/dags/fault_approval/dagRuns/{run_id}/taskInstances/approve/xcomEntries/return_value",
        params={"deserialize": True},
    ).json()["value"]
    assert outputs["outcome"] == "approved" and [v["user"] for v in outputs["votes"]] == ["carol", "bob", "dave"]
    states = {task: ti["state"] for task, ti in _task_instances(admin, "fault_approval", run_id).items()}
    assert states == {"approve": "success", "change": "success"}, states
    _report("scheduler restarted", scheduler_down=back - stopped, run_done_after_restart=done - back)


# -- the triggerer restarts while a REST wait is deferred ---------------------------------------


def test_a_deferred_rest_wait_resumes_after_a_triggerer_restart(cluster, backup_product):
    alice, admin = cluster.client("alice"), cluster.client("admin")
    job = f"fault-{uuid.uuid4().hex[:8]}"
    with backup_product.lock:  # a job that stays pending until the test says otherwise
        backup_product.jobs[job] = {"job_id": job, "hostname": "db01.example.com", "version": "7.2",
                                    "remaining": 10**9, "fail": False, "polls": 0}  # fmt: skip

    def polls() -> int:
        return len(backup_product.received(f"/jobs/{job}"))

    run_id = _run(alice, "fault_wait", {"job": job})
    wait(lambda: _task_instances(admin, "fault_wait", run_id)["wait_job"]["state"] == "deferred", 300, "the deferral")
    wait(lambda: polls() >= 2, 120, "the triggerer's polls")

    stopped = _stop(cluster, "airflow-triggerer")
    at_stop = polls()
    assert _task_instances(admin, "fault_wait", run_id)["wait_job"]["state"] == "deferred"
    _start(cluster, "airflow-triggerer")
    started = time.time()
    wait(lambda: polls() > at_stop, 300, "the polls after the restart")
    resumed = time.time()

    with backup_product.lock:
        backup_product.jobs[job]["remaining"] = 0
    assert _finished(admin, "fault_wait", run_id) == "success"
    tis = _task_instances(admin, "fault_wait", run_id)
    assert (tis["wait_job"]["state"], tis["wait_job"]["try_number"]) == ("success", 1), tis["wait_job"]
    assert tis["after"]["state"] == "success"
    _report(
        "triggerer restarted",
        triggerer_down=started - stopped,
        first_poll_after_start=resumed - started,
        polls_before=at_stop,
        polls_after=polls() - at_stop,
    )


# -- the API server restarts amid a burst of form submissions ------------------------------------


@dataclass
class Accepted:
    key: str
    run_id: str
    status: int  # 201: this request started the run; 200: a repeat found it
    attempts: int
    at: float


class Submitter(threading.Thread):
    """A client of the portal: submits forms one after the other, each with its own Idempotency-Key,
    and retries a submission (same key) until it is accepted — through connection errors and 5xx
    answers, as a browser's retry or a user pressing the button again would."""

    def __init__(self, cluster: RunningCluster, name: str, token: str, restarted: threading.Event):
        super().__init__(name=name, daemon=True)
        self.client = httpx.Client(base_url=cluster.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.restarted = restarted
        self.accepted: list[Accepted] = []
        self.errors: list[str] = []
        self.refused: list[float] = []  # when a request found no server
        self.failure: str | None = None

    def run(self) -> None:
        after_restart = 0
        try:
            while after_restart < 3:
                self.accepted.append(self.submit(f"{self.name}-{len(self.accepted):03d}"))
                after_restart += self.restarted.is_set()
                time.sleep(0.2)  # a client's pace
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.failure = repr(exc)
        finally:
            self.client.close()

    def submit(self, key: str) -> Accepted:
        deadline = time.monotonic() + 600
        attempts = 0
        while time.monotonic() < deadline:
            attempts += 1
            try:
                answer = self.client.post(
                    f"{API}/workflows/fault_quick/runs",
                    json={"form": {"submission": key}},
                    headers={"Idempotency-Key": key},
                )
            except httpx.TransportError as exc:  # refused, reset, timed out: the server restarts
                self.errors.append(type(exc).__name__)
                self.refused.append(time.time())
                time.sleep(0.5)
                continue
            if answer.status_code in (200, 201):
                return Accepted(key, answer.json()["run_id"], answer.status_code, attempts, time.time())
            if answer.status_code < 500:
                raise AssertionError(f"{key}: {answer.status_code} {answer.text}")
            self.errors.append(str(answer.status_code))
            time.sleep(0.5)
        raise AssertionError(f"{key} was not accepted within 600 s")


def _utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def test_every_request_accepted_during_an_api_server_restart_has_one_run_and_is_executed(cluster):
    admin = cluster.client("admin")
    token = cluster.token("alice")
    burst = f"burst-{uuid.uuid4().hex[:6]}"
    restarted = threading.Event()
    clients = [Submitter(cluster, f"{burst}-{n}", token, restarted) for n in range(3)]
    for client in clients:
        client.start()
    try:
        wait(lambda: sum(len(c.accepted) for c in clients) >= 8, 300, "the burst's first submissions")
        stopped = _stop(cluster, "airflow-apiserver")
        down = time.time()
        _start(cluster, "airflow-apiserver")
        back = time.time()
        restarted.set()
    finally:
        for client in clients:
            client.join(timeout=900)
    assert not [c.failure for c in clients if c.failure], [c.failure for c in clients]
    accepted = {a.key: a for c in clients for a in c.accepted}
    before = [a for a in accepted.values() if a.at < stopped]
    assert before and len(accepted) > len(before), "the burst went on through the restart"

    # every accepted request has exactly one run: the one its answer named
    ours: dict[str, list[str]] = {}
    for key, run_id in cluster.query(
        "SELECT conf ->> 'submission', run_id FROM dag_run WHERE dag_id = 'fault_quick' "
        "AND conf ->> 'submission' LIKE %s ORDER BY id",
        (f"{burst}-%",),
    ):
        ours.setdefault(key, []).append(run_id)
    assert ours == {key: [a.run_id] for key, a in accepted.items()}

    # and every one is executed, at its first try: those accepted just before the restart, whose
    # tasks were queued while the server was down and launched against it, too
    wait(
        lambda: all(
            admin.get(f"/api/v2/dags/fault_quick/dagRuns/{a.run_id}").json()["state"] in ("success", "failed")
            for a in accepted.values()
        ),
        900,
        "every accepted run to finish",
    )
    rows = cluster.query(
        "SELECT run_id, state, try_number, queued_dttm FROM task_instance WHERE dag_id = 'fault_quick' "
        "AND task_id = 'record' AND run_id = ANY(%s)",
        ([a.run_id for a in accepted.values()],),
    )
    assert {(r[1], r[2]) for r in rows} == {("success", 1)} and len(rows) == len(accepted), rows
    queued_while_down = [r[0] for r in rows if _utc(stopped) <= r[3] <= _utc(back)]
    assert queued_while_down, "no task was queued while the API server was down: the test did not test the restart"
    errors = [e for c in clients for e in c.errors]
    refused = sorted(t for c in clients for t in c.refused)
    _report(
        "API server restarted",
        stopping=down - stopped,
        starting=back - down,
        refused_for=refused[-1] - refused[0] if refused else 0.0,
        requests=len(accepted),
        accepted_before=len(before),
        repeats_answered_200=sum(a.status == 200 for a in accepted.values()),
        retried_submissions=sum(a.attempts > 1 for a in accepted.values()),
        failed_attempts=len(errors),
        tasks_queued_while_down=len(queued_while_down),
    )


# -- every database connection drops ------------------------------------------------------------


def test_components_reconnect_after_their_database_connections_are_dropped(cluster, backup_product):
    admin, alice = cluster.client("admin"), cluster.client("alice")
    before = cluster.native.running()
    job = f"fault-{uuid.uuid4().hex[:8]}"
    with backup_product.lock:  # done at the first poll
        backup_product.jobs[job] = {"job_id": job, "hostname": "db01.example.com", "version": "7.2",
                                    "remaining": 0, "fail": False, "polls": 0}  # fmt: skip
    definition = Path(cluster.env["AUTOPILOT_DEFINITIONS"]) / f"fault_new_{uuid.uuid4().hex[:6]}.yaml"

    admin_conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin_conn.autocommit = True
    try:
        with admin_conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (cluster.database,),
            )
            [(connected,)] = cur.fetchall()
            dropped_at = time.time()
            cur.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (cluster.database,),
            )
            terminated = sum(ok for _, ok in cur.fetchall())
    finally:
        admin_conn.close()
    # at least one for each component that keeps a connection (API server, scheduler, dag-processor, triggerer)
    assert terminated >= 4, f"only {terminated} of {connected} connections were dropped"

    try:
        # the API server answers (and writes), the scheduler schedules, a worker runs the step
        quick = _run(alice, "fault_quick", {"submission": "after the drop"})
        wait_run = _run(alice, "fault_wait", {"job": job})
        # the dag-processor parses a new definition
        definition.write_text(
            (REPO / "tests" / "data" / "faults" / "fault_quick.yaml")
            .read_text()
            .replace("id: fault_quick", f"id: {definition.stem}")
        )
        wait(lambda: admin.get(f"/api/v2/dags/{definition.stem}").status_code == 200, 300, "the new definition's DAG")
        parsed = time.time()
        assert _finished(admin, "fault_quick", quick) == "success"
        quick_done = time.time()
        # the triggerer polls the job and resumes the wait
        assert _finished(admin, "fault_wait", wait_run) == "success"
        wait_done = time.time()
    finally:
        definition.unlink(missing_ok=True)
    assert cluster.native.running() == before, "a component died (or was restarted) after its connections dropped"
    _report(
        "database connections dropped",
        connections_dropped=terminated,
        run_done_after=quick_done - dropped_at,
        wait_done_after=wait_done - dropped_at,
        definition_parsed_after=parsed - dropped_at,
    )
