"""Run the Autopilot benchmarks: ``python -m benchmarks.run [--quick]``.

Prints a table and writes ``benchmarks/results/bench-<UTC time>[-quick].json`` (machine description
included). Generated workloads live in a temporary folder that is removed afterwards (``--keep``
keeps it). A section that raises is recorded as ``{"status": "failed", ...}``; the others still run,
the table and the JSON are still written, and the exit status is then 1. See
``benchmarks/README.md`` for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import approvals, parse_cost, run_start, validation, waits
from benchmarks.harness import Context, loadavg, machine
from benchmarks.parse_cost import VARIANT_LABELS, VARIANTS, indicative_reasons
from benchmarks.shape import SHAPE
from benchmarks.workloads import CONTENDERS, LABELS

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("parse", "run_start", "approvals", "validation", "waits")
#: Issue 14: a signed webhook starts runs at least as fast as Airflow's own POST dagRuns.
WEBHOOK_TARGET = 1.0
#: --only name → (key in the results, the section's run())
RUNNERS = {
    "parse": ("parse_cost", parse_cost.run),
    "run_start": ("run_start", run_start.run),
    "approvals": ("approvals", approvals.run),
    "validation": ("validation", validation.run),
    "waits": ("waits", waits.run),
}
#: lines of a failed section's traceback kept in the results
TRACEBACK_LINES = 15
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
    reasons = indicative_reasons(ctx)
    results["indicative_only"] = bool(reasons)
    results["indicative_reasons"] = reasons
    failed: list[str] = []
    try:
        for section in SECTIONS:
            if section not in only:
                continue
            key, runner = RUNNERS[section]
            results[key] = run_section(ctx, section, runner)
            if results[key].get("status") == "failed":
                failed.append(section)
    finally:
        results["duration_s"] = round(time.perf_counter() - t0, 1)
        results["machine"]["load_average_at_end"] = loadavg()
        results["machine"]["postgresql"] = next(
            (
                results[k]["postgresql"]
                for k in ("run_start", "approvals", "waits")
                if (results.get(k) or {}).get("postgresql")
            ),
            None,
        )
        results["failed_sections"] = failed
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
    if failed:
        print(f"FAILED section(s): {', '.join(failed)} (see the table and the results file)", file=sys.stderr)
        return 1
    return 0


def run_section(ctx: Context, name: str, runner) -> dict:
    """Run one section; an exception becomes ``{"status": "failed", "message": ..., "traceback": [...]}``
    (the traceback's last lines) so that the other sections still run and the results are written."""
    try:
        return runner(ctx)
    except Exception as exc:  # noqa: BLE001 - recorded in the results, the run exits non-zero at the end
        lines = traceback.format_exc().rstrip().splitlines()[-TRACEBACK_LINES:]
        message = f"{type(exc).__name__}: {exc}".strip()
        ctx.note(f"section {name} FAILED: {message.splitlines()[0] if message else type(exc).__name__}")
        return {"status": "failed", "message": message[-2000:], "traceback": lines}


def _failed(title: str, section: dict) -> list[str]:
    """The table lines of a section that failed."""
    lines = ["", title, f"  FAILED: {section['message'].splitlines()[0] if section['message'] else ''}"]
    return lines + [f"  | {line}" for line in section.get("traceback", [])]


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
        f"Airflow {m['airflow']}, dag-factory {m['packages'].get('dag-factory')}, "
        f"providers standard {m['packages'].get('apache-airflow-providers-standard')} / "
        f"http {m['packages'].get('apache-airflow-providers-http')}; "
        f"load average {m.get('load_average_at_start')} → {m.get('load_average_at_end')}",
    ]
    if m.get("postgresql"):
        lines.append(f"PostgreSQL (sections 2, 3): {m['postgresql']}")
    lines += [
        f"shape: {r['shape']}",
        f"statistic: median of {r['repeat']} fresh process(es) per cell",
    ]
    if r["mode"] == "quick":
        lines.append("QUICK RUN: small N and one repetition — a smoke test, not a result")
    elif r.get("indicative_only"):
        lines.append(f"INDICATIVE ONLY ({', '.join(r['indicative_reasons'])}): not a result")
    pc = r.get("parse_cost")
    if pc and pc.get("status") == "failed":
        lines += _failed("1. Parse cost", pc)
        pc = None
    elif pc:
        lines += _render_parse(pc)
    if "run_start" in r:
        lines += _render_run_start(r["run_start"])
    if "approvals" in r:
        lines += _render_approvals(r["approvals"])
    v = r.get("validation")
    if v and v.get("status") == "failed":
        lines += _failed("4. Validation — autopilot validate, fresh process", v)
        v = None
    elif v:
        lines += [
            "",
            "4. Validation — autopilot validate, fresh process",
            f"  {v['definitions']} definitions ({v['workflows']} workflows + {v['definitions'] - v['workflows']} shared: function, contacts, api): {_s(v['wall_s'])} s wall, "
            f"{v['ms_per_definition']:.2f} ms/definition; fixed cost {_s(v['fixed_cost_s'])} s, "
            f"marginal {v['marginal_ms_per_definition']:.2f} ms/definition; errors reported: {v['errors_reported']}",
        ]
    if "waits" in r:
        lines += _render_waits(r["waits"])
    problems = (pc or {}).get("problems", []) + (v or {}).get("problems", [])
    problems += [f"section {name} failed — no measurements (see above)" for name in r.get("failed_sections", [])]
    for c, by in (r.get("run_start") or {}).get("by_concurrency", {}).items():
        for path in run_start.PATHS:
            d = by[path]
            if d["lost"] or d["duplicated"] or d["errors"]:
                problems.append(
                    f"run start c={c} {path}: {d['errors']} error(s) {d['statuses']}, {d['lost']} lost, "
                    f"{d['duplicated']} duplicated"
                )
    pending = (r.get("approvals") or {}).get("pending")
    if pending and pending["pending_reached"] < pending["pending_requested"]:
        problems.append(
            f"approvals: only {pending['pending_reached']} of {pending['pending_requested']} approvals were pending "
            "when the window was measured"
        )
    for dag_id, d in ((r.get("waits") or {}).get("by_contender") or {}).items():
        if d["deferred_reached"] < d["waiting_requested"]:
            problems.append(
                f"waits: only {d['deferred_reached']} of {d['waiting_requested']} {dag_id} waits were deferred"
            )
    if problems:
        lines += ["", "PROBLEMS (these cells are not valid measurements):"] + [f"  ! {p}" for p in problems]
    return "\n".join(lines)


