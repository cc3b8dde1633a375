"""The distributed topology of Autopilot, and `make cluster` / `make cluster-stop`: run it natively.

    python scripts/cluster.py start    # make cluster
    python scripts/cluster.py stop     # make cluster-stop
    python scripts/cluster.py stop airflow-scheduler [--kill]   # one component (--kill: SIGKILL, as a crash)
    python scripts/cluster.py start airflow-scheduler           # start it again, with the same settings
    python scripts/cluster.py status
    python scripts/cluster.py env      # `export` lines for the airflow/autopilot commands
    python scripts/cluster.py dotenv   # a .env for docker-compose.yaml, with generated secrets

The topology is Airflow's own distributed one (its docker-compose.yaml and Helm chart): PostgreSQL
(metadata and Celery results), Redis (the Celery broker), ``deploy/init.sh`` once (``airflow db
migrate``, ``autopilot db migrate``, the logins), then the API server, the scheduler, the dag-processor,
the triggerer and two Celery workers. This module is the one description of it:

* ``COMPONENTS``: each component's ``airflow`` command line;
* ``deploy/airflow.env``: the settings every component gets, wherever it runs;
* ``Site``: what differs between places (hosts, paths, ports, secrets) — ``native_site()`` for this
  machine, ``compose_site()`` for ``docker-compose.yaml``.

``make cluster`` runs each component as its own process (own process group, log and pid file under
the cluster home, ``.cluster/`` by default) on the machine's PostgreSQL (a database of its own) and
Redis (a database index of its own), with the sandbox of ``make run`` (scripts/sandbox.py) for the
outside systems of the reference scenario. ``stop`` ends exactly the processes it started: each pid
file holds a pid and that process's start time (a reused pid has another), and every process of the
component's process group that started no earlier is ended with it. One component can be stopped
(or killed) and started again while the others run — the fault tests (tests/test_faults.py) do.
tests/test_deploy.py checks that docker-compose.yaml runs the same commands with the same
environment; tests/test_cluster.py starts the cluster and runs the reference scenario on it.

Settings (environment variables, with their defaults):

    AUTOPILOT_CLUSTER_HOME      .cluster            the cluster's AIRFLOW_HOME: logs, pid files, secrets
    AUTOPILOT_CLUSTER_PORT      8011                the API server (Airflow UI at /, Autopilot at /autopilot/)
    AUTOPILOT_CLUSTER_DB        autopilot_cluster   the PostgreSQL database (created when missing)
    AUTOPILOT_CLUSTER_REDIS_DB  5                   the Redis database index of the Celery broker
    AUTOPILOT_CLUSTER_QUEUE     default             the Celery queue the workers take tasks from
    AUTOPILOT_CLUSTER_LOG_PORTS 8795,8796,8797      the log servers of worker-1, worker-2 and the triggerer
    AUTOPILOT_DEFINITIONS       definitions/        the definitions folder
    AUTOPILOT_SANDBOX           1                   0: no sandbox (set the connections yourself)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON_ENV_FILE = ROOT / "deploy" / "airflow.env"
INIT_SCRIPT = ROOT / "deploy" / "init.sh"

#: compose service → the ``airflow`` command line it runs (the image's entrypoint puts ``airflow``
#: in front of a command that is not bash or python). Workers have their own Celery node names, so
#: two of them can run on one host.
COMPONENTS: dict[str, list[str]] = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker-1": ["celery", "worker", "--celery-hostname", "worker-1@%h"],
    "airflow-worker-2": ["celery", "worker", "--celery-hostname", "worker-2@%h"],
}
#: the one-shot service that prepares the database and the logins before the others start
INIT = "airflow-init"

#: the processes that serve task logs (the Celery workers, the triggerer), each on its own port: the
#: defaults 8793 (workers) and 8794 (triggerer) collide when two Airflow instances share a host
#: (`make run` uses them). In compose each container has its own ports; the same values are harmless.
LOG_SERVERS = {
    "airflow-worker-1": "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "airflow-worker-2": "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "airflow-triggerer": "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
}
DEFAULT_LOG_PORTS = (8795, 8796, 8797)

#: the variables whose values differ between sites; every other one is the same everywhere
SITE_KEYS = frozenset(
    {
        "AIRFLOW_HOME",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW__API__BASE_URL",
        "AIRFLOW__API__PORT",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__AUTOPILOT__DEFINITIONS_DIR",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE",
    }
)
#: what compose's services get that no native process needs (the official image's init system)
COMPOSE_ONLY = {"DUMB_INIT_SETSID": "0"}  # the workers': let Celery's warm shutdown happen on docker stop
#: compose's airflow-init also gets admin's password from .env (deploy/init.sh reads it)
INIT_COMPOSE_ONLY = ("AUTOPILOT_PASSWORD_ADMIN",)

#: secrets: generated once per native cluster (SECRETS_FILE); from `.env` in compose
SECRET_KEYS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET")


def common_env(path: Path = COMMON_ENV_FILE) -> dict[str, str]:
    """deploy/airflow.env: KEY=VALUE lines (no quoting, no interpolation, as compose reads env_file)."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier() or "$" in value or value[:1] in "'\"":
            raise ValueError(f"{path}:{number}: expected KEY=VALUE without quotes or $: {line!r}")
        env[key] = value
    return env


