// The workflow's request form: one row per field, and a live preview rendered like the form portal does.
import { useMemo } from "react";
import type { Document } from "yaml";
import { formSchema } from "../common/schema";
import { SchemaForm } from "../common/SchemaForm";
import { setField } from "./model";

const TYPES = ["string", "integer", "number", "boolean"];

export function FormEditor({ doc, readOnly, onChange }: { doc: Document; readOnly: boolean; onChange: (d: Document) => void }) {
  const form = ((doc.toJS() as any)?.form ?? {}) as { properties?: Record<string, any>; required?: string[] };
  const properties = form.properties ?? {};
  const required = form.required ?? [];
  const schema = useMemo(() => formSchema(form), [JSON.stringify(form)]); // eslint-disable-line react-hooks/exhaustive-deps

  const write = (props: Record<string, any>, req: string[]) => {
    const next: any = { ...form, properties: props };
    if (req.length) next.required = req;
    else delete next.required;
    onChange(setField(doc, "form", Object.keys(props).length || req.length ? next : undefined));
  };
  const setProp = (name: string, key: string, value: unknown) => {
    const field = { ...properties[name] };
    if (value === undefined || value === "") delete field[key];
    else field[key] = value;
    write({ ...properties, [name]: field }, required);
  };
  const rename = (from: string, to: string) => {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(to) || to in properties) return;
    const props = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k === from ? to : k, v]));
    write(props, required.map((r) => (r === from ? to : r)));
  };
  const add = () => {
    let n = 1;
    while (`field_${n}` in properties) n++;
    write({ ...properties, [`field_${n}`]: { type: "string", title: `Field ${n}` } }, required);
  };
  const remove = (name: string) => {
    const { [name]: _, ...props } = properties;
    write(props, required.filter((r) => r !== name));
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
                <input aria-label="Field name" defaultValue={name} readOnly={readOnly} onBlur={(e) => rename(name, e.target.value.trim())} style={{ width: "100%" }} />
                <input aria-label="Field title" placeholder="Title" value={f?.title ?? ""} readOnly={readOnly} onChange={(e) => setProp(name, "title", e.target.value)} style={{ width: "100%", marginTop: 4 }} />
                <input
                  aria-label="Choices"
                  placeholder="choices: a, b, c"
                  defaultValue={Array.isArray(f?.enum) ? f.enum.join(", ") : ""}
                  readOnly={readOnly}
                  onBlur={(e) => {
                    const values = e.target.value.split(",").map((v) => v.trim()).filter(Boolean);
                    setProp(name, "enum", values.length ? values : undefined);
                  }}
                  style={{ width: "100%", marginTop: 4 }}
                />
              </td>
              <td style={{ width: 110 }}>
                <select aria-label="Field type" value={typeof f?.type === "string" ? f.type : "string"} disabled={readOnly} onChange={(e) => setProp(name, "type", e.target.value)}>
                  {TYPES.map((t) => (
                    <option key={t}>{t}</option>
                  ))}
                </select>
                <label className="small" style={{ display: "flex", gap: 4, marginTop: 6, fontWeight: 400 }}>
                  <input type="checkbox" checked={required.includes(name)} disabled={readOnly} onChange={(e) => write(properties, e.target.checked ? [...required, name] : required.filter((r) => r !== name))} />
                  required
                </label>
                {!readOnly && <button className="small danger" onClick={() => remove(name)} style={{ marginTop: 6 }}>Remove</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!readOnly && <button onClick={add} style={{ marginTop: 8 }}>Add field</button>}
      <p className="muted small">Sections, dynamic options and validation rules: edit them in the YAML tab.</p>
      <h3>Preview</h3>
      <div className="card" data-testid="form-preview">
        <SchemaForm key={JSON.stringify(schema)} idPrefix="preview" schema={schema} liveValidate={false}>
          <button type="button" disabled>Submit (preview)</button>
        </SchemaForm>
      </div>
    </div>
  );
}