def _render_waits(w: dict) -> list[str]:
    title = "5. Waits in time — M runs waiting until a moment, scheduler (4 slots) + triggerer on PostgreSQL"
    if w.get("status") == "failed":
        return _failed(title, w)
    lines = ["", title]
    if w.get("status") != "measured":
        return lines + [f"  {w['message']}"]
    lines.append(
        f"  {'contender':<34}{'deferred':>9}{'ramp s':>8}{'slots':>7}{'triggers':>9}"
        f"{'trg CPU %':>10}{'idle %':>8}{'trg RSS MiB':>12}{'growth':>8}"
    )
    labels = {waits.AUTOPILOT_DAG: "Autopilot wait: until", waits.AIRFLOW_DAG: "Airflow DateTimeSensorAsync"}
    for dag_id, d in w["by_contender"].items():
        t = d["waiting"]["processes"]["triggerer"]
        lines.append(
            f"  {labels.get(dag_id, dag_id):<34}{d['deferred_reached']:>9}{d['ramp_s']:>8.0f}"
            f"{d['waiting']['running_max']:>7}{d['waiting']['triggers_max']:>9}{d['triggerer_cpu_percent']:>10.1f}"
            f"{d['triggerer_cpu_percent_idle']:>8.1f}{t['rss_mib_max']:>12.0f}{d['triggerer_rss_growth_mib']:>8.0f}"
        )
    ra = w["ratios"]
    lines.append(
        f"  Autopilot/Airflow: triggerer CPU {_x(ra['triggerer_cpu'])}, triggerer RSS growth "
        f"{_x(ra['triggerer_rss_growth'])}, ramp {_x(ra['ramp'])} (informational)"
    )
    return lines


