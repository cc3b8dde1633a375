// A definition that is not a workflow (an Alert, …) edited as one form generated from its kind's JSON
// Schema (`GET /schema`'s definition bundle): no canvas, the same validation, save and history.
import { useMemo } from "react";
import type { Document } from "yaml";
import type { UiSchema } from "@rjsf/utils";
import type { Diagnostic } from "../api";
import { coerce, prune } from "../common/schema";
import { SchemaForm } from "../common/SchemaForm";
import { Link } from "../router";
import { setFields } from "./model";

type Props = {
  doc: Document;
  kind: string;
  /** kindSchema(bundle.definition, kind), or null when the server does not know the kind */
  schema: Record<string, any> | null;
  isNew: boolean;
  readOnly: boolean;
  diagnostics: Diagnostic[];
  onChange: (d: Document) => void;
};

/** uiSchema hints per kind: long texts as text areas, fixed keys hidden. */
export function kindUiSchema(kind: string, schema: Record<string, any> | null, isNew: boolean): UiSchema {
  const ui: UiSchema = { apiVersion: { "ui:widget": "hidden" }, kind: { "ui:widget": "hidden" } };
  if (!isNew) ui.id = { "ui:readonly": true, "ui:help": "The id is fixed once saved (it is part of the sender's URL)." };
  if (schema?.properties?.description) ui.description = { "ui:widget": "textarea", "ui:options": { rows: 3 } };
  if (kind === "Alert") {
    const order = ["id", "title", "description", "owner", "auth", "delivery_id", "match", "for_each", "routes"];
    const known = order.filter((k) => schema?.properties?.[k]);
    ui["ui:order"] = [...known, "*"];
    // the models' class names are their schemas' titles; say what each part is
    const titles: Record<string, string> = { auth: "Authentication", delivery_id: "Delivery id", match: "Match rules", for_each: "For each", routes: "Routes" };
    for (const [key, title] of Object.entries(titles)) if (schema?.properties?.[key]) ui[key] = { ...(ui[key] ?? {}), "ui:title": title };
    if (schema?.properties?.routes) ui.routes = { ...ui.routes, items: { "ui:title": "Route" } };
  }
  if (kind === "Trigger") {
    const order = ["id", "title", "description", "owner", "schedule", "start_paused", "rest", "sql", "metric", "value", "condition", "for", "resolve", "alert", "notify"];
    ui["ui:order"] = [...order.filter((k) => schema?.properties?.[k]), "*"];
    const titles: Record<string, string> = { rest: "Data point: REST operation", sql: "Data point: SQL query", metric: "Data point: metric", for: "Holds for", resolve: "Resolves when", alert: "Alert raised", notify: "Notify" };
    for (const [key, title] of Object.entries(titles)) if (schema?.properties?.[key]) ui[key] = { ...(ui[key] ?? {}), "ui:title": title };
    // not supported yet by the server: shown, but read-only, so nobody fills in what validation refuses
    for (const key of ["sql", "metric"]) if (schema?.properties?.[key]) ui[key] = { ...ui[key], "ui:disabled": true };
  }
  return ui;
}

export function DefinitionPanel({ doc, kind, schema, isNew, readOnly, diagnostics, onChange }: Props) {
  const data = (doc.toJS() ?? {}) as Record<string, any>;
  const uiSchema = useMemo(() => kindUiSchema(kind, schema, isNew), [kind, schema, isNew]);
  return (
    <div className="definition-form" data-testid="definition-panel" data-kind={kind}>
      {kind === "Alert" && (
        <p className="muted small">
          A sender posts to <code>/autopilot/api/v1/alerts/{data.id ?? "<id>"}</code>, authenticated by the secret of the Airflow
          connection named in <em>auth</em>; each route maps the payload to a workflow's form. Its deliveries are in{" "}
          <Link to={`alerts?alert=${encodeURIComponent(data.id ?? "")}`}>Alerts</Link>.
        </p>
      )}
      {kind === "Trigger" && (
        <p className="muted small">
          Airflow runs this trigger as the DAG <code>{data.id ?? "<id>"}</code> on its schedule: it reads the data point, and when the
          condition has held for the given time it fires once — raising the alert (whose routes start workflows) and notifying people — and
          resolves once the resolve condition holds. Its firing and resolving show in{" "}
          <Link to={`alerts?alert=${encodeURIComponent(data.alert ?? "")}`}>Alerts</Link>.
        </p>
      )}
      {diagnostics.length > 0 && (
        <div className="alert error" data-testid="definition-problems">
          {diagnostics.map((d, i) => (
            <div key={i}>{d.line ? `line ${d.line}: ` : ""}{d.message}</div>
          ))}
        </div>
      )}
      {schema ? (
        <SchemaForm
          key={`${kind}:${isNew}`}
          idPrefix={`def_${kind}`}
          schema={schema}
          uiSchema={uiSchema}
          formData={coerce(data, schema)}
          disabled={readOnly}
          noValidate
          onChange={(values) => onChange(setFields(doc, { apiVersion: data.apiVersion, kind: data.kind, ...(prune(values, data) ?? {}) }))}
        />
      ) : (
        <div className="alert info">This server's definition schema has no kind <code>{kind}</code>: edit it in the YAML tab.</div>
      )}
    </div>
  );
}
