"""A throw-away Airflow deployment for sections 2 and 3: a fresh PostgreSQL database, an AIRFLOW_HOME,
a definitions folder served by the Autopilot bundle (and optionally a plain DAG folder served by
Airflow's ``LocalDagBundle``), and the real ``airflow`` processes from ``tests/fixtures`` (the API
server with the Autopilot plugin; with ``AirflowStack`` also the dag-processor and a scheduler with
the LocalExecutor).

The parent (``benchmarks.run``) prepares the folders and the database and runs the measurement in a
child process (``python -m benchmarks.<section> --child``) whose whole environment is this
deployment's — the test fixtures read ``os.environ`` — then drops the database.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import PYTHON, REPO, Context

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def pg_connect(dbname: str = "postgres"):
    import psycopg2

    conn = psycopg2.connect(dbname=dbname, **PG)
    conn.autocommit = True
    return conn


def pg_available() -> str | None:
    """None when PostgreSQL answers on 127.0.0.1:5432, else why not."""
    try:
        pg_connect().close()
        return None
    except Exception as exc:  # noqa: BLE001 - reported, the section is skipped
        return f"PostgreSQL on 127.0.0.1:5432 (user postgres) is not reachable: {exc}".strip()


@dataclass
class Deployment:
    ctx: Context
    name: str
    definitions: Path
    dags: Path | None = None

    def __post_init__(self) -> None:
        self.root = self.ctx.tmp / self.name
        self.home = self.root / "airflow_home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.database = f"autopilot_bench_{self.name}_{uuid.uuid4().hex[:8]}"
        self.server_version: str | None = None

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        bundles = [
            {
                "name": "autopilot",
                "classpath": "dag_factory.bundle.AutopilotDagBundle",
                "kwargs": {"definitions": str(self.definitions), "refresh_interval": 2},
            }
        ]
        if self.dags is not None:
            bundles.append(
                {
                    "name": "python",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(self.dags), "refresh_interval": 2},
                }
            )
        env = self.ctx.child_env(storage=self.root / "bundles")
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags or self.definitions),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
                f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{self.database}"
            ),
            AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(bundles),
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
            AUTOPILOT_DEFINITIONS=str(self.definitions),
        )
        env.update(extra or {})
        return env

    def create(self) -> None:
        conn = pg_connect()
        cur = conn.cursor()
        cur.execute(f'CREATE DATABASE "{self.database}"')
        cur.execute("SELECT version()")
        #: the PostgreSQL server the deployment runs on (``SELECT version()``), for the results' machine
        self.server_version = cur.fetchone()[0]
        conn.close()

    def drop(self) -> None:
        try:
            conn = pg_connect()
            cur = conn.cursor()
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.database,))
            cur.execute(f'DROP DATABASE IF EXISTS "{self.database}"')
            conn.close()
        except Exception as exc:  # noqa: BLE001 - a leftover database is reported, not fatal
            self.ctx.note(f"could not drop database {self.database}: {exc}")

    def run_child(self, module: str, args: list[str], env: dict[str, str], timeout: float) -> dict:
        """``python -m module --child ARGS`` with this deployment's environment; its progress goes to
        our stderr, its last stdout line is the JSON result."""
        proc = subprocess.run(
            [PYTHON, "-m", module, "--child", *args],
            env=env,
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{module} failed ({proc.returncode}); see the messages above")
        return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# Used inside the child process
# ---------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}]   {message}", file=sys.stderr, flush=True)


def airflow(*args: str, timeout: float = 600) -> None:
    proc = subprocess.run(
        [PYTHON, "-m", "airflow", *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    if proc.returncode:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def migrate() -> None:
    """Airflow's tables, then Autopilot's (``autopilot db migrate``)."""
    from tests.fixtures.api_server import migrate_autopilot

    airflow("db", "migrate")
    migrate_autopilot()


def database():
    """A connection to this deployment's metadata database (from the environment)."""
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return pg_connect(url.rsplit("/", 1)[1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) — p99 of 100 samples is the 99th value."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def latency_summary(seconds: list[float]) -> dict:
    return {
        "n": len(seconds),
        "p50_ms": statistics.median(seconds) * 1000 if seconds else None,
        "p99_ms": (percentile(seconds, 99) or 0) * 1000 if seconds else None,
        "min_ms": min(seconds) * 1000 if seconds else None,
        "max_ms": max(seconds) * 1000 if seconds else None,
    }
