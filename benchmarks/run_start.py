"""2. Run start: starting runs through Autopilot against Airflow's own REST API, on one API server.

A real ``airflow api-server`` (one worker, the Autopilot plugin) on a fresh PostgreSQL database, with
a definitions folder holding one workflow with a request form (``bench_request``); its DAG is put in
the database with ``airflow dags reserialize``. No scheduler runs: the runs stay queued. Then, for
each concurrency (1 and 20 clients), N requests through each path, the paths one after the other:

* ``autopilot_form``: ``POST /autopilot/api/v1/workflows/bench_request/runs`` ``{"form": {...}}`` — the
  request portal's submission: the form is validated against the definition, then the run is created
  as the calling user (Airflow's ``trigger_dag``);
* ``airflow_rest``: ``POST /api/v2/dags/bench_request/dagRuns`` ``{"logical_date": null, "conf": {...}}``
  — the baseline, Airflow's own trigger endpoint (the DAG's params check the conf);
* ``autopilot_webhook``: ``POST /autopilot/api/v1/alerts/bench_hook`` with the same values as a JSON
  payload, signed GitHub-style (``X-Hub-Signature-256``: HMAC-SHA256 of the raw body with the secret of
  the connection ``bench_hook``, checked on every request) and ``X-GitHub-Delivery`` = the request id:
  the signature, the match rules, the route's mapping through the sandbox, the same form validation as
  the portal, the delivery log row and the run created as the alert's requester.

Every request carries a unique ``request_id`` form field. Afterwards the ``dag_run`` table is read:
for each path, runs created must equal requests answered 2xx, with no request id missing (lost) or
seen twice (duplicated). Reported: runs/s (wall time of the whole batch), p50/p99 latency per request,
errors, and Autopilot/Airflow ratios of throughput and latency. The load generator (threads with
one HTTP client each) runs on the same machine as the server: on 2 cores they compete for CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.deployment import Deployment, latency_summary, pg_available
from benchmarks.harness import Context

WORKFLOW_ID = "bench_request"
PATHS = ("autopilot_form", "autopilot_webhook", "airflow_rest")
LABELS = {
    "autopilot_form": "Autopilot form submission",
    "autopilot_webhook": "Autopilot webhook (signed)",
    "airflow_rest": "Airflow POST dagRuns",
}
ALERT_ID = "bench_hook"
#: The signing secret of the benchmark's alert (the password of the connection ``bench_hook``).
HOOK_SECRET = "bench-hook-secret"
CONCURRENCY = (1, 20)
#: requests per path at concurrency 1 and 20
FULL_N = {1: 200, 20: 1000}
QUICK_N = {1: 30, 20: 100}
WARM_UP = 5

DEFINITION = f"""\
apiVersion: autopilot/v1
kind: Workflow
id: {WORKFLOW_ID}
title: Benchmark request
form:
  properties:
    hostname:
      type: string
      title: Host name
      pattern: "^[A-Za-z0-9]([A-Za-z0-9.-]{{0,252}})$"
    mode: {{type: string, title: Mode, enum: [quick, full], default: quick}}
    request_id: {{type: string, title: Request id}}
  required: [hostname, mode, request_id]
steps:
  - id: record
    script:
      env: {{HOST: "{{{{ form.hostname }}}}", MODE: "{{{{ form.mode }}}}", REQUEST: "{{{{ form.request_id }}}}"}}
      bash: echo "$HOST $MODE $REQUEST"
"""


ALERT = f"""\
apiVersion: autopilot/v1
kind: Alert
id: {ALERT_ID}
title: Benchmark webhook
auth: {{scheme: github, connection: {ALERT_ID}}}
match:
  - payload.mode in ['quick', 'full']
routes:
  - id: request
    workflow: {WORKFLOW_ID}
    form:
      hostname: "{{{{ payload.hostname }}}}"
      mode: "{{{{ payload.mode }}}}"
      request_id: "{{{{ payload.request_id }}}}"
    requester: bench_sender