def _render_run_start(rs: dict) -> list[str]:
    title = "2. Run start — one api-server (1 worker) on PostgreSQL, no scheduler (runs stay queued)"
    if rs.get("status") == "failed":
        return _failed(title, rs)
    lines = ["", title]
    if rs.get("status") != "measured":
        return lines + [f"  {rs['message']}"]
    lines.append(
        f"  {'clients':>7}  {'path':<28}{'requests':>9}{'runs/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'created':>9}{'lost':>6}{'dup':>5}"
    )
    for c, by in rs["by_concurrency"].items():
        for path in run_start.PATHS:
            d = by[path]
            lines.append(
                f"  {c:>7}  {run_start.LABELS[path]:<28}{d['requests']:>9}{d['runs_per_s']:>9.1f}"
                f"{d['latency']['p50_ms']:>9.0f}{d['latency']['p99_ms']:>9.0f}{d['errors']:>8}"
                f"{d['runs_created']:>9}{d['lost']:>6}{d['duplicated']:>5}"
            )
        ra, rw = by["ratios"], by.get("webhook_ratios")
        lines.append(
            f"  {'':>7}  form/Airflow: throughput {_x(ra['throughput'])}, p50 latency {_x(ra['p50'])}, "
            f"p99 latency {_x(ra['p99'])}"
        )
        if rw:
            mark = "PASS" if (rw["throughput"] or 0) >= WEBHOOK_TARGET else "BELOW"
            lines.append(
                f"  {'':>7}  webhook/Airflow: throughput {_x(rw['throughput'])}, p50 latency {_x(rw['p50'])}, "
                f"p99 latency {_x(rw['p99'])}  [{mark}: target throughput >= {WEBHOOK_TARGET}×]"
            )
    return lines


