import { readFileSync } from "node:fs";
import { join } from "node:path";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { kindSchema } from "../common/schema";
import { DefinitionPanel, kindUiSchema } from "./DefinitionPanel";
import { newDefinitionText, parse } from "./model";

// the published schema (`make schema`), the same bundle GET /schema answers with
const BUNDLE = JSON.parse(readFileSync(join(__dirname, "..", "..", "..", "definitions", "schema", "definition.schema.json"), "utf-8"));

const ALERT = `apiVersion: autopilot/v1
kind: Alert
id: backup_array_events
title: Backup array events
owner: group:storage
auth:
  scheme: stripe
  connection: alert_backup_array
  tolerance: 5m
match:
  - payload.severity in ['critical', 'major']
routes:
  - id: add_backup
    workflow: add_machine_to_backups
    form: {hostname: "{{ payload.host }}", policy: gold}
    requester: alice
`;

describe("an Alert in the designer", () => {
  const schema = kindSchema(BUNDLE.definition ?? BUNDLE, "Alert");

  it("has its form from the Alert kind of the definition schema", () => {
    expect(schema).not.toBeNull();
    expect(Object.keys(schema!.properties)).toEqual(expect.arrayContaining(["id", "auth", "match", "routes", "owner"]));
    expect(schema!.properties.auth.properties.scheme.enum).toEqual(["github", "stripe", "standard", "bearer"]);
    expect(schema!.properties.routes.items.properties.workflow.type).toBe("string");
  });

  it("shows the definition's values in that form, the id fixed once saved", () => {
    const html = renderToStaticMarkup(
      <DefinitionPanel doc={parse(ALERT)} kind="Alert" schema={schema} isNew={false} readOnly={false} diagnostics={[]} onChange={() => {}} />,
    );
    expect(html).toContain('data-kind="Alert"');
    expect(html).toContain('value="add_machine_to_backups"');
    expect(html).toContain('value="alert_backup_array"');
    expect(html).toMatch(/<option[^>]*value="[^"]*"[^>]*selected[^>]*>stripe<\/option>|selected="" value="[^"]*">stripe/);
    expect(html).toContain("payload.severity in [&#x27;critical&#x27;, &#x27;major&#x27;]");
    expect(html).toContain("/autopilot/api/v1/alerts/backup_array_events");
    expect(kindUiSchema("Alert", schema, false).id).toMatchObject({ "ui:readonly": true });
    expect(kindUiSchema("Alert", schema, true).id).toBeUndefined();
  });

  it("says to use the YAML tab for a kind the server does not know", () => {
    const html = renderToStaticMarkup(
      <DefinitionPanel doc={parse(newDefinitionText("Gadget", "t", "t"))} kind="Gadget" schema={null} isNew readOnly={false} diagnostics={[]} onChange={() => {}} />,
    );
    expect(html).toContain("no kind <code>Gadget</code>");
  });
});

describe("a Trigger in the designer", () => {
  const schema = kindSchema(BUNDLE.definition ?? BUNDLE, "Trigger");
  const TRIGGER = readFileSync(join(__dirname, "..", "..", "..", "definitions", "triggers", "backup_capacity.yaml"), "utf-8");

  it("has its form from the Trigger kind of the definition schema", () => {
    expect(schema).not.toBeNull();
    expect(Object.keys(schema!.properties)).toEqual(expect.arrayContaining(["schedule", "rest", "value", "condition", "for", "resolve", "alert", "notify"]));
  });

  it("shows the example trigger's values, the data point first and the unsupported sources read-only", () => {
    const html = renderToStaticMarkup(
      <DefinitionPanel doc={parse(TRIGGER)} kind="Trigger" schema={schema} isNew={false} readOnly={false} diagnostics={[]} onChange={() => {}} />,
    );
    expect(html).toContain('data-kind="Trigger"');
    expect(html).toContain('value="getCapacity"');
    expect(html).toContain('value="value &gt;= 90"');
    expect(html).toContain('value="30m"');
    expect(html).toContain("DAG <code>backup_capacity</code>");
    const ui = kindUiSchema("Trigger", schema, false);
    const order = ui["ui:order"] as string[];
    expect(order.indexOf("rest")).toBeLessThan(order.indexOf("condition"));
    expect(order.indexOf("condition")).toBeLessThan(order.indexOf("resolve"));
    expect(ui.sql).toMatchObject({ "ui:disabled": true });
  });

  it("starts a new trigger from a template the server's validation can complete", () => {
    const data = parse(newDefinitionText("Trigger", "disk_full", "Disk full")).toJS();
    expect(data).toMatchObject({ kind: "Trigger", id: "disk_full", start_paused: true, condition: "value >= 90" });
    expect(data.rest).toEqual({ api: "", operation: "" });
  });
});
