"""2. Run start throughput — a slot, filled in when the feature lands.

What it will measure: runs started per second and p50/p95 latency from request to a queued DAG run,
for the same workflow started three ways, sequentially and with concurrent clients:

* Autopilot request-form submission (the portal's "submit" endpoint);
* Autopilot webhooks (an external system starting a workflow);
* the baseline, Airflow's own ``POST /api/v2/dags/{dag_id}/dagRuns`` (JWT from ``POST /auth/token``),
  against the same api-server in the same run, so the result is a ratio.

Until Autopilot has form submission and webhook endpoints there is nothing to compare; the result
says so instead of a number. ``detect()`` looks for the endpoints in the plugin API so the table
shows when the slot can be filled.
"""

from __future__ import annotations

import re

from benchmarks.harness import NOT_MEASURED, REPO, Context

NEEDS = "Autopilot form submission and webhook endpoints (plugin REST API) to start runs"
PLAN = (
    "start the benchmark workflow K times via form submission, via webhook and via "
    "POST /api/v2/dags/{dag_id}/dagRuns on one api-server; report runs/s and p50/p95 latency, "
    "sequential and with 4 concurrent clients, as ratios to the Airflow REST baseline"
)


def detect() -> list[str]:
    """Route decorators in the plugin API that look like run-starting endpoints."""
    found = []
    for path in sorted((REPO / "plugins" / "api").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"@router\.post\(\s*\"([^\"]*)\"", text):
            route = match.group(1)
            if re.search(r"webhook|submit|/runs\b|trigger", route):
                found.append(f"{path.name}: POST {route}")
    return found


def run(ctx: Context) -> dict:
    found = detect()
    return {
        "status": NOT_MEASURED,
        "needs": NEEDS,
        "plan": PLAN,
        "baseline": "POST /api/v2/dags/{dag_id}/dagRuns",
        "detected_endpoints": found,
        "message": (
            f"{NOT_MEASURED}: needs {NEEDS}"
            + (f" (endpoints detected: {', '.join(found)} — write the measurement)" if found else "")
        ),
    }
