"""The benchmark workflow shape, described once, independent of how it is written.

Every contender (Autopilot definitions, hand-written Python DAG files, dag-factory YAML) renders
*this* description (see ``benchmarks.workloads``), so the three workloads stay equivalent by
construction. To add a step kind when it lands in Autopilot (REST ``task`` calls, ``approval``):

1. add a ``Step(kind="rest"|"approval", ...)`` to ``steps()`` below (keep ten top-level steps, or
   bump ``SHAPE_VERSION`` and say so in the README);
2. teach each renderer in ``benchmarks.workloads`` the new kind (Autopilot: the YAML step;
   Python: e.g. ``HttpOperator`` / ``HITLOperator``; dag-factory: the same operators by import path);
3. update ``SHAPE`` (it is written into every results JSON).

Values flow between steps through ``Ref`` s: a DAG param (the request form), an upstream step's
output, a group (function) input, or a constant. Each renderer maps a ``Ref`` to its own syntax
(``{{ form.x }}`` / ``{{ params.x }}``, ``steps.s.outputs.k`` / ``ti.xcom_pull(...)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHAPE = "REST call+scripts+decision+group+approval"
SHAPE_VERSION = 3
#: shape step kind → the Autopilot step kind it becomes
AUTOPILOT_KINDS = {
    "bash": "script",
    "python": "script",
    "decision": "decision",
    "group": "use",
    "approval": "approval",
    "rest": "task",
}
#: Autopilot step kinds the shape should gain once they compile (the run notes when they do)
PLANNED_KINDS = ("task", "approval")
#: ``benchmarks.equivalence`` runs the shape with ``dag.test()``, which cannot answer an approval nor
#: reach the REST service: it sets these to False and those steps are rendered as the bash steps
#: (``report``, ``record``) they replaced.
INCLUDE_APPROVAL = True
INCLUDE_REST = True
#: The REST service the first step calls: one operation of a small OpenAPI document (Autopilot: an
#: ``Api`` definition; elsewhere ``HttpOperator`` on an HTTP connection of the same name).
REST_API = "bench_requests"
REST_OPERATION = "createRequest"
REST_PATH = "/requests"
#: Who approves: a group of one (Autopilot: ``group:storage`` from a Contacts file; Airflow's
#: ApprovalOperator: the same person as an assigned user).
APPROVERS_GROUP = "storage"
APPROVER = {"id": "dave", "name": "Dave Okafor", "email": "dave@example.com"}


@dataclass(frozen=True)
class Ref:
    """Where a value comes from: ("param", name) | ("output", step, key) | ("input", name) | ("const", v)."""

    source: str
    name: str
    key: str | None = None
    value: object = None


def param(name: str) -> Ref:
    return Ref("param", name)


def output(step: str, key: str) -> Ref:
    return Ref("output", step, key)


def group_input(name: str) -> Ref:
    return Ref("input", name)


def const(value: object) -> Ref:
    return Ref("const", "", value=value)


@dataclass(frozen=True)
class Step:
    """One step of the shape.

    kind: ``bash`` (``script`` text; ``env`` values are Refs, the script reads ``$NAME``; ``emit`` prints
    the step's outputs as one JSON-object line: BashOperator's XCom is its last stdout line, Autopilot's
    outputs are what it appends to ``$AUTOPILOT_OUTPUT``),
    ``python`` (``body`` computes ``result`` from the variables named in ``inputs``; ``result`` becomes
    the step's outputs), ``decision`` (``condition`` Ref; ``then``/``otherwise`` step ids),
    ``group`` (a reusable function: ``inputs`` Refs, inner ``steps``, ``outputs`` Refs to inner steps),
    ``approval`` (the ``APPROVERS_GROUP`` must approve; a rejection skips the rest),
    ``rest`` (POST ``REST_PATH`` with the ``inputs`` Refs as a JSON body; the response's JSON object
    becomes the step's outputs).
    ``after``: upstream step ids (``None`` = the previous step). ``join``: waits for whichever branch ran.
    """

    id: str
    kind: str
    title: str
    after: tuple[str, ...] | None = None
    join: bool = False
    script: str = ""
    emit: str = ""
    env: dict[str, Ref] = field(default_factory=dict)
    body: str = ""
    inputs: dict[str, Ref] = field(default_factory=dict)
    condition: Ref | None = None
    then: str = ""
    otherwise: str = ""
    function: str = ""
    steps: tuple[Step, ...] = ()
    outputs: dict[str, Ref] = field(default_factory=dict)


#: The request form (JSON Schema properties), identical for every contender.
FORM = {
    "hostname": {
        "type": "string",
        "title": "Host name",
        "default": "localhost",
        "pattern": "^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$",
    },
    "mode": {"type": "string", "title": "Mode", "enum": ["quick", "full"], "default": "quick"},
}
RETRIES = 1
RETRY_DELAY_SECONDS = 30
OWNER = "group:platform"
FUNCTION_ID = "bench_probe"


def function_steps() -> tuple[Step, ...]:
    """The reusable group (an Autopilot Function; a TaskGroup elsewhere): probe, then summarize."""
    return (
        Step(
            id="probe",
            kind="bash",
            title="Resolve the host",
            env={"HOST": group_input("hostname")},
            script="address=$(getent hosts \"$HOST\" | awk '{print $1; exit}') || true\n"
            'echo "host=$HOST address=${address:-none}"\n',
            emit='printf \'{"address": "%s"}\\n\' "$address"',
        ),
        Step(
            id="summarize",
            kind="python",
            title="Decide reachability",
            inputs={"hostname": group_input("hostname"), "address": output("probe", "address")},
            body='result = {"reachable": bool(address), "host": hostname}\n',
        ),
    )


def steps(index: int) -> tuple[Step, ...]:
    """The ten top-level steps of workflow number ``index`` (the index makes every file distinct)."""
    return (
        Step(
            id="record",
            kind="rest",
            title="Record the request",
            inputs={"hostname": param("hostname"), "mode": param("mode"), "index": const(index)},
        )
        if INCLUDE_REST
        else Step(
            id="record",
            kind="bash",
            title="Record the request",
            env={"HOST": param("hostname"), "MODE": param("mode")},
            script=f'echo "request {index}: $HOST ($MODE)"\n',
            emit='printf \'{"hostname": "%s", "mode": "%s"}\\n\' "$HOST" "$MODE"',
        ),
        Step(
            id="prepare",
            kind="python",
            title="Prepare the plan",
            inputs={"hostname": param("hostname"), "mode": param("mode"), "index": const(index)},
            body='attempts = 3 if mode == "full" else 1\n'
            'result = {"attempts": attempts, "label": f"{hostname.upper()}-{index}"}\n',
        ),
        Step(
            id="check",
            kind="group",
            title="Check the host",
            function=FUNCTION_ID,
            inputs={"hostname": param("hostname")},
            steps=function_steps(),
            outputs={"reachable": output("summarize", "reachable")},
        ),
        Step(
            id="route",
            kind="decision",
            title="Reachable?",
            condition=output("check", "reachable"),
            then="fast_path",
            otherwise="slow_path",
        ),
        Step(
            id="fast_path",
            kind="bash",
            title="Reachable: go ahead",
            after=("route",),
            env={"LABEL": output("prepare", "label")},
            script='echo "fast path for $LABEL"\n',
        ),
        Step(
            id="slow_path",
            kind="bash",
            title="Unreachable: queue it",
            after=("route",),
            env={"LABEL": output("prepare", "label")},
            script='echo "slow path for $LABEL" >&2\n',
        ),
        Step(
            id="join",
            kind="bash",
            title="Join the branches",
            after=("fast_path", "slow_path"),
            join=True,
            script=f'echo "joined {index}"\n',
        ),
        Step(
            id="transform",
            kind="python",
            title="Transform the plan",
            inputs={"label": output("prepare", "label"), "attempts": output("prepare", "attempts")},
            body='result = {"summary": f"{label} x{attempts}", "size": len(label) * int(attempts)}\n',
        ),
        Step(id="approve", kind="approval", title="Storage approves the plan")
        if INCLUDE_APPROVAL
        else Step(
            id="report",
            kind="bash",
            title="Report",
            env={"SUMMARY": output("transform", "summary")},
            script='echo "report: $SUMMARY"\n',
            emit="printf '{\"reported\": true}\\n'",
        ),
        Step(
            id="finish",
            kind="python",
            title="Finish",
            inputs={"hostname": param("hostname"), "size": output("transform", "size")},
            body='result = {"done": True, "hostname": hostname, "size": int(size)}\n',
        ),
    )


def upstream(steps_: tuple[Step, ...]) -> dict[str, tuple[str, ...]]:
    """step id → upstream ids (``after`` or the previous step), the same rule every renderer wires."""
    deps: dict[str, tuple[str, ...]] = {}
    for i, step in enumerate(steps_):
        deps[step.id] = step.after if step.after is not None else ((steps_[i - 1].id,) if i else ())
    return deps


def describe() -> dict[str, object]:
    """What goes into the results JSON about the shape."""
    top = steps(0)
    kinds: dict[str, int] = {}
    for step in top:
        kinds[step.kind] = kinds.get(step.kind, 0) + 1
    return {
        "shape": SHAPE,
        "version": SHAPE_VERSION,
        "top_level_steps": len(top),
        "step_kinds": kinds,
        "group_steps": len(function_steps()),
        "form_fields": sorted(FORM),
    }
