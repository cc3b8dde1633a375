// The Alerts page (designers and admins): the alert sources — where each sender posts and which
// workflows it starts — and the delivery log, filtered by alert, status and time, each delivery opening
// its detail (masked headers, the payload, the runs) with Replay for admins.
import { useEffect, useState } from "react";
import { api, ApiError, type AlertSource, type Delivery, type Session } from "../api";
import { LoadError, usePolling, when } from "../common/util";
import { Link, navigate } from "../router";
import {
  deliveriesQuery, filtersFromQuery, filtersToQuery, isoToLocalInput, localInputToIso, NO_FILTERS, pageInfo, senderUrl, STATUSES,
  statusBadge, withFilter, type Filters,
} from "./deliveries";
import { DeliveryPage } from "./DeliveryPage";
import { StatusBadge } from "./StatusBadge";

/** The log's URL query when a delivery was opened, so that "back" keeps the filters. */
let lastLogQuery = "";

export function Alerts({ session, rest, query }: { session: Session; rest: string[]; query: URLSearchParams }) {
  if (rest[0] === "deliveries" && rest[1]) return <DeliveryPage id={rest[1]} session={session} back={`alerts${lastLogQuery}`} />;
  return <AlertsHome query={query} />;
}

function AlertsHome({ query }: { query: URLSearchParams }) {
  const sources = usePolling(() => api.alerts(), null);
  const filters = filtersFromQuery(query);
  return (
    <div>
      <h1>Alerts</h1>
      <p className="muted" style={{ marginTop: -6 }}>
        Monitoring tools, storage arrays, ticketing systems and pipelines post signed events to an alert's URL; its routes start
        workflows. Alerts are definitions (kind <code>Alert</code>): edit them in the <Link to="designer">designer</Link>.
      </p>
      <h2>Sources</h2>
      <LoadError error={sources.error} />
      {!sources.data && !sources.error && <div className="empty">Loading the alerts…</div>}
      {sources.data && <Sources alerts={sources.data.alerts} filters={filters} />}
      <h2 id="delivery-log">Delivery log</h2>
      <DeliveryLog filters={filters} alerts={sources.data?.alerts ?? []} />
    </div>
  );
}