def bundle_config(definitions: str, refresh_interval: int = 10) -> str:
    return json.dumps(
        [
            {
                "name": "autopilot",
                "classpath": "dag_factory.bundle.AutopilotDagBundle",
                "kwargs": {"definitions": definitions, "refresh_interval": refresh_interval},
            }
        ]
    )


@dataclass
class Site:
    """Where the topology runs: the values of SITE_KEYS."""

    home: str
    definitions: str
    database_url: str
    broker_url: str
    result_backend: str
    execution_api_url: str
    public_url: str
    api_port: int
    log_ports: tuple[int, int, int]
    secrets: dict[str, str]
    queue: str = "default"
    connections: dict[str, str] = field(default_factory=dict)  # AIRFLOW_CONN_* variables

    def env(self) -> dict[str, str]:
        return {
            "AIRFLOW_HOME": self.home,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": self.result_backend,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": self.execution_api_url,
            "AIRFLOW__CORE__DAGS_FOLDER": self.definitions,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": f"{self.home}/auth/passwords.json",
            "AIRFLOW__API__BASE_URL": self.public_url,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__AUTOPILOT__DEFINITIONS_DIR": self.definitions,
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": bundle_config(self.definitions),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": f"{self.home}/dag_bundles",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": f"{self.home}/logs",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            **{key: self.secrets[key] for key in SECRET_KEYS},
            **self.connections,
        }

    def component_env(self, name: str) -> dict[str, str]:
        """What one component gets besides the common and site settings: its log server's port."""
        ports = dict(zip(LOG_SERVERS, self.log_ports, strict=True))
        return {LOG_SERVERS[name]: str(ports[name])} if name in LOG_SERVERS else {}

    def environment(self, name: str) -> dict[str, str]:
        """The whole Airflow environment of component ``name`` (or of INIT)."""
        return {**common_env(), **self.env(), **self.component_env(name)}


def compose_site(dotenv: dict[str, str]) -> Site:
    """The site docker-compose.yaml describes, with the values of its `.env` (``dotenv``)."""

    def get(name: str, default: str | None = None) -> str:
        value = dotenv.get(name) or default
        if value is None:
            raise KeyError(f"{name} must be set in .env")
        return value

    password = get("POSTGRES_PASSWORD")
    return Site(
        home="/opt/airflow",
        definitions="/opt/airflow/definitions",
        database_url=f"postgresql+psycopg2://airflow:{password}@postgres/airflow",
        broker_url="redis://redis:6379/0",
        result_backend=f"db+postgresql://airflow:{password}@postgres/airflow",
        execution_api_url="http://airflow-apiserver:8080/execution/",
        public_url=get("AUTOPILOT_PUBLIC_URL", "http://localhost:8011"),
        api_port=8080,
        log_ports=DEFAULT_LOG_PORTS,
        secrets={key: get(key) for key in SECRET_KEYS},
        connections={"AIRFLOW_CONN_SMTP_DEFAULT": MAILPIT_CONNECTION},
    )


