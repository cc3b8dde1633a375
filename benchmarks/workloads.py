"""Write N workflows of the benchmark shape (``benchmarks.shape``) three ways, into a temp folder.

* ``autopilot``: ``definitions/wf_NNNN.yaml`` (apiVersion autopilot/v1) plus one shared Function
  (``definitions/functions/bench_probe.yaml``); Airflow parses the stubs ``sync_stubs`` generates.
* ``python``: one hand-written DAG file per workflow, standard provider only (BashOperator, ``@task``,
  ``@task.branch``, TaskGroup), the same semantics as the Autopilot definition.
* ``dagfactory``: one dag-factory 1.1 YAML file per workflow and the usual single loader ``.py``
  that calls ``load_yaml_dags`` over the YAML folder; its Python callables live in one shared module
  (dag-factory needs importable callables).

Nothing here is written into the repository: callers pass a temporary folder.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmarks import shape as s
from benchmarks.shape import Ref, Step

AUTOPILOT_BUNDLE = "autopilot"
CONTENDERS = ("autopilot", "python", "dagfactory")
LABELS = {"autopilot": "Autopilot", "python": "hand-written Python", "dagfactory": "dag-factory 1.1"}


def dag_id(contender: str, index: int) -> str:
    return {"autopilot": "ap", "python": "py", "dagfactory": "df"}[contender] + f"_wf_{index:04d}"


@dataclass
class Workload:
    contender: str
    n: int
    root: Path
    #: the folder Airflow's DagBag is pointed at (bundle path)
    dag_folder: Path
    #: the file a worker parses to start a task of ``probe_dag_id``
    probe_file: Path
    probe_dag_id: str
    probe_task_id: str = "record"
    #: extra sys.path entries the parsing process needs (dag-factory's callables)
    pythonpath: list[str] = field(default_factory=list)
    #: Autopilot only: the definitions folder the stubs are generated from
    definitions: Path | None = None


# --------------------------------------------------------------------------------------------
# YAML helpers
# --------------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: object) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


# --------------------------------------------------------------------------------------------
# Autopilot
# --------------------------------------------------------------------------------------------


def _ap_template(ref: Ref, *, group_outputs: dict[str, Ref] | None = None) -> str:
    if ref.source == "param":
        return f"{{{{ form.{ref.name} }}}}"
    if ref.source == "output":
        return f"{{{{ steps.{ref.name}.outputs.{ref.key} }}}}"
    if ref.source == "input":
        return f"{{{{ inputs.{ref.name} }}}}"
    return str(ref.value)


def _ap_python_value(ref: Ref) -> str:
    if ref.source == "param":
        return f"form[{ref.name!r}]"
    if ref.source == "output":
        return f'steps[{ref.name!r}]["outputs"][{ref.key!r}]'
    if ref.source == "input":
        return f"inputs[{ref.name!r}]"
    return repr(ref.value)


def _ap_steps(steps: tuple[Step, ...]) -> list[dict]:
    out = []
    deps = s.upstream(steps)
    for i, step in enumerate(steps):
        item: dict = {"id": step.id, "title": step.title}
        default_after = (steps[i - 1].id,) if i else ()
        # decision targets wait for their decision anyway; say `after` only where it differs
        if deps[step.id] != default_after and step.after != ("route",):
            item["after"] = list(deps[step.id])
        if step.kind == "bash":
            emit = f'{step.emit} >> "$AUTOPILOT_OUTPUT"\n' if step.emit else ""
            script: dict = {"bash": step.script + emit}
            if step.env:
                script["env"] = {k: _ap_template(v) for k, v in step.env.items()}
            item["script"] = script
        elif step.kind == "python":
            lines = [f"{name} = {_ap_python_value(ref)}" for name, ref in step.inputs.items()]
            code = "\n".join(lines) + "\n" + step.body + "output(**result)\n"
            item["script"] = {"python": code}
        elif step.kind == "decision":
            cond = step.condition
            assert cond is not None and cond.source == "output"
            item["decision"] = {
                "if": f"steps.{cond.name}.outputs.{cond.key}",
                "then": step.then,
                "else": step.otherwise,
            }
        elif step.kind == "group":
            item["use"] = {
                "function": step.function,
                "with": {k: _ap_template(v) for k, v in step.inputs.items()},
            }
        elif step.kind == "approval":
            item["approval"] = {"from": [f"group:{s.APPROVERS_GROUP}"], "quorum": "all"}
        elif step.kind == "rest":
            item["task"] = {
                "api": s.REST_API,
                "operation": s.REST_OPERATION,
                "body": {k: v.value if v.source == "const" else _ap_template(v) for k, v in step.inputs.items()},
                "outputs": {"id": "response.body.id"},
            }
        else:  # pragma: no cover - a new kind must be taught here
            raise NotImplementedError(f"autopilot renderer: step kind {step.kind!r}")
        out.append(item)
    return out


def autopilot_function() -> str:
    group = next(st for st in s.steps(0) if st.kind == "group")
    doc = {
        "apiVersion": "autopilot/v1",
        "kind": "Function",
        "id": group.function,
        "title": group.title,
        "inputs": {"hostname": {**s.FORM["hostname"], "required": True}},
        "outputs": {k: _ap_template(v) for k, v in group.outputs.items()},
        "steps": _ap_steps(group.steps),
    }
    doc["inputs"]["hostname"].pop("default", None)
    return "# Benchmark function (benchmarks/shape.py)\n" + dump_yaml(doc)


def autopilot_workflow(index: int) -> str:
    doc = {
        "apiVersion": "autopilot/v1",
        "kind": "Workflow",
        "id": dag_id("autopilot", index),
        "title": f"Benchmark workflow {index}",
        "owner": s.OWNER,
        "tags": ["bench"],
        "form": {"properties": s.FORM, "required": ["hostname", "mode"]},
        "defaults": {"retries": s.RETRIES, "retry_delay": f"{s.RETRY_DELAY_SECONDS}s"},
        "steps": _ap_steps(s.steps(index)),
    }
    return "# Benchmark workflow (benchmarks/shape.py)\n" + dump_yaml(doc)


def autopilot_contacts() -> str:
    """The approvers: one person in the approving group (approval steps name groups, not users)."""
    person = {**s.APPROVER, "username": s.APPROVER["id"]}
    doc = {
        "apiVersion": "autopilot/v1",
        "kind": "Contacts",
        "id": "bench_contacts",
        "people": [person],
        "groups": [{"id": s.APPROVERS_GROUP, "name": "Storage", "members": [s.APPROVER["id"]]}],
    }
    return "# Benchmark approvers (benchmarks/shape.py)\n" + dump_yaml(doc)


#: The REST service's OpenAPI document (one operation), for Autopilot's Api definition.
OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Benchmark requests", "version": "1"},
    "servers": [{"url": "http://localhost:8089/api"}],
    "paths": {
        s.REST_PATH: {
            "post": {
                "operationId": s.REST_OPERATION,
                "summary": "Record a request",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "hostname": {"type": "string"},
                                    "mode": {"type": "string", "enum": ["quick", "full"]},
                                    "index": {"type": "integer"},
                                },
                                "required": ["hostname", "mode"],
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "Recorded",
                        "content": {
                            "application/json": {"schema": {"type": "object", "properties": {"id": {"type": "string"}}}}
                        },
                    }
                },
            }
        }
    },
}


def autopilot_api() -> str:
    doc = {
        "apiVersion": "autopilot/v1",
        "kind": "Api",
        "id": s.REST_API,
        "title": "Benchmark requests",
        "spec": f"specs/{s.REST_API}.openapi.yaml",
        "connection": s.REST_API,
    }
    return "# Benchmark REST service (benchmarks/shape.py)\n" + dump_yaml(doc)


def write_autopilot(root: Path, n: int) -> Workload:
    definitions = root / "definitions"
    (definitions / "functions").mkdir(parents=True, exist_ok=True)
    if s.INCLUDE_REST:
        (definitions / "apis" / "specs").mkdir(parents=True, exist_ok=True)
        (definitions / "apis" / f"{s.REST_API}.yaml").write_text(autopilot_api(), encoding="utf-8")
        (definitions / "apis" / "specs" / f"{s.REST_API}.openapi.yaml").write_text(dump_yaml(OPENAPI), encoding="utf-8")
    (definitions / "functions" / f"{s.FUNCTION_ID}.yaml").write_text(autopilot_function(), encoding="utf-8")
    (definitions / "contacts.yaml").write_text(autopilot_contacts(), encoding="utf-8")
    for i in range(n):
        (definitions / f"wf_{i:04d}.yaml").write_text(autopilot_workflow(i), encoding="utf-8")
    # where AutopilotDagBundle(name="autopilot") keeps its stubs when
    # [dag_processor] dag_bundle_storage_path is root/bundles (the parent sets it for child processes)
    stubs = root / "bundles" / AUTOPILOT_BUNDLE / "stubs"
    probe = n // 2
    return Workload(
        contender="autopilot",
        n=n,
        root=root,
        dag_folder=stubs,
        probe_file=stubs / f"wf_{probe:04d}.yaml.py",
        probe_dag_id=dag_id("autopilot", probe),
        definitions=definitions,
    )


# --------------------------------------------------------------------------------------------
# Airflow templates (shared by hand-written Python and dag-factory)
# --------------------------------------------------------------------------------------------


def _producers(steps: tuple[Step, ...], prefix: str = "") -> dict[str, tuple[str, str]]:
    """step id → (task id that holds its outputs, kind of that task) — a group's outputs come from the
    inner step its output Ref names."""
    found: dict[str, tuple[str, str]] = {}
    for step in steps:
        if step.kind == "group":
            inner = _producers(step.steps, prefix=f"{prefix}{step.id}.")
            found.update({f"{step.id}.{k}": v for k, v in inner.items()})
            (ref,) = set(step.outputs.values())  # the shape's groups have one producing step
            found[step.id] = inner[ref.name]
        else:
            found[step.id] = (prefix + step.id, step.kind)
    return found


def _af_template(
    ref: Ref, producers: dict[str, tuple[str, str]], inputs: dict[str, Ref] | None = None, group: str = ""
) -> str:
    """A Ref as Airflow Jinja (BashOperator env, templated op_kwargs)."""
    if ref.source == "input":
        assert inputs is not None
        return _af_template(inputs[ref.name], producers)
    if ref.source == "param":
        return f"{{{{ params.{ref.name} }}}}"
    if ref.source == "output":
        task_id, kind = producers[f"{group}.{ref.name}" if group else ref.name]
        pulled = f"ti.xcom_pull(task_ids='{task_id}')"
        if kind in ("bash", "rest"):  # BashOperator's last stdout line / HttpOperator's body: JSON text
            pulled = f"macros.json.loads({pulled})"
        return f"{{{{ {pulled}['{ref.key}'] }}}}"
    return str(ref.value)


def _bash_command(step: Step) -> str:
    """A bash step for Airflow's BashOperator: its outputs line is the last line of stdout (its XCom)."""
    return step.script + (f"{step.emit}\n" if step.emit else "")


