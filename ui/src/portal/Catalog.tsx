import { useState } from "react";
import { StartedBy, useAlertsByWorkflow } from "../alerts/StartedBy";
import { api } from "../api";
import { LoadError, usePolling } from "../common/util";
import { Link } from "../router";

export function Catalog() {
  const [q, setQ] = useState("");
  const [tag, setTag] = useState("");
  const { data, error } = usePolling(() => api.workflows(q || undefined, tag || undefined), null, [q, tag]);
  const everything = usePolling(() => api.workflows(), null).data;
  const startedBy = useAlertsByWorkflow();
  const all = data?.workflows ?? [];
  const tags = Array.from(new Set((everything?.workflows ?? all).flatMap((w) => w.tags))).sort();
  return (
    <div>
      <h1>Request a service</h1>
      <div className="row" style={{ marginBottom: 12 }}>
        <input type="search" placeholder="Search workflows" value={q} onChange={(e) => setQ(e.target.value)} aria-label="Search" style={{ width: 280 }} />
        <button className={tag === "" ? "primary small" : "small"} onClick={() => setTag("")}>All</button>
        {(tag && !tags.includes(tag) ? [...tags, tag] : tags).map((t) => (
          <button key={t} className={tag === t ? "primary small" : "small"} onClick={() => setTag(tag === t ? "" : t)}>{t}</button>
        ))}
      </div>
      <LoadError error={error} />
      {data && all.length === 0 && <div className="empty">No workflow matches.</div>}
      <div className="cards">
        {all.map((w) => (
          <div className="card" key={w.id} data-testid={`workflow-${w.id}`}>
            <h3 style={{ marginTop: 0 }}>{w.title || w.id}</h3>
            <p className="muted">{w.description}</p>
            <div className="row small">
              {w.tags.map((t) => (
                <span key={t} className="badge">{t}</span>
              ))}
              {w.owner && <span className="muted">owner {w.owner}</span>}
            </div>
            <StartedBy alerts={startedBy.get(w.id)} />
            <div style={{ marginTop: 10 }}>
              {w.can_request ? (
                <Link to={`requests/new/${w.id}`} className="button primary">Request</Link>
              ) : (
                <span className="muted small" data-testid="cannot-request" title="Your Airflow role may read this workflow but not start runs of it">
                  You may not request this one.
                </span>
              )}
            </div>
          </div>
        ))}
      </div>
    </div>
  );
}
