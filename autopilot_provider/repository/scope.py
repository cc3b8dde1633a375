"""The names user templates see at run time: ``form``, ``steps``, ``inputs``, ``run``, ``resources``,
``contacts``. Built from the Airflow task context; step outputs are read from XCom lazily, so a
template pays only for the steps it mentions. ``run.ticket`` is the run's first ticket (the outputs of
the first `create` ticket step that opened one), so its number travels with the run; ``run.owner``
is the workflow's owner as its DAG version has it (what the contact reference ``owner`` reaches)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopilot_provider.repository.folder import Project


@dataclass(frozen=True)
class ScopeSpec:
    """Compile-time facts an operator needs to build its scope (all JSON-serialisable)."""

    steps: dict[str, str] = field(default_factory=dict)  # step id → task id holding its outputs
    inputs_task: str | None = None  # inside a function: the task holding the rendered inputs
    definitions: str | None = None  # the definitions folder (for resources and contacts)
    tickets: list[str] = field(default_factory=list)  # task ids of the `create` ticket steps, in order
    owner: str | None = None  # the workflow's (trigger's) owner as written: `run.owner`, what `owner` reaches

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"steps": self.steps, "inputs_task": self.inputs_task, "definitions": self.definitions}
        if self.tickets:
            data["tickets"] = list(self.tickets)
        if self.owner:
            data["owner"] = self.owner
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScopeSpec:
        data = data or {}
        return cls(
            steps=dict(data.get("steps", {})),
            inputs_task=data.get("inputs_task"),
            definitions=data.get("definitions"),
            tickets=list(data.get("tickets", [])),
            owner=data.get("owner"),
        )


class _Lazy(Mapping[str, Any]):
    def __init__(self, keys: list[str], load):
        self._keys = keys
        self._load = load
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._cache:
            self._cache[key] = self._load(key)
        return self._cache[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _pull(ti: Any, task_id: str) -> dict[str, Any]:
    value = ti.xcom_pull(task_ids=task_id, key="return_value")
    if value is None:
        return {}
    return value if isinstance(value, dict) else {"value": value}


#: The task that works out a workflow's declared ``outputs`` when its steps are done: what a
#: `workflow` step that started the run reads (its return value).
OUTPUTS_TASK_ID = "_outputs"


#: The XCom key under which every ticket step also pushes ``{number, sys_id, url, table, state}``.
TICKET_XCOM_KEY = "autopilot_ticket"


def first_ticket(ti: Any, task_ids: list[str]) -> dict[str, Any] | None:
    """The ticket the first of ``task_ids`` (create ticket steps) that opened one in this run opened."""
    for task_id in task_ids:
        opened = ti.xcom_pull(task_ids=task_id, key=TICKET_XCOM_KEY)
        if opened:
            return opened
    return None


def build_scope(context: Mapping[str, Any], spec: ScopeSpec, *, eager: bool = False) -> dict[str, Any]:
    ti = context["ti"]
    dag_run = context.get("dag_run")
    params = context.get("params") or {}
    form = {k: params[k] for k in params}
    steps: Mapping[str, Any] = _Lazy(list(spec.steps), lambda sid: {"outputs": _pull(ti, spec.steps[sid])})
    inputs = _pull(ti, spec.inputs_task) if spec.inputs_task else {}
    logical_date = context.get("logical_date")
    run = {
        "id": context.get("run_id"),
        "dag_id": getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", None),
        "logical_date": logical_date.isoformat() if logical_date else None,
        "requester": getattr(dag_run, "triggering_user_name", None),
        "conf": dict(getattr(dag_run, "conf", None) or {}),
        "try_number": getattr(ti, "try_number", None),
        "ticket": first_ticket(ti, spec.tickets),
        "owner": spec.owner,
    }
    resources = _Lazy(["items", "by_id"], lambda key: _resources(spec.definitions)[key])
    contacts = _Lazy(["people", "groups"], lambda key: _contacts(spec.definitions)[key])
    if eager:
        steps = {k: steps[k] for k in steps}
        resources = {"items": [], "by_id": {}}  # not passed to python scripts
        contacts = {"people": {}, "groups": {}}
    return {"form": form, "steps": steps, "inputs": inputs, "run": run, "resources": resources, "contacts": contacts}


def _definitions_of_kind(folder: str | None, kind: str) -> list[Any]:
    if not folder:
        return []

    project = Project(Path(folder))
    return [loaded.definition for loaded in project.of_kind(kind) if loaded.ok]


def _resources(folder: str | None) -> dict[str, Any]:
    items = [item.model_dump() for res in _definitions_of_kind(folder, "Resources") for item in res.items]
    return {"items": items, "by_id": {item["id"]: item for item in items}}


def _contacts(folder: str | None) -> dict[str, Any]:
    people: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for contacts in _definitions_of_kind(folder, "Contacts"):
        people.update({p.id: p.model_dump() for p in contacts.people})
        groups.update({g.id: g.model_dump() for g in contacts.groups})
    return {"people": people, "groups": groups}
