"""Branch on sandboxed expressions over the run's form and step outputs."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseBranchOperator

from autopilot_provider.definitions.templating import evaluate
from autopilot_provider.repository.scope import ScopeSpec, build_scope


class DecisionOperator(BaseBranchOperator):
    """Try ``cases`` in order — ``[expression, [task or group ids]]`` — and follow the first true one,
    else ``default``. Every other direct downstream task is skipped. The step's outputs name the
    branch taken: ``{"case": index or "default", "taken": [...]}``."""

    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        cases: list[list[Any]],
        default: list[str] | None = None,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cases = cases
        self.default = default or []
        self.scope = scope or {}

    def choose_branch(self, context: Any) -> list[str]:
        chosen, _ = self._choose(context)
        return chosen

    def _choose(self, context: Any) -> tuple[list[str], int | str]:
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        for index, (expression, targets) in enumerate(self.cases):
            value = evaluate(expression, scope)
            self.log.info("Case %d: %s → %r", index + 1, expression, value)
            if value:
                return list(targets), index
        self.log.info("No case matched: taking the default branch %s", self.default)
        return list(self.default), "default"

    def execute(self, context: Any) -> dict[str, Any]:
        chosen, case = self._choose(context)
        outputs = {"case": case, "taken": [t.rsplit(".", 1)[-1] for t in chosen]}
        # Skipping the other branches ends execute() with an exception (DownstreamTasksSkipped), so
        # the outputs are pushed before branching rather than returned.
        context["ti"].xcom_push(key="return_value", value=outputs)
        self.do_branch(context, chosen)
        return outputs
