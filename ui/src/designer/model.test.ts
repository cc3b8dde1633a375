import { readdirSync, readFileSync, type Dirent } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { layout } from "./layout";
import {
  addStep, connect, dependencies, diagnosticsByStep, disconnect, edges, newDefinitionText, newWorkflowText, parse, removeStep, renameStep, setFields,
  setStepField, steps, toText,
} from "./model";

const DEFINITIONS = join(__dirname, "..", "..", "..", "definitions");

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e: Dirent) =>
    e.isDirectory() ? (e.name === "schema" || e.name === "specs" ? [] : yamlFiles(join(dir, e.name))) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

const deps = (text: string) => Object.fromEntries(dependencies(steps(parse(text))));

describe("opening and saving a definition unchanged", () => {
  for (const file of yamlFiles(DEFINITIONS)) {
    it(`keeps ${file.slice(DEFINITIONS.length + 1)} semantically identical`, () => {
      const text = readFileSync(file, "utf8");
      const saved = toText(parse(text));
      expect(parseYaml(saved)).toEqual(parseYaml(text));
    });
  }
});

const TWO = `# a comment that stays
apiVersion: autopilot/v1
kind: Workflow
id: two
steps:
  - id: a
    script: {bash: echo a}
  - id: b
    script: {bash: echo b}
`;

describe("dependencies follow graph.py", () => {
  it("waits for the previous step by default", () => {
    expect(deps(TWO)).toEqual({ a: [], b: ["a"] });
  });

  it("puts branch targets after their decision and labels the edges", () => {
    const text = readFileSync(join(DEFINITIONS, "add_machine_to_backups.yaml"), "utf8");
    const all = steps(parse(text));
    const branchEdges = edges(all).filter((e) => e.branch);
    expect(branchEdges.length).toBeGreaterThan(0);
    for (const e of branchEdges) expect(all.find((s) => s.id === e.source)?.kind).toBe("decision");
  });
});

describe("graph edits", () => {
  it("adds a step connected to nothing, and connecting it to the previous step drops the after again", () => {
    const [withC, id] = addStep(parse(TWO), "script");
    expect(id).toBe("script_1");
    expect(deps(toText(withC))[id]).toEqual([]);
    const connected = connect(withC, "b", id);
    expect(deps(toText(connected))[id]).toEqual(["b"]);
    expect(parseYaml(toText(connected)).steps[2].after).toBeUndefined();
    expect(toText(connected)).toContain("# a comment that stays");
  });

  it("adds a workflow step with the id of the workflow to start left to fill in", () => {
    const [d, id] = addStep(parse(TWO), "workflow");
    expect(id).toBe("workflow_1");
    expect(parseYaml(toText(d)).steps[2].workflow).toEqual({ id: "" });
  });

  it("connects and disconnects with explicit after", () => {
    const [d1, c] = addStep(parse(TWO), "script");
    const d2 = connect(d1, "a", c);
    expect(deps(toText(d2))[c]).toEqual(["a"]);
    const d3 = disconnect(d2, "a", c);
    expect(deps(toText(d3))[c]).toEqual([]);
    const d4 = disconnect(parse(TWO), "a", "b");
    expect(deps(toText(d4)).b).toEqual([]);
    expect(parseYaml(toText(d4)).steps[1].after).toEqual([]);
  });

  it("connects a decision's then and else handles", () => {
    let [d, dec] = addStep(parse(TWO), "decision");
    d = connect(d, "b", dec);
    d = connect(d, dec, "a", "then");
    expect(parseYaml(toText(d)).steps[2].decision.then).toBe("a");
    expect(edges(steps(d)).find((e) => e.source === dec && e.target === "a")?.branch).toBe("then");
    d = disconnect(d, dec, "a", "then");
    expect(parseYaml(toText(d)).steps[2].decision.then).toBeUndefined();
  });

  it("removing a step makes its dependents wait for what it waited for", () => {
    const three = TWO + "  - id: c\n    script: {bash: echo c}\n";
    const d = removeStep(parse(three), "b");
    expect(deps(toText(d))).toEqual({ a: [], c: ["a"] });
    expect(parseYaml(toText(d)).steps[1].after).toBeUndefined();
  });

  it("renaming a step renames references", () => {
    const d = renameStep(connect(addStep(parse(TWO), "script")[0], "a", "script_1"), "a", "first");
    expect(deps(toText(d))).toEqual({ first: [], b: ["first"], script_1: ["first"] });
  });
});

describe("diagnostics and layout", () => {
  it("places a diagnostic on the step whose YAML holds its line", () => {
    const { byStep, other } = diagnosticsByStep(TWO, [
      { line: 9, column: 5, message: "bad" },
      { line: 2, column: 1, message: "top" },
    ]);
    expect(byStep.get("b")?.[0].message).toBe("bad");
    expect(other.map((d) => d.message)).toEqual(["top"]);
  });

  it("lays steps out top to bottom", () => {
    const pos = layout(["a", "b"], [{ source: "a", target: "b" }]);
    expect(pos.get("b")!.y).toBeGreaterThan(pos.get("a")!.y);
  });
});

describe("new workflows", () => {
  it("grow a block list of steps with common keys first", () => {
    let d = parse(newWorkflowText("fresh", "Fresh one"));
    let a: string;
    [d, a] = addStep(d, "script");
    const [d2, b] = addStep(d, "script");
    const text = toText(setStepField(connect(d2, a, b), b, "title", "Second"));
    expect(text).toContain("steps:\n  - id: script_1\n");
    expect(text).toContain("  - id: script_2\n    title: Second\n    script:");
    expect(parseYaml(text).steps[1].after).toBeUndefined();
  });
});

describe("definitions edited as one form", () => {
  it("start an Alert with its auth and a route to fill in", () => {
    const alert = parseYaml(newDefinitionText("Alert", "ci_events", "ci events"));
    expect(alert).toEqual({
      apiVersion: "autopilot/v1", kind: "Alert", id: "ci_events", title: "ci events",
      auth: { scheme: "github", connection: "alert_ci_events" }, routes: [{ id: "start", workflow: "" }],
    });
  });
  it("write only the keys whose value changed, keeping comments, and never apiVersion or kind", () => {
    const text = "apiVersion: autopilot/v1\nkind: Alert\nid: a # the URL's name\nauth: {scheme: github, connection: c}\nmatch:\n  - payload.x == 1\n";
    const doc = parse(text);
    const out = toText(setFields(doc, { ...parseYaml(text), title: "New", kind: "Workflow" }));
    expect(out).toContain("id: a # the URL's name");
    expect(out).toContain("auth: { scheme: github, connection: c }");
    expect(out).toContain("match:\n  - payload.x == 1");
    expect(parseYaml(out)).toEqual({ ...parseYaml(text), title: "New" });
    expect(toText(setFields(doc, parseYaml(text)))).toBe(toText(doc));
    const { match: _gone, ...rest } = parseYaml(text);
    expect(parseYaml(toText(setFields(doc, rest))).match).toBeUndefined();
  });
});