def _af_json_body(step: Step, producers: dict[str, tuple[str, str]]) -> str:
    """A REST step's body as a templated JSON text (HttpOperator's ``data``)."""
    fields = []
    for k, v in step.inputs.items():
        value = str(v.value) if v.source == "const" else f'"{_af_template(v, producers)}"'
        fields.append(f'"{k}": {value}')
    return "{" + ", ".join(fields) + "}"


# --------------------------------------------------------------------------------------------
# Hand-written Python
# --------------------------------------------------------------------------------------------


def _py_ident(step_id: str) -> str:
    return f"{step_id}_task"


def _py_steps(
    steps: tuple[Step, ...], producers, *, indent: str, group: str = "", group_inputs: dict[str, Ref] | None = None
) -> list[str]:
    lines: list[str] = []
    deps = s.upstream(steps)
    for step in steps:
        var = _py_ident(step.id)
        extra = []
        if step.join:
            extra.append('trigger_rule="none_failed_min_one_success"')
        doc = f"doc_md={step.title!r}"
        if step.kind == "bash":
            env = ", ".join(f"{k!r}: {_af_template(v, producers, group_inputs, group)!r}" for k, v in step.env.items())
            lines += [
                f"{var} = BashOperator(",
                f"    task_id={step.id!r},",
                f"    {doc},",
                f"    bash_command={_bash_command(step)!r},",
            ]
            if env:
                lines += [f"    env={{{env}}},", "    append_env=True,"]
            lines += [f"    {e}," for e in extra] + [")"]
        elif step.kind == "python":
            args = ", ".join(step.inputs)
            decorator_args = ", ".join([f"task_id={step.id!r}", doc, *extra])
            lines += [f"@task({decorator_args})", f"def {step.id}({args}):"]
            lines += [f"    {line}" for line in step.body.splitlines()]
            lines += ["    return result", ""]
            call = ", ".join(
                f"{k}={v.value!r}"
                if v.source == "const"
                else f"{k}={_af_template(v, producers, group_inputs, group)!r}"
                for k, v in step.inputs.items()
            )
            lines += [f"{var} = {step.id}({call})"]
        elif step.kind == "decision":
            cond = step.condition
            assert cond is not None
            task_id, _ = producers[cond.name]
            lines += [
                f"@task.branch(task_id={step.id!r}, {doc})",
                f"def {step.id}(ti=None):",
                f"    reachable = ti.xcom_pull(task_ids={task_id!r})[{cond.key!r}]",
                f"    return {step.then!r} if reachable else {step.otherwise!r}",
                "",
                f"{var} = {step.id}()",
            ]
        elif step.kind == "group":
            lines += [f"with TaskGroup(group_id={step.id!r}, tooltip={step.title!r}) as {var}:"]
            inner = _py_steps(step.steps, producers, indent="    ", group=step.id, group_inputs=step.inputs)
            lines += inner
        elif step.kind == "rest":
            lines += [
                f"{var} = HttpOperator(",
                f"    task_id={step.id!r},",
                f"    {doc},",
                f"    http_conn_id={s.REST_API!r},",
                f"    endpoint={s.REST_PATH!r},",
                '    method="POST",',
                f"    data={_af_json_body(step, producers)!r},",
                '    headers={"Content-Type": "application/json"},',
            ]
            lines += [f"    {e}," for e in extra] + [")"]
        elif step.kind == "approval":
            user = {"id": s.APPROVER["id"], "name": s.APPROVER["name"]}
            lines += [
                f"{var} = ApprovalOperator(",
                f"    task_id={step.id!r},",
                f"    {doc},",
                f"    subject={step.title!r},",
                f"    assigned_users=[{user!r}],",
                ")",
            ]
        else:  # pragma: no cover
            raise NotImplementedError(f"python renderer: step kind {step.kind!r}")
        lines.append("")
    for step in steps:
        for up in deps[step.id]:
            lines.append(f"{_py_ident(up)} >> {_py_ident(step.id)}")
    return [f"{indent}{line}" if line else "" for line in lines]


