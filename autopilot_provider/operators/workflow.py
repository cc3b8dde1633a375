"""A `workflow` step: start a run of another workflow — Airflow's own ``TriggerDagRunOperator``, made
to start it the way the request portal does.

* **The form.** The mapped values are rendered in the sandbox (like every step's templates) and
  validated against the started workflow's form as it is in the definitions folder now, with the
  choices fetched from APIs (:func:`~autopilot_provider.repository.forms.check_form`, the code the
  portal's start path runs): the run's ``conf`` is the checked values with the defaults filled in.
* **The requester.** Airflow's execution API gives a run started by a task the triggering user of
  that task's run, so the started run is the same person's request and shows in their *My
  requests*. A form field ``requester`` (a request made on someone's behalf) is carried over too.
* **Once.** The run id is derived from this run, step and map index: a retried or cleared step finds
  the run it started (and waits for it again, or reads its end) instead of starting a second one.
* **Waiting.** Deferred to Airflow's ``DagStateTrigger`` (no worker slot held while the run goes on).

Outputs: ``workflow``, ``run_id``, ``state`` (``success`` or ``failed`` once waited for, the state
it had when started without waiting) and ``outputs`` (what the started workflow's ``outputs:`` gave,
the XCom of its ``_outputs`` task; ``{}`` when it declares none or was not waited for).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import XCOM_RUN_ID, TriggerDagRunOperator
from airflow.providers.standard.triggers.external_task import DagStateTrigger
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowRuntimeError

from autopilot_provider.definitions.templating import render_value
from autopilot_provider.hooks.choices import ChoicesUnavailable, resolve_choices
from autopilot_provider.repository.contacts import REQUESTER_FIELD
from autopilot_provider.repository.folder import Project
from autopilot_provider.repository.forms import check_form, find_workflow
from autopilot_provider.repository.scope import OUTPUTS_TASK_ID, ScopeSpec, build_scope

#: The states a started run ends in.
ENDED = ("success", "failed")


def started_run_id(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The id of the run a step starts: the same for every try of the step in this run (so a retry
    finds it), different for every other step and run. Readable where it fits: which workflow and
    step started it."""
    digest = hashlib.sha256(f"{dag_id}\x00{run_id}\x00{task_id}\x00{map_index}".encode()).hexdigest()[:20]
    return f"started__{dag_id[:80]}.{task_id[:80]}__{digest}"