#: compose's SMTP connection: Mailpit (mails in its web UI at /mailpit/)
MAILPIT_CONNECTION = json.dumps(
    {
        "conn_type": "smtp",
        "host": "mailpit",
        "port": 1025,
        "extra": {"from_email": "autopilot@example.com", "disable_tls": True, "disable_ssl": True, "timeout": 10},
    }
)


def new_secrets() -> dict[str, str]:
    return {
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),  # a Fernet key
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
    }


def dotenv(example: Path = ROOT / ".env.example") -> str:
    """.env for docker-compose.yaml: .env.example with every change-me replaced by a generated secret."""
    generated = {**new_secrets(), "POSTGRES_PASSWORD": secrets.token_urlsafe(18)}
    generated["AUTOPILOT_ADMIN_PASSWORD"] = secrets.token_urlsafe(12)
    lines = []
    for line in example.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#") and value == "change-me":
            line = f"{key}={generated[key]}"
        elif key == "AIRFLOW_UID" and sep:
            line = f"AIRFLOW_UID={os.getuid() or 50000}"  # root: the image's airflow user
        lines.append(line)
    return "\n".join(lines) + "\n"


# -- the native cluster -----------------------------------------------------------------------------


@dataclass
class Native:
    home: Path
    port: int
    database: str
    redis_db: int
    queue: str
    log_ports: tuple[int, int, int]
    definitions: Path
    sandbox: bool

    @classmethod
    def from_environment(cls, environ: dict[str, str] | os._Environ = os.environ) -> Native:
        log_ports = tuple(int(p) for p in environ.get("AUTOPILOT_CLUSTER_LOG_PORTS", "").split(",") if p.strip())
        return cls(
            home=Path(environ.get("AUTOPILOT_CLUSTER_HOME") or ROOT / ".cluster").resolve(),
            port=int(environ.get("AUTOPILOT_CLUSTER_PORT") or 8011),
            database=environ.get("AUTOPILOT_CLUSTER_DB") or "autopilot_cluster",
            redis_db=int(environ.get("AUTOPILOT_CLUSTER_REDIS_DB") or 5),
            queue=environ.get("AUTOPILOT_CLUSTER_QUEUE") or "default",
            log_ports=log_ports or DEFAULT_LOG_PORTS,  # type: ignore[arg-type]
            definitions=Path(environ.get("AUTOPILOT_DEFINITIONS") or ROOT / "definitions").resolve(),
            sandbox=environ.get("AUTOPILOT_SANDBOX", "1") != "0",
        )

    # -- files under the cluster home --

    @property
    def logs(self) -> Path:
        return self.home / "process-logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def secrets(self) -> dict[str, str]:
        """The cluster's secrets, generated on its first start and kept in secrets.json (mode 600)."""
        path = self.home / "secrets.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        if not all(known.get(key) for key in SECRET_KEYS):
            known = new_secrets()
            self.home.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(known))
        return known

    def site(self, connections: dict[str, str] | None = None) -> Site:
        url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.database}"
        return Site(
            home=str(self.home),
            definitions=str(self.definitions),
            database_url=url,
            broker_url=f"redis://127.0.0.1:6379/{self.redis_db}",
            result_backend=f"db+postgresql://postgres@127.0.0.1:5432/{self.database}",
            execution_api_url=f"http://127.0.0.1:{self.port}/execution/",
            public_url=f"http://localhost:{self.port}",
            api_port=self.port,
            log_ports=self.log_ports,
            secrets=self.secrets(),
            queue=self.queue,
            connections=connections or {},
        )

    def process_env(self, name: str, site: Site) -> dict[str, str]:
        # the caller's Airflow settings stay out (the site decides them), its AIRFLOW_CONN_* stay in
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") or k.startswith("AIRFLOW_CONN_")}
        env.update(site.environment(name))
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env["AUTOPILOT_CLUSTER_HOME"] = str(self.home)  # for whoever reads /proc/PID/environ
        env["AUTOPILOT_CLUSTER_COMPONENT"] = name
        return env

    # -- life cycle --

    def running(self) -> dict[str, int]:
        """The cluster's processes that are alive: name → pid (from the pid files, verified)."""
        alive = {}
        for pid_file in sorted(self.run.glob("*.pid")) if self.run.exists() else []:
            pid, _, started = pid_file.read_text().strip().partition(" ")
            if pid.isdigit() and started.isdigit() and _stat(int(pid)) == (int(pid), int(started), False):
                alive[pid_file.stem] = int(pid)
        return alive

    def prepare_services(self) -> None:
        import psycopg2  # the project's dependency (metadata database driver)

        admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{self.database}"')  # the name is the operator's setting
        admin.close()
        with socket.create_connection(("127.0.0.1", 6379), timeout=5) as redis:
            redis.sendall(b"PING\r\n")
            if not redis.recv(64).startswith(b"+PONG"):
                raise SystemExit("Redis on 127.0.0.1:6379 did not answer PING")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        with self.log_file(name).open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,  # not the checkout: its egg-info would register the plugin twice
                start_new_session=True,  # its own process group: stop() ends its children too
            )
        # the pid and its start time (a reused pid has another), so stop() ends only what we started
        self.pid_file(name).write_text(f"{process.pid} {_stat(process.pid)[1]}")
        return process.pid

    def start_sandbox(self) -> dict[str, str]:
        """scripts/sandbox.py (mail, Slack, the backup product, ServiceNow on loopback); returns the
        AIRFLOW_CONN_* variables it wrote. It runs under a shell that waits for it (the sandbox ends
        when its parent does)."""
        folder = self.home / "sandbox"
        written = folder / "connections.env"
        written.unlink(missing_ok=True)
        env = dict(os.environ)  # it leaves out the connections exported here (those win)
        env["AUTOPILOT_CLUSTER_HOME"] = str(self.home)
        script = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'scripts/sandbox.py'))} {shlex.quote(str(folder))}; :"
        self._spawn("sandbox", ["/bin/sh", "-c", script], env)
        deadline = time.monotonic() + 60
        while not written.exists():
            if time.monotonic() > deadline or "sandbox" not in self.running():
                raise SystemExit(f"the sandbox did not start; see {self.log_file('sandbox')}")
            time.sleep(0.2)
        return self.sandbox_connections()

    def sandbox_connections(self) -> dict[str, str]:
        """The AIRFLOW_CONN_* variables the running sandbox wrote (none without a sandbox)."""
        written = self.home / "sandbox" / "connections.env"
        connections = {}
        if self.sandbox and written.exists():
            for line in written.read_text().splitlines():
                key, _, value = line.removeprefix("export ").partition("=")
                connections[key] = shlex.split(value)[0]
        return connections

    def start(self) -> int:
        if self.running():
            print(f"the cluster in {self.home} is already running: {', '.join(self.running())}")
            return 1
        for folder in (self.home, self.logs, self.run):
            folder.mkdir(parents=True, exist_ok=True)
        for stale in self.run.glob("*.pid"):
            stale.unlink()
        self.prepare_services()
        connections = self.start_sandbox() if self.sandbox else {}
        site = self.site(connections)

        print(f"== Preparing the database {self.database} (log: {self.log_file(INIT)})")
        with self.log_file(INIT).open("ab") as log:
            init = subprocess.run(
                ["bash", str(INIT_SCRIPT)],
                env=self.process_env(INIT, site),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )
        if init.returncode != 0:
            self.stop(quiet=True)
            print(self.log_file(INIT).read_text(errors="replace")[-3000:])
            return init.returncode

        for name, args in COMPONENTS.items():
            self._spawn(name, [str(Path(sys.executable).parent / "airflow"), *args], self.process_env(name, site))
        if not self.wait_until_ready(timeout=float(os.environ.get("AUTOPILOT_CLUSTER_START_TIMEOUT", 300))):
            return 1
        self.banner()
        return 0

    def wait_until_ready(
        self, timeout: float, names: list[str] | None = None, since: dict[str, int] | None = None
    ) -> bool:
        """The API server answers and the Celery workers said they are ready (of ``names``, all
        components by default; a worker's log is read from offset ``since[name]``, so a restarted
        worker's earlier "ready" does not count)."""
        deadline = time.monotonic() + timeout
        names = list(COMPONENTS) if names is None else names
        pending = {n for n in names if n == "airflow-apiserver" or n.startswith("airflow-worker")}
        while pending and time.monotonic() < deadline:
            dead = [name for name in names if name not in self.running()]
            if dead:
                print(f"stopped early: {', '.join(dead)}; see {self.logs}/")
                for name in dead:
                    print(f"--- {name}\n" + self.log_file(name).read_text(errors="replace")[-2000:])
                return False
            if "airflow-apiserver" in pending:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/version", timeout=2):
                        pending.discard("airflow-apiserver")
                except (urllib.error.URLError, OSError):
                    pass
            for name in [n for n in pending if n.startswith("airflow-worker")]:
                with self.log_file(name).open("rb") as log:
                    log.seek((since or {}).get(name, 0))
                    if b" ready." in log.read():
                        pending.discard(name)
            time.sleep(1)
        if pending:
            print(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}; see {self.logs}/")
        return not pending

    # -- one component: the fault tests stop, kill and restart them while the others run --

    def start_components(self, names: list[str]) -> int:
        """Start the named components of the running cluster again, with the settings they had (the
        sandbox's connections included), and wait until they are ready."""
        running = self.running()
        if not running:
            print(f"the cluster in {self.home} is not running: start it first")
            return 1
        if up := [name for name in names if name in running]:
            print(f"already running: {', '.join(up)}")
            return 1
        began = time.monotonic()
        site = self.site(self.sandbox_connections())
        since = {}
        for name in names:
            since[name] = self.log_file(name).stat().st_size if self.log_file(name).exists() else 0
            self._spawn(
                name, [str(Path(sys.executable).parent / "airflow"), *COMPONENTS[name]], self.process_env(name, site)
            )
        timeout = float(os.environ.get("AUTOPILOT_CLUSTER_START_TIMEOUT", 300))
        if not self.wait_until_ready(timeout=timeout, names=names, since=since):
            return 1
        ready = time.monotonic() - began
        print(f"started: {', '.join(f'{n} ({self.running()[n]})' for n in names)}, ready in {ready:.1f}s")
        return 0

    def stop_components(self, names: list[str], kill: bool = False, timeout: float = 45) -> int:
        """Stop the named components and nothing else: SIGTERM to each one and its processes (then
        SIGKILL after ``timeout`` seconds). With ``kill``, a crash: ``kill -9`` of the component's
        process, then of the rest of its process group (a Celery worker's pool and log server); a
        task process, in a process group of its own, is orphaned, as when a Celery worker is killed
        outside a container."""

        def gone() -> bool:
            return not self.members(names, descendants=not kill)

        began = time.monotonic()
        if kill:
            for name, (pid, started) in self.started().items():
                if name in names and _stat(pid)[1:] == (started, False):
                    os.kill(pid, signal.SIGKILL)
            for pid in self.members(names, descendants=False):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        else:
            for pid in self.members(names):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in [] if gone() else self.members(names, descendants=not kill):
            print(f"{pid} still running after {timeout:.0f}s: killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in names:
            self.pid_file(name).unlink(missing_ok=True)
        print(f"{'killed' if kill else 'stopped'}: {', '.join(names)} in {time.monotonic() - began:.1f}s")
        return 0

    def banner(self) -> None:
        # the SimpleAuthManager's logins, which deploy/init.sh wrote; FAB keeps its users in the database
        passwords_file = self.home / "auth" / "passwords.json"
        passwords = json.loads(passwords_file.read_text()) if passwords_file.exists() else {}
        print(f"\n== Autopilot on an Airflow cluster (CeleryExecutor): http://localhost:{self.port}")
        print(f"   Autopilot: http://localhost:{self.port}/autopilot/ui/   Airflow: http://localhost:{self.port}/")
        for user, password in passwords.items():
            print(f"   login: {user} / {password}")
        if not passwords:
            print('   logins: the auth manager\'s users (FAB: `airflow users create`, docs/deploy.md "Roles")')
        print(f"   processes: {', '.join(f'{n} ({p})' for n, p in self.running().items())}")
        print(f"   logs: {self.logs}/<process>.log   task logs: {self.home}/logs/")
        print(f"   database: {self.database} on 127.0.0.1:5432, broker: redis://127.0.0.1:6379/{self.redis_db}")
        if self.sandbox:
            sandbox = self.home / "sandbox"
            print(
                f"   sandbox: mail in {sandbox}/mail.log, Slack in {sandbox}/slack.log, tickets in {sandbox}/servicenow.log"
            )
        print("   stop it with: make cluster-stop\n")

    def started(self) -> dict[str, tuple[int, int]]:
        """What the pid files name: component → (pid, start time)."""
        found = {}
        for pid_file in sorted(self.run.glob("*.pid")) if self.run.exists() else []:
            pid, _, started = pid_file.read_text().strip().partition(" ")
            if pid.isdigit() and started.isdigit():
                found[pid_file.stem] = (int(pid), int(started))
        return found

    def members(self, names: list[str] | None = None, descendants: bool = True) -> list[int]:
        """The live processes this cluster started (of the components ``names``; all by default):
        each one that a pid file names, every process in its process group that started no earlier,
        and the descendants of those (Airflow puts each task process in a process group of its own)
        unless ``descendants`` is false."""
        groups = {}  # pgid → its leader's start time
        for name, (pid, started) in self.started().items():
            _, now, gone = _stat(pid)
            # a live process of that pid that started later is someone else's
            if (names is None or name in names) and (gone or now == started):
                groups[pid] = started
        children: dict[int, list[int]] = {}
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                pid = int(proc.name)
                pgid, started, gone = _stat(pid)
                if gone:
                    continue
                if pgid in groups and started >= groups[pgid]:
                    found.append(pid)
                children.setdefault(_parent(pid), []).append(pid)
        seen = set(found)
        for pid in found if descendants else []:  # the list grows while it is walked: every generation
            for child in children.get(pid, []):
                if child not in seen:
                    seen.add(child)
                    found.append(child)
        return found

    def stop(self, quiet: bool = False, timeout: float = 45) -> int:
        """End the processes this cluster started, and nothing else: SIGTERM (Celery workers finish a
        warm shutdown), then SIGKILL for whatever is left after ``timeout`` seconds."""
        names = list(self.running())
        for pid in self.members():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while self.members() and time.monotonic() < deadline:
            time.sleep(0.5)
        left = self.members()
        if left:
            print(f"still running after {timeout:.0f}s, killed: {', '.join(map(str, left))}")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid_file in self.run.glob("*.pid") if self.run.exists() else []:
            pid_file.unlink()
        if not quiet:
            print(f"stopped: {', '.join(names) or 'nothing was running'}")
        return 0

    def print_env(self) -> None:
        site = self.site()
        connections = self.home / "sandbox" / "connections.env"
        for key, value in site.environment("airflow-scheduler").items():
            if key not in LOG_SERVERS.values():
                print(f"export {key}={shlex.quote(value)}")
        if connections.exists():
            print(connections.read_text(), end="")
        print(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')


def _parent(pid: int) -> int:
    """The parent process id of ``pid`` (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _stat(pid: int) -> tuple[int, int, bool]:
    """(process group, start time in clock ticks since boot, zombie?) of ``pid``; (0, 0, True) when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0, 0, True
    return int(fields[2]), int(fields[19]), fields[0] in ("Z", "X")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env", "dotenv"])
    parser.add_argument(
        "components", nargs="*", metavar="COMPONENT", help=f"start/stop only these: {', '.join(COMPONENTS)}"
    )
    parser.add_argument("--kill", action="store_true", help="stop: SIGKILL at once (a crash)")
    args = parser.parse_args(argv)
    names = [name if name in COMPONENTS else f"airflow-{name}" for name in args.components]
    if unknown := [name for name in names if name not in COMPONENTS]:
        parser.error(f"unknown component {', '.join(unknown)}; the components: {', '.join(COMPONENTS)}")
    if names and args.command not in ("start", "stop"):
        parser.error("components go with start and stop only")
    if args.command == "dotenv":
        print(dotenv(), end="")
        return 0
    cluster = Native.from_environment()
    if args.command == "start":
        return cluster.start_components(names) if names else cluster.start()
    if args.command == "stop":
        return cluster.stop_components(names, kill=args.kill) if names else cluster.stop()
    if args.command == "status":
        running = cluster.running()
        for name in ["sandbox", *COMPONENTS]:
            print(f"{name:24} {'running (' + str(running[name]) + ')' if name in running else 'stopped'}")
        return 0 if running else 3
    cluster.print_env()
    return 0


if __name__ == "__main__":
    sys.exit(main())
