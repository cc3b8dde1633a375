"""3. Approvals latency and load — a slot, filled in when approval steps land.

What it will measure, against a real scheduler + triggerer on the local machine:

* latency: from an approver's decision (API call) to the next step starting, p50/p95;
* load: M workflows waiting on approvals at once — scheduler/triggerer CPU and memory, and the
  decision latency as M grows (100, 1,000), compared with Airflow's own HITL operator
  (``airflow.providers.standard.operators.hitl``) waiting the same way.

Until the ``approval`` step kind compiles (it is in ``dag_factory.registry.NOT_YET`` today) there is
nothing to measure; the result says so instead of a number.
"""

from __future__ import annotations

from benchmarks.harness import NOT_MEASURED, Context

NEEDS = "the approval step kind (people-in-the-loop: approvals, reminders, escalation)"
PLAN = (
    "decision-to-next-step latency p50/p95, and scheduler/triggerer CPU+RSS with 100 and 1,000 "
    "pending approvals, as ratios to Airflow's HITL operator measured in the same run"
)


def detect() -> bool:
    try:
        from dag_factory.registry import COMPILERS
    except Exception:  # noqa: BLE001 - the slot must never break the run
        return False
    return "approval" in COMPILERS


def run(ctx: Context) -> dict:
    present = detect()
    return {
        "status": NOT_MEASURED,
        "needs": NEEDS,
        "plan": PLAN,
        "baseline": "airflow.providers.standard.operators.hitl (HITL) in the same run",
        "feature_present": present,
        "message": f"{NOT_MEASURED}: needs {NEEDS}"
        + (" (approval steps now compile — write the measurement)" if present else ""),
    }
