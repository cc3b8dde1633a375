// One delivery of the log: what came (headers and payload as stored, secrets masked by the server),
// what became of it (status, reason, runs), and Replay for admins.
import { useState, type ReactNode } from "react";
import { api, ApiError, type Delivery, type DeliveryDetail, type Session } from "../api";
import { LoadError, usePolling, when } from "../common/util";
import { Link } from "../router";
import { canReplay, headerRows, isTruncated, maskedCount, prettyPayload, replayProblem, statusBadge } from "./deliveries";
import { StatusBadge } from "./StatusBadge";

export function DeliveryPage({ id, session, back }: { id: string; session: Session; back: string }) {
  const { data, error } = usePolling(() => api.delivery(id), null, [id]);
  return (
    <div style={{ maxWidth: 1000 }}>
      <p><Link to={back}>← Delivery log</Link></p>
      {error && (error instanceof ApiError && error.status === 404 ? (
        <div className="alert error">No delivery #{id}: it may be older than the log keeps (<code>[autopilot] alert_delivery_retention_days</code>).</div>
      ) : error instanceof ApiError && error.status === 403 ? (
        <div className="alert info">The delivery log is for designers and admins ({error.message}).</div>
      ) : (
        <LoadError error={error} />
      ))}
      {!data && !error && <div className="empty">Loading the delivery…</div>}
      {data && <Detail key={data.id} delivery={data} session={session} />}
    </div>
  );
}

