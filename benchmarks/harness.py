"""Shared plumbing: the run context, fresh-process measurements, medians, the machine description."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

#: Packages whose versions go into every results file.
PACKAGES = (
    "airflow-provider-autopilot",
    "apache-airflow",
    "apache-airflow-core",
    "apache-airflow-task-sdk",
    "apache-airflow-providers-standard",
    "apache-airflow-providers-http",
    "dag-factory",
    "pydantic",
    "pyyaml",
    "jinja2",
    "jsonschema",
)

NOT_MEASURED = "not measured yet"


@dataclass
class Context:
    """What every benchmark module gets: where to write, how often to repeat, how to run a child."""

    tmp: Path
    quick: bool
    sizes: tuple[int, ...]
    repeat: int
    log: list[str] = field(default_factory=list)

    def child_env(
        self, *, storage: Path | None = None, pythonpath: list[str] | None = None, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        """A clean Airflow environment for a measurement process (nothing from the user's setup)."""
        home = self.tmp / "airflow_home"
        (home / "dags").mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        # Bytecode is cached, as in a deployment — for every module alike (the repository's own
        # packages included), in a cache under the temp folder so nothing is written to the repo.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.tmp / "pycache")
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            # measure the whole parse: the default 30 s per-file timeout would kill dag-factory's
            # single loader file at N=1000 (reported separately)
            AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="0",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",
            AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH=str(storage or (self.tmp / "bundles")),
            AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
            DO_NOT_TRACK="1",
            SCARF_NO_ANALYTICS="true",
            PYTHONHASHSEED="0",
        )
        paths = [str(REPO), *(pythonpath or [])]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        if extra:
            env.update(extra)
        return env

    def note(self, message: str) -> None:
        self.log.append(message)
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_child(args: list[str], env: dict[str, str], *, module: str = "benchmarks.child", timeout: float = 900) -> dict:
    """Run ``python -m module args`` in a fresh process; its last stdout line is a JSON object.

    Adds ``process_s``: the wall time of the whole process as seen from here (interpreter start,
    imports, work, exit)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [PYTHON, "-m", module, *args], env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    result["process_s"] = elapsed
    return result


def run_command(
    argv: list[str], env: dict[str, str], *, timeout: float = 900
) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command in a fresh process; returns (wall seconds, completed process)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - start, proc


def summarize(samples: list[dict], keys: tuple[str, ...] = ("work_s", "work_cpu_s", "import_s", "process_s")) -> dict:
    """Medians (and min/max) of the timing keys over samples; the last sample's other facts."""
    out: dict = {"samples": len(samples)}
    for key in keys:
        values = [s[key] for s in samples if key in s]
        if values:
            out[key] = statistics.median(values)
            out[f"{key}_min"] = min(values)
            out[f"{key}_max"] = max(values)
    facts = {k: v for k, v in samples[-1].items() if k not in keys and not k.endswith("_s")}
    out.update(facts)
    out["raw"] = [
        {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items() if k != "first_error"} for s in samples
    ]
    return out


def machine() -> dict:
    """The machine and software the numbers were measured on."""
    info: dict = {
        "cpu_model": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "airflow": _version("apache-airflow"),
        "packages": {name: _version(name) for name in PACKAGES},
        "load_average_at_start": _loadavg(),
        "git": _git(),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git() -> dict:
    """Read-only: the commit measured and whether the tree had local changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        status = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip() or None, "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def loadavg() -> list[float] | None:
    return _loadavg()
