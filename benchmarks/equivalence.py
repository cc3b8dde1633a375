"""Check that the three renderings of the benchmark shape behave the same: ``python -m benchmarks.equivalence``.

Writes workflow 0 of the shape three ways into a temporary folder, runs each with ``dag.test()``
against a throw-away SQLite metadata DB, once with a host that resolves (fast path) and once with one
that does not (slow path), and compares the task states and the final step's outputs. Not part of
``make bench`` (it runs tasks; it measures nothing); run it after changing ``shape.py`` or a renderer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import shape, workloads
from benchmarks.harness import PYTHON, REPO, Context

# dag.test() cannot answer an approval and there is no REST service here: check the shape with the
# bash steps those replaced (approval and REST steps are covered by tests/test_approvals.py and
# tests/test_rest_tasks.py; approvals are measured in section 3).
shape.INCLUDE_APPROVAL = False
shape.INCLUDE_REST = False

CASES = {
    "reachable": {"hostname": "localhost", "mode": "full"},
    "unreachable": {"hostname": "no-such-host.invalid", "mode": "quick"},
}
#: tasks every rendering has (Autopilot adds check._inputs / check._outputs)
COMMON = (
    "record",
    "prepare",
    "check.probe",
    "check.summarize",
    "route",
    "fast_path",
    "slow_path",
    "join",
    "transform",
    "report",
    "finish",
)


def child(dags: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dags)
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    out: dict = {}
    for dag_id in sorted(bag.dags):
        out[dag_id] = {}
        for case, conf in CASES.items():
            run = bag.dags[dag_id].test(run_conf=conf)
            tis = {ti.task_id: ti for ti in run.get_task_instances()}
            states = {t: str(getattr(tis[t].state, "value", tis[t].state)) for t in COMMON if t in tis}
            finish = tis["finish"].xcom_pull(task_ids="finish") if "finish" in tis else None
            out[dag_id][case] = {"run": str(getattr(run.state, "value", run.state)), "states": states, "finish": finish}
    print(json.dumps(out, default=str))


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="autopilot-equivalence-"))
    try:
        ctx = Context(tmp=tmp, quick=True, sizes=(1,), repeat=1)
        dags = tmp / "dags"
        loads = {c: workloads.write(c, tmp / c, 1) for c in workloads.CONTENDERS}
        ap = loads["autopilot"]
        assert ap.definitions is not None
        env = ctx.child_env(pythonpath=loads["dagfactory"].pythonpath)
        home = Path(env["AIRFLOW_HOME"])
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        sync = "import sys; from pathlib import Path; from dag_factory.stubs import sync_stubs; sync_stubs(Path(sys.argv[1]), Path(sys.argv[2]))"
        subprocess.run(
            [PYTHON, "-c", sync, str(ap.definitions), str(dags / "autopilot")], env=env, check=True, cwd=REPO
        )
        (dags / "python").mkdir(parents=True)
        shutil.copy(loads["python"].probe_file, dags / "python" / loads["python"].probe_file.name)
        (dags / "dagfactory").mkdir(parents=True)
        shutil.copy(loads["dagfactory"].probe_file, dags / "dagfactory" / loads["dagfactory"].probe_file.name)
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([PYTHON, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True, cwd=REPO)
        proc = subprocess.run(
            [PYTHON, "-m", "benchmarks.equivalence", "--child", str(dags)],
            env=env,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        if proc.returncode:
            print(proc.stderr[-4000:], file=sys.stderr)
            return 1
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ok = True
    for case in CASES:
        print(f"case {case}: {CASES[case]}")
        reference = None
        for dag_id, by_case in results.items():
            r = by_case[case]
            print(f"  {dag_id:<12} run={r['run']:<8} finish={r['finish']}")
            print(f"  {'':<12} {r['states']}")
            comparable = (r["run"], r["states"], r["finish"])
            if reference is None:
                reference = comparable
            elif comparable != reference:
                ok = False
    print("EQUIVALENT" if ok else "DIFFERENT: the renderings do not behave the same")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