"""

CONTACTS = """\
apiVersion: autopilot/v1
kind: Contacts
id: bench_contacts
people:
  - {id: bench_sender, name: Benchmark sender, username: admin}
"""


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------


def run(ctx: Context) -> dict:
    sizes = QUICK_N if ctx.quick else FULL_N
    base = {
        "method": __doc__.strip().split("\n\n", 1)[1] if __doc__ else "",
        "requests_per_path": {str(c): n for c, n in sizes.items()},
    }
    why = pg_available()
    if why:
        return {**base, "status": "skipped", "message": f"skipped: {why}"}
    definitions = ctx.tmp / "run_start" / "definitions"
    definitions.mkdir(parents=True, exist_ok=True)
    (definitions / f"{WORKFLOW_ID}.yaml").write_text(DEFINITION, encoding="utf-8")
    (definitions / f"{ALERT_ID}.yaml").write_text(ALERT, encoding="utf-8")
    (definitions / "contacts.yaml").write_text(CONTACTS, encoding="utf-8")
    deployment = Deployment(ctx, "run_start", definitions=definitions)
    ctx.note(f"run start: fresh PostgreSQL database {deployment.database}, api-server with the Autopilot plugin")
    deployment.create()
    try:
        result = deployment.run_child("benchmarks.run_start", [json.dumps(sizes)], deployment.env(), timeout=3600)
    finally:
        deployment.drop()
    result = {**base, "status": "measured", "postgresql": deployment.server_version, **result}
    result["message"] = summary_line(result)
    return result


def summary_line(result: dict) -> str:
    parts = []
    for c, by in result["by_concurrency"].items():
        ra, rw = by["ratios"], by["webhook_ratios"]
        parts.append(
            f"c={c}: form/Airflow throughput {ra['throughput']:.2f}×, p50 latency {ra['p50']:.2f}×; "
            f"webhook/Airflow throughput {rw['throughput']:.2f}×, p50 latency {rw['p50']:.2f}×"
        )
    lost = sum(by[p]["lost"] + by[p]["duplicated"] for by in result["by_concurrency"].values() for p in PATHS)
    return "; ".join(parts) + f"; lost+duplicated runs: {lost}"


# ---------------------------------------------------------------------------------------------
# Child side: the deployment's environment is os.environ
# ---------------------------------------------------------------------------------------------


def child(sizes: dict[int, int]) -> dict:
    from benchmarks.deployment import airflow, database, migrate, say
    from tests.fixtures.api_server import ApiServer

    say("migrating the metadata database")
    migrate()
    say("airflow dags reserialize (puts bench_request in the database)")
    airflow("dags", "reserialize", "--bundle-name", "autopilot")
    secret = json.dumps({"conn_type": "generic", "password": HOOK_SECRET})
    server = ApiServer(
        Path(os.environ["AIRFLOW_HOME"]), users={"admin": "admin"}, extra_env={"AIRFLOW_CONN_BENCH_HOOK": secret}
    )
    server.start()
    try:
        token = server.token("admin")
        out: dict = {"server": {"workers": 1, "auth_manager": "SimpleAuthManager"}, "by_concurrency": {}}
        db = database()
        order = list(PATHS)
        for path in PATHS:  # warm-up: imports, caches, connection pools (counted apart)
            fire(server.base_url, token, path, WARM_UP, 1, tag="warmup")
        for c in CONCURRENCY:
            n = sizes[c]
            by: dict = {}
            for path in order:
                say(f"run start: {n} requests via {path}, concurrency {c}")
                tag = f"{path}-c{c}"
                result = fire(server.base_url, token, path, n, c, tag=tag)
                result.update(count_runs(db, tag, result.pop("run_ids"), result.pop("sent_ids")))
                by[path] = result
            order.reverse()  # the other path goes first at the next concurrency
            by["ratios"] = ratios(by["autopilot_form"], by["airflow_rest"])
            by["webhook_ratios"] = ratios(by["autopilot_webhook"], by["airflow_rest"])
            out["by_concurrency"][str(c)] = by
        db.close()
        return out
    finally:
        server.stop()


def ratios(ours: dict, airflow: dict) -> dict:
    """Ours against Airflow's: throughput (higher is better) and latency (lower is better)."""
    return {
        "throughput": ours["runs_per_s"] / airflow["runs_per_s"] if airflow["runs_per_s"] else None,
        "p50": ours["latency"]["p50_ms"] / airflow["latency"]["p50_ms"],
        "p99": ours["latency"]["p99_ms"] / airflow["latency"]["p99_ms"],
    }


