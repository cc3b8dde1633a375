import { useEffect, useMemo, useState } from "react";
import type { Document } from "yaml";
import { api, type ApiEntry, type Diagnostic, type Operation, type SchemaBundle } from "../api";
import { coerce, prune, simplify } from "../common/schema";
import { SchemaForm } from "../common/SchemaForm";
import { renameStep, setStepField, type Step } from "./model";

const TRIGGER_RULES = ["", "all_success", "all_failed", "all_done", "one_success", "one_failed", "none_failed", "none_failed_min_one_success", "none_skipped", "always"];

type Props = {
  doc: Document;
  step: Step;
  schema: SchemaBundle;
  errors: Diagnostic[];
  readOnly: boolean;
  onChange: (d: Document) => void;
  onRenamed: (id: string) => void;
  onDelete: () => void;
};

export function StepPanel({ doc, step, schema, errors, readOnly, onChange, onRenamed, onDelete }: Props) {
  const [id, setId] = useState(step.id);
  useEffect(() => setId(step.id), [step.id]);
  const kind = step.kind;
  const bodySchema = useMemo(() => (kind ? simplify(schema.steps[kind] ?? {}) : null), [kind, schema]);
  const rest = (key: string, value: unknown) => onChange(setStepField(doc, step.id, key, value));
  const setBody = (body: any) => kind && onChange(setStepField(doc, step.id, kind, prune(body, step.body) ?? {}));
  const rest_ = step.raw;
  const isRest = kind === "task" || kind === "wait";
  const uiSchema = isRest ? { api: { "ui:widget": "hidden" }, operation: { "ui:widget": "hidden" }, params: { "ui:widget": "hidden" }, body: { "ui:widget": "hidden" } } : {};
  if (kind === "script" && bodySchema?.properties?.python) (uiSchema as any).python = { "ui:widget": "textarea", "ui:options": { rows: 6 } };
  if (kind === "script" && bodySchema?.properties?.bash) (uiSchema as any).bash = { "ui:widget": "textarea", "ui:options": { rows: 4 } };
  for (const key of ["body", "subject"]) if (bodySchema?.properties?.[key] && !isRest) (uiSchema as any)[key] = { "ui:widget": "textarea" };

  return (
    <div data-testid="step-panel" data-step={step.id}>
      <div className="row">
        <h3 style={{ margin: 0 }}>{kind} step</h3>
        <span className="spacer" />
        {!readOnly && <button className="small danger" onClick={onDelete}>Delete step</button>}
      </div>
      {errors.length > 0 && (
        <div className="alert error">
          {errors.map((e, i) => (
            <div key={i}>{e.message}</div>
          ))}
        </div>
      )}
      <div className="rjsf">
        <div className="form-group">
          <label htmlFor="step-id">Id</label>
          <input
            id="step-id"
            value={id}
            readOnly={readOnly}
            onChange={(e) => setId(e.target.value)}
            onBlur={() => {
              if (id !== step.id && /^[A-Za-z][A-Za-z0-9_]*$/.test(id)) {
                onChange(renameStep(doc, step.id, id));
                onRenamed(id);
              } else setId(step.id);
            }}
          />
        </div>
        <div className="form-group">
          <label htmlFor="step-title">Title</label>
          <input id="step-title" value={rest_.title ?? ""} readOnly={readOnly} onChange={(e) => rest("title", e.target.value)} />
        </div>
        <div className="form-group">
          <label htmlFor="step-description">Description</label>
          <input id="step-description" value={rest_.description ?? ""} readOnly={readOnly} onChange={(e) => rest("description", e.target.value)} />
        </div>
        <div className="row">
          <div className="form-group" style={{ flex: 1 }}>
            <label htmlFor="step-retries">Retries</label>
            <input id="step-retries" type="number" min={0} value={rest_.retries ?? ""} readOnly={readOnly} onChange={(e) => rest("retries", e.target.value === "" ? undefined : Number(e.target.value))} />
          </div>
          <div className="form-group" style={{ flex: 1 }}>
            <label htmlFor="step-timeout">Timeout</label>
            <input id="step-timeout" placeholder="e.g. 10m" value={rest_.timeout ?? ""} readOnly={readOnly} onChange={(e) => rest("timeout", e.target.value)} />
          </div>
        </div>
        <div className="form-group">
          <label htmlFor="step-trigger">Trigger rule</label>
          <select id="step-trigger" value={rest_.trigger_rule ?? ""} disabled={readOnly} onChange={(e) => rest("trigger_rule", e.target.value)}>
            {TRIGGER_RULES.map((r) => (
              <option key={r} value={r}>{r || "(default)"}</option>
            ))}
          </select>
        </div>
        <p className="muted small">
          Waits for: {step.after === null ? "the previous step (default)" : step.after.length ? step.after.join(", ") : "nothing"}. Change it by connecting on the canvas.
        </p>
      </div>
      {isRest && <OperationPicker body={step.body ?? {}} readOnly={readOnly} onChange={setBody} />}
      {bodySchema && (
        <>
          <h3>{isRest ? "Call options" : "Properties"}</h3>
          <SchemaForm
            key={`${step.id}:${kind}`}
            idPrefix={`step_${kind}`}
            schema={bodySchema}
            uiSchema={uiSchema}
            formData={coerce(step.body ?? {}, bodySchema)}
            disabled={readOnly}
            liveValidate
            onChange={setBody}
          />
        </>
      )}
    </div>
  );
}

