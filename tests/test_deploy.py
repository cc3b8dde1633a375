"""docker-compose.yaml, the Dockerfile and the Traefik routes, checked offline: a real Compose
implementation (`docker-compose config`: Debian's docker-compose package, see scripts/ensure-compose.sh)
resolves and validates the file with the documented .env.example, and every Airflow service must run
the command and get the environment that scripts/cluster.py describes — the topology `make cluster`
runs natively — with only the site's hosts, paths, ports and secrets differing."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from scripts import cluster
from tests.conftest import REPO

# reads files and runs docker-compose; no metadata database
pytestmark = pytest.mark.db_independent

COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    message = "no Compose implementation (scripts/ensure-compose.sh installs Debian's docker-compose)"
    if os.environ.get("AUTOPILOT_REQUIRE_E2E"):
        pytest.fail(message)
    pytest.skip(message)


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_compose_command(), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE)]
        + ["--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AUTOPILOT", "POSTGRES"))},
    )


def read_dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            values[key.strip()] = value
    return values


@pytest.fixture(scope="module")
def resolved() -> dict:
    """docker-compose.yaml as Compose resolves it with .env.example (anchors merged, env_file read,
    ${…} substituted)."""
    result = compose_config(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _command(service: dict) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # Compose 2 may print KEY=VALUE items
        env = dict(item.split("=", 1) for item in env)
    # Compose prints a literal $ as $$ (escaped for a later interpolation)
    return {key: str(value).replace("$$", "$") for key, value in env.items()}


def test_compose_file_is_valid_with_the_documented_env_example(resolved):
    services = resolved["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "mailpit",
        "traefik",
        cluster.INIT,
        *cluster.COMPONENTS,
    }
    assert set(resolved["volumes"]) == {"postgres-db-volume", "airflow-logs", "airflow-auth"}


def test_compose_refuses_to_start_without_the_secrets(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose_config(empty)
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr, result.stderr


def test_every_airflow_service_runs_what_the_native_cluster_runs(resolved):
    services = resolved["services"]
    site = cluster.compose_site(read_dotenv(ENV_EXAMPLE))
    for name, argv in cluster.COMPONENTS.items():
        service = services[name]
        assert _command(service) == argv, name
        expected = {**site.environment(name)}
        if name.startswith("airflow-worker"):
            expected.update(cluster.COMPOSE_ONLY)
        assert _environment(service) == expected, name
        assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
        assert service["restart"] == "always" and service["healthcheck"]["test"], name

    init = services[cluster.INIT]
    assert _command(init) == ["bash", "/opt/autopilot/init.sh"]  # deploy/init.sh, copied by the Dockerfile
    init_env = _environment(init)
    assert {k: v for k, v in init_env.items() if k not in cluster.INIT_COMPOSE_ONLY} == site.environment(cluster.INIT)
    assert init_env["AUTOPILOT_PASSWORD_ADMIN"] == read_dotenv(ENV_EXAMPLE)["AUTOPILOT_ADMIN_PASSWORD"]


def test_native_and_compose_differ_only_in_the_site_settings(tmp_path):
    native = cluster.Native(
        home=tmp_path,
        port=8011,
        database="autopilot_cluster",
        redis_db=5,
        queue="default",
        log_ports=cluster.DEFAULT_LOG_PORTS,
        definitions=REPO / "definitions",
        sandbox=False,
    ).site()
    compose = cluster.compose_site(read_dotenv(ENV_EXAMPLE))
    for name in [cluster.INIT, *cluster.COMPONENTS]:
        here, there = native.environment(name), compose.environment(name)
        assert set(here) - {"AIRFLOW_CONN_SMTP_DEFAULT"} == set(there) - {"AIRFLOW_CONN_SMTP_DEFAULT"}, name
        differing = {key for key in here if key in there and here[key] != there[key]}
        assert differing <= cluster.SITE_KEYS, differing - cluster.SITE_KEYS
        # the settings of deploy/airflow.env reach every component unchanged, in both places
        for key, value in cluster.common_env().items():
            assert here[key] == there[key] == value, key
    assert compose.environment("airflow-worker-1")["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # two workers on one host: their own log-server ports, none the default 8793/8794
    ports = [native.environment(n)[cluster.LOG_SERVERS[n]] for n in cluster.LOG_SERVERS]
    assert len(set(ports)) == 3 and not {"8793", "8794"} & set(ports)


def test_definitions_are_mounted_from_the_host_folder_in_every_airflow_service(resolved):
    for name in [cluster.INIT, *cluster.COMPONENTS]:
        service = resolved["services"][name]
        volumes = service["volumes"]
        # Compose 1 prints "host:container:mode" strings, Compose 2 long-form mappings
        mounts = {(v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2]) for v in volumes}
        assert (str(REPO / "definitions"), "/opt/airflow/definitions") in mounts, (name, mounts)
        assert _environment(service)["AIRFLOW__AUTOPILOT__DEFINITIONS_DIR"] == "/opt/airflow/definitions"
        assert service["user"] == "50000:0"


def test_traefik_routes_one_port_to_airflow_autopilot_and_mailpit(resolved):
    services = resolved["services"]
    traefik = services["traefik"]
    [port] = traefik["ports"]
    published = (port["published"], port["target"]) if isinstance(port, dict) else tuple(port.split(":"))
    assert tuple(map(int, published)) == (8011, 8011)
    assert "--entrypoints.web.address=:8011" in traefik["command"]
    routes = yaml.safe_load((REPO / "deploy/traefik/dynamic.yaml").read_text())["http"]
    backends = {name: service["loadBalancer"]["servers"][0]["url"] for name, service in routes["services"].items()}
    rules = {router["rule"]: backends[router["service"]] for router in routes["routers"].values()}
    api_port = _environment(services["airflow-apiserver"])["AIRFLOW__API__PORT"]
    assert rules == {
        "PathPrefix(`/`)": f"http://airflow-apiserver:{api_port}",
        "PathPrefix(`/autopilot`)": f"http://airflow-apiserver:{api_port}",
        "PathPrefix(`/mailpit`)": "http://mailpit:8025",
    }
    assert [r["priority"] for r in routes["routers"].values()] == sorted(
        (r["priority"] for r in routes["routers"].values()), reverse=True
    )  # the longer prefixes win
    # Mailpit serves its UI under the routed prefix, and takes the SMTP connection's mails
    assert services["mailpit"]["environment"]["MP_WEBROOT"] == "mailpit"
    smtp = _environment(services["airflow-scheduler"])["AIRFLOW_CONN_SMTP_DEFAULT"]
    assert '"host": "mailpit", "port": 1025' in smtp and 1025 in services["mailpit"]["expose"]


def test_env_example_documents_every_variable_the_compose_file_reads():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))  # not $${escaped}
    documented = read_dotenv(ENV_EXAMPLE)
    assert used == set(documented), used ^ set(documented)


def test_dotenv_fills_every_secret_and_compose_accepts_it(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(cluster.dotenv())
    values = read_dotenv(env_file)
    assert "change-me" not in values.values()
    assert all(values[key] for key in cluster.SECRET_KEYS)
    from cryptography.fernet import Fernet

    Fernet(values["AIRFLOW__CORE__FERNET_KEY"])  # a valid key
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr


def test_dockerfile_builds_on_the_airflow_the_venv_has_and_installs_the_wheel():
    text = (REPO / "Dockerfile").read_text()
    airflow = importlib.metadata.version("apache-airflow")
    assert f"ARG AIRFLOW_VERSION={airflow}\n" in text
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"FROM apache/airflow:${{AIRFLOW_VERSION}}-python{python}\n" in text
    # the wheel `make dist` writes: dist/<normalised name>-<version>-py3-none-any.whl
    name = importlib.metadata.metadata("airflow-provider-autopilot")["Name"].replace("-", "_")
    assert f"COPY --chown=airflow:0 dist/{name}-*.whl /tmp/autopilot/" in text
    assert f"/tmp/autopilot/{name}-*.whl" in text
    assert f"!dist/{name}-*.whl" in (REPO / ".dockerignore").read_text()
    # the distributed topology's providers, with the celery pin of setup.cfg's celery extra
    celery_extra = importlib.metadata.metadata("airflow-provider-autopilot").get_all("Requires-Dist")
    pins = [r.split(";")[0].strip() for r in celery_extra if 'extra == "celery"' in r]
    assert pins == ["apache-airflow-providers-celery", "celery[redis]<5.7,>=5.5"]
    for requirement in ("apache-airflow-providers-celery", '"celery[redis]>=5.5,<5.7"'):
        assert requirement in text
    assert "apache-airflow-providers-postgres" in text
    # the init script the compose file runs is the one the native cluster runs
    assert "COPY deploy/init.sh /opt/autopilot/init.sh" in text


def test_init_script_migrates_airflow_before_autopilot():
    text = cluster.INIT_SCRIPT.read_text()
    assert text.index("airflow db migrate\n") < text.index("autopilot db migrate\n")
    result = subprocess.run(["bash", "-n", str(cluster.INIT_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- Kubernetes: the official chart's values -------------------------------------------------------

HELM_VALUES = REPO / "deploy" / "helm" / "values.yaml"
#: settings of deploy/airflow.env that Kubernetes sets otherwise, and why
HELM_OWN = {
    # real teams sign in through FAB there (the chart's default for Airflow 3, its createUserJob);
    # the SimpleAuthManager's users and password file fit one API server, not replicas
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS",
}


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def test_helm_values_run_the_image_and_the_settings_of_the_other_deployments(helm_values):
    # the image the Dockerfile builds: Autopilot's version on this Airflow
    assert helm_values["airflowVersion"] == importlib.metadata.version("apache-airflow")
    assert helm_values["defaultAirflowTag"] == importlib.metadata.version("airflow-provider-autopilot")
    config = helm_values["config"]
    for key, value in cluster.common_env().items():
        if key in HELM_OWN:
            continue
        if key == "AIRFLOW__CORE__EXECUTOR":  # the chart's own value, written into [core] executor
            assert helm_values["executor"] == value
            continue
        _, section, option = key.split("__", 2)
        assert config[section.lower()][option.lower()] == value, key
    assert config["core"]["auth_manager"].endswith("FabAuthManager")
    # the definitions: git-sync's checkout, served by the bundle and read by the API server
    git_sync = helm_values["dags"]["gitSync"]
    assert git_sync["enabled"] and git_sync["repo"]
    definitions = f"/opt/airflow/dags/repo/{git_sync['subPath']}"
    assert config["autopilot"]["definitions_dir"] == definitions
    assert config["dag_processor"]["dag_bundle_config_list"] == cluster.bundle_config(definitions)
    api = helm_values["apiServer"]
    [sidecar] = api["extraContainers"]
    assert f"--repo={git_sync['repo']}" in sidecar["args"] and f"--ref={git_sync['branch']}" in sidecar["args"]
    [mount] = api["extraVolumeMounts"]
    assert mount["mountPath"] == "/opt/airflow/dags" and "--link=repo" in sidecar["args"]
    # the UI through an ingress; Airflow's tables, then Autopilot's, by the same script as compose
    assert helm_values["ingress"]["apiServer"]["enabled"] and helm_values["ingress"]["apiServer"]["hosts"]
    assert helm_values["migrateDatabaseJob"]["args"] == ["bash", "/opt/autopilot/init.sh"]
    assert helm_values["workers"]["replicas"] == 2 and helm_values["dagProcessor"]["enabled"]


def test_helm_values_match_the_charts_values_schema(helm_values):
    """The chart's own values.schema.json (chart/values.schema.json of apache/airflow) is not in any
    package registry this project installs from (PyPI, npm, Debian): the chart is published only on
    Airflow's Helm repository and in Airflow's git repository. So this check runs where a copy is
    given (AUTOPILOT_HELM_SCHEMA=path, e.g. from `helm pull apache-airflow/airflow --untar`)."""
    path = os.environ.get("AUTOPILOT_HELM_SCHEMA")
    if not path:
        pytest.skip("set AUTOPILOT_HELM_SCHEMA to the Airflow chart's values.schema.json to check the values")
    schema = json.loads(Path(path).read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(helm_values), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
