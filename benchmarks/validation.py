"""4. Validation: ``autopilot validate`` over a folder of definitions, in a fresh process each time.

The folder is the Autopilot workload of the parse-cost benchmark (N workflows of the benchmark shape
plus the one Function they use), so every file is valid. Reported: the wall time of the whole
command (median of ``repeat``), ms per definition, and the fixed cost (the same command over a folder
with one workflow and the function) so the per-definition cost can be read without start-up.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from benchmarks import workloads
from benchmarks.harness import PYTHON, Context, run_command


def _validate(ctx: Context, folder: Path) -> tuple[list[float], dict]:
    env = ctx.child_env()
    times, report = [], {}
    argv = [PYTHON, "-m", "autopilot_provider.cli", "validate", "--format", "json", str(folder)]
    for _ in range(ctx.repeat):
        elapsed, proc = run_command(argv, env)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"autopilot validate failed ({proc.returncode}): {proc.stderr[-2000:]}")
        report = json.loads(proc.stdout)
        times.append(elapsed)
    return times, report


def run(ctx: Context) -> dict:
    n = max(ctx.sizes)
    folder = ctx.tmp / f"n{n}" / "autopilot" / "definitions"
    if not folder.exists():  # parse cost skipped: write the definitions here
        workloads.write("autopilot", ctx.tmp / f"validation-n{n}", n)
        folder = ctx.tmp / f"validation-n{n}" / "definitions"
    one = ctx.tmp / "validation-one" / "definitions"
    if not one.exists():  # one workflow and everything it uses (function, contacts, api and its document)
        shutil.copytree(
            folder, one, ignore=lambda _, names: [x for x in names if x.startswith("wf_") and x != "wf_0000.yaml"]
        )

    ctx.note(f"validation: autopilot validate over {n} workflows (+ the shared function, contacts and api)")
    _validate(ctx, one)  # warm the bytecode and page cache: not counted
    times, report = _validate(ctx, folder)
    ctx.note("validation: fixed cost (one workflow)")
    base_times, one_report = _validate(ctx, one)
    wall = statistics.median(times)
    base = statistics.median(base_times)
    files = report.get("files", 0)
    errors = len(report.get("errors", []))
    return {
        "command": "autopilot validate --format json <folder>  (python -m autopilot_provider.cli)",
        "definitions": files,
        "workflows": n,
        "errors_reported": errors,
        "repeat": ctx.repeat,
        "wall_s": wall,
        "wall_s_min": min(times),
        "wall_s_max": max(times),
        "ms_per_definition": wall / files * 1000 if files else None,
        "fixed_cost_s": base,
        "marginal_ms_per_definition": (
            (wall - base) / (files - one_report.get("files", 0)) * 1000 if files > one_report.get("files", 0) else None
        ),
        "raw_s": [round(t, 4) for t in times],
        "raw_fixed_s": [round(t, 4) for t in base_times],
        "problems": [
            f"validate reported {count} error(s) on the generated definitions ({what})"
            for count, what in ((errors, "all"), (len(one_report.get("errors", [])), "one workflow"))
            if count
        ],
    }
