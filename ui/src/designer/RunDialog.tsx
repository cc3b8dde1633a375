import { useMemo, useState } from "react";
import { api, ApiError, gridUrl } from "../api";
import { formSchema } from "../common/schema";
import { SchemaForm } from "../common/SchemaForm";

export function RunDialog({ dagId, form, onClose }: { dagId: string; form: any; onClose: () => void }) {
  const schema = useMemo(() => formSchema(form), [form]);
  const [started, setStarted] = useState<{ dag_id: string; dag_run_id: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

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
        {started ? (
          <div className="alert success" data-testid="run-started">
            Run <code>{started.dag_run_id}</code> started.{" "}
            <a href={gridUrl(started.dag_id, started.dag_run_id)} target="_top">Open it in Airflow's grid view</a>
          </div>
        ) : (
          <SchemaForm schema={schema} idPrefix="run" onSubmit={start}>
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
