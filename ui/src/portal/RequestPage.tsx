import { useRef, useState } from "react";
import { api, ApiError, type RunStarted, type Session } from "../api";
import { SchemaForm } from "../common/SchemaForm";
import { LoadError, usePolling, when } from "../common/util";
import { WorkflowAlerts } from "../alerts/StartedBy";
import { Link } from "../router";
import { startAtFromLocal, submissionKey } from "./submission";

export function RequestPage({ workflowId }: { workflowId: string; session: Session }) {
  const { data, error } = usePolling(() => api.workflowForm(workflowId), null, [workflowId]);
  const [values, setValues] = useState<Record<string, unknown>>({});
  const [started, setStarted] = useState<RunStarted | null>(null);
  const [problem, setProblem] = useState<{ message: string; errors: { field: string; message: string }[] } | null>(null);
  const [busy, setBusy] = useState(false);
  // optional: start the run later (the browser's local time; sent as a UTC instant)
  const [startAt, setStartAt] = useState("");
  // One Idempotency-Key per submission: a retry of the same values (the answer was lost, the server
  // restarted) reuses it, so the server answers with the run the first attempt started.
  const attempt = useRef<{ body: string; key: string } | null>(null);

  const submit = (form: Record<string, unknown>) => {
    setBusy(true);
    setProblem(null);
    const start = startAtFromLocal(startAt);
    attempt.current = submissionKey(attempt.current, form ?? {}, start);
    api
      .submit(workflowId, form ?? {}, attempt.current.key, start)
      .then(setStarted)
      .catch((e) => setProblem(e instanceof ApiError ? { message: e.detail.message, errors: e.detail.errors ?? [] } : { message: String(e), errors: [] }))
      .finally(() => setBusy(false));
  };

  if (error) return <LoadError error={error} />;
  if (!data) return <div className="empty">Loading…</div>;
  const uiSchema = { ...(data.ui_schema ?? {}) };
  if (data.sections?.length && !uiSchema["ui:order"]) uiSchema["ui:order"] = [...data.sections.flatMap((s) => s.fields), "*"];
  return (
    <div style={{ maxWidth: 720 }}>
      <p><Link to="requests">← All services</Link></p>
      <h1>{data.workflow.title || data.workflow.id}</h1>
      {data.workflow.description && <p className="muted">{data.workflow.description}</p>}
      <WorkflowAlerts workflow={workflowId} />
      {started ? (
        <div className="alert success" data-testid="request-started">
          {started.scheduled_for ? (
            <>Your request is scheduled for {when(started.scheduled_for)} (<code>{started.run_id}</code>); you can cancel it in <Link to="my-requests">My requests</Link> until it starts</>
          ) : (
            <>Your request is running (<code>{started.run_id}</code>). Follow it in <Link to="my-requests">My requests</Link></>
          )}
          {started.url && <> or <a href={started.url} target="_top">in Airflow</a></>}.
        </div>
      ) : (
        <div className="card">
          {!data.workflow.can_request && (
            <div className="alert info" data-testid="cannot-request">You may read this form, but your Airflow role may not start runs of this workflow.</div>
          )}
          <SchemaForm schema={data.schema} uiSchema={uiSchema} formData={values} onChange={setValues} onSubmit={submit} idPrefix="request">
            <div className="form-group" style={{ marginBottom: 12 }}>
              <label htmlFor="request-start-at">Start at (optional)</label>
              <input id="request-start-at" type="datetime-local" value={startAt} onChange={(e) => setStartAt(e.target.value)} data-testid="start-at" />
              <div className="muted small">Empty: the request starts now. Your local time; you can cancel a request for later until it starts.</div>
            </div>
            <button type="submit" className="primary" disabled={busy || !data.workflow.can_request} data-testid="submit-request">{busy ? "Submitting…" : "Submit request"}</button>
          </SchemaForm>
        </div>
      )}
      {problem && (
        <div className="alert error" role="alert">
          {problem.message}
          {problem.errors.map((e, i) => (
            <div key={i}>{e.field}: {e.message}</div>
          ))}
        </div>
      )}
    </div>
  );
}