def fire(base_url: str, token: str, path: str, n: int, concurrency: int, *, tag: str) -> dict:
    import httpx

    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
            with lock:
                clients.append(local.client)
        return local.client

    def one(i: int) -> tuple[float, int, str | None, str]:
        request_id = f"{tag}-{i}-{uuid.uuid4().hex[:8]}"
        form = {"hostname": f"host{i}.example.com", "mode": "quick", "request_id": request_id}
        headers: dict[str, str] = {}
        if path == "autopilot_form":
            url, body = f"/autopilot/api/v1/workflows/{WORKFLOW_ID}/runs", {"form": form}
        elif path == "autopilot_webhook":
            url, body = f"/autopilot/api/v1/alerts/{ALERT_ID}", form
        else:
            url, body = f"/api/v2/dags/{WORKFLOW_ID}/dagRuns", {"logical_date": None, "conf": form}
        start = time.perf_counter()
        status, run_id = 0, None
        try:
            if path == "autopilot_webhook":  # the sender signs each body (its cost is the client's)
                raw = json.dumps(body).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(raw),
                    "X-GitHub-Delivery": request_id,
                }
                response = client().post(url, content=raw, headers=headers)
            else:
                response = client().post(url, json=body)
            status = response.status_code
            if response.is_success:
                answer = response.json()
                runs = answer.get("runs") or [{}]
                run_id = answer.get("run_id") or answer.get("dag_run_id") or runs[0].get("run_id")
        except httpx.HTTPError:
            pass
        return time.perf_counter() - start, status, run_id, request_id

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    for c in clients:
        c.close()
    ok = [r for r in results if 200 <= r[1] < 300]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r[1])] = statuses.get(str(r[1]), 0) + 1
    return {
        "requests": n,
        "concurrency": concurrency,
        "wall_s": wall,
        "runs_per_s": len(ok) / wall if wall else None,
        "latency": latency_summary([r[0] for r in ok]),
        "statuses": statuses,
        "errors": n - len(ok),
        "run_ids": [r[2] for r in ok],
        "sent_ids": [r[3] for r in results],
    }


def count_runs(db, tag: str, run_ids: list[str], sent_ids: list[str]) -> dict:
    """What the database holds for this batch (conf.request_id starts with the batch tag)."""
    cur = db.cursor()
    cur.execute("SELECT run_id, conf FROM dag_run WHERE dag_id = %s", (WORKFLOW_ID,))
    seen: dict[str, int] = {}
    created = 0
    for _run_id, conf in cur.fetchall():
        if isinstance(conf, (bytes, memoryview)):
            conf = json.loads(bytes(conf))
        elif isinstance(conf, str):
            conf = json.loads(conf)
        request_id = (conf or {}).get("request_id", "")
        if request_id.startswith(f"{tag}-"):
            created += 1
            seen[request_id] = seen.get(request_id, 0) + 1
    return {
        "runs_created": created,
        "answered_2xx": len(run_ids),
        # a request sent that left no run (whatever its answer), and runs beyond one per request
        "lost": sum(1 for r in sent_ids if r not in seen),
        "duplicated": sum(v - 1 for v in seen.values() if v > 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=1, required=True)
    args = parser.parse_args(argv)
    sizes = {int(k): v for k, v in json.loads(args.child[0]).items()}
    result = child(sizes)
    sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
