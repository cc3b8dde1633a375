"""``autopilot render WORKFLOW``: the eject path.

The workflow is compiled once with :func:`dag_factory.builder.build_dag` — the same code that serves
it to Airflow — and the resulting DAG object is written back out as Python: one variable per task
with the arguments its operator was constructed with, one ``with TaskGroup`` block per function
call, and the dependencies between siblings. The file is therefore equivalent to the YAML by
construction, and it no longer reads the YAML; it still imports the Autopilot operators.

The output is formatted the way ``ruff format`` (and black) would: a call or literal stays on one
line when it fits in 88 columns, otherwise it is split one item per line with a trailing comma, so
the file is stable under any line length of 88 or more.
"""

from __future__ import annotations

import ast
import hashlib
import keyword
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, TaskGroup

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.errors import DefinitionError, suggest
from autopilot_provider.notifications.autopilot import AutopilotNotifier
from autopilot_provider.operators.guard import ApprovalGuard
from autopilot_provider.repository.folder import SUFFIXES, Project, encode_path, path_problem
from dag_factory.builder import build_dag

WIDTH = 88
#: What a comment line may show as is: the characters of a definition path (no line breaks, no quotes).
_SAFE_COMMENT = re.compile(r"[A-Za-z0-9._/-]+")
INDENT = "    "
#: Operator constructor arguments that never appear in the file: the DAG and group come from the
#: enclosing ``with`` blocks, params from the DAG.
_IMPLICIT_ARGS = {"dag", "task_group", "params", "default_args"}


class RenderError(Exception):
    """The workflow cannot be rendered: it is unknown, or its definition is invalid."""


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def render_workflow(project: Project, workflow: str) -> str:
    """Python source of an Airflow DAG file equivalent to ``workflow``.

    ``workflow`` is a workflow id, or the path of a definition file relative to the project root
    or to the current directory.
    """
    project, rel = _resolve(project, workflow)
    problem = path_problem(rel)
    if problem is not None:
        shown = project.display(encode_path(rel))
        raise RenderError(f"{shown}: not a definition: the file name is not allowed ({problem})")
    source = project.display(rel)
    loaded = project.load(rel)
    if not loaded.ok:
        details = "\n".join(f"  {d}" for d in loaded.diagnostics) or f"  {source}: not a definition"
        raise RenderError(f"{source} is not a valid definition:\n{details}")
    if not isinstance(loaded.definition, m.Workflow):
        raise RenderError(f"{source} defines a {loaded.kind}, not a Workflow: only workflows can be rendered")
    try:
        dag = build_dag(loaded.definition, project)
    except DefinitionError as exc:
        details = "\n".join(f"  {d}" for d in exc.diagnostics)
        raise RenderError(f"{source} cannot be compiled:\n{details}") from None
    digest = hashlib.sha256((project.root / rel).read_bytes()).hexdigest()[:16]
    return render_dag(dag, source=source, digest=digest, definitions=str(project.root))


def _resolve(project: Project, workflow: str) -> tuple[Project, str]:
    """(project, rel path) of the workflow named by id or by file path."""
    index = project.index()
    by_id = sorted(rel for rel, entry in index.items() if entry.kind == "Workflow" and entry.id == workflow)
    if by_id:
        return project, by_id[0]
    for candidate in (project.root / workflow, Path.cwd() / workflow):
        if candidate.is_file():
            rel = os.path.relpath(candidate.resolve(), project.root)
            if rel.startswith(".."):  # a file outside the definitions folder: its folder is the project
                display = os.path.relpath(candidate.parent.resolve(), Path.cwd())
                project = Project(candidate.parent, display_root="" if display == "." else display)
                rel = candidate.name
            return project, rel
    if workflow.endswith(SUFFIXES) or "/" in workflow or os.sep in workflow:
        hint = suggest(workflow, list(index) + [project.display(r) for r in index])
        raise RenderError(f"no such definition file: {workflow}{hint}")
    ids = project.ids("Workflow")
    hint = suggest(workflow, ids)
    if not hint and ids:
        hint = f"; workflows in {project.display_root or '.'}: {', '.join(ids)}"
    raise RenderError(f"unknown workflow '{workflow}'{hint}")


