// JSON Schemas from pydantic (step kinds) and OpenAPI (operation parameters) turned into what a form
// renderer handles well: optional `anyOf [X, null]` becomes X, `anyOf [list of X, X]` becomes the list,
// and defaults are dropped (a default is what the server applies anyway; filling it in would write it
// into the YAML).

type Schema = Record<string, any>;

function resolve(schema: Schema, root: Schema): Schema {
  if (schema && typeof schema.$ref === "string" && schema.$ref.startsWith("#/")) {
    const target = schema.$ref
      .slice(2)
      .split("/")
      .reduce((node: any, key: string) => node?.[key.replace(/~1/g, "/").replace(/~0/g, "~")], root);
    if (target) {
      const { $ref, ...rest } = schema;
      return { ...target, ...rest };
    }
  }
  return schema;
}

/** What a recursive part of a schema (an asset condition inside an asset condition, …) becomes in a
 * form: any object, edited in the YAML tab — a renderer would otherwise follow it forever or fail on
 * the `$ref` whose `$defs` are gone. */
function nested(ref: string): Schema {
  return { type: "object", additionalProperties: true, title: ref.split("/").pop(), description: "Nested: edit it in the YAML tab." };
}

function simplifyOne(schema: any, root: Schema, depth: number, refs: string[] = []): any {
  if (!schema || typeof schema !== "object" || Array.isArray(schema)) return schema;
  const ref: string | undefined = typeof schema.$ref === "string" ? schema.$ref : undefined;
  if (ref && (refs.includes(ref) || depth > 12)) return nested(ref);
  if (depth > 12) return schema;
  if (ref) refs = [...refs, ref];
  let s: Schema = resolve(schema, root);
  const { default: _default, ...rest } = s;
  s = rest;
  for (const key of ["anyOf", "oneOf"]) {
    if (Array.isArray(s[key])) {
      const members = s[key].map((m: Schema) => resolve(m, root)).filter((m: Schema) => m.type !== "null");
      const list = members.find((m: Schema) => m.type === "array");
      const pick = members.length === 1 ? members[0] : list && members.length === 2 ? list : null;
      if (pick) {
        const { [key]: _, ...outer } = s;
        s = { ...pick, ...outer };
      }
    }
  }
  const out: Schema = { ...s };
  if (s.properties) {
    out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, simplifyOne(v, root, depth + 1, refs)]));
  }
  if (s.items && typeof s.items === "object") out.items = simplifyOne(s.items, root, depth + 1, refs);
  if (s.additionalProperties && typeof s.additionalProperties === "object")
    out.additionalProperties = simplifyOne(s.additionalProperties, root, depth + 1, refs);
  if (Array.isArray(s.anyOf)) out.anyOf = s.anyOf.map((m: Schema) => simplifyOne(m, root, depth + 1, refs));
  if (Array.isArray(s.oneOf)) out.oneOf = s.oneOf.map((m: Schema) => simplifyOne(m, root, depth + 1, refs));
  if (!out.type && !out.anyOf && !out.oneOf && !out.enum && !out.properties && !out.const) out.type = "string"; // `Any`
  return out;
}

/** A renderer-friendly copy of a schema, with `$ref`s into `$defs` resolved. */
export function simplify(schema: Schema): Schema {
  const out = simplifyOne(schema, schema, 0);
  delete out.$defs;
  delete out.definitions;
  return out;
}

/** Make data fit a simplified schema: a scalar where a list is expected becomes a one-item list. */
export function coerce(data: any, schema: Schema | undefined): any {
  if (!schema || data === undefined || data === null) return data;
  if (schema.type === "array" && !Array.isArray(data)) return [coerce(data, schema.items)];
  if (schema.type === "array" && Array.isArray(data)) return data.map((d) => coerce(d, schema.items));
  if (schema.properties && typeof data === "object" && !Array.isArray(data)) {
    const out: Record<string, any> = { ...data };
    for (const [k, v] of Object.entries(schema.properties)) if (k in out) out[k] = coerce(out[k], v as Schema);
    return out;
  }
  return data;
}

