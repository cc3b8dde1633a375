"""One measurement in a fresh interpreter: ``python -m benchmarks.child COMMAND ...``.

The parent (``benchmarks.run``) starts one process per measurement so that every contender pays the
same imports; this module prints one JSON object on its last stdout line. Timings:

* ``import_s``: importing Airflow's DagBag (the same for everyone) — or the code under test;
* ``work_s``: the measured call itself (a DagBag, a ``sync_stubs``), after those imports.

Commands::

    dagbag FOLDER [--structure DAG_ID] DagBag(FOLDER) as the dag-processor would (safe mode); with
                                       --structure, after the timing, also the structure of DAG_ID
                                       (operator kind, upstream set, trigger rule per task)
    taskstart FILE DAG_ID [--init DEFINITIONS]
                                       what a worker does to start a task: [bundle.initialize()], then
                                       BundleDagBag(FILE, safe_mode=False, load_op_links=False); the
                                       parent sets _AIRFLOW_PARSING_CONTEXT_DAG_ID / _TASK_ID
    stubs DEFINITIONS STUBS            sync_stubs(DEFINITIONS, STUBS)
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def _bag_summary(bag) -> dict:
    errors = dict(bag.import_errors)
    return {
        "dags": len(bag.dags),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "import_errors": len(errors),
        "first_error": next(iter(errors.values()), "")[-2000:] if errors else "",
    }


#: operator classes (any class in the task's MRO) → the kind of step they are, checked in this order
_KINDS = (
    ("approval", ("HITLOperator",)),
    ("rest", ("HttpOperator", "OpenApiTaskOperator")),
    ("branch", ("BranchMixIn", "BaseBranchOperator")),
    ("bash", ("BashOperator",)),
    ("python", ("PythonOperator",)),
    ("empty", ("EmptyOperator",)),
)


def operator_kind(task) -> str:
    """What a task does, independent of who wrote it: Autopilot's ``ScriptOperator`` is ``bash`` or
    ``python`` by its language; otherwise by the operator classes in ``_KINDS``, else the class name."""
    names = {cls.__name__ for cls in type(task).__mro__}
    if "ScriptOperator" in names:
        return str(getattr(task, "language", "script"))
    for kind, classes in _KINDS:
        if names.intersection(classes):
            return kind
    return type(task).__name__


def dag_structure(dag) -> dict:
    """Per task: operator kind and class, upstream task ids, trigger rule."""
    return {
        task.task_id: {
            "kind": operator_kind(task),
            "class": type(task).__name__,
            "upstream": sorted(task.upstream_task_ids),
            "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
        }
        for task in dag.tasks
    }


def cmd_dagbag(folder: str, structure_of: str | None = None) -> dict:
    from airflow.dag_processing.dagbag import BundleDagBag

    t1, c1 = time.perf_counter(), time.process_time()
    bag = BundleDagBag(dag_folder=folder, bundle_path=Path(folder), bundle_name="bench")
    t2, c2 = time.perf_counter(), time.process_time()
    result = {"import_s": t1 - T0, "work_s": t2 - t1, "work_cpu_s": c2 - c1, **_bag_summary(bag)}
    if structure_of is not None:
        dag = bag.dags.get(structure_of)
        result["structure"] = dag_structure(dag) if dag is not None else None
    return result


def cmd_taskstart(path: str, dag_id: str, init: str | None) -> dict:
    from airflow.dag_processing.dagbag import BundleDagBag

    t1 = time.perf_counter()
    init_s = 0.0
    bundle_path = Path(path).parent
    if init:
        from dag_factory.bundle import AutopilotDagBundle

        # the parent points [dag_processor] dag_bundle_storage_path at the workload, so this bundle
        # serves the stubs already generated there (a worker's bundle.initialize() re-syncs them if the
        # definitions changed since)
        bundle = AutopilotDagBundle(name="autopilot", definitions=init)
        if Path(bundle.path).resolve() != bundle_path.resolve():
            raise SystemExit(f"bundle path {bundle.path} is not {bundle_path}")
        bundle.initialize()
        init_s = time.perf_counter() - t1
    t2, c2 = time.perf_counter(), time.process_time()
    bag = BundleDagBag(
        dag_folder=path, safe_mode=False, load_op_links=False, bundle_path=bundle_path, bundle_name="bench"
    )
    t3, c3 = time.perf_counter(), time.process_time()
    summary = _bag_summary(bag)
    summary["found"] = dag_id in bag.dags
    return {"import_s": t1 - T0, "init_s": init_s, "work_s": t3 - t2, "work_cpu_s": c3 - c2, **summary}


def cmd_stubs(definitions: str, stubs: str) -> dict:
    from dag_factory.stubs import sync_stubs

    t1, c1 = time.perf_counter(), time.process_time()
    project = sync_stubs(Path(definitions), Path(stubs))
    t2, c2 = time.perf_counter(), time.process_time()
    return {"import_s": t1 - T0, "work_s": t2 - t1, "work_cpu_s": c2 - c1, "files": len(project.index())}


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "dagbag":
        result = cmd_dagbag(args[0], args[args.index("--structure") + 1] if "--structure" in args else None)
    elif command == "taskstart":
        init = args[args.index("--init") + 1] if "--init" in args else None
        result = cmd_taskstart(args[0], args[1], init)
    elif command == "stubs":
        result = cmd_stubs(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {command!r}")
    result["total_s"] = time.perf_counter() - T0
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
