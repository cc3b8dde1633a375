import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { formSchema, withChoices } from "../common/schema";
import { FormEditor } from "./FormEditor";
import { addField, parseChoices, removeField, renameField, setFieldProp, setRequired, type FormSection } from "./formFields";
import { parse, setField, toText } from "./model";

const WORKFLOW = `apiVersion: autopilot/v1
kind: Workflow
id: backup
# who asks
form:
  properties:
    host: {type: string, title: Host}
    policy:
      type: string
      title: Policy
      options: {api: backup_product, operation: listPolicies}
  required: [host]
steps:
  - id: go
    script: {bash: echo go}
`;

/** Apply one of the editor's edits to the definition as FormEditor does, and read the YAML back. */
function edited(text: string, edit: (form: FormSection) => FormSection | undefined): any {
  const doc = parse(text);
  const form = (doc.toJS() as any).form ?? {};
  return parseYaml(toText(setField(doc, "form", edit(form))));
}

describe("the request-form editor's edits", () => {
  it("adds fields under the first free name, and a first field creates the form", () => {
    const none = WORKFLOW.replace(/form:[\s\S]*?required: \[host\]\n/, "");
    expect(edited(none, addField).form).toEqual({ properties: { field_1: { type: "string", title: "Field 1" } } });
    const form = edited(WORKFLOW, (f) => addField(addField(f)!)).form;
    expect(Object.keys(form.properties)).toEqual(["host", "policy", "field_1", "field_2"]);
  });

  it("sets and clears a field's title, type and choices", () => {
    let form = edited(WORKFLOW, (f) => setFieldProp(f, "host", "title", "Machine")).form;
    expect(form.properties.host).toEqual({ type: "string", title: "Machine" });
    form = edited(WORKFLOW, (f) => setFieldProp(f, "host", "title", "")).form;
    expect(form.properties.host).toEqual({ type: "string" });
    form = edited(WORKFLOW, (f) => setFieldProp(f, "host", "type", "integer")).form;
    expect(form.properties.host.type).toBe("integer");
    form = edited(WORKFLOW, (f) => setFieldProp(f, "host", "enum", parseChoices(" web01, ,db01 "))).form;
    expect(form.properties.host.enum).toEqual(["web01", "db01"]);
    expect(parseChoices("  , ")).toBeUndefined();
    // everything else of the definition stays as it was
    const data = edited(WORKFLOW, (f) => setFieldProp(f, "host", "title", "Machine"));
    expect(data.steps).toEqual([{ id: "go", script: { bash: "echo go" } }]);
    expect(data.form.properties.policy.options).toEqual({ api: "backup_product", operation: "listPolicies" });
  });

  it("renames a field in place and in `required`, refusing invalid or taken names", () => {
    const form = edited(WORKFLOW, (f) => renameField(f, "host", "hostname")).form;
    expect(Object.keys(form.properties)).toEqual(["hostname", "policy"]);
    expect(form.required).toEqual(["hostname"]);
    const doc = parse(WORKFLOW);
    const original = (doc.toJS() as any).form;
    expect(renameField(original, "host", "policy")).toBe(original);
    expect(renameField(original, "host", "2host")).toBe(original);
    expect(renameField(original, "host", "host")).toBe(original);
  });

  it("toggles required, and removing the last field removes the form", () => {
    let form = edited(WORKFLOW, (f) => setRequired(f, "policy", true)).form;
    expect(form.required).toEqual(["host", "policy"]);
    form = edited(WORKFLOW, (f) => setRequired(f, "host", false)).form;
    expect(form.required).toBeUndefined();
    form = edited(WORKFLOW, (f) => removeField(f, "host")).form;
    expect(form).toEqual({ properties: { policy: { type: "string", title: "Policy", options: { api: "backup_product", operation: "listPolicies" } } } });
    expect(edited(WORKFLOW, (f) => removeField(removeField(f, "host")!, "policy")).form).toBeUndefined();
  });
});

describe("the request form's schema and its preview", () => {
  it("turns a definition's form into the renderer's JSON Schema", () => {
    const s = formSchema({
      properties: {
        size: { type: "integer", minimum: 1, section: "Disk", description_md: "**GB**" },
        tier: { enum: ["gold", "silver"], values_display: { gold: "Gold (daily)" } },
        policy: { title: "Policy", options: { api: "backup_product", operation: "listPolicies" } },
      },
      required: ["size"],
    });
    expect(s).toEqual({
      type: "object",
      properties: {
        size: { type: "integer", minimum: 1 },
        tier: { type: "string", oneOf: [{ const: "gold", title: "Gold (daily)" }, { const: "silver", title: "silver" }] },
        policy: { type: "string", title: "Policy" },
      },
      required: ["size"],
    });
    expect(formSchema(undefined)).toEqual({ type: "object", properties: {}, required: [] });
  });

  it("keeps dynamic choices the server resolved, and says where they come from otherwise", () => {
    const form = (parse(WORKFLOW).toJS() as any).form;
    const resolved = {
      schema: { type: "object", properties: { policy: { type: "string", enum: ["gold", "silver"] } } },
      ui_schema: { policy: { "ui:enumNames": ["Gold", "Silver"] } },
    };
    const withServer = withChoices(form, resolved);
    expect(withServer.schema.properties.policy).toEqual({ type: "string", title: "Policy", enum: ["gold", "silver"] });
    expect(withServer.uiSchema).toEqual({ policy: { "ui:enumNames": ["Gold", "Silver"] } });
    const alone = withChoices(form, null);
    expect(alone.schema.properties.policy.enum).toBeUndefined();
    expect(alone.schema.properties.policy.description).toBe("Choices from backup_product.listPolicies, fetched when the form is shown.");
    expect(alone.schema.properties.host).toEqual({ type: "string", title: "Host" });
  });

  it("renders the fields and the preview", () => {
    const html = renderToStaticMarkup(<FormEditor doc={parse(WORKFLOW.replace("title: Host}", "title: Host, enum: [web01, db01]}"))} workflowId={null} readOnly={false} onChange={() => {}} />);
    expect(html).toContain('value="Host"');
    expect(html).toContain('value="web01, db01"');
    expect(html).toMatch(/<option[^>]*>web01<\/option>/);
    expect(html).toContain("Choices from backup_product.listPolicies");
    expect(html).toContain("Dynamic choices show once the workflow is saved");
  });
});