def python_dag(index: int) -> str:
    steps = s.steps(index)
    producers = _producers(steps)
    params = []
    for name, spec in s.FORM.items():
        spec = dict(spec)
        default = spec.pop("default")
        kwargs = ", ".join(f"{k}={v!r}" for k, v in spec.items())
        params.append(f"        {name!r}: Param({default!r}, {kwargs}),")
    body = "\n".join(_py_steps(steps, producers, indent="    "))
    header = textwrap.dedent(
        f'''\
        """Benchmark workflow {index}, hand-written with the standard provider (benchmarks/shape.py)."""

        from __future__ import annotations

        from datetime import datetime, timedelta, timezone

        from airflow.providers.http.operators.http import HttpOperator
        from airflow.providers.standard.operators.bash import BashOperator
        from airflow.providers.standard.operators.hitl import ApprovalOperator
        from airflow.sdk import DAG, Param, TaskGroup, task

        with DAG(
            dag_id={dag_id("python", index)!r},
            description={f"Benchmark workflow {index}"!r},
            schedule=None,
            start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
            catchup=False,
            tags=["bench"],
            params={{
        '''
    )
    tail = textwrap.dedent(
        f"""\
            }},
            default_args={{"owner": {s.OWNER!r}, "retries": {s.RETRIES}, "retry_delay": timedelta(seconds={s.RETRY_DELAY_SECONDS})}},
        ) as dag:
        """
    )
    return header + "\n".join(params) + "\n" + tail + body.rstrip() + "\n"