export function Detail({ delivery: d, session }: { delivery: DeliveryDetail; session: Session }) {
  const headers = headerRows(d.headers);
  const masked = headers.filter((h) => h.masked).length + maskedCount(d.payload);
  const payload = prettyPayload(d.payload);
  const replay = useReplay(d);
  // a refused delivery keeps no payload: there is nothing to replay
  const replayable = session.can_replay_alerts !== false && canReplay(d.payload);
  return (
    <div data-testid="delivery-detail" data-delivery={d.id}>
      <div className="row">
        <h1 style={{ margin: 0 }}>Delivery #{d.id}</h1>
        <StatusBadge status={d.status} httpStatus={d.http_status} />
        <span className="spacer" />
        {replayable && replay.button}
      </div>
      {replay.panel}
      <table className="list small" style={{ margin: "12px 0", maxWidth: 760 }}>
        <tbody>
          <tr><th style={{ width: 170 }}>Alert</th><td><Link to={`alerts?alert=${encodeURIComponent(d.alert)}`}>{d.alert}</Link></td></tr>
          <tr><th>Delivery id</th><td><code>{d.delivery_id ?? "–"}</code></td></tr>
          <tr><th>Received</th><td>{when(d.received_at)}</td></tr>
          <tr><th>Status</th><td>{statusBadge(d.status).description}{d.http_status ? ` (answered HTTP ${d.http_status})` : ""}</td></tr>
          {d.reason && <tr><th>Reason</th><td data-testid="reason">{d.reason}</td></tr>}
          {d.replay_of !== null && d.replay_of !== undefined && (
            <tr><th>Replay of</th><td><Link to={`alerts/deliveries/${d.replay_of}`}>delivery #{d.replay_of}</Link></td></tr>
          )}
        </tbody>
      </table>

      <h2>Runs</h2>
      <Runs delivery={d} />

      <h2>Headers</h2>
      {masked > 0 && (
        <p className="muted small" data-testid="masked-note">
          {masked === 1 ? "1 value that looks like a secret is" : `${masked} values that look like secrets are`} masked
          (authentication and signature headers, secret-looking keys): the log never keeps them.
        </p>
      )}
      {headers.length === 0 ? (
        <div className="muted small">None stored.</div>
      ) : (
        <table className="list small" data-testid="headers" style={{ maxWidth: 760 }}>
          <tbody>
            {headers.map((h) => (
              <tr key={h.name} data-masked={h.masked || undefined}>
                <th style={{ width: 240 }}><code>{h.name}</code></th>
                <td>{h.masked ? <span className="badge" title="Kept masked: the log never stores secrets">masked</span> : <code style={{ wordBreak: "break-all" }}>{h.value}</code>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Payload</h2>
      {isTruncated(d.payload) ? (
        <div className="muted small" data-testid="payload-truncated">The payload was too large to keep (over 256 KiB): only its arrival is logged, and it cannot be replayed.</div>
      ) : payload ? (
        <pre className="payload" data-testid="payload" tabIndex={0} aria-label="Payload">{payload}</pre>
      ) : (
        <div className="muted small">No payload stored{d.status === "rejected" ? " (a refused delivery's body is not kept)" : ""}.</div>
      )}
    </div>
  );
}

function Runs({ delivery: d }: { delivery: Delivery }) {
  if (d.runs.length === 0) return <div className="muted small" data-testid="no-runs">{NO_RUNS[d.status] ?? "No run was started."}</div>;
  return (
    <>
      <table className="list small" data-testid="runs" style={{ maxWidth: 900 }}>
        <thead>
          <tr><th>Route</th><th>Workflow</th><th>Run (in Airflow)</th></tr>
        </thead>
        <tbody>
          {d.runs.map((r) => (
            <tr key={`${r.workflow}/${r.run_id}`}>
              <td>{r.route}</td>
              <td><Link to={`designer?dag_id=${encodeURIComponent(r.workflow)}`}>{r.workflow}</Link></td>
              <td><a href={r.url} target="_top" title="Open the run in Airflow's grid view"><code>{r.run_id}</code></a></td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small">
        Each run is its route's requester's: they follow it in their <Link to="my-requests">My requests</Link>.
      </p>
    </>
  );
}

const NO_RUNS: Record<string, string> = {
  duplicate: "Nothing was started: the same delivery id was seen before.",
  filtered: "Nothing was started: the match rules dropped it.",
  rejected: "Nothing was started: the sender was not authenticated.",
  invalid: "Nothing was started: the mapped form values were not valid for the workflow.",
  failed: "No run could be started.",
};

/** Replay (admins): the stored payload is processed again under a new delivery id, without the
 * signature check; the new delivery is shown (and linked) here. Gives the button (for the title row)
 * and the panel below it (the confirmation, then the outcome). */
function useReplay(d: Delivery): { button: ReactNode; panel: ReactNode } {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<Delivery | null>(null);
  const [error, setError] = useState<string | null>(null);
  const replay = () => {
    setBusy(true);
    setError(null);
    api
      .replay(d.id)
      .then((r) => (setDone(r.delivery), setAsking(false)))
      .catch((e) => setError(e instanceof ApiError ? replayProblem(e.status, e.detail.message) : String(e)))
      .finally(() => setBusy(false));
  };
  const button = !asking && !done && (
    <button onClick={() => (setAsking(true), setError(null))} data-testid="replay">Replay…</button>
  );
  const panel = (
    <>
      {asking && (
        <div className="alert info" role="group" aria-label="Replay this delivery">
          Replay processes the stored payload again as a new delivery (<code>{d.delivery_id || d.id}#replay-…</code>), without checking its
          signature: its routes start their workflows again.
          <div className="row" style={{ marginTop: 6 }}>
            <button className="primary" onClick={replay} disabled={busy} data-testid="confirm-replay" autoFocus>{busy ? "Replaying…" : "Replay now"}</button>
            <button onClick={() => setAsking(false)} disabled={busy}>Cancel</button>
          </div>
        </div>
      )}
      {done && (
        <div className={`alert ${statusBadge(done.status).ok ? "success" : "error"}`} role="status" data-testid="replayed">
          Replayed as <Link to={`alerts/deliveries/${done.id}`}>delivery #{done.id}</Link> (<code>{done.delivery_id}</code>):{" "}
          <StatusBadge status={done.status} httpStatus={done.http_status} />
          {done.reason ? ` ${done.reason}` : ""}
          {done.runs.length > 0 && (
            <div className="small" style={{ marginTop: 4 }}>
              Started:{" "}
              {done.runs.map((r, i) => (
                <span key={r.run_id}>
                  {i > 0 && ", "}
                  <a href={r.url} target="_top">{r.workflow} <code>{r.run_id}</code></a>
                </span>
              ))}
            </div>
          )}
        </div>
      )}
      {error && <div className="alert error" role="alert" data-testid="replay-error">{error}</div>}
    </>
  );
  return { button, panel };
}
