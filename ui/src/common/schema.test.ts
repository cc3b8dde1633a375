import { describe, expect, it } from "vitest";
import { coerce, formSchema, prune, simplify } from "./schema";

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