def write_python(root: Path, n: int) -> Workload:
    dags = root / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (dags / f"wf_{i:04d}.py").write_text(python_dag(i), encoding="utf-8")
    probe = n // 2
    return Workload(
        contender="python",
        n=n,
        root=root,
        dag_folder=dags,
        probe_file=dags / f"wf_{probe:04d}.py",
        probe_dag_id=dag_id("python", probe),
    )


# --------------------------------------------------------------------------------------------
# dag-factory 1.1
# --------------------------------------------------------------------------------------------

DF_MODULE = "bench_df_callables"
BASH = "airflow.providers.standard.operators.bash.BashOperator"
PYTHON = "airflow.providers.standard.operators.python.PythonOperator"
BRANCH = "airflow.providers.standard.operators.python.BranchPythonOperator"
APPROVAL = "airflow.providers.standard.operators.hitl.ApprovalOperator"
HTTP = "airflow.providers.http.operators.http.HttpOperator"


def dagfactory_callables() -> str:
    """The shared module of python callables (one per python step of the shape, plus the branch)."""
    out = ['"""Callables for the dag-factory benchmark workload (generated from benchmarks/shape.py)."""', ""]

    def emit(steps: tuple[Step, ...]) -> None:
        for step in steps:
            if step.kind == "python":
                out.append(f"def {step.id}({', '.join(step.inputs)}):")
                out.extend(f"    {line}" for line in step.body.splitlines())
                out.extend(["    return result", "", ""])
            elif step.kind == "group":
                emit(step.steps)

    emit(s.steps(0))
    out += [
        "def branch_on(source, key, then, otherwise, ti=None):",
        "    return then if ti.xcom_pull(task_ids=source)[key] else otherwise",
        "",
    ]
    return "\n".join(out)


