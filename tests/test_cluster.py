"""`make cluster` end to end: scripts/cluster.py starts the distributed topology natively — the API
server, scheduler, dag-processor, triggerer and two Celery workers, on the machine's PostgreSQL (a
database of its own) and Redis (a queue of its own) — once for this module; a workflow runs on the
Celery workers, then the reference scenario runs end to end on them; `cluster.py stop` ends exactly
the processes it started. About 3.5 minutes on two cores (a minute of it starting the cluster);
`make test-cluster` runs this module alone.

Everything the cluster listens on is picked free for the test (API server, the three log servers),
so it runs beside `make run`, `make cluster` and other tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from scripts import cluster
from tests.conftest import REPO
from tests.fixtures.api_server import free_port
from tests.fixtures.postgres import drop_database
from tests.fixtures.scenario import reference_scenario, wait

# the cluster has a PostgreSQL database of its own, whatever the suite's pass: run it once
pytestmark = pytest.mark.sqlite_only


@dataclass
class RunningCluster:
    home: Path
    base: str
    queue: str
    banner: str
    env: dict[str, str]

    def passwords(self) -> dict[str, str]:
        return json.loads((self.home / "auth" / "passwords.json").read_text())

    def client(self, user: str) -> httpx.Client:
        response = httpx.post(
            f"{self.base}/auth/token", json={"username": user, "password": self.passwords()[user]}, timeout=60
        )
        assert response.status_code == 201, response.text
        token = response.json()["access_token"]
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def log(self, name: str) -> str:
        return (self.home / "process-logs" / f"{name}.log").read_text(errors="replace")

    def script(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "scripts/cluster.py"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.fixture(scope="module")
def native_cluster(tmp_path_factory) -> Iterator[RunningCluster]:
    home = tmp_path_factory.mktemp("cluster")
    definitions = home / "definitions"
    shutil.copytree(REPO / "definitions", definitions)
    suffix = uuid.uuid4().hex[:10]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AUTOPILOT"))}
    env.update(
        AUTOPILOT_CLUSTER_HOME=str(home / "home"),
        AUTOPILOT_CLUSTER_PORT=str(port),
        AUTOPILOT_CLUSTER_DB=f"autopilot_cluster_test_{suffix}",
        AUTOPILOT_CLUSTER_REDIS_DB="6",
        AUTOPILOT_CLUSTER_QUEUE=f"autopilot-test-{suffix}",  # no other cluster's worker takes our tasks
        AUTOPILOT_CLUSTER_LOG_PORTS=",".join(str(free_port()) for _ in range(3)),
        AUTOPILOT_DEFINITIONS=str(definitions),
    )
    running = RunningCluster(home / "home", f"http://127.0.0.1:{port}", env["AUTOPILOT_CLUSTER_QUEUE"], "", env)
    try:
        started = running.script("start")
        running.banner = started.stdout
        assert started.returncode == 0, f"{started.stdout}\n{started.stderr}"
        yield running
    finally:
        stopped = running.script("stop")
        leftover = cluster.Native.from_environment(env).members()
        drop_database(env["AUTOPILOT_CLUSTER_DB"])
        # the broker's bindings of this test's queue (the queue itself is gone with its last message)
        broker = redis.Redis(host="127.0.0.1", port=6379, db=int(env["AUTOPILOT_CLUSTER_REDIS_DB"]))
        broker.delete(*(f"_kombu.{kind}.{running.queue}" for kind in ("binding", "binding_permanent")))
        broker.close()
        assert stopped.returncode == 0 and not leftover, f"{stopped.stdout}{stopped.stderr}; left: {leftover}"


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