class StartWorkflowOperator(TriggerDagRunOperator):
    """Start a run of the workflow ``workflow`` with ``form`` (templates over this run), as this
    run's requester; with ``wait``, wait for it in the triggerer (looking every ``every`` seconds)
    and fail when it fails unless ``on_failure`` is ``continue``."""

    # Airflow's (unsandboxed) Jinja never sees user text: the form values render in the sandbox.
    template_fields: Sequence[str] = ()
    ui_color = "#efe8fa"
    #: TriggerDagRunOperator arguments computed here from the step's own (``autopilot render``
    #: leaves them out).
    derived_args = frozenset(
        {
            "trigger_dag_id",
            "wait_for_completion",
            "deferrable",
            "poke_interval",
            "openlineage_inject_parent_info",
        }
    )

    def __init__(
        self,
        *,
        workflow: str,
        form: dict[str, Any] | None = None,
        wait: bool = True,
        on_failure: str = "fail",
        every: float = 10.0,
        scope: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if on_failure not in ("fail", "continue"):
            raise ValueError(f"on_failure must be fail or continue, not {on_failure!r}")
        super().__init__(
            trigger_dag_id=workflow,
            wait_for_completion=wait,
            deferrable=True,
            poke_interval=every,
            openlineage_inject_parent_info=False,  # the conf is the form's values, nothing else
            **kwargs,
        )
        self.workflow = workflow
        self.form = form or {}
        self.wait = wait
        self.on_failure = on_failure
        self.every = every
        self.scope = scope or {}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        scope = build_scope(context, ScopeSpec.from_dict(self.scope))
        try:
            self.conf = {name: render_value(value, scope) for name, value in self.form.items()}
        except Exception as exc:  # noqa: BLE001 - undefined names, sandbox limits: the step cannot start it
            raise AirflowFailException(f"workflow '{self.workflow}': a form value cannot be computed: {exc}") from None
        requester = scope["form"].get(REQUESTER_FIELD) or scope["run"].get("requester")
        if requester:
            self.conf[REQUESTER_FIELD] = requester  # kept only when that form has the field

    # -- starting ---------------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        self.trigger_run_id = started_run_id(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))
        self.note = f"Started by step '{ti.task_id}' of {ti.dag_id} run {ti.run_id}"
        if ti.get_dr_count(dag_id=self.workflow, run_ids=[self.trigger_run_id]):
            return self._attach(context)
        self.conf = self._checked_form(self.conf or {})
        self._check_startable(ti)
        self.log.info("Starting workflow '%s' as run %s", self.workflow, self.trigger_run_id)
        if not self.wait:
            # the run is started after execute() ends (the task runner acts on the exception
            # below): the outputs are pushed now, since the task returns nothing
            ti.xcom_push(key="return_value", value=self._outputs("queued"))
        return super().execute(context)  # raises Airflow's DagRunTriggerException

    def _check_startable(self, ti: Any) -> None:
        """Airflow knows the workflow's DAG and it is not paused (a run of a paused DAG would wait
        until someone unpauses it); else the step fails, and a retry may start the run."""
        try:
            dag = ti.get_dag(self.workflow)
        except AirflowRuntimeError as exc:
            raise AirflowException(
                f"workflow '{self.workflow}' has no DAG in Airflow yet (the dag-processor has not parsed it, or "
                f"it has import errors): {exc}"
            ) from None
        if dag.is_paused:
            raise AirflowException(
                f"workflow '{self.workflow}' is paused in Airflow: a run started now would wait until someone "
                "unpauses it; unpause it (a retry of this step then starts the run)"
            )

    def _checked_form(self, values: dict[str, Any]) -> dict[str, Any]:
        """The values as the portal would start the run with them: checked against the workflow's
        form (live choices included), defaults filled in, the carried requester only if a field."""
        folder = self.scope.get("definitions")
        project = Project(Path(folder)) if folder else None
        workflow = find_workflow(project, self.workflow) if project is not None else None
        if workflow is None:
            raise AirflowFailException(f"workflow '{self.workflow}' does not exist or has errors in the definitions")
        if REQUESTER_FIELD not in workflow.form.properties:
            values.pop(REQUESTER_FIELD, None)
        try:
            choices = resolve_choices(workflow.form, project, max_age=0)
        except ChoicesUnavailable as exc:
            raise AirflowException(f"workflow '{self.workflow}': {exc}") from None
        result, errors = check_form(workflow.form, values, choices)
        if errors:
            lines = "\n".join(f"  {e}" for e in errors)
            raise AirflowFailException(
                f"the form of workflow '{self.workflow}' is invalid, it was not started:\n{lines}"
            )
        return result

    def _attach(self, context: Any) -> Any:
        """A run with this id exists: an earlier try of this step started it."""
        ti = context["ti"]
        state = str(ti.get_dagrun_state(dag_id=self.workflow, run_id=self.trigger_run_id))
        self.log.info(
            "Run %s of workflow '%s' exists already (%s): not started again", self.trigger_run_id, self.workflow, state
        )
        ti.xcom_push(key=XCOM_RUN_ID, value=self.trigger_run_id)
        if not self.wait:
            return self._outputs(state)
        if state in ENDED:
            return self._ended(context, state)
        self.defer(
            trigger=DagStateTrigger(
                dag_id=self.workflow,
                states=list(ENDED),
                run_ids=[self.trigger_run_id],
                poll_interval=self.every,
            ),
            method_name="execute_complete",
        )

    # -- waiting ------------------------------------------------------------------------------------

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        """The run ended (``event`` is ``DagStateTrigger``'s: its class path and ``{run_id: state}``)."""
        _, data = event
        self.trigger_run_id = data["run_ids"][0]
        return self._ended(context, str(data.get(self.trigger_run_id)))

    def _ended(self, context: Any, state: str) -> dict[str, Any]:
        ti = context["ti"]
        if state != "success":
            states = ti.get_task_states(dag_id=self.workflow, run_ids=[self.trigger_run_id])
            failed = sorted(
                task for task, task_state in (states.get(self.trigger_run_id) or {}).items() if task_state == "failed"
            )
            where = f" (failed: {', '.join(failed)})" if failed else ""
            message = f"workflow '{self.workflow}' ended {state}: run {self.trigger_run_id}{where}"
            if self.on_failure == "fail":
                # a retry would find the same ended run: fail for good (clear that run, then this step)
                raise AirflowFailException(message)
            self.log.warning("%s; going on (on_failure: continue)", message)
            return self._outputs(state)
        outputs = ti.xcom_pull(
            task_ids=OUTPUTS_TASK_ID, dag_id=self.workflow, run_id=self.trigger_run_id, map_indexes=-1
        )
        self.log.info("Workflow '%s' ended %s (run %s)", self.workflow, state, self.trigger_run_id)
        return self._outputs(state, outputs if isinstance(outputs, dict) else {})

    def _outputs(self, state: str, outputs: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"workflow": self.workflow, "run_id": self.trigger_run_id, "state": state, "outputs": outputs or {}}
