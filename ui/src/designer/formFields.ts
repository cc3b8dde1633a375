// The request-form editor's edits (FormEditor.tsx), as functions of a definition's `form:` section:
// each returns the new section, or undefined when nothing is left (the workflow then has no form).

export type FormSection = { properties?: Record<string, any>; required?: string[]; [key: string]: unknown };

export const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

function build(form: FormSection, properties: Record<string, any>, required: string[]): FormSection | undefined {
  const next: FormSection = { ...form, properties };
  if (required.length) next.required = required;
  else delete next.required;
  return Object.keys(properties).length || required.length ? next : undefined;
}

const props = (form: FormSection) => form.properties ?? {};
const req = (form: FormSection) => form.required ?? [];

/** Set one key of a field (title, type, enum, …); an empty value removes the key. */
export function setFieldProp(form: FormSection, name: string, key: string, value: unknown): FormSection | undefined {
  const field = { ...props(form)[name] };
  if (value === undefined || value === "") delete field[key];
  else field[key] = value;
  return build(form, { ...props(form), [name]: field }, req(form));
}

/** Rename a field, keeping its place and whether it is required; an invalid or taken name changes nothing. */
export function renameField(form: FormSection, from: string, to: string): FormSection | undefined {
  if (from === to || !FIELD_NAME.test(to) || to in props(form)) return form;
  const properties = Object.fromEntries(Object.entries(props(form)).map(([k, v]) => [k === from ? to : k, v]));
  return build(form, properties, req(form).map((r) => (r === from ? to : r)));
}

/** Add a text field named field_<n>, the first n not taken. */
export function addField(form: FormSection): FormSection | undefined {
  let n = 1;
  while (`field_${n}` in props(form)) n++;
  return build(form, { ...props(form), [`field_${n}`]: { type: "string", title: `Field ${n}` } }, req(form));
}

export function removeField(form: FormSection, name: string): FormSection | undefined {
  const { [name]: _removed, ...properties } = props(form);
  return build(form, properties, req(form).filter((r) => r !== name));
}

export function setRequired(form: FormSection, name: string, required: boolean): FormSection | undefined {
  const others = req(form).filter((r) => r !== name);
  return build(form, props(form), required ? [...others, name] : others);
}

/** "a, b ,c" → ["a", "b", "c"]; nothing → undefined (no static choices). */
export function parseChoices(text: string): string[] | undefined {
  const values = text.split(",").map((v) => v.trim()).filter(Boolean);
  return values.length ? values : undefined;
}
