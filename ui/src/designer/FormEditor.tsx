// The workflow's request form: one row per field, and a live preview rendered like the form portal does.
import { useEffect, useMemo, useState } from "react";
import type { Document } from "yaml";
import { api, type WorkflowForm } from "../api";
import { withChoices } from "../common/schema";
import { SchemaForm } from "../common/SchemaForm";
import { addField, parseChoices, removeField, renameField, setFieldProp, setRequired, type FormSection } from "./formFields";
import { setField } from "./model";

const TYPES = ["string", "integer", "number", "boolean"];

type Props = {
  doc: Document;
  /** the saved workflow's id: its form's dynamic choices are fetched for the preview; null for a new one */
  workflowId: string | null;
  readOnly: boolean;
  onChange: (d: Document) => void;
};

export function FormEditor({ doc, workflowId, readOnly, onChange }: Props) {
  const form = ((doc.toJS() as any)?.form ?? {}) as FormSection;
  const properties = form.properties ?? {};
  const required = form.required ?? [];
  const dynamic = Object.values(properties).some((f: any) => f?.options);
  const [resolved, setResolved] = useState<WorkflowForm | null>(null);
  useEffect(() => {
    setResolved(null);
    if (!workflowId || !dynamic) return;
    let cancelled = false;
    api
      .workflowForm(workflowId)
      .then((r) => !cancelled && setResolved(r))
      .catch(() => {}); // not parsed yet, or an API that cannot list its choices: the preview says where they come from
    return () => {
      cancelled = true;
    };
  }, [workflowId, dynamic]);
  const preview = useMemo(() => withChoices(form, resolved), [JSON.stringify(form), resolved]); // eslint-disable-line react-hooks/exhaustive-deps

  const write = (next: FormSection | undefined) => {
    if (next !== form) onChange(setField(doc, "form", next));
  };

  return (
    <div data-testid="form-editor">
      <h3 style={{ marginTop: 0 }}>Fields</h3>
      {Object.keys(properties).length === 0 && <p className="muted">No form: the workflow starts without questions.</p>}
      <table className="list">
        <tbody>
          {Object.entries(properties).map(([name, f]) => (
            <tr key={name}>
              <td>
                <input aria-label="Field name" defaultValue={name} readOnly={readOnly} onBlur={(e) => write(renameField(form, name, e.target.value.trim()))} style={{ width: "100%" }} />
                <input aria-label="Field title" placeholder="Title" value={f?.title ?? ""} readOnly={readOnly} onChange={(e) => write(setFieldProp(form, name, "title", e.target.value))} style={{ width: "100%", marginTop: 4 }} />
                <input
                  aria-label="Choices"
                  placeholder="choices: a, b, c"
                  defaultValue={Array.isArray(f?.enum) ? f.enum.join(", ") : ""}
                  readOnly={readOnly}
                  onBlur={(e) => write(setFieldProp(form, name, "enum", parseChoices(e.target.value)))}
                  style={{ width: "100%", marginTop: 4 }}
                />
              </td>
              <td style={{ width: 110 }}>
                <select aria-label="Field type" value={typeof f?.type === "string" ? f.type : "string"} disabled={readOnly} onChange={(e) => write(setFieldProp(form, name, "type", e.target.value))}>
                  {TYPES.map((t) => (
                    <option key={t}>{t}</option>
                  ))}
                </select>
                <label className="small" style={{ display: "flex", gap: 4, marginTop: 6, fontWeight: 400 }}>
                  <input type="checkbox" checked={required.includes(name)} disabled={readOnly} onChange={(e) => write(setRequired(form, name, e.target.checked))} />
                  required
                </label>
                {!readOnly && <button className="small danger" onClick={() => write(removeField(form, name))} style={{ marginTop: 6 }}>Remove</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!readOnly && <button onClick={() => write(addField(form))} style={{ marginTop: 8 }}>Add field</button>}
      <p className="muted small">Sections, dynamic options and validation rules: edit them in the YAML tab.</p>
      <h3>Preview</h3>
      {dynamic && (
        <p className="muted small" data-testid="preview-choices">
          {resolved ? "Dynamic choices as the saved workflow offers them now." : "Dynamic choices show once the workflow is saved and Airflow has loaded it."}
        </p>
      )}
      <div className="card" data-testid="form-preview">
        <SchemaForm key={JSON.stringify(preview)} idPrefix="preview" schema={preview.schema} uiSchema={preview.uiSchema} liveValidate={false}>
          <button type="button" disabled>Submit (preview)</button>
        </SchemaForm>
      </div>
    </div>
  );
}
