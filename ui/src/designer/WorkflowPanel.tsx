import type { Document } from "yaml";
import { StartedBy, useStartingAlerts } from "../alerts/StartedBy";
import { setField } from "./model";

export function WorkflowPanel({ doc, readOnly, onChange }: { doc: Document; readOnly: boolean; onChange: (d: Document) => void }) {
  const data = (doc.toJS() ?? {}) as any;
  const set = (key: string, value: unknown) => onChange(setField(doc, key, value));
  const startedBy = useStartingAlerts(typeof data.id === "string" ? data.id : null);
  const schedule = typeof data.schedule === "string" || data.schedule == null ? data.schedule ?? "" : null;
  return (
    <div className="rjsf" data-testid="workflow-panel">
      <h3 style={{ marginTop: 0 }}>Workflow</h3>
      <div className="form-group">
        <label>Id</label>
        <input value={data.id ?? ""} readOnly title="The id is the DAG id; it is fixed once created." />
      </div>
      <div className="form-group">
        <label htmlFor="wf-title">Title</label>
        <input id="wf-title" value={data.title ?? ""} readOnly={readOnly} onChange={(e) => set("title", e.target.value)} />
      </div>
      <div className="form-group">
        <label htmlFor="wf-description">Description</label>
        <textarea id="wf-description" rows={3} value={data.description ?? ""} readOnly={readOnly} onChange={(e) => set("description", e.target.value)} />
      </div>
      <div className="form-group">
        <label htmlFor="wf-owner">Owner</label>
        <input id="wf-owner" placeholder="group:storage" value={data.owner ?? ""} readOnly={readOnly} onChange={(e) => set("owner", e.target.value)} />
      </div>
      <div className="form-group">
        <label htmlFor="wf-tags">Tags (comma separated)</label>
        <input
          id="wf-tags"
          defaultValue={(data.tags ?? []).join(", ")}
          readOnly={readOnly}
          onBlur={(e) => {
            const tags = e.target.value.split(",").map((t) => t.trim()).filter(Boolean);
            set("tags", tags.length ? tags : undefined);
          }}
        />
      </div>
      <div className="form-group">
        <label htmlFor="wf-schedule">Schedule</label>
        {schedule === null ? (
          <p className="muted small">A detailed schedule (edit it in the YAML tab).</p>
        ) : (
          <input id="wf-schedule" placeholder="manual; or @daily, 0 6 * * 1" value={schedule} readOnly={readOnly} onChange={(e) => set("schedule", e.target.value)} />
        )}
      </div>
      <div className="form-group" data-testid="workflow-alerts">
        <label>Started by alerts</label>
        {startedBy === undefined ? (
          <p className="muted small">…</p>
        ) : startedBy.length ? (
          <StartedBy alerts={startedBy} link />
        ) : (
          <p className="muted small">No alert routes to this workflow (an <code>Alert</code> definition's <code>routes</code> can).</p>
        )}
      </div>
      <p className="muted small">Select a step on the canvas to edit it. Press Delete to remove a selected step or connection.</p>
    </div>
  );
}