def _render_approvals(ap: dict) -> list[str]:
    title = "3. Approvals — api-server + dag-processor + scheduler (LocalExecutor) + triggerer on PostgreSQL"
    if ap.get("status") == "failed":
        return _failed(title, ap)
    lines = ["", title]
    if ap.get("status") != "measured":
        return lines + [f"  {ap['message']}"]
    lat = ap["latency"]
    lines.append(
        f"  vote → next task started (s; {lat['autopilot']['vote_to_next_s']['n']} votes each; each vote "
        f"{ap['settle_s']:.0f} s after the task parked = resume grace {ap['resume_grace_s']:.0f} s + 5 s)"
    )
    lines.append(f"  {'':<38}{'median':>8}{'min':>8}{'max':>8}{'vote request ms':>17}")
    for kind, label in (
        ("autopilot", "Autopilot approval step (inbox vote)"),
        ("airflow", "Airflow ApprovalOperator (PATCH)"),
    ):
        v, q = lat[kind]["vote_to_next_s"], lat[kind]["vote_request_s"]
        lines.append(f"  {label:<38}{v['median']:>8.2f}{v['min']:>8.2f}{v['max']:>8.2f}{q['median'] * 1000:>17.0f}")
    lines.append(f"  {'':<38}ratio Autopilot/Airflow (medians): {_x(lat['ratio_median'])}")
    pend = ap["pending"]
    lines.append("")
    lines.append(
        f"  pending approvals: {pend['pending_reached']} of {pend['pending_requested']} reached awaiting_input in "
        f"{pend['ramp_s']:.0f} s; {ap['triggerer']}"
    )
    lines.append(f"  {'':<34}{'nothing pending':>18}{str(pend['pending_reached']) + ' pending':>18}")
    idle, busy = pend["idle"], pend["with_pending"]
    lines.append(f"  {'running task instances (max)':<34}{idle['running_max']:>18}{busy['running_max']:>18}")
    lines.append(f"  {'trigger rows (max)':<34}{idle['triggers_max']:>18}{busy['triggers_max']:>18}")
    for name in busy["processes"]:
        a, b = idle["processes"][name], busy["processes"][name]
        lines.append(f"  {name + ' CPU %':<34}{a['cpu_percent']:>18.1f}{b['cpu_percent']:>18.1f}")
        lines.append(f"  {name + ' RSS MiB (max)':<34}{a['rss_mib_max']:>18.0f}{b['rss_mib_max']:>18.0f}")
    for key, label in (("autopilot_inbox", "Autopilot inbox"), ("airflow_hitl_list", "Airflow hitlDetails list")):
        a, b = idle["inbox"][key], busy["inbox"][key]
        lines.append(
            f"  {label + ' p50/p99 ms':<34}{a['p50_ms']:>10.0f} /{a['p99_ms']:>5.0f}{b['p50_ms']:>12.0f} /{b['p99_ms']:>5.0f}"
        )
    lines.append(f"  (windows of {busy['window_s']:.0f} s; CPU % of one core, including child processes)")
    return lines


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
        for c in VARIANTS:
            if c not in by:
                continue
            d = by[c]
            lines.append(
                f"  {n:>6}  {VARIANT_LABELS[c]:<22}{_s(d['work_s']):>10}{d['ms_per_workflow']:>13.2f}"
                f"{_s(d['work_cpu_s']):>9}{_s(d['process_s']):>11}{d['tasks_per_dag']:>11.0f}"
            )
        ra = pc["ratios"][n]
        lines.append(
            f"  {'':>6}  ratios: Autopilot/Python {_x(ra['autopilot_vs_python'])} (CPU {_x(ra['autopilot_vs_python_cpu'])}), "
            f"dag-factory/Autopilot {_x(ra['dagfactory_vs_autopilot'])} (CPU {_x(ra['dagfactory_vs_autopilot_cpu'])}), "
            f"dag-factory/Python {_x(ra['dagfactory_vs_python'])}"
        )
        if "autopilot_cold_vs_python" in ra:
            lines.append(
                f"  {'':>6}  1st parse after a change: Autopilot/Python {_x(ra['autopilot_cold_vs_python'])}, "
                f"dag-factory/Autopilot {_x(ra['dagfactory_vs_autopilot_cold'])}"
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
    extra = {"autopilot_with_bundle_init": "Autopilot + bundle.initialize()", "autopilot_cold": "Autopilot, 1st parse"}
    for v in (*CONTENDERS, *extra):
        if v not in ts:
            continue
        key = ts[v]["growth_of"]
        label = LABELS.get(v) or extra[v]
        lines.append(
            f"  {label:<34}" + "".join(f"{_ms(ts[v][n][key]):>10}" for n in sizes) + f"{_x(ts[v]['growth']):>10}"
        )
    lines.append("")
    first = pc["targets"][0] if pc["targets"] else {}
    lines.append(
        "  targets"
        + (f" (indicative only: {', '.join(first['indicative_reasons'])})" if first.get("indicative_only") else "")
    )
    for t in pc["targets"]:
        if t.get("gate", True):
            mark = "PASS" if t["pass"] else "FAIL"
            tail = ""
        else:
            mark = "info"
            tail = " (within)" if t["within_target"] else " (OUTSIDE the target — a regression?)"
        lines.append(
            f"  [{mark}] {t['what']} at {t['at']}: target {t['op']} {t['target']}×, measured {_x(t['measured'])}{tail}"
        )
    lines.append("")
    lines += [f"  note: {note}" for note in pc["notes"]]
    return lines


if __name__ == "__main__":
    sys.exit(main())
