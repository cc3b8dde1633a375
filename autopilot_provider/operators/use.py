"""The operator of a `use` step (a call of a reusable function): :class:`ValuesOperator` renders a
mapping of templates into values, optionally checked against a JSON Schema, and pushes it as the
task's outputs. ``dag_factory.compilers.use`` puts one first in the step's TaskGroup (``_inputs``, the
function's inputs) and one last (``_outputs``, the function's outputs). Runs on workers."""

from __future__ import annotations

from typing import Any

import jsonschema
from airflow.sdk import BaseOperator

from autopilot_provider.definitions.bounded import linear_time
from autopilot_provider.definitions.templating import render_value
from autopilot_provider.repository.scope import ScopeSpec, build_scope


class ValuesOperator(BaseOperator):
    """Render ``values`` in the step's scope, fill in the ``schema``'s defaults, check the result
    against the ``schema`` and return it (the task's outputs)."""

    ui_color = "#eeeeee"

    def __init__(
        self,
        *,
        values: dict[str, Any],
        schema: dict[str, Any] | None = None,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.values = values
        self.schema = schema
        self.scope = scope or {}

    def execute(self, context: Any) -> dict[str, Any]:
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        result = {name: render_value(value, scope) for name, value in self.values.items()}
        if self.schema:
            for name, prop in self.schema.get("properties", {}).items():
                if name not in result and "default" in prop:
                    result[name] = prop["default"]
            try:
                # patterns on RE2 (linear time): the values can hold what a requester typed
                validator = linear_time(jsonschema.validators.validator_for(self.schema))
                jsonschema.validate(result, self.schema, cls=validator, format_checker=jsonschema.FormatChecker())
            except jsonschema.ValidationError as exc:
                where = ".".join(str(p) for p in exc.absolute_path) or "inputs"
                raise ValueError(f"{where}: {exc.message}") from None
        return result
