// The designer's model: a YAML Document (comments and layout of untouched parts are kept) plus pure
// functions that read steps and their dependencies from it and apply graph edits to it.
// Dependencies follow autopilot_provider/definitions/graph.py exactly.
import { Document, isMap, isSeq, LineCounter, parseDocument } from "yaml";

export const STEP_KINDS = ["task", "script", "form", "approval", "decision", "notify", "ticket", "pipe", "wait", "use", "metric"];

export type Step = {
  id: string;
  index: number;
  kind: string | null;
  title: string | null;
  after: string[] | null;
  body: any;
  raw: Record<string, any>;
};

export type Branch = { handle: string; label: string; targets: string[] };
export type Edge = { id: string; source: string; target: string; branch: string | null; label: string | null };

export function parse(text: string): Document {
  return parseDocument(text, { keepSourceTokens: false });
}

export function toText(doc: Document): string {
  return doc.toString({ lineWidth: 0 });
}

export function newWorkflowText(id: string, title: string): string {
  return new Document({ apiVersion: "autopilot/v1", kind: "Workflow", id, title, steps: [] }).toString();
}

/** A new definition of another kind than Workflow, as the designer starts it (the server's validation
 * then says what is still missing). */
export function newDefinitionText(kind: string, id: string, title: string): string {
  if (kind === "Alert")
    return new Document({
      apiVersion: "autopilot/v1",
      kind,
      id,
      title,
      auth: { scheme: "github", connection: `alert_${id}` },
      routes: [{ id: "start", workflow: "" }],
    }).toString();
  if (kind === "Trigger")
    // a valid start: a REST data point read every 10 minutes, paused until someone switches it on
    return new Document({
      apiVersion: "autopilot/v1",
      kind,
      id,
      title,
      schedule: "*/10 * * * *",
      start_paused: true,
      rest: { api: "", operation: "" },
      value: "response.body",
      condition: "value >= 90",
      alert: "",
    }).toString();
  return new Document({ apiVersion: "autopilot/v1", kind, id, title }).toString();
}

