"""`make cluster` end to end: scripts/cluster.py starts the distributed topology natively — the API
server, scheduler, dag-processor, triggerer and two Celery workers, on the machine's PostgreSQL (a
database of its own) and Redis (a queue of its own) — once for this module; a workflow runs on the
Celery workers, then the reference scenario runs end to end on them; `cluster.py stop` ends exactly
the processes it started. About 3.5 minutes on two cores (a minute of it starting the cluster);
`make test-cluster` runs this module alone.

Everything the cluster listens on is picked free for the test (API server, the three log servers),
so it runs beside `make run`, `make cluster` and other tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from scripts import cluster
from tests.fixtures.cluster import RunningCluster
from tests.fixtures.cluster import native_cluster as running_cluster
from tests.fixtures.scenario import reference_scenario, wait

# the cluster has a PostgreSQL database of its own, whatever the suite's pass: run it once
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def native_cluster(tmp_path_factory) -> Iterator[RunningCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


def test_the_cluster_prints_its_url_and_logins_and_runs_workflows_on_celery_workers(native_cluster):
    banner = native_cluster.banner
    port = native_cluster.base.rsplit(":", 1)[1]
    assert f"http://localhost:{port}/autopilot/ui/" in banner
    for user, password in native_cluster.passwords().items():
        assert f"login: {user} / {password}" in banner
    status = native_cluster.script("status")
    assert status.returncode == 0
    for name in ["sandbox", *cluster.COMPONENTS]:
        assert f"{name:24} running" in status.stdout, status.stdout
    # each a process with its own log; both workers joined the broker under their own names
    assert "worker-1@" in native_cluster.log("airflow-worker-1")
    assert "worker-2@" in native_cluster.log("airflow-worker-2")

    admin = native_cluster.client("admin")
    wait(lambda: admin.get("/api/v2/dags/hello_world").status_code == 200, 180, "the hello_world DAG")
    response = admin.post("/api/v2/dags/hello_world/dagRuns", json={"logical_date": None, "conf": {"name": "Ada"}})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    def finished():
        state = admin.get(f"/api/v2/dags/hello_world/dagRuns/{run_id}").json()["state"]
        return state in ("success", "failed") and state

    assert wait(finished, 240, "the hello_world run") == "success"
    tis = admin.get(f"/api/v2/dags/hello_world/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    assert {ti["task_id"]: ti["state"] for ti in tis} == {"greet": "success", "count": "success"}
    # the CeleryExecutor sent them to this cluster's queue, and its workers ran them
    assert {ti["queue"] for ti in tis} == {native_cluster.queue}
    ran = sum(native_cluster.log(name).count("] succeeded in") for name in cluster.COMPONENTS if "worker" in name)
    assert ran >= 2
    # the task logs, written by a worker, are read by the API server from the shared log folder
    log = admin.get(
        f"/api/v2/dags/hello_world/dagRuns/{run_id}/taskInstances/greet/logs/1", params={"full_content": True}
    )
    assert log.status_code == 200 and "Hello, Ada!" in log.text, log.text[-2000:]


def test_the_reference_scenario_runs_end_to_end_on_the_cluster(native_cluster):
    client = httpx.Client(timeout=60)
    try:
        run_id = reference_scenario(
            client, native_cluster.base, native_cluster.passwords(), native_cluster.home / "sandbox"
        )
    finally:
        client.close()
    admin = native_cluster.client("admin")
    tis = admin.get(f"/api/v2/dags/add_machine_to_backups/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    ran = [ti for ti in tis if ti["state"] == "success" and ti["operator"] not in ("EmptyOperator",)]
    assert ran and {ti["queue"] for ti in ran} == {native_cluster.queue}, [(t["task_id"], t["queue"]) for t in ran]
    # every one of them was executed by one of the two Celery workers (which one is Celery's choice)
    executed = {
        name: native_cluster.log(name).count("] succeeded in") for name in ("airflow-worker-1", "airflow-worker-2")
    }
    print(f"tasks executed per worker: {executed}")
    assert sum(executed.values()) >= len(ran), (executed, [t["task_id"] for t in ran])


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


@pytest.mark.db_independent
def test_stop_ends_exactly_what_the_cluster_started(tmp_path):
    """A pid file whose process has another start time (the pid was reused) is not ours: stop()
    leaves that process alone, and ends the one it did start with its whole process group."""
    native = cluster.Native.from_environment({"AUTOPILOT_CLUSTER_HOME": str(tmp_path)})
    native.run.mkdir(parents=True)
    native.logs.mkdir(parents=True)
    ours = native._spawn("airflow-worker-1", ["/bin/sh", "-c", "sleep 300 & sleep 300; :"], dict(os.environ))
    stranger = _sleeper()
    try:
        _, started, _ = cluster._stat(stranger.pid)
        (native.run / "airflow-scheduler.pid").write_text(f"{stranger.pid} {started - 1}")
        wait(lambda: len(native.members()) == 3, 20, "the shell and its two sleeps")
        assert set(native.running()) == {"airflow-worker-1"}
        assert native.stop(quiet=True, timeout=20) == 0
        deadline = time.monotonic() + 10
        while cluster._stat(ours)[0] and not cluster._stat(ours)[2] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert native.members() == []
        assert stranger.poll() is None, "stop() ended a process it did not start"
        assert not list(native.run.glob("*.pid"))
    finally:
        stranger.send_signal(signal.SIGKILL)
        stranger.wait()
