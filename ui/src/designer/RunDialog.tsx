// "Run" in the designer: the saved workflow's request form as the portal shows it (dynamic choices
// fetched by the server), then a run through Airflow's trigger endpoint, linked in its grid view.
import { useEffect, useMemo, useState } from "react";
import { api, ApiError, gridUrl, type WorkflowForm } from "../api";
import { withChoices } from "../common/schema";
import { SchemaForm } from "../common/SchemaForm";

export function RunDialog({ dagId, form, onClose }: { dagId: string; form: any; onClose: () => void }) {
  // the server's form of the saved workflow (choices resolved); until it answers, nothing is shown, so
  // the form does not change under the user's hands
  const [resolved, setResolved] = useState<WorkflowForm | null | undefined>(undefined);
  const [formProblem, setFormProblem] = useState<string | null>(null);
  const [paused, setPaused] = useState(false);
  const [started, setStarted] = useState<{ dag_id: string; dag_run_id: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let cancelled = false;
    api
      .workflowForm(dagId)
      .then((r) => !cancelled && setResolved(r))
      .catch((e) => {
        if (cancelled) return;
        setResolved(null);
        // 502: a field's API cannot list its choices (the server names the field)
        if (e instanceof ApiError && e.status === 502) setFormProblem(e.detail.message);
      });
    api
      .dag(dagId)
      .then((d) => !cancelled && setPaused(d.is_paused))
      .catch(() => {}); // not loaded by Airflow yet: starting says so
    return () => {
      cancelled = true;
    };
  }, [dagId]);

  const fallback = useMemo(() => withChoices(form, null), [form]);
  const schema = resolved ? resolved.schema : fallback.schema;
  const uiSchema = resolved ? resolved.ui_schema : fallback.uiSchema;

  const start = (conf: Record<string, unknown>) => {
    setBusy(true);
    setError(null);
    api
      .triggerDag(dagId, conf ?? {})
      .then(setStarted)
      .catch((e) =>
        setError(e instanceof ApiError && e.status === 404 ? "Airflow has not loaded this workflow yet (it picks up saved definitions within seconds). Try again shortly." : e.message),
      )
      .finally(() => setBusy(false));
  };

  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="modal" onClick={(e) => e.stopPropagation()} role="dialog" aria-label="Run workflow">
        <h2 style={{ marginTop: 0 }}>Run {dagId}</h2>
        {paused && !started && (
          <div className="alert info" data-testid="paused">
            This workflow is paused in Airflow: a run starts, but waits until it is unpaused (in Airflow's DAG view).
          </div>
        )}
        {formProblem && <div className="alert error" data-testid="choices-error">{formProblem}</div>}
        {started ? (
          <div className="alert success" data-testid="run-started">
            Run <code>{started.dag_run_id}</code> started.{" "}
            <a href={gridUrl(started.dag_id, started.dag_run_id)} target="_top">Open it in Airflow's grid view</a>
          </div>
        ) : resolved === undefined ? (
          <div className="muted">Loading the form…</div>
        ) : (
          <SchemaForm schema={schema} uiSchema={uiSchema} idPrefix="run" onSubmit={start}>
            <div className="row">
              <button type="submit" className="primary" disabled={busy}>Start run</button>
              <button type="button" onClick={onClose}>Cancel</button>
            </div>
          </SchemaForm>
        )}
        {error && <div className="alert error">{error}</div>}
        {started && <button onClick={onClose}>Close</button>}
      </div>
    </div>
  );
}