def _df_tasks(
    steps: tuple[Step, ...], producers, *, group: str = "", group_inputs: dict[str, Ref] | None = None
) -> list[dict]:
    tasks: list[dict] = []
    deps = s.upstream(steps)
    for step in steps:
        if step.kind == "group":
            # the group's own entry (with its dependencies) is written in `task_groups`
            tasks += _df_tasks(step.steps, producers, group=step.id, group_inputs=step.inputs)
            continue
        task: dict = {"task_id": step.id}
        if step.kind == "bash":
            task["operator"] = BASH
            task["bash_command"] = _bash_command(step)
            if step.env:
                task["env"] = {k: _af_template(v, producers, group_inputs, group) for k, v in step.env.items()}
                task["append_env"] = True
        elif step.kind == "python":
            task["operator"] = PYTHON
            task["python_callable"] = f"{DF_MODULE}.{step.id}"
            task["op_kwargs"] = {
                k: v.value if v.source == "const" else _af_template(v, producers, group_inputs, group)
                for k, v in step.inputs.items()
            }
        elif step.kind == "decision":
            cond = step.condition
            assert cond is not None
            task["operator"] = BRANCH
            task["python_callable"] = f"{DF_MODULE}.branch_on"
            task["op_kwargs"] = {
                "source": producers[cond.name][0],
                "key": cond.key,
                "then": step.then,
                "otherwise": step.otherwise,
            }
        elif step.kind == "rest":
            task["operator"] = HTTP
            task["http_conn_id"] = s.REST_API
            task["endpoint"] = s.REST_PATH
            task["method"] = "POST"
            task["data"] = _af_json_body(step, producers)
            task["headers"] = {"Content-Type": "application/json"}
        elif step.kind == "approval":
            task["operator"] = APPROVAL
            task["subject"] = step.title
            task["assigned_users"] = [{"id": s.APPROVER["id"], "name": s.APPROVER["name"]}]
        else:  # pragma: no cover
            raise NotImplementedError(f"dag-factory renderer: step kind {step.kind!r}")
        task["doc_md"] = step.title
        if step.join:
            task["trigger_rule"] = "none_failed_min_one_success"
        if group:
            task["task_group_name"] = group
        if deps[step.id]:
            task.setdefault("dependencies", []).extend(deps[step.id])
        tasks.append(task)
    return tasks


