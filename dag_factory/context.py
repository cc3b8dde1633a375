"""The build context: what a step kind's compiler (``dag_factory/compilers/``) is given besides the
step. :class:`BuildContext` knows the definitions folder, the workflow's step defaults, the task and
group ids of the steps being compiled and the scope their templates see; it compiles nested steps (a
`use` step's function) with the same compiler table. Used by the factory only, while a DAG is built."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autopilot_provider.definitions import models as m
from autopilot_provider.definitions.durations import parse_duration
from autopilot_provider.definitions.errors import DefinitionError
from autopilot_provider.definitions.graph import dependencies, downstream_of_decision
from autopilot_provider.repository.protocol import Definitions
from autopilot_provider.repository.scope import ScopeSpec
from dag_factory import assets

#: A step kind's compiler: the step and the build context in, the step's Airflow task (or TaskGroup) out.
Compiler = Callable[[m.Step, "BuildContext"], Any]


class BuildContext:
    """What a compiler needs: the scope its templates see, task arguments, nested compilation.

    ``compilers`` is the kind → compiler table (``dag_factory.registry.COMPILERS``), passed in so that
    this module and the registry need not import each other."""

    def __init__(
        self,
        project: Definitions,
        definitions: Path,
        defaults: m.StepDefaults,
        compilers: Mapping[str, Compiler],
        *,
        group_id: str | None = None,
        inputs_task: str | None = None,
        timezone: str = "UTC",
        owner: str | None = None,
    ):
        self.project = project
        self.definitions = definitions
        self.defaults = defaults
        self.compilers = compilers
        self.group_id = group_id
        self.inputs_task = inputs_task
        self.timezone = timezone  # the workflow schedule's: what a naive date-time in a step means
        self.owner = owner  # the workflow's owner as written: what the contact reference `owner` reaches
        self.steps: list[m.Step] = []
        self.dependencies: dict[str, list[str]] = {}
        self._after_decision: set[str] = set()

    # -- ids and scope --------------------------------------------------------------------------

    def _full(self, local: str) -> str:
        return f"{self.group_id}.{local}" if self.group_id else local

    def entry_id(self, step_id: str) -> str:
        """Task id, or TaskGroup id for a `use` step — what a branch returns to follow this step."""
        return self._full(step_id)

    def output_task(self, step: m.Step) -> str:
        return self._full(f"{step.id}._outputs" if step.use is not None else step.id)

    def scope(self) -> dict[str, Any]:
        return ScopeSpec(
            steps={s.id: self.output_task(s) for s in self.steps},
            inputs_task=self.inputs_task,
            definitions=str(self.definitions),
            tickets=self.ticket_tasks(),
            owner=self.owner,
        ).as_dict()

    def ticket_tasks(self) -> list[str]:
        """Task ids of the `create` ticket steps, in order: where ``run.ticket`` comes from."""
        return [self.output_task(s) for s in self.steps if s.ticket is not None and s.ticket.action == "create"]

    def task_kwargs(self, step: m.Step, *, task_id: bool = True) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if task_id:
            kwargs["task_id"] = step.id
        retries = step.retries if step.retries is not None else self.defaults.retries
        if retries is not None:
            kwargs["retries"] = retries
        delay = step.retry_delay or self.defaults.retry_delay
        if delay:
            kwargs["retry_delay"] = parse_duration(delay)
        timeout = step.timeout or self.defaults.timeout
        if timeout:
            kwargs["execution_timeout"] = parse_duration(timeout)
        if task_id and step.outlets:
            kwargs["outlets"] = self.outlets(step)
        if step.trigger_rule:
            kwargs["trigger_rule"] = step.trigger_rule
        elif step.id in self._after_decision:
            kwargs["trigger_rule"] = "none_failed_min_one_success"
        doc = "\n\n".join(x for x in (step.title, step.description) if x)
        if doc:
            kwargs["doc_md"] = doc
        return kwargs

    def outlets(self, step: m.Step) -> list[Any]:
        """The Airflow assets the step updates (``outlets:``)."""
        if self.group_id is None:
            return assets.outlets(step, ("steps", self.steps.index(step)))
        try:
            return assets.outlets(step, ())
        except assets.AssetDefinitionError as exc:  # in a function's file: name the step
            raise assets.AssetDefinitionError((), f"step '{self.group_id}.{step.id}': {exc.message}") from None

    # -- compilation ----------------------------------------------------------------------------

    def function(self, function_id: str) -> m.Function:
        loaded = self.project.function(function_id)
        if loaded is None or not loaded.ok or not isinstance(loaded.definition, m.Function):
            raise DefinitionError(loaded.diagnostics if loaded else [])
        return loaded.definition

    def nested(self, *, group_id: str, inputs_task: str) -> BuildContext:
        return BuildContext(
            self.project,
            self.definitions,
            self.defaults,
            self.compilers,
            group_id=group_id,
            inputs_task=inputs_task,
            timezone=self.timezone,
            owner=self.owner,
        )

    def leaves(self) -> list[str]:
        """The ids of the compiled steps no other step waits for (sorted): the last ones."""
        waited_for = {d for deps in self.dependencies.values() for d in deps}
        return sorted(s.id for s in self.steps if s.id not in waited_for)

    def compile_steps(self, steps: list[m.Step]) -> dict[str, Any]:
        self.steps = steps
        self.dependencies = dependencies(steps)
        self._after_decision = downstream_of_decision(steps)
        nodes = {step.id: self.compilers[step.kind](step, self) for step in steps}
        for step in steps:
            for upstream in self.dependencies[step.id]:
                nodes[upstream] >> nodes[step.id]
        return nodes
