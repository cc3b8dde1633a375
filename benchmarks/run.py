"""Run the Autopilot benchmarks: ``python -m benchmarks.run [--quick]``.

Prints a table and writes ``benchmarks/results/bench-<UTC time>[-quick].json`` (machine description
included). Generated workloads live in a temporary folder that is removed afterwards (``--keep``
keeps it). See ``benchmarks/README.md`` for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import approvals, parse_cost, run_start, validation
from benchmarks.harness import Context, loadavg, machine
from benchmarks.shape import SHAPE
from benchmarks.workloads import CONTENDERS, LABELS

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("parse", "run_start", "approvals", "validation")
FULL_SIZES = (100, 1000)
QUICK_SIZES = (20, 100)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: N={'/'.join(map(str, QUICK_SIZES))}, 1 repetition"
    )
    parser.add_argument("--sizes", help="comma-separated workflow counts (default 100,1000; quick 20,100)")
    parser.add_argument("--repeat", type=int, help="fresh processes per measurement (default 3; quick 1)")
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--output", help="results file (default benchmarks/results/bench-<time>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the generated workloads (path printed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    repeat = args.repeat or (1 if args.quick else 3)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown or len(sizes) < 2 or repeat < 1:
        print(f"bad arguments: sections {sorted(unknown)}, sizes {sizes} (need two), repeat {repeat}", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="autopilot-bench-"))
    ctx = Context(tmp=tmp, quick=args.quick, sizes=tuple(sorted(sizes)), repeat=repeat)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    results: dict = {
        "benchmark": "autopilot",
        "format": 1,
        "mode": "quick" if args.quick else "full",
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "shape": SHAPE,
        "sizes": list(ctx.sizes),
        "repeat": repeat,
    }
    try:
        if "parse" in only:
            results["parse_cost"] = parse_cost.run(ctx)
        if "run_start" in only:
            results["run_start"] = run_start.run(ctx)
        if "approvals" in only:
            results["approvals"] = approvals.run(ctx)
        if "validation" in only:
            results["validation"] = validation.run(ctx)
    finally:
        results["duration_s"] = round(time.perf_counter() - t0, 1)
        results["machine"]["load_average_at_end"] = loadavg()
        results["log"] = ctx.log
        if args.keep:
            print(f"workloads kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    out = (
        Path(args.output)
        if args.output
        else RESULTS / (f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if args.quick else ''}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    print(render(results))
    print(f"\nresults: {out}")
    return 0


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f}"


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:,.2f}"


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}×"


def render(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"Autopilot benchmarks — {r['mode']} run, {r['started']}, {r.get('duration_s', '?')} s",
        f"machine: {m['cpu_model']}, {m['cores_usable']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
        f"Airflow {m['airflow']}, dag-factory {m['packages'].get('dag-factory')}; "
        f"load average {m.get('load_average_at_start')} → {m.get('load_average_at_end')}",
        f"shape: {r['shape']}",
        f"statistic: median of {r['repeat']} fresh process(es) per cell",
    ]
    if r["mode"] == "quick":
        lines.append("QUICK RUN: small N and one repetition — a smoke test, not a result")
    pc = r.get("parse_cost")
    if pc:
        lines += _render_parse(pc)
    for key, title in (("run_start", "2. Run start throughput"), ("approvals", "3. Approvals latency / load")):
        if key in r:
            lines += ["", title, f"  {r[key]['message']}"]
    v = r.get("validation")
    if v:
        lines += [
            "",
            "4. Validation — autopilot validate, fresh process",
            f"  {v['definitions']} definitions ({v['workflows']} workflows + function): {_s(v['wall_s'])} s wall, "
            f"{v['ms_per_definition']:.2f} ms/definition; fixed cost {_s(v['fixed_cost_s'])} s, "
            f"marginal {v['marginal_ms_per_definition']:.2f} ms/definition; errors reported: {v['errors_reported']}",
        ]
    problems = (pc or {}).get("problems", []) + (v or {}).get("problems", [])
    if problems:
        lines += ["", "PROBLEMS (these cells are not valid measurements):"] + [f"  ! {p}" for p in problems]
    return "\n".join(lines)


def _render_parse(pc: dict) -> list[str]:
    lines = ["", "1. Parse cost — DagBag load (seconds of DagBag(); Airflow import excluded)"]
    base = pc["import_baseline"]
    lines.append(
        f"  import baseline, empty DagBag: process {_s(base['process_s'])} s "
        f"(interpreter + Airflow import {_s(base['import_s'])} s, DagBag {_ms(base['work_s'])} ms)"
    )
    header = f"  {'N':>6}  {'contender':<22}{'DagBag s':>10}{'ms/workflow':>13}{'CPU s':>9}{'process s':>11}{'tasks/DAG':>11}"
    lines.append(header)
    for n, by in pc["dagbag"].items():
        for c in CONTENDERS:
            d = by[c]
            lines.append(
                f"  {n:>6}  {LABELS[c]:<22}{_s(d['work_s']):>10}{d['ms_per_workflow']:>13.2f}"
                f"{_s(d['work_cpu_s']):>9}{_s(d['process_s']):>11}{d['tasks_per_dag']:>11.0f}"
            )
        ra = pc["ratios"][n]
        lines.append(
            f"  {'':>6}  ratios: Autopilot/Python {_x(ra['autopilot_vs_python'])} (CPU {_x(ra['autopilot_vs_python_cpu'])}), "
            f"dag-factory/Autopilot {_x(ra['dagfactory_vs_autopilot'])} (CPU {_x(ra['dagfactory_vs_autopilot_cpu'])}), "
            f"dag-factory/Python {_x(ra['dagfactory_vs_python'])}"
        )
    lines.append("")
    lines.append("  stub generation, sync_stubs (ms, fresh process, imports excluded):")
    for n, st in pc["stub_generation"].items():
        lines.append(
            f"  {n:>6}  cold {_ms(st['cold']['work_s'])} ms   warm {_ms(st['warm']['work_s'])} ms   "
            f"({st['warm'].get('files')} files; module import {_ms(st['warm']['import_s'])} ms)"
        )
    lines.append("")
    sizes = [str(n) for n in pc["sizes"]]
    lines.append("  task start — parse the one file holding the DAG, parsing context set (ms)")
    lines.append(f"  {'contender':<34}" + "".join(f"{'N=' + n:>10}" for n in sizes) + f"{'growth':>10}")
    ts = pc["task_start"]
    for v in (*CONTENDERS, "autopilot_with_bundle_init"):
        key = ts[v]["growth_of"]
        label = LABELS.get(v, "Autopilot + bundle.initialize()")
        lines.append(
            f"  {label:<34}" + "".join(f"{_ms(ts[v][n][key]):>10}" for n in sizes) + f"{_x(ts[v]['growth']):>10}"
        )
    lines.append("")
    lines.append(
        "  targets" + (" (quick run: indicative only)" if pc["targets"] and pc["targets"][0]["indicative_only"] else "")
    )
    for t in pc["targets"]:
        mark = "PASS" if t["pass"] else "FAIL"
        lines.append(
            f"  [{mark}] {t['what']} at {t['at']}: target {t['op']} {t['target']}×, measured {_x(t['measured'])}"
        )
    lines.append("")
    lines += [f"  note: {note}" for note in pc["notes"]]
    return lines


if __name__ == "__main__":
    sys.exit(main())