/** Pick an API and an operation from the OpenAPI catalog; its parameters become the step's form. */
function OperationPicker({ body, readOnly, onChange }: { body: any; readOnly: boolean; onChange: (b: any) => void }) {
  const [apis, setApis] = useState<ApiEntry[]>([]);
  const [q, setQ] = useState("");
  const [ops, setOps] = useState<Operation[]>([]);
  const [op, setOp] = useState<Operation | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api.apis().then((r) => setApis(r.apis)).catch((e) => setError(e.message));
  }, []);
  useEffect(() => {
    if (!body.api) return setOps([]);
    const t = setTimeout(() => api.operations(body.api, q || undefined).then((r) => setOps(r.operations)).catch((e) => setError(e.message)), 200);
    return () => clearTimeout(t);
  }, [body.api, q]);
  useEffect(() => {
    setOp(null);
    if (body.api && body.operation) api.operation(body.api, body.operation).then(setOp).catch(() => setOp(null));
  }, [body.api, body.operation]);

  const paramSchema = useMemo(() => {
    if (!op) return null;
    const properties: Record<string, any> = {};
    const required: string[] = [];
    for (const p of op.parameters) {
      const s = simplify(p.schema ?? {});
      const type = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
      // values may be templates ({{ form.x }}), so every parameter is edited as text
      properties[p.name] = {
        type: "string",
        title: `${p.name} (${p.in}${type ? `, ${type}` : ""})`,
        description: p.description ?? undefined,
        ...(Array.isArray(s.enum) ? { examples: s.enum.map(String) } : {}),
      };
      if (p.required) required.push(p.name);
    }
    return { type: "object" as const, properties, required };
  }, [op]);
  const bodySchema = useMemo(() => (op?.request_body?.schema ? simplify(op.request_body.schema) : null), [op]);

  const typed = (values: Record<string, any>) => {
    // numbers and booleans typed as text become numbers and booleans when the parameter says so
    const out: Record<string, any> = {};
    for (const [k, v] of Object.entries(values ?? {})) {
      if (v === undefined || v === "") continue;
      const p = op?.parameters.find((x) => x.name === k);
      const t = p?.schema?.type;
      if ((t === "integer" || t === "number") && /^-?\d+(\.\d+)?$/.test(String(v))) out[k] = Number(v);
      else if (t === "boolean" && (v === "true" || v === "false")) out[k] = v === "true";
      else out[k] = v;
    }
    return out;
  };
  const stringified = Object.fromEntries(Object.entries(body.params ?? {}).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));

  return (
    <div data-testid="operation-picker">
      <h3>Operation</h3>
      {error && <div className="alert error">{error}</div>}
      <div className="rjsf">
        <div className="form-group">
          <label htmlFor="op-api">API</label>
          <select id="op-api" value={body.api ?? ""} disabled={readOnly} onChange={(e) => onChange({ ...body, api: e.target.value, operation: "", params: undefined, body: undefined })}>
            <option value="">(choose an API)</option>
            {apis.map((a) => (
              <option key={a.id} value={a.id} disabled={!a.valid}>{a.title ? `${a.title} (${a.id})` : a.id}</option>
            ))}
          </select>
        </div>
        {body.api && (
          <div className="form-group">
            <label htmlFor="op-search">Operation</label>
            <input id="op-search" aria-label="Search operations" placeholder="search operations" value={q} onChange={(e) => setQ(e.target.value)} />
            <select id="op-operation" size={Math.min(8, Math.max(3, ops.length))} value={body.operation ?? ""} disabled={readOnly} onChange={(e) => onChange({ ...body, operation: e.target.value, params: undefined, body: undefined })} style={{ marginTop: 4 }}>
              {ops.map((o) => (
                <option key={o.operationId} value={o.operationId}>
                  {o.operationId}: {o.method.toUpperCase()} {o.path}{o.summary ? ` — ${o.summary}` : ""}
                </option>
              ))}
            </select>
          </div>
        )}
      </div>
      {op && paramSchema && Object.keys(paramSchema.properties).length > 0 && (
        <>
          <h3>Parameters</h3>
          <SchemaForm key={`params:${op.operationId}`} idPrefix="params" schema={paramSchema} formData={stringified} disabled={readOnly} noValidate onChange={(v) => onChange({ ...body, params: typed(v) })} />
        </>
      )}
      {op && bodySchema && (
        <>
          <h3>Request body</h3>
          <SchemaForm key={`body:${op.operationId}`} idPrefix="reqbody" schema={bodySchema} formData={body.body ?? undefined} disabled={readOnly} noValidate onChange={(v) => onChange({ ...body, body: prune(v, body.body) })} />
        </>
      )}
    </div>
  );
}
