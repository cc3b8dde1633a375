import { describe, expect, it } from "vitest";
import { coerce, definitionKinds, formSchema, kindSchema, prune, simplify } from "./schema";

describe("schemas for the form renderer", () => {
  it("turns optional and one-or-many unions into plain types and drops defaults", () => {
    const s = simplify({
      $defs: { Case: { type: "object", properties: { when: { type: "string" } } } },
      type: "object",
      properties: {
        timeout: { anyOf: [{ type: "string" }, { type: "null" }], default: null, title: "Timeout" },
        then: { anyOf: [{ type: "array", items: { type: "string" } }, { type: "string" }, { type: "null" }] },
        cases: { anyOf: [{ type: "array", items: { $ref: "#/$defs/Case" } }, { type: "null" }] },
        every: { type: "string", default: "30s" },
      },
    });
    expect(s.properties.timeout).toEqual({ type: "string", title: "Timeout" });
    expect(s.properties.then.type).toBe("array");
    expect(s.properties.cases.items.properties.when.type).toBe("string");
    expect(s.properties.every.default).toBeUndefined();
    expect(s.$defs).toBeUndefined();
  });

  it("wraps scalars where the schema wants lists, and prunes untouched empties", () => {
    const schema = { type: "object", properties: { then: { type: "array", items: { type: "string" } } } };
    expect(coerce({ then: "a" }, schema)).toEqual({ then: ["a"] });
    expect(prune({ a: 1, env: {}, b: undefined, keep: [] }, { keep: [] })).toEqual({ a: 1, keep: [] });
  });

  it("builds a request form's schema from a definition's form", () => {
    const s = formSchema({ properties: { policy: { type: "string", enum: ["gold"], section: "x" } }, required: ["policy"] });
    expect(s).toEqual({ type: "object", properties: { policy: { type: "string", enum: ["gold"] } }, required: ["policy"] });
  });
});

describe("the schema of one kind of definition", () => {
  const bundle = {
    $defs: {
      Route: { type: "object", properties: { id: { type: "string" }, workflow: { type: "string" } } },
      Alert: {
        type: "object",
        properties: {
          kind: { const: "Alert", type: "string" },
          id: { type: "string" },
          routes: { type: "array", items: { $ref: "#/$defs/Route" } },
          title: { anyOf: [{ type: "string" }, { type: "null" }], default: null },
        },
      },
      Workflow: { type: "object", properties: { kind: { const: "Workflow" } } },
    },
    anyOf: [{ $ref: "#/$defs/Workflow" }, { $ref: "#/$defs/Alert" }],
  };
  it("is found by its kind and resolved against the bundle's $defs", () => {
    expect(definitionKinds(bundle)).toEqual(["Workflow", "Alert"]);
    const s = kindSchema(bundle, "Alert")!;
    expect(s.properties.routes.items.properties.workflow.type).toBe("string");
    expect(s.properties.title).toEqual({ type: "string" });
    expect(s.$defs).toBeUndefined();
  });
  it("is null for a kind the server does not know", () => {
    expect(kindSchema(bundle, "Trigger")).toBeNull();
    expect(kindSchema(null, "Alert")).toBeNull();
    expect(definitionKinds({})).toEqual([]);
  });
});

describe("a recursive schema (an asset condition inside an asset condition)", () => {
  const bundle = {
    $defs: {
      Expr: {
        type: "object",
        properties: { any: { type: "array", items: { oneOf: [{ type: "string" }, { $ref: "#/$defs/Expr" }] } } },
      },
      Thing: { type: "object", properties: { kind: { const: "Thing" }, when: { $ref: "#/$defs/Expr" } } },
    },
    anyOf: [{ $ref: "#/$defs/Thing" }],
  };
  it("resolves once and leaves the nested repetition as an object edited in YAML, with no dangling $ref", () => {
    const s = kindSchema(bundle, "Thing")!;
    const member = s.properties.when.properties.any.items.oneOf[1];
    expect(member).toMatchObject({ type: "object", title: "Expr" });
    expect(JSON.stringify(s)).not.toContain("$ref");
  });
});