/** Drop what a form renderer leaves behind for fields the user never filled: undefined and empty objects. */
export function prune(data: any, original: any): any {
  if (Array.isArray(data)) return data.map((d, i) => prune(d, original?.[i]));
  if (data && typeof data === "object") {
    const out: Record<string, any> = {};
    for (const [k, v] of Object.entries(data)) {
      if (v === undefined) continue;
      const p = prune(v, original?.[k]);
      const emptyObject = p && typeof p === "object" && !Array.isArray(p) && Object.keys(p).length === 0;
      const emptyList = Array.isArray(p) && p.length === 0;
      if ((emptyObject || emptyList) && !(original && k in original)) continue;
      out[k] = p;
    }
    return out;
  }
  return data;
}

/** The JSON Schema of a workflow's request form (`form:` section of a definition). */
export function formSchema(form: any): Schema {
  const properties: Schema = {};
  for (const [name, field] of Object.entries<any>(form?.properties ?? {})) {
    const { section, options, description_md, values_display, required, ...rest } = field ?? {};
    properties[name] = { type: "string", ...rest };
    if (values_display && Array.isArray(rest.enum)) {
      properties[name].oneOf = rest.enum.map((v: any) => ({ const: v, title: values_display[String(v)] ?? String(v) }));
      delete properties[name].enum;
    }
  }
  return { type: "object", properties, required: Array.isArray(form?.required) ? form.required : [] };
}

function choicesSource(options: any): string {
  if (options?.api) return `${options.api}${options.operation ? `.${options.operation}` : ""}`;
  if (options?.resources) return "the inventory";
  return "their source";
}

/**
 * A request form's schema and uiSchema for a preview: `formSchema(form)`, where each field whose
 * choices are dynamic (`options`) takes them from `resolved` — the server's rendering of the saved
 * workflow's form (`GET /workflows/{id}/form`, choices fetched as `enum`) — when that has them, and
 * otherwise says where they will come from.
 */
export function withChoices(form: any, resolved?: { schema?: any; ui_schema?: any } | null): { schema: Schema; uiSchema: Schema } {
  const schema = formSchema(form);
  const uiSchema: Schema = {};
  for (const [name, field] of Object.entries<any>(form?.properties ?? {})) {
    if (!field?.options) continue;
    const prop = schema.properties[name];
    const got = resolved?.schema?.properties?.[name];
    if (got && (Array.isArray(got.enum) || Array.isArray(got.oneOf) || Array.isArray(got.items?.enum))) {
      for (const key of ["enum", "oneOf", "items"]) if (got[key] !== undefined) prop[key] = got[key];
      if (resolved?.ui_schema?.[name]) uiSchema[name] = resolved.ui_schema[name];
    } else {
      const note = `Choices from ${choicesSource(field.options)}, fetched when the form is shown.`;
      prop.description = prop.description ? `${prop.description} ${note}` : note;
    }
  }
  return { schema, uiSchema };
}

/** The kinds of definition the server's definition schema knows (`Workflow`, `Api`, `Alert`, …). */
export function definitionKinds(definition: Schema | null | undefined): string[] {
  return kindMembers(definition).map(([kind]) => kind);
}

function kindMembers(definition: Schema | null | undefined): [string, Schema][] {
  if (!definition || typeof definition !== "object") return [];
  const members: Schema[] = definition.anyOf ?? definition.oneOf ?? [];
  const out: [string, Schema][] = [];
  for (const m of members) {
    const s = resolve(m, definition);
    const k = s?.properties?.kind;
    const kind = typeof k?.const === "string" ? k.const : Array.isArray(k?.enum) && k.enum.length === 1 ? String(k.enum[0]) : null;
    if (kind) out.push([kind, s]);
  }
  return out;
}

/**
 * The form-friendly schema of one kind of definition, out of the definition schema (`GET /schema`'s
 * `definition`: an `anyOf` over the kinds, each a `$ref` into `$defs` whose `kind` is a `const`); null
 * when the server does not know that kind. Its `$ref`s resolve against the whole bundle's `$defs`.
 */
export function kindSchema(definition: Schema | null | undefined, kind: string): Schema | null {
  const hit = kindMembers(definition).find(([k]) => k === kind);
  if (!hit) return null;
  const { $defs, definitions } = definition as Schema;
  return simplify({ ...hit[1], ...($defs ? { $defs } : {}), ...(definitions ? { definitions } : {}) });
}
