"""``_check_form``: the first task of a workflow whose form has fields with choices from an API, or
with a ``pattern`` (the DAG's Params leave patterns out: Airflow would match them with Python's
backtracking ``re`` on the API server; here they are matched with RE2, in linear time).

Airflow validates a run's values against the DAG's Params on every trigger path, but it cannot know
choices that an API gives at request time. The request portal checks them before it creates a run;
a run started any other way (Airflow's trigger form, ``POST /api/v2/dags/{dag_id}/dagRuns``, the CLI)
is checked here, against the live choices, before anything else happens. A bad value fails the
task — and the run — with one line per field; an API that cannot be asked fails it with the reason
(and Airflow's retries try again).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from autopilot_provider.definitions.models import Form
from autopilot_provider.hooks.choices import ChoicesUnavailable, resolve_choices
from autopilot_provider.repository.folder import Project
from autopilot_provider.repository.forms import check_form


class CheckFormOperator(BaseOperator):
    """Validate the run's form values (``params``) against ``form`` and the live dynamic choices.

    :param form: the workflow's ``form`` as written (``properties`` and ``required``)
    :param scope: where the definitions live (``{"definitions": folder}``), for the Api definitions,
        their OpenAPI documents and the inventory
    """

    template_fields: Sequence[str] = ()
    ui_color = "#eef3fb"

    def __init__(self, *, form: dict[str, Any], scope: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.form = form
        self.scope = scope or {}

    def execute(self, context: Any) -> dict[str, Any]:

        folder = self.scope.get("definitions")
        if not folder:
            raise AirflowFailException("the task has no definitions folder to find the form's choices in")
        form = Form.model_validate(self.form)
        # Airflow merged the run's conf into the DAG's params; keys the form does not declare are no
        # field of it (templates never see them), so only the form's fields are checked.
        params = context.get("params") or {}
        values = {name: params[name] for name in form.properties if name in params}
        try:
            choices = resolve_choices(form, Project(Path(folder)), max_age=0)
        except ChoicesUnavailable as exc:
            raise AirflowException(str(exc)) from None
        _, errors = check_form(form, values, choices)
        if errors:
            for error in errors:
                self.log.error("Form field %s", error)
            lines = "\n".join(f"  {e}" for e in errors)
            raise AirflowFailException(f"the request form is invalid, nothing else ran:\n{lines}")
        self.log.info("The form's %d field(s) are valid (%s checked against live choices)", len(values), len(choices))
        return {"checked": sorted(choices)}
