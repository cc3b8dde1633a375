import { useState } from "react";
import { api, ApiError, type Approval, type Session } from "../api";
import { SchemaForm } from "../common/SchemaForm";
import { LoadError, State, usePolling, when } from "../common/util";
import { Link } from "../router";

export function Inbox({ tab }: { session: Session; tab: "pending" | "history" }) {
  return (
    <div>
      <h1>Approvals</h1>
      <div className="tabs">
        <Link to="approvals" className={`button small${tab === "pending" ? " primary" : ""}`}>Waiting for me</Link>
        <Link to="approvals/history" className={`button small${tab === "history" ? " primary" : ""}`}>My decisions</Link>
      </div>
      {tab === "pending" ? <Pending /> : <HistoryList />}
    </div>
  );
}

function Pending() {
  const { data, error, reload } = usePolling(() => api.approvals("pending", true), 10000);
  return (
    <>
      <LoadError error={error} />
      {data && data.approvals.length === 0 && <div className="empty">Nothing waits for you.</div>}
      {data?.approvals.map((a) => <ApprovalCard key={String(a.id)} approval={a} onDone={reload} />)}
    </>
  );
}

function ApprovalCard({ approval: a, onDone }: { approval: Approval; onDone: () => void }) {
  const [comment, setComment] = useState("");
  const [slot, setSlot] = useState<string | null>(a.slots.find((s) => s.state === "open")?.ref ?? null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const openSlots = a.slots.filter((s) => s.state === "open");

  const act = (p: Promise<Approval>, what: string) => {
    setBusy(true);
    setError(null);
    p.then(() => (setDone(what), setTimeout(onDone, 800)))
      .catch((e) => setError(e instanceof ApiError ? e.detail.message : String(e)))
      .finally(() => setBusy(false));
  };
  const vote = (decision: "approve" | "reject") => {
    if (decision === "reject" && !comment.trim()) return setError("Say why you reject it (a comment is required).");
    act(api.vote(a.id, decision, comment, openSlots.length > 1 ? slot : null), decision === "approve" ? "Approved." : "Rejected.");
  };

  return (
    <div className="card" style={{ marginBottom: 12 }} data-testid={`approval-${a.id}`}>
      <div className="row">
        <h3 style={{ margin: 0 }}>{a.subject || `${a.workflow_title ?? a.dag_id}: ${a.step_id}`}</h3>
        <State state={a.state} />
        <span className="spacer" />
        <span className="muted small">requested by {a.requester_name ?? a.requester ?? "–"} · {when(a.created_at)}{a.deadline ? ` · due ${when(a.deadline)}` : ""}</span>
      </div>
      <div className="muted small">{a.workflow_title ?? a.dag_id} · run {a.run_id}</div>
      {a.body && <p style={{ whiteSpace: "pre-wrap" }}>{a.body}</p>}
      {a.request && Object.keys(a.request).length > 0 && (
        <table className="list small" style={{ margin: "8px 0" }}>
          <tbody>
            {Object.entries(a.request).map(([k, v]) => (
              <tr key={k}><th style={{ width: 180 }}>{k}</th><td>{typeof v === "string" ? v : JSON.stringify(v)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {a.slots.length > 0 && (
        <div className="small row">
          Approvers:
          {a.slots.map((s) => (
            <span key={s.ref} className={`badge state-${s.state === "open" ? "pending" : s.state}`}>{s.label}{s.decided_by ? ` (${s.decided_by})` : ""}</span>
          ))}
        </div>
      )}
      {done ? (
        <div className="alert success">{done}</div>
      ) : a.kind === "form" && a.form ? (
        <>
        {a.form.error && <div className="alert error" data-testid="choices-error">{a.form.error.message}</div>}
        <SchemaForm schema={a.form.schema} uiSchema={a.form.ui_schema} onSubmit={(values) => act(api.respond(a.id, values ?? {}), "Answer sent.")} idPrefix={`respond_${a.id}`}>
          <div className="row">
            <button type="submit" className="primary" disabled={busy || !a.can_vote} data-testid="send-answer">Send answer</button>
            {!a.can_vote && <span className="muted small">{a.why_not ?? "You cannot answer this one."}</span>}
          </div>
        </SchemaForm>
        </>
      ) : (
        <div style={{ marginTop: 8 }}>
          {openSlots.length > 1 && (
            <select aria-label="As" value={slot ?? ""} onChange={(e) => setSlot(e.target.value)} style={{ marginBottom: 6 }}>
              {openSlots.map((s) => (
                <option key={s.ref} value={s.ref}>as {s.label}</option>
              ))}
            </select>
          )}
          <textarea rows={2} placeholder="Comment (required to reject)" value={comment} onChange={(e) => setComment(e.target.value)} aria-label="Comment" />
          <div className="row" style={{ marginTop: 6 }}>
            <button className="primary" disabled={busy || !a.can_vote} onClick={() => vote("approve")} data-testid="approve">Approve</button>
            <button className="danger" disabled={busy || !a.can_vote} onClick={() => vote("reject")} data-testid="reject">Reject</button>
            {!a.can_vote && <span className="muted small">{a.why_not ?? "You cannot decide this one."}</span>}
          </div>
        </div>
      )}
      {error && <div className="alert error" role="alert">{error}</div>}
    </div>
  );
}

function HistoryList() {
  const { data, error } = usePolling(() => api.history(), null);
  return (
    <>
      <LoadError error={error} />
      {data && data.votes.length === 0 && <div className="empty">You have not decided anything yet.</div>}
      {data && data.votes.length > 0 && (
        <table className="list">
          <thead>
            <tr><th>When</th><th>Request</th><th>Decision</th><th>Comment</th></tr>
          </thead>
          <tbody>
            {data.votes.map((v, i) => (
              <tr key={i}>
                <td className="small">{when(v.at)}</td>
                <td>{v.subject || `${v.dag_id} · ${v.step_id}`}<div className="muted small">{v.run_id}</div></td>
                <td><State state={v.decision === "approve" ? "approved" : v.decision === "answer" ? "answered" : "rejected"} /></td>
                <td>{v.comment}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