# ------------------------------------------------------------------------------------------------
# DAG → Python
# ------------------------------------------------------------------------------------------------


def render_dag(dag: DAG, *, source: str, digest: str = "", definitions: str | None = None) -> str:
    """Python source for ``dag`` (built by ``build_dag``); ``source`` names the definition file."""
    return _Renderer(dag, source=source, digest=digest, definitions=definitions).render()


class _Code(str):
    """Python source inserted as is (a name or an expression)."""


@dataclass
class _Call:
    name: str
    args: list[tuple[str | None, Any]] = field(default_factory=list)


class _Renderer:
    def __init__(self, dag: DAG, *, source: str, digest: str, definitions: str | None):
        self.dag = dag
        self.source = source
        self.digest = digest
        self.definitions = definitions
        self.uses_definitions = False
        self.imports: dict[str, set[str]] = {}  # module → names ("" → plain `import module`)
        self.names: dict[str, str] = {}  # task or group id → variable name
        self.scopes: dict[str, tuple[str, Any]] = {}  # source of a scope → (constant, value)
        self.taken = {"dag", "DEFINITIONS", "DAG", "Param", "TaskGroup", "pendulum", "timedelta"}

    # -- the file ---------------------------------------------------------------------------------

    def render(self) -> str:
        self.taken |= {type(task).__name__ for task in self.dag.tasks}  # imported operator classes
        self._name_nodes(self.dag.task_group)
        body = self._group_body(self.dag.task_group, depth=1)
        dag_call = _Call("DAG", self._dag_args())
        self._import("airflow.sdk", "DAG")
        lines = self._header()
        lines += self._import_lines()
        lines.append("")
        if self.uses_definitions:
            lines += [
                "# The definitions folder: templates that mention `resources` or `contacts` read",
                "# the Resources and Contacts definitions in it at run time.",
                f"DEFINITIONS = {_quote(self.definitions or '')}",
            ]
        if self.scopes:
            lines += [
                *([""] if self.uses_definitions else []),
                "# What the tasks' templates see: step id -> the task whose XCom holds its outputs,",
                "# the task holding a function's inputs, and where the definitions are.",
            ]
            for index, (name, value) in enumerate(self.scopes.values()):
                lines += ([""] if index else []) + _layout(value, f"{name} = ", "", 0)
        if self.uses_definitions or self.scopes:
            lines += ["", ""]
        lines += _layout(dag_call, "with ", " as dag:", 0)
        lines += body
        return "\n".join(lines) + "\n"

    def _header(self) -> list[str]:
        # A comment cannot be escaped: only text of the path alphabet goes into one (else it is
        # named in doc_md, a string literal, only).
        digest = f" (sha256 {self.digest})" if _SAFE_COMMENT.fullmatch(self.digest) else ""
        dag_id = f" {self.dag.dag_id!r}" if _SAFE_COMMENT.fullmatch(self.dag.dag_id) else ""
        source = self.source if _SAFE_COMMENT.fullmatch(self.source) else "the definition file named in doc_md"
        return [
            f"# Airflow DAG{dag_id}, rendered by `autopilot render` from",
            f"# {source}{digest}.",
            "#",
            "# This file no longer needs the YAML definition: it is an ordinary DAG file to edit,",
            "# review and deploy like any other. Stop serving the YAML (delete it, or move it out",
            "# of the definitions folder) so that both do not register the same dag_id.",
            "# It still depends on the airflow-provider-autopilot package: its operators run the",
            "# scripts, evaluate the decisions and render the {{ ... }} templates.",
        ]

    def _import(self, module: str, name: str) -> None:
        self.imports.setdefault(module, set()).add(name)

    def _import_lines(self) -> list[str]:
        # isort's order: the standard library, then third-party packages; `import x` before `from`.
        stdlib = {"datetime"}
        groups: list[list[str]] = [[], []]
        for module in sorted(self.imports, key=lambda mod: (mod not in stdlib, mod)):
            group = groups[0 if module in stdlib else 1]
            names = sorted(self.imports[module] - {""})
            if "" in self.imports[module]:
                group.insert(sum(1 for line in group if line.startswith("import ")), f"import {module}")
            line = f"from {module} import {', '.join(names)}"
            if names and len(line) > 88:  # as ruff format wraps it: one name a line
                line = f"from {module} import (\n" + "".join(f"    {name},\n" for name in names) + ")"
            if names:
                group.append(line)
        lines: list[str] = []
        for group in groups:
            if group:
                lines += ([""] if lines else []) + group
        return lines

    # -- the DAG ----------------------------------------------------------------------------------

    def _dag_args(self) -> list[tuple[str | None, Any]]:
        dag = self.dag
        doc = (dag.doc_md or "").rstrip()
        doc = f"{doc}\n\n" if doc else ""
        doc += f"Rendered from `{self.source}` by `autopilot render`."
        args: list[tuple[str | None, Any]] = [("dag_id", dag.dag_id)]
        if dag.description is not None:
            args.append(("description", dag.description))
        args += [
            ("doc_md", doc),
            ("schedule", self._value(dag.schedule)),
            ("start_date", self._datetime(dag.start_date, dag.timezone) if dag.start_date else None),
        ]
        if dag.end_date:
            args.append(("end_date", self._datetime(dag.end_date, dag.timezone)))
        args += [("catchup", dag.catchup), ("tags", sorted(dag.tags))]
        if dag.params:
            args.append(("params", {name: self._param(dag.params.get_param(name)) for name in dag.params}))
        if dag.default_args:
            args.append(("default_args", self._value(dict(dag.default_args))))
        if dag.render_template_as_native_obj:
            args.append(("render_template_as_native_obj", True))
        for name in ("on_success_callback", "on_failure_callback"):
            callback = getattr(dag, name, None)
            if callback is not None:
                args.append((name, self._notifier(name, callback)))
        return args

    def _notifier(self, name: str, notifier: Any) -> _Call:

        if not isinstance(notifier, AutopilotNotifier):
            raise RenderError(f"{name}: cannot write {notifier!r} as Python")
        self._import("autopilot_provider.notifications.autopilot", "AutopilotNotifier")
        return _Call("AutopilotNotifier", [(k, self._task_value(k, v)) for k, v in notifier.arguments().items()])

    def _param(self, param: Any) -> _Call:
        from airflow.sdk.definitions._internal.types import is_arg_set

        self._import("airflow.sdk", "Param")
        args: list[tuple[str | None, Any]] = []
        if is_arg_set(param.value):
            args.append((None, self._value(param.value)))
        if param.description is not None:
            args.append(("description", param.description))
        schema = dict(param.schema)
        reserved = {"default", "description", "source", "schema"}
        if all(k.isidentifier() and not keyword.iskeyword(k) and k not in reserved for k in schema):
            args += [(k, self._value(v)) for k, v in schema.items()]
        elif schema:
            args.append(("schema", self._value(schema)))
        return _Call("Param", args)

    # -- groups and tasks -------------------------------------------------------------------------

    def _name_nodes(self, group: TaskGroup) -> None:
        for node_id, child in group.children.items():
            name = "_".join(part.strip("_") or "_" for part in node_id.split("."))
            name = re.sub(r"\W", "_", name, flags=re.ASCII)  # a variable name, whatever the id holds
            if keyword.iskeyword(name) or not name.isidentifier():
                name += "_"
            if not name.isidentifier():  # it started with a digit
                name = "_" + name
            base, n = name, 2
            while name in self.taken:
                name, n = f"{base}_{n}", n + 1
            self.taken.add(name)
            self.names[node_id] = name
            if isinstance(child, TaskGroup):
                self._name_nodes(child)

    def _group_body(self, group: TaskGroup, depth: int) -> list[str]:
        """The statements inside a ``with`` block: its tasks and groups, then their dependencies."""
        pad = INDENT * depth
        lines: list[str] = []
        for node_id, child in group.children.items():
            if lines:
                lines.append("")
            name = self.names[node_id]
            if isinstance(child, TaskGroup):
                lines += _layout(_Call("TaskGroup", self._group_args(child)), f"{pad}with ", f" as {name}:", depth)
                lines += self._group_body(child, depth + 1)
            else:
                cls = type(child)
                self._import(cls.__module__, cls.__name__)
                lines += _layout(_Call(cls.__name__, self._task_args(child)), f"{pad}{name} = ", "", depth)
        dependencies = self._dependencies(group, depth)
        if dependencies:
            lines += ["", *dependencies]
        return lines

    def _group_args(self, group: TaskGroup) -> list[tuple[str | None, Any]]:
        import attrs

        self._import("airflow.sdk", "TaskGroup")
        args: list[tuple[str | None, Any]] = [("group_id", group._group_id)]
        for attr in attrs.fields(TaskGroup):
            if not attr.init or attr.alias in ("group_id", "parent_group", "dag"):
                continue
            value = getattr(group, attr.name)
            default = attr.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = None if default.takes_self else default.factory()
            if value != default:
                args.append((attr.alias, self._value(value)))
        return args

    def _task_args(self, task: Any) -> list[tuple[str | None, Any]]:
        import inspect

        passed: dict[str, Any] = dict(getattr(task, "_BaseOperator__init_kwargs", None) or {})
        if "task_id" not in passed:
            raise RenderError(f"task {task.task_id!r}: its constructor arguments were not recorded")
        defaults = self.dag.default_args or {}
        # arguments an operator computes from the others and hands to its base class
        derived = set(getattr(type(task), "derived_args", ()))
        signature = inspect.signature(type(task).__init__).parameters
        own = [p for p in signature if p not in ("self", "args", "kwargs")]
        kept: dict[str, Any] = {}
        for key, value in passed.items():
            if key in _IMPLICIT_ARGS or key in derived or (key in defaults and defaults[key] == value):
                continue
            parameter = signature.get(key)
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                if parameter.default is value or (parameter.default is None and value is None):
                    continue
            kept[key] = value
        order = ["task_id", "doc_md", *own]
        keys = [k for k in order if k in kept] + [k for k in kept if k not in order]
        for key in keys:
            if not key.isidentifier() or keyword.iskeyword(key):
                raise RenderError(f"task {task.task_id!r}: argument {key!r} is not a Python name")
        return [(key, self._task_value(key, kept[key])) for key in keys]

    def _task_value(self, key: str, value: Any) -> Any:
        if key != "scope" or not isinstance(value, dict) or not value:
            return self._value(value)
        # Every task of one step list has the same scope: written once, as a constant.
        if self.definitions and value.get("definitions") == self.definitions:
            self.uses_definitions = True
            value = {**value, "definitions": _Code("DEFINITIONS")}
        value = self._value(value)
        text = _inline(value) or repr(value)
        if text not in self.scopes:
            # Named after the function call whose inputs it sees (SCOPE for the workflow's steps).
            inputs_task = value.get("inputs_task")
            group_id = inputs_task.rpartition(".")[0] if isinstance(inputs_task, str) else ""
            prefix = f"{self.names[group_id].upper()}_" if group_id in self.names else ""
            name, n = f"{prefix}SCOPE", 2
            while name in self.taken:
                name, n = f"{prefix}SCOPE_{n}", n + 1
            self.taken.add(name)
            self.scopes[text] = (name, value)
        return _Code(self.scopes[text][0])

    # -- dependencies -----------------------------------------------------------------------------

    def _dependencies(self, group: TaskGroup, depth: int) -> list[str]:
        """``a >> b`` lines for the edges between the children of ``group``.

        Where the DAG records a ``>>`` between a group and a sibling (Airflow keeps it on the group
        for the graph view), it is written ``group >> x`` again, which links all the group's leaves
        (or roots) as before; any other edge is written task by task. Inner groups' edges are
        written inside their blocks, so each group is complete when it is linked."""
        position = {node_id: i for i, node_id in enumerate(group.children)}
        order = {task_id: i for i, task_id in enumerate(self.dag.task_ids)}
        owner: dict[str, str] = {}  # task id → the child of `group` that holds it
        for node_id, child in group.children.items():
            for task in child if isinstance(child, TaskGroup) else [child]:
                owner[task.task_id] = node_id
        edges: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for task_id, child_id in owner.items():
            for up in self.dag.get_task(task_id).upstream_task_ids:
                if up in owner and owner[up] != child_id:
                    edges.setdefault((owner[up], child_id), set()).add((up, task_id))
        pairs: list[tuple[str, str]] = []  # (upstream, downstream) variable names
        for up_id, down_id in sorted(edges, key=lambda pair: (position[pair[0]], position[pair[1]])):
            up_node, down_node = group.children[up_id], group.children[down_id]
            task_edges = edges[up_id, down_id]
            joined = {(a.task_id, b.task_id) for a in _leaves(up_node) for b in _roots(down_node)}
            if _group_edge(up_node, down_node) and joined <= task_edges:
                pairs.append((self.names[up_id], self.names[down_id]))
                task_edges = task_edges - joined
            for a, b in sorted(task_edges, key=lambda edge: (order[edge[0]], order[edge[1]])):
                pairs.append((self.names[a], self.names[b]))
        return [line for statement in _chains(pairs) for line in _layout_chain(statement, depth)]

    # -- values -----------------------------------------------------------------------------------

    def _value(self, value: Any) -> Any:
        """Literal values as they are; other objects as the call that recreates them."""
        if value is None or isinstance(value, (bool, int, float, str, _Code, _Call)):
            return value
        if isinstance(value, dict):
            return {self._value(k): self._value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._value(v) for v in value)
        if isinstance(value, (set, frozenset)):
            return sorted(self._value(v) for v in value)
        if isinstance(value, timedelta):
            return self._timedelta(value)
        if isinstance(value, datetime):
            return self._datetime(value, value.tzinfo)
        if isinstance(value, ApprovalGuard):
            self._import("autopilot_provider.operators.guard", "ApprovalGuard")
            return _Call("ApprovalGuard", [(None, [list(r) for r in value.requires])])
        asset = self._asset(value)
        if asset is not None:
            return asset
        raise RenderError(f"cannot write a {type(value).__name__} value as Python: {value!r}")

    def _asset(self, value: Any) -> _Call | None:
        """Asset schedules and outlets as the calls that make them (None: not one)."""
        from airflow.sdk import Asset, AssetAll, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable

        if isinstance(value, Asset):
            self._import("airflow.sdk", "Asset")
            args: list[tuple[str | None, Any]] = [("uri", value.uri)] if value.name == value.uri else []
            return _Call("Asset", args or [("name", value.name), ("uri", value.uri)])
        if isinstance(value, (AssetAll, AssetAny)):
            name = type(value).__name__
            self._import("airflow.sdk", name)
            return _Call(name, [(None, self._value(member)) for member in value.objects])
        if isinstance(value, AssetOrTimeSchedule) and isinstance(value.timetable, CronTriggerTimetable):
            self._import("airflow.sdk", "AssetOrTimeSchedule")
            self._import("airflow.sdk", "CronTriggerTimetable")
            timetable = value.timetable
            zone = getattr(timetable.timezone, "name", timetable.timezone)
            cron = _Call("CronTriggerTimetable", [(None, timetable.expression), ("timezone", str(zone))])
            return _Call("AssetOrTimeSchedule", [("timetable", cron), ("assets", self._value(value.asset_condition))])
        return None

    def _timedelta(self, value: timedelta) -> _Call:
        self._import("datetime", "timedelta")
        hours, rest = divmod(value.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        parts = {"days": value.days, "hours": hours, "minutes": minutes, "seconds": seconds}
        parts["microseconds"] = value.microseconds
        return _Call("timedelta", [(k, v) for k, v in parts.items() if v] or [(None, 0)])

    def _datetime(self, value: datetime, tz: Any) -> _Call:
        import pendulum

        self._import("pendulum", "")
        name = getattr(tz, "name", None) or (value.tzname() if value.tzinfo else None) or "UTC"
        local = pendulum.instance(value).in_timezone(name)
        args: list[tuple[str | None, Any]] = [(None, local.year), (None, local.month), (None, local.day)]
        time = [local.hour, local.minute, local.second, local.microsecond]
        while time and not time[-1]:
            time.pop()
        args += [(None, part) for part in time]
        args.append(("tz", name))
        return _Call("pendulum.datetime", args)


def _group_edge(up: Any, down: Any) -> bool:
    """Whether ``up >> down`` was set on a group (not only between tasks)."""
    if isinstance(down, TaskGroup):
        return (
            up.group_id in down.upstream_group_ids
            if isinstance(up, TaskGroup)
            else up.task_id in down.upstream_task_ids
        )
    return isinstance(up, TaskGroup) and down.task_id in up.downstream_task_ids


def _leaves(node: Any) -> list[Any]:
    return list(node.get_leaves()) if isinstance(node, TaskGroup) else [node]


def _roots(node: Any) -> list[Any]:
    return list(node.get_roots()) if isinstance(node, TaskGroup) else [node]


# ------------------------------------------------------------------------------------------------
# Dependency statements
# ------------------------------------------------------------------------------------------------


def _chains(pairs: list[tuple[str, str]]) -> list[list[tuple[str, ...]]]:
    """Group edges into statements ``a >> b >> [c, d] >> e``: each item is one name or a list.

    Edges from one upstream are written ``a >> [b, c]``; upstreams with the same downstreams are
    written ``[a, b] >> c``; statements that continue each other are chained. ``[a] >> [b]`` is
    never formed (lists have no ``>>``)."""
    downs: dict[str, list[str]] = {}
    for up, down in pairs:
        downs.setdefault(up, [])
        if down not in downs[up]:
            downs[up].append(down)
    links: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for up, targets in downs.items():
        key = tuple(targets)
        same = next((i for i, (ups, ds) in enumerate(links) if ds == key and len(key) == 1), None)
        if same is not None:
            links[same] = (links[same][0] + (up,), key)
        else:
            links.append(((up,), key))
    statements: list[list[tuple[str, ...]]] = []
    used = [False] * len(links)
    for i, (ups, ds) in enumerate(links):
        if used[i]:
            continue
        used[i] = True
        chain = [ups, ds]
        while True:
            tail = chain[-1]
            following = [j for j, (u, _) in enumerate(links) if not used[j] and u == tail]
            if len(following) != 1 or (len(tail) > 1 and len(links[following[0]][1]) > 1):
                break
            used[following[0]] = True
            chain.append(links[following[0]][1])
        statements.append(chain)
    return statements


def _layout_chain(chain: list[tuple[str, ...]], depth: int) -> list[str]:
    pad = INDENT * depth
    items = [names[0] if len(names) == 1 else f"[{', '.join(names)}]" for names in chain]
    line = pad + " >> ".join(items)
    if len(line) <= WIDTH:
        return [line]
    if len(chain) > 2:  # too long to chain: one statement per link
        return [line for a, b in zip(chain, chain[1:], strict=False) for line in _layout_chain([a, b], depth)]
    left, right = chain
    if len(right) > 1:
        head = f"{pad}{left[0] if len(left) == 1 else '[' + ', '.join(left) + ']'} >> "
        return _layout([_Code(n) for n in right], head, "", depth)
    return _layout([_Code(n) for n in left], pad, f" >> {right[0]}", depth)


# ------------------------------------------------------------------------------------------------
# Formatting (the layout ruff format produces)
# ------------------------------------------------------------------------------------------------


def _layout(value: Any, head: str, tail: str, depth: int) -> list[str]:
    """Lines for ``head + value + tail``: on one line if it fits, else split at the brackets."""
    flat = _inline(value)
    if flat is not None and len(head) + len(flat) + len(tail) <= WIDTH:
        return [head + flat + tail]
    parts = _brackets(value)
    if parts is None:
        return (head + _source(value) + tail).split("\n")
    opening, closing, entries = parts
    pad = INDENT * (depth + 1)
    lines = [head + opening]
    for prefix, item in entries:
        lines += _layout(item, pad + prefix, ",", depth + 1)
    lines.append(INDENT * depth + closing + tail)
    return lines


def _brackets(value: Any) -> tuple[str, str, list[tuple[str, Any]]] | None:
    if isinstance(value, _Call) and value.args:
        return value.name + "(", ")", [(f"{k}=" if k else "", v) for k, v in value.args]
    if isinstance(value, dict) and value:
        return "{", "}", [(_inline_key(k) + ": ", v) for k, v in value.items()]
    if isinstance(value, list) and value:
        return "[", "]", [("", v) for v in value]
    if isinstance(value, tuple) and value:
        return "(", ")", [("", v) for v in value]
    return None


def _inline_key(key: Any) -> str:
    text = _inline(key)
    if text is None:
        raise RenderError(f"cannot write {key!r} as a dictionary key")
    return text


def _inline(value: Any) -> str | None:
    """``value`` on one line, or None when it cannot be (it holds a multi-line string)."""
    if isinstance(value, _Code):
        return str(value)
    if isinstance(value, str):
        return None if _triple_quoted(value) else _quote(value)
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else f'float("{value}")'
    if isinstance(value, _Call):
        items = [(f"{k}=" if k else "", _inline(v)) for k, v in value.args]
        return None if any(t is None for _, t in items) else f"{value.name}({', '.join(p + t for p, t in items)})"  # type: ignore[operator]
    if isinstance(value, dict):
        items = [(_inline(k), _inline(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in items):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        texts = [_inline(v) for v in value]
        if any(t is None for t in texts):
            return None
        body = ", ".join(texts)  # type: ignore[arg-type]
        if isinstance(value, tuple):
            return f"({body},)" if len(texts) == 1 else f"({body})"
        return f"[{body}]"
    raise RenderError(f"cannot write a {type(value).__name__} value as Python: {value!r}")


def _source(value: Any) -> str:
    """An atom's source, multi-line strings triple-quoted."""
    if isinstance(value, str) and not isinstance(value, _Code):
        return _triple_quoted(value) or _quote(value)
    text = _inline(value)
    assert text is not None
    return text


def _quote(text: str) -> str:
    """A one-line string literal, with the quotes ruff prefers (double unless that needs more escapes);
    ``repr(text)`` whenever the literal would not read back as ``text``."""
    literal = _ruff_quote(text)
    try:
        same = ast.literal_eval(literal) == text and "\n" not in literal and "\r" not in literal
    except (SyntaxError, ValueError):
        same = False
    return literal if same else repr(text)


def _ruff_quote(text: str) -> str:
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + quote)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(repr(ch)[1:-1])
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def _triple_quoted(text: str) -> str | None:
    """A readable triple-quoted literal for a multi-line string, or None when that is not safe.

    Text without backslashes starts on the line after the quotes (``\"\"\"\\``); text with
    backslashes is a raw string, so that ``\\n`` in a script reads as written."""
    if "\n" not in text or '"""' in text or text.endswith('"'):
        return None
    if any(not (ch.isprintable() or ch in "\n\t") for ch in text):
        return None
    if "\\" in text:
        if text.endswith("\\"):
            return None
        literal = 'r"""' + text + '"""'
    else:
        literal = '"""\\\n' + text + '"""'
    try:
        same = ast.literal_eval(literal) == text
    except (SyntaxError, ValueError):
        same = False
    return literal if same else None