def dagfactory_yaml(index: int) -> str:
    steps = s.steps(index)
    producers = _producers(steps)
    deps = s.upstream(steps)
    doc = {
        "default": {
            "default_args": {
                "owner": s.OWNER,
                "retries": s.RETRIES,
                "retry_delay": {"__type__": "datetime.timedelta", "seconds": s.RETRY_DELAY_SECONDS},
                "start_date": "2024-01-01",
            },
            "catchup": False,
            "schedule": None,
        },
        dag_id("dagfactory", index): {
            "description": f"Benchmark workflow {index}",
            "tags": ["bench"],
            "params": {
                name: {
                    "__type__": "airflow.sdk.Param",
                    **{("default" if k == "default" else k): v for k, v in spec.items()},
                }
                for name, spec in s.FORM.items()
            },
            "task_groups": [
                {
                    "group_name": st.id,
                    "tooltip": st.title,
                    **({"dependencies": list(deps[st.id])} if deps[st.id] else {}),
                }
                for st in steps
                if st.kind == "group"
            ],
            "tasks": _df_tasks(steps, producers),
        },
    }
    return "# Benchmark workflow (benchmarks/shape.py), dag-factory 1.1 format\n" + dump_yaml(doc)


DF_LOADER = '''\
"""dag-factory loader: every DAG in the YAML folder comes from this one airflow DAG file."""
from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder={yaml_dir!r}, defaults_config_path={yaml_dir!r})
'''


def write_dagfactory(root: Path, n: int) -> Workload:
    yaml_dir = root / "yaml"
    dags = root / "dags"
    lib = root / "lib"
    for d in (yaml_dir, dags, lib):
        d.mkdir(parents=True, exist_ok=True)
    (lib / f"{DF_MODULE}.py").write_text(dagfactory_callables(), encoding="utf-8")
    for i in range(n):
        (yaml_dir / f"wf_{i:04d}.yaml").write_text(dagfactory_yaml(i), encoding="utf-8")
    loader = dags / "load_dagfactory.py"
    loader.write_text(DF_LOADER.format(yaml_dir=str(yaml_dir)), encoding="utf-8")
    probe = n // 2
    return Workload(
        contender="dagfactory",
        n=n,
        root=root,
        dag_folder=dags,
        probe_file=loader,
        probe_dag_id=dag_id("dagfactory", probe),
        pythonpath=[str(lib)],
    )


WRITERS = {"autopilot": write_autopilot, "python": write_python, "dagfactory": write_dagfactory}


def write(contender: str, root: Path, n: int) -> Workload:
    root.mkdir(parents=True, exist_ok=True)
    return WRITERS[contender](root, n)