const asList = (v: unknown): string[] => (v == null ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

export function steps(doc: Document): Step[] {
  const data = doc.toJS() as any;
  const list = Array.isArray(data?.steps) ? data.steps : [];
  return list.map((raw: any, index: number) => {
    raw = raw && typeof raw === "object" ? raw : {};
    const kind = STEP_KINDS.find((k) => raw[k] !== undefined && raw[k] !== null) ?? null;
    return {
      id: String(raw.id ?? `step_${index + 1}`),
      index,
      kind,
      title: raw.title ?? null,
      after: raw.after === undefined || raw.after === null ? null : asList(raw.after),
      body: kind ? raw[kind] : null,
      raw,
    };
  });
}

/** A decision's branches, each with the source handle the designer draws for it. */
export function branches(step: Step): Branch[] {
  if (step.kind !== "decision") return [];
  const d = step.body ?? {};
  if (Array.isArray(d.cases)) {
    const out: Branch[] = d.cases.map((c: any, i: number) => ({
      handle: `case-${i}`,
      label: c?.when ? `when ${c.when}` : `case ${i + 1}`,
      targets: asList(c?.then),
    }));
    out.push({ handle: "default", label: "default", targets: asList(d.default) });
    return out;
  }
  return [
    { handle: "then", label: "then", targets: asList(d.then) },
    { handle: "else", label: "else", targets: asList(d.else) },
  ];
}

export function branchSources(all: Step[]): Map<string, string[]> {
  const sources = new Map<string, string[]>();
  for (const s of all)
    for (const b of branches(s))
      for (const t of b.targets) {
        const list = sources.get(t) ?? [];
        if (!list.includes(s.id)) list.push(s.id);
        sources.set(t, list);
      }
  return sources;
}

/** step id → the step ids it waits for (graph.py `dependencies`). */
export function dependencies(all: Step[]): Map<string, string[]> {
  const sources = branchSources(all);
  const deps = new Map<string, string[]>();
  all.forEach((s, i) => {
    let up: string[];
    if (s.after !== null) up = [...s.after];
    else if (sources.has(s.id)) up = [];
    else up = i ? [all[i - 1].id] : [];
    for (const d of sources.get(s.id) ?? []) if (!up.includes(d)) up.push(d);
    deps.set(s.id, up);
  });
  return deps;
}

/** The edges the canvas draws: one per dependency; a decision's edges carry their branch. */
export function edges(all: Step[]): Edge[] {
  const deps = dependencies(all);
  const byId = new Map(all.map((s) => [s.id, s]));
  const out: Edge[] = [];
  for (const s of all) {
    for (const up of deps.get(s.id) ?? []) {
      const source = byId.get(up);
      const branch = source ? branches(source).find((b) => b.targets.includes(s.id)) : undefined;
      out.push({
        id: `${up}->${s.id}${branch ? `:${branch.handle}` : ""}`,
        source: up,
        target: s.id,
        branch: branch?.handle ?? null,
        label: branch?.label ?? null,
      });
    }
  }
  return out;
}

// ---- edits (each returns a new Document; the argument is not changed) -------------------------

function stepIdx(doc: Document, id: string): number {
  return steps(doc).findIndex((s) => s.id === id);
}

function ensureSteps(doc: Document) {
  const seq = doc.get("steps", true) as any;
  if (!isSeq(seq)) doc.set("steps", doc.createNode([]));
  else if (seq.items.length === 0) seq.flow = false; // `steps: []` grows as a block list
}

/** Where a step's keys go when added: common keys first, in this order, then the kind's body. */
const KEY_ORDER = ["id", "title", "description", "after", "retries", "retry_delay", "timeout", "trigger_rule"];

function setStepKey(doc: Document, index: number, key: string, value: unknown) {
  const map = doc.getIn(["steps", index], true) as any;
  if (!isMap(map) || map.has(key) || !KEY_ORDER.includes(key)) {
    doc.setIn(["steps", index, key], value);
    return;
  }
  const rank = (k: string) => (KEY_ORDER.includes(k) ? KEY_ORDER.indexOf(k) : KEY_ORDER.length);
  const at = (map.items as any[]).findIndex((pair) => rank(String(pair.key?.value ?? pair.key)) > rank(key));
  const pair = doc.createPair(key, value);
  if (at < 0) map.items.push(pair);
  else map.items.splice(at, 0, pair);
}

function flow(doc: Document, value: unknown) {
  const node = doc.createNode(value) as any;
  if (isSeq(node) || isMap(node)) node.flow = true;
  return node;
}

/** Waits of a step that are not implied by a decision branching to it. */
function ownDeps(all: Step[], id: string): string[] {
  const i = all.findIndex((s) => s.id === id);
  const s = all[i];
  if (s.after !== null) return [...s.after];
  if (branchSources(all).has(id)) return [];
  return i ? [all[i - 1].id] : [];
}

/** Write `after` for a step, leaving it out when the default (previous step) means the same. */
function setAfter(doc: Document, id: string, after: string[]) {
  const all = steps(doc);
  const i = all.findIndex((s) => s.id === id);
  if (i < 0) return;
  const implicit = branchSources(all).has(id) ? [] : i ? [all[i - 1].id] : [];
  const same = after.length === implicit.length && after.every((a, k) => a === implicit[k]);
  if (same) doc.deleteIn(["steps", i, "after"]);
  else setStepKey(doc, i, "after", flow(doc, after));
}

function setBranchTargets(doc: Document, decisionIdx: number, handle: string, targets: string[]) {
  const path = handle.startsWith("case-")
    ? ["steps", decisionIdx, "decision", "cases", Number(handle.slice(5)), "then"]
    : ["steps", decisionIdx, "decision", handle];
  if (targets.length === 0) doc.deleteIn(path);
  else doc.setIn(path, targets.length === 1 ? targets[0] : flow(doc, targets));
}

export function connect(doc: Document, source: string, target: string, handle?: string | null): Document {
  if (source === target) return doc;
  const d = doc.clone();
  const all = steps(d);
  const src = all.find((s) => s.id === source);
  if (!src || !all.find((s) => s.id === target)) return doc;
  const branch = handle ? branches(src).find((b) => b.handle === handle) : undefined;
  if (branch) {
    if (branch.targets.includes(target)) return doc;
    // a branch target waits for its decision implicitly; materialise its other waits first
    const own = ownDeps(all, target);
    setBranchTargets(d, src.index, branch.handle, [...branch.targets, target]);
    setAfter(d, target, own.filter((x) => x !== source));
    return d;
  }
  const own = ownDeps(all, target);
  if (own.includes(source) || (dependencies(all).get(target) ?? []).includes(source)) return doc;
  setAfter(d, target, [...own, source]);
  return d;
}

export function disconnect(doc: Document, source: string, target: string, handle?: string | null): Document {
  const d = doc.clone();
  const all = steps(d);
  const src = all.find((s) => s.id === source);
  if (!src) return doc;
  const own = ownDeps(all, target);
  const branch = handle ? branches(src).find((b) => b.handle === handle) : undefined;
  if (branch) {
    setBranchTargets(d, src.index, branch.handle, branch.targets.filter((t) => t !== target));
  }
  setAfter(d, target, own.filter((x) => x !== source));
  return d;
}

export function uniqueId(doc: Document, base: string): string {
  const ids = new Set(steps(doc).map((s) => s.id));
  for (let n = 1; ; n++) if (!ids.has(`${base}_${n}`)) return `${base}_${n}`;
}

export function defaultBody(kind: string): any {
  switch (kind) {
    case "script":
      return { bash: "echo hello" };
    case "task":
      return { api: "", operation: "" };
    case "wait":
      return { api: "", operation: "", until: "response.status == 200" };
    case "decision":
      return { if: "true" };
    case "notify":
      return { to: [], subject: "" };
    case "use":
      return { function: "" };
    case "approval":
    case "form":
      return { from: [] };
    case "ticket":
      return { action: "create" };
    case "workflow":
      return { id: "" };
    case "pipe":
      return { sql: { connection: "", query: "" } };
    case "metric":
      return { name: "", value: "" };
    default:
      return {};
  }
}

/** Add a step of a kind at the end of the list, connected to nothing. Returns [doc, id]. */
export function addStep(doc: Document, kind: string, id?: string): [Document, string] {
  const d = doc.clone();
  ensureSteps(d);
  const newId = id ?? uniqueId(d, kind);
  const had = steps(d).length;
  const step: Record<string, unknown> = { id: newId, [kind]: defaultBody(kind) };
  if (had) step.after = [];
  const node = d.createNode(step) as any;
  if (had) node.get("after", true).flow = true;
  (d.get("steps") as any).add(node);
  return [d, newId];
}

export function removeStep(doc: Document, id: string): Document {
  const d = doc.clone();
  const all = steps(d);
  const i = all.findIndex((s) => s.id === id);
  if (i < 0) return doc;
  const upstream = ownDeps(all, id);
  const deps = dependencies(all);
  // steps that waited for it wait for what it waited for instead
  const affected: [string, string[]][] = [];
  for (const s of all) {
    if (s.id === id) continue;
    const theirs = ownDeps(all, s.id);
    if (theirs.includes(id)) {
      const next = theirs.flatMap((x) => (x === id ? upstream : [x])).filter((x, k, a) => a.indexOf(x) === k && x !== s.id);
      affected.push([s.id, next]);
    } else if (s.after === null && (deps.get(s.id) ?? []).length) {
      affected.push([s.id, theirs]); // keep its implicit wait when the list shifts
    }
  }
  for (const s of all) for (const b of branches(s)) if (b.targets.includes(id)) setBranchTargets(d, s.index, b.handle, b.targets.filter((t) => t !== id));
  for (const [sid, after] of affected) setAfterRaw(d, stepIdx(d, sid), after);
  d.deleteIn(["steps", i]);
  for (const [sid, after] of affected) setAfter(d, sid, after);
  return d;
}

export function renameStep(doc: Document, oldId: string, newId: string): Document {
  if (oldId === newId || !newId) return doc;
  const d = doc.clone();
  const all = steps(d);
  if (all.some((s) => s.id === newId)) return doc;
  for (const s of all) {
    if (s.after?.includes(oldId)) setAfterRaw(d, s.index, s.after.map((x) => (x === oldId ? newId : x)));
    for (const b of branches(s)) if (b.targets.includes(oldId)) setBranchTargets(d, s.index, b.handle, b.targets.map((t) => (t === oldId ? newId : t)));
  }
  d.setIn(["steps", stepIdx(d, oldId), "id"], newId);
  return d;
}

function setAfterRaw(doc: Document, index: number, after: string[]) {
  setStepKey(doc, index, "after", flow(doc, after));
}

/** Set (or, with undefined, remove) one field of a step: `title`, `retries`, the kind's body, ... */
export function setStepField(doc: Document, id: string, key: string, value: unknown): Document {
  const d = doc.clone();
  const i = stepIdx(d, id);
  if (i < 0) return doc;
  if (value === undefined || value === null || value === "") d.deleteIn(["steps", i, key]);
  else setStepKey(d, i, key, d.createNode(value));
  return d;
}

/** Set (or remove) a top-level field of the workflow, e.g. `title` or `form`. */
export function setField(doc: Document, key: string, value: unknown): Document {
  const d = doc.clone();
  if (value === undefined || value === null || value === "") d.delete(key);
  else d.set(key, d.createNode(value));
  return d;
}

/** Apply a whole-definition form's values (`next`) to the document: only the top-level keys whose
 * value changed are written (the others keep their comments and layout); keys gone are removed;
 * `apiVersion` and `kind` are never touched. */
export function setFields(doc: Document, next: Record<string, unknown>): Document {
  const before = (doc.toJS() ?? {}) as Record<string, unknown>;
  let d = doc;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const key of Object.keys(before)) if (!(key in next) && key !== "apiVersion" && key !== "kind") d = setField(d, key, undefined);
  for (const [key, value] of Object.entries(next)) {
    if (key === "apiVersion" || key === "kind" || same(before[key], value)) continue;
    d = setField(d, key, value);
  }
  return d;
}

