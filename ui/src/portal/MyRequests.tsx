import { useState } from "react";
import { api, ApiError, type RequestEntry, type Session } from "../api";
import { LoadError, State, usePolling, when } from "../common/util";
import { stepNote } from "./steps";
import { schedule } from "./submission";

/** My requests, each with its live step states and its approvals (the server includes them). */
const loadMine = () => api.myRequests();

/** Cancel a request for later (or one still queued) — only its requester sees the button. It asks
 * inline (Airflow's iframe may not allow `window.confirm`). */
function CancelButton({ request, onDone }: { request: RequestEntry; onDone: () => void }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const cancel = () => {
    setBusy(true);
    setProblem(null);
    api
      .cancelRequest(request.dag_id, request.run_id)
      .then(() => (setAsking(false), onDone()))
      .catch((e) => setProblem(e instanceof ApiError ? e.detail.message : String(e)))
      .finally(() => setBusy(false));
  };
  if (!asking)
    return <button className="small" onClick={() => setAsking(true)} data-testid="cancel-request">Cancel request</button>;
  return (
    <span className="row small" role="group" aria-label="Cancel this request?">
      <span>Cancel it? It will not start.</span>
      <button className="small danger" onClick={cancel} disabled={busy} data-testid="confirm-cancel">{busy ? "Cancelling…" : "Yes, cancel"}</button>
      <button className="small" onClick={() => setAsking(false)} disabled={busy}>Keep it</button>
      {problem && <span role="alert" style={{ color: "var(--error)" }}>{problem}</span>}
    </span>
  );
}

export function MyRequests(_: { session: Session }) {
  const { data, error, reload } = usePolling(loadMine, 5000);
  return (
    <div>
      <h1>My requests</h1>
      <LoadError error={error} />
      {data && data.requests.length === 0 && <div className="empty">You have not requested anything yet.</div>}
      {data?.requests.map((r) => (
        <div className="card" key={`${r.dag_id}/${r.run_id}`} style={{ marginBottom: 12 }} data-testid="request">
          <div className="row">
            <h3 style={{ margin: 0 }}>{r.title || r.dag_id}</h3>
            <State state={r.cancelled ? "cancelled" : r.state} />
            <span className="muted small">{when(r.created_at)}</span>
            {schedule(r, when) && <span className="small" data-testid="schedule">{schedule(r, when)}</span>}
            <span className="spacer" />
            {r.cancellable && <CancelButton request={r} onDone={reload} />}
            <a href={r.url} target="_top" className="small">Open in Airflow</a>
          </div>
          {r.tickets && r.tickets.length > 0 && (
            <div className="small" data-testid="tickets">
              Tickets:{" "}
              {(r.ticket_links ?? r.tickets.map((number) => ({ number, url: null }))).map((t, i) => (
                <span key={t.number}>
                  {i > 0 && ", "}
                  {t.url ? <a href={t.url} target="_blank" rel="noreferrer">{t.number}</a> : t.number}
                </span>
              ))}
            </div>
          )}
          <table className="list" style={{ marginTop: 8 }}>
            <tbody>
              {r.steps.map((s) => (
                <tr key={s.task_id}>
                  <td>{s.title || s.id}</td>
                  <td><State state={s.state} /></td>
                  <td className="muted small">{stepNote(s, r.approvals, when)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {r.approvals.length > 0 && (
            <div style={{ marginTop: 8 }}>
              <strong className="small">Approvals</strong>
              {r.approvals.map((a) => (
                <div key={String(a.id)} className="small row">
                  <State state={a.state} /> {a.subject || a.step_id}
                  {a.votes.map((v, i) => (
                    <span key={i} className="muted">· {v.user} {v.decision === "approve" ? "approved" : v.decision === "answer" ? "answered" : "rejected"}{v.comment ? ` (“${v.comment}”)` : ""}</span>
                  ))}
                  {a.state === "pending" && <span className="muted">· waiting for {a.slots.filter((s) => s.state === "open").map((s) => s.label).join(", ") || "approvers"}</span>}
                </div>
              ))}
            </div>
          )}
          <details className="small" style={{ marginTop: 6 }}>
            <summary className="muted">Request details</summary>
            <pre>{JSON.stringify(r.form, null, 2)}</pre>
          </details>
        </div>
      ))}
    </div>
  );
}
