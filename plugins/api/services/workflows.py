"""The glue behind ``/workflows``: a workflow looked up for a request (404 naming the closest id), its
summary for the calling user, and a run requested through its form.

The rules are :mod:`autopilot_provider.repository.forms` (the same code the DAG factory and the
``_check_form`` task use), :mod:`autopilot_provider.hooks.choices` and
:mod:`autopilot_provider.server.requests`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from autopilot_plugin.api.datamodels.workflows import WorkflowOut
from autopilot_plugin.api.permissions import may_start_runs

from autopilot_provider.definitions.errors import suggest
from autopilot_provider.hooks import choices as form_choices
from autopilot_provider.repository import forms
from autopilot_provider.server import requests as requests_service
from autopilot_provider.server.errors import NotFound


def find(project: Any, workflow_id: str) -> Any:
    """The valid workflow ``workflow_id``, else 404."""
    workflow = forms.find_workflow(project, workflow_id)
    if workflow is None:
        hint = suggest(workflow_id, project.ids("Workflow"))
        raise NotFound(f"no valid workflow '{workflow_id}'{hint}", field="id")
    return workflow


def summary(workflow: Any, user: BaseUser) -> WorkflowOut:
    """The workflow as the catalog lists it, with whether ``user`` may start runs of it."""
    return WorkflowOut(**forms.workflow_summary(workflow), can_request=may_start_runs(user, workflow.id))


def start_run(
    workflow: Any,
    project: Any,
    form: Any,
    *,
    user_name: str,
    user_id: str,
    note: str | None,
    run_id: str | None = None,
    start_at: datetime | None = None,
) -> dict[str, Any]:
    """Validate ``start_at`` and ``form`` against the workflow's form (choices fetched now, unknown
    fields refused, the requester checked) and start a run with the values as its conf, triggered by
    the caller — now, or at ``start_at``."""
    start_at = requests_service.check_start_at(start_at)
    choices = form_choices.resolve_choices(workflow.form, project)
    values = forms.validate_form(workflow.form, form, choices)
    requests_service.check_requester(project, values, user_name)
    return requests_service.start_run(
        workflow, values, user_name=user_name, user_id=user_id, note=note, run_id=run_id, start_at=start_at
    )