// ---- diagnostics on nodes ----------------------------------------------------------------------

/** Attach `path:line:col` diagnostics to the steps whose YAML contains the position. */
export function diagnosticsByStep<T extends { line: number | null; column: number | null; message: string }>(
  text: string,
  diagnostics: T[],
): { byStep: Map<string, T[]>; other: T[] } {
  const byStep = new Map<string, T[]>();
  const other: T[] = [];
  const lc = new LineCounter();
  let ranges: { id: string; start: number; end: number }[] = [];
  try {
    const doc = parseDocument(text, { lineCounter: lc });
    const seq = doc.get("steps", true) as any;
    if (isSeq(seq))
      ranges = seq.items
        .filter((n: unknown) => isMap(n))
        .map((n: any) => ({ id: String(n.get("id") ?? ""), start: n.range[0], end: n.range[2] }));
  } catch {
    /* unparsable text: nothing to place */
  }
  for (const diag of diagnostics) {
    let id: string | undefined;
    if (diag.line) {
      const offset = (lc.lineStarts[diag.line - 1] ?? 0) + Math.max(0, (diag.column ?? 1) - 1);
      id = ranges.find((r) => offset >= r.start && offset < r.end)?.id;
    }
    if (!id) id = /step '([A-Za-z][A-Za-z0-9_]*)'/.exec(diag.message)?.[1];
    if (id && ranges.some((r) => r.id === id)) byStep.set(id, [...(byStep.get(id) ?? []), diag]);
    else other.push(diag);
  }
  return { byStep, other };
}

