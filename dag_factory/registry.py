"""The whole mapping from step kind to compiler, in one table.

A kind listed in :data:`autopilot_provider.repository.checks.NOT_YET` is part of the format (so editors and
the designer know it) but has no operator in this release: a definition that uses it fails validation
with a clear message instead of compiling to a silent no-op.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.repository.checks import NOT_YET
from dag_factory.context import Compiler


class _Lazy(Mapping[str, Any]):
    """kind → compiler, importing a compiler's module (and its operators and hooks) on first use:
    a worker starting one task, or a DagBag of script-only workflows, never pays for the others."""

    def __init__(self, paths: dict[str, str]):
        self.paths = paths
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, kind: str) -> Any:
        if kind not in self._loaded:
            module, _, name = self.paths[kind].partition(":")
            self._loaded[kind] = getattr(importlib.import_module(module), name)
        return self._loaded[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


COMPILERS: Mapping[str, Compiler] = _Lazy(
    {
        "script": "dag_factory.compilers.script:compile_script",
        "decision": "dag_factory.compilers.decision:compile_decision",
        "use": "dag_factory.compilers.use:compile_use",
        "task": "dag_factory.compilers.task:compile_task",
        "wait": "dag_factory.compilers.wait:compile_wait",
        "notify": "dag_factory.compilers.notify:compile_notify",
        "approval": "dag_factory.compilers.approval:compile_approval",
        "form": "dag_factory.compilers.form:compile_form",
        "ticket": "dag_factory.compilers.ticket:compile_ticket",
        "workflow": "dag_factory.compilers.workflow:compile_workflow",
    }
)

#: Builds the DAG of one definition: the validated definition and its folder in, the DAG out.
DagBuilder = Callable[..., Any]

#: Definition kind → the function that builds its DAG. The other kinds (Function, Contacts, Api,
#: Alert, ...) have none: they are used by these, or served by the API server.
DAG_BUILDERS: Mapping[str, DagBuilder] = _Lazy(
    {
        "Workflow": "dag_factory.builder:build_dag",
        "Trigger": "dag_factory.compilers.trigger:build_trigger_dag",
    }
)

assert set(DAG_BUILDERS) == set(m.DAG_KINDS)
assert not set(COMPILERS) & set(NOT_YET) and set(COMPILERS) | set(NOT_YET) == set(m.STEP_KINDS)