function Sources({ alerts, filters }: { alerts: AlertSource[]; filters: Filters }) {
  if (alerts.length === 0)
    return (
      <div className="empty" data-testid="no-alerts">
        No alerts are defined yet. Add a definition of kind <code>Alert</code> under <code>definitions/</code>, or create one in the{" "}
        <Link to="designer">designer</Link>.
      </div>
    );
  return (
    <table className="list" data-testid="alert-sources">
      <thead>
        <tr><th>Alert</th><th>Owner</th><th>Sender authenticates</th><th>URL to give the sender</th><th>Starts</th><th><span className="sr-only">Deliveries</span></th></tr>
      </thead>
      <tbody>
        {alerts.map((a) => (
          <tr key={a.id} data-testid={`alert-${a.id}`}>
            <td>
              <strong>{a.title || a.id}</strong>
              <div className="muted small">{a.id}</div>
              {a.description && <div className="small">{a.description}</div>}
            </td>
            <td className="small">{a.owner ?? "–"}</td>
            <td><span className="badge" title={SCHEMES[a.scheme] ?? a.scheme}>{a.scheme}</span></td>
            <td><SenderUrl url={a.url} /></td>
            <td className="small">
              {a.routes.length === 0 && <span className="muted">–</span>}
              {a.routes.map((r) => (
                <div key={r.id}>
                  <span className="muted">{r.id} →</span> <Link to={`designer?dag_id=${encodeURIComponent(r.workflow)}`}>{r.workflow}</Link>
                </div>
              ))}
            </td>
            <td>
              <button
                className="small"
                aria-label={`Deliveries of ${a.id}`}
                onClick={() => navigate(`alerts${filtersToQuery(withFilter(filters, "alert", a.id))}`, true)}
              >
                Deliveries
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const SCHEMES: Record<string, string> = {
  github: "HMAC-SHA256 of the body in X-Hub-Signature-256 (GitHub style)",
  stripe: "HMAC-SHA256 with a timestamp: Stripe-Signature t=…,v1=…",
  standard: "Standard Webhooks 1.0 (webhook-id, webhook-timestamp, webhook-signature)",
  bearer: "A bearer token in the Authorization header",
};

function SenderUrl({ url }: { url: string }) {
  const full = senderUrl(url, typeof window === "undefined" ? "" : window.location.origin);
  const [copied, setCopied] = useState(false);
  const copy = () =>
    navigator.clipboard
      ?.writeText(full)
      .then(() => (setCopied(true), setTimeout(() => setCopied(false), 1500)))
      .catch(() => {});
  return (
    <div className="row" style={{ flexWrap: "nowrap" }}>
      <code className="small" style={{ wordBreak: "break-all" }}>{full}</code>
      <button className="small" onClick={copy} aria-label={`Copy ${full}`}>{copied ? "Copied" : "Copy"}</button>
    </div>
  );
}

function DeliveryLog({ filters, alerts }: { filters: Filters; alerts: AlertSource[] }) {
  const key = deliveriesQuery(filters);
  const { data, error, reload } = usePolling(() => api.deliveries(key), 10000, [key]);
  const here = filtersToQuery(filters);
  useEffect(() => {
    lastLogQuery = here;
  }, [here]);
  const set = (next: Filters) => navigate(`alerts${filtersToQuery(next)}`, true);
  const page = data ? pageInfo(filters.offset, data.deliveries.length, data.total_entries) : null;
  const filtered = filters.alert || filters.status || filters.since || filters.until;
  const alertIds = alerts.map((a) => a.id);
  if (filters.alert && !alertIds.includes(filters.alert)) alertIds.push(filters.alert);

  return (
    <>
      <form className="row" style={{ marginBottom: 10 }} onSubmit={(e) => e.preventDefault()} aria-label="Filter deliveries" data-testid="delivery-filters">
        <label className="row small" style={{ gap: 4 }}>
          Alert
          <select value={filters.alert} onChange={(e) => set(withFilter(filters, "alert", e.target.value))} data-testid="filter-alert">
            <option value="">all alerts</option>
            {alertIds.map((id) => (
              <option key={id} value={id}>{id}</option>
            ))}
          </select>
        </label>
        <label className="row small" style={{ gap: 4 }}>
          Status
          <select value={filters.status} onChange={(e) => set(withFilter(filters, "status", e.target.value))} data-testid="filter-status">
            <option value="">any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>{statusBadge(s).label}</option>
            ))}
          </select>
        </label>
        <label className="row small" style={{ gap: 4 }}>
          From
          <input type="datetime-local" value={isoToLocalInput(filters.since)} onChange={(e) => set(withFilter(filters, "since", localInputToIso(e.target.value)))} data-testid="filter-since" />
        </label>
        <label className="row small" style={{ gap: 4 }}>
          To
          <input type="datetime-local" value={isoToLocalInput(filters.until)} onChange={(e) => set(withFilter(filters, "until", localInputToIso(e.target.value)))} data-testid="filter-until" />
        </label>
        {filtered && (
          <button type="button" className="small" onClick={() => set(NO_FILTERS)}>Clear filters</button>
        )}
        <span className="spacer" />
        <button type="button" className="small" onClick={reload} data-testid="refresh">Refresh</button>
      </form>
      {error && <DeliveriesError error={error} />}
      {!data && !error && <div className="empty">Loading the deliveries…</div>}
      {data && data.deliveries.length === 0 && (
        <div className="empty" data-testid="no-deliveries">
          {filtered ? "No delivery matches these filters." : "No deliveries yet. Each POST to an alert's URL is logged here, accepted or not."}
        </div>
      )}
      {data && data.deliveries.length > 0 && (
        <>
          <table className="list" data-testid="deliveries">
            <thead>
              <tr><th>Received</th><th>Alert</th><th>Delivery id</th><th>Status</th><th>Reason</th><th>Runs</th></tr>
            </thead>
            <tbody>
              {data.deliveries.map((d) => (
                <DeliveryRow key={d.id} delivery={d} />
              ))}
            </tbody>
          </table>
          {page && (
            <div className="row small" style={{ marginTop: 8 }} data-testid="pages">
              <span className="muted">{page.text}</span>
              <span className="spacer" />
              <button className="small" disabled={page.previous === null} onClick={() => set({ ...filters, offset: page.previous ?? 0 })}>← Newer</button>
              <button className="small" disabled={page.next === null} onClick={() => set({ ...filters, offset: page.next ?? 0 })}>Older →</button>
            </div>
          )}
        </>
      )}
    </>
  );
}

function DeliveriesError({ error }: { error: Error }) {
  if (error instanceof ApiError && error.status === 403)
    return (
      <div className="alert info" data-testid="log-forbidden">
        The delivery log is for designers and admins ({error.message}).
      </div>
    );
  return <LoadError error={error} />;
}

function DeliveryRow({ delivery: d }: { delivery: Delivery }) {
  const to = `alerts/deliveries/${d.id}`;
  return (
    <tr
      className="clickable"
      data-testid={`delivery-${d.id}`}
      data-delivery-id={d.delivery_id ?? ""}
      onClick={(e) => {
        // the row opens the detail; its link does the same from the keyboard
        if ((e.target as HTMLElement).closest("a, button")) return;
        navigate(to);
      }}
    >
      <td className="small" style={{ whiteSpace: "nowrap" }}>
        <Link to={to}>{when(d.received_at)}</Link>
      </td>
      <td>{d.alert}</td>
      <td className="small">
        <code>{d.delivery_id ?? "–"}</code>
        {d.replay_of !== null && d.replay_of !== undefined && <div className="muted">replay of #{d.replay_of}</div>}
      </td>
      <td><StatusBadge status={d.status} httpStatus={d.http_status} /></td>
      <td className="small">{d.reason ?? ""}</td>
      <td className="small">
        {d.runs.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          d.runs.map((r) => (
            <div key={`${r.workflow}/${r.run_id}`}>
              <a href={r.url} target="_top" title={`${r.workflow}: run ${r.run_id}`}>{r.workflow}</a>
            </div>
          ))
        )}
      </td>
    </tr>
  );
}
