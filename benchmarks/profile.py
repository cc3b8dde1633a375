"""Where does Autopilot's parse time go? ``python -m benchmarks.profile [--n 1000] [--task-start]``.

Writes the benchmark's Autopilot workload (N workflows of the shape) to a temporary folder, generates
the stubs, then runs cProfile in a fresh process with the benchmark's environment over either the
whole DagBag or — with ``--task-start`` — the one stub a worker parses (parsing context set). Prints
the top functions by cumulative and by own time, and own time grouped by package. cProfile slows
everything down (roughly 2–3×); read shares, not seconds. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import workloads
from benchmarks.harness import PYTHON, REPO, Context

GROUPS = (
    ("dag_factory/", "dag_factory (Autopilot factory: project, loader, builder, compilers)"),
    ("autopilot_provider/", "autopilot_provider (models, validation, templating, operators)"),
    ("/airflow/", "airflow (DAG/operator construction, DagBag)"),
    ("/pydantic", "pydantic"),
    ("/yaml/", "PyYAML"),
    ("/jinja2/", "jinja2"),
    ("/jsonschema", "jsonschema"),
    ("pathlib", "pathlib"),
    ("posix", "posix / os.path (stat, walk)"),
    ("json/", "json"),
    ("copy.py", "copy (deepcopy)"),
)


def child(folder: str, probe: str | None, out: str, top: int) -> None:
    import cProfile
    import pstats
    import time

    from airflow.dag_processing.dagbag import BundleDagBag

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    if probe:
        bag = BundleDagBag(
            dag_folder=probe, safe_mode=False, load_op_links=False, bundle_path=Path(folder), bundle_name="bench"
        )
    else:
        bag = BundleDagBag(dag_folder=folder, bundle_path=Path(folder), bundle_name="bench")
    profiler.disable()
    elapsed = time.perf_counter() - start
    profiler.dump_stats(out)
    print(
        f"profiled: {len(bag.dags)} DAG(s), {len(bag.import_errors)} import error(s), {elapsed:.2f} s under cProfile\n"
    )
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    own: dict[str, float] = {}
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        label = next((name for key, name in GROUPS if key in filename), "other")
        if filename.startswith("~") or filename == "<built-in>":
            label = "builtins (C functions: stat, isinstance, ...)"
        own[label] = own.get(label, 0.0) + tottime
    print("own time by package:")
    for label, seconds in sorted(own.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds / total * 100:5.1f}%  {seconds:8.2f} s  {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--task-start", action="store_true", help="profile the parse of one stub on a worker")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--cold", action="store_true", help="the first parse after a change (no cached checks) instead of a re-parse"
    )
    parser.add_argument("--output", default=None, help="where to keep the .prof file (default: discarded)")
    parser.add_argument("--child", nargs=4, metavar=("FOLDER", "PROBE", "OUT", "TOP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, probe, out, top = args.child
        child(folder, probe if probe != "-" else None, out, int(top))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="autopilot-profile-"))
    try:
        ctx = Context(tmp=tmp, quick=False, sizes=(args.n,), repeat=1)
        load = workloads.write("autopilot", tmp / "autopilot", args.n)
        assert load.definitions is not None
        env = ctx.child_env(storage=load.root / "bundles")
        sync = "from pathlib import Path; from dag_factory.stubs import sync_stubs; import sys; sync_stubs(Path(sys.argv[1]), Path(sys.argv[2]))"
        subprocess.run([PYTHON, "-c", sync, str(load.definitions), str(load.dag_folder)], env=env, check=True, cwd=REPO)
        subprocess.run(
            [PYTHON, "-m", "compileall", "-q", str(load.dag_folder)], check=True, capture_output=True, env=env
        )
        # fill the bytecode cache and the cache of passed checks (as the benchmark's warm-up does)
        subprocess.run(
            [PYTHON, "-m", "benchmarks.child", "dagbag", str(load.dag_folder)],
            env=env,
            check=True,
            cwd=REPO,
            capture_output=True,
        )
        if args.cold:
            from dag_factory.stubs import validated_dir

            shutil.rmtree(validated_dir(load.dag_folder), ignore_errors=True)
        extra = {}
        if args.task_start:
            extra = {
                "_AIRFLOW_PARSING_CONTEXT_DAG_ID": load.probe_dag_id,
                "_AIRFLOW_PARSING_CONTEXT_TASK_ID": load.probe_task_id,
            }
        env = ctx.child_env(storage=load.root / "bundles", extra=extra)
        out = args.output or str(tmp / "autopilot.prof")
        probe = str(load.probe_file) if args.task_start else "-"
        subprocess.run(
            [PYTHON, "-m", "benchmarks.profile", "--child", str(load.dag_folder), probe, out, str(args.top)],
            env=env,
            check=True,
            cwd=REPO,
        )
        if args.output:
            print(f"\nprofile kept in {args.output} (read with: python -m pstats {args.output})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
