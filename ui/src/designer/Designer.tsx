import {
  Background, Controls, MiniMap, ReactFlow, ReactFlowProvider, useReactFlow,
  type Connection, type Edge as FlowEdge, type EdgeChange, type Node as FlowNode, type NodeChange,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import type { Document } from "yaml";
import { api, ApiError, type Definition, type DefinitionSummary, type Diagnostic, type SchemaBundle, type Session } from "../api";
import { definitionKinds, kindSchema } from "../common/schema";
import { Link, navigate } from "../router";
import { DefinitionPanel } from "./DefinitionPanel";
import { FormEditor } from "./FormEditor";
import { History } from "./History";
import { layout } from "./layout";
import { addStep, connect, diagnosticsByStep, disconnect, edges as stepEdges, newDefinitionText, newWorkflowText, parse, removeStep, steps as stepsOf, toText } from "./model";
import { RunDialog } from "./RunDialog";
import { StepNode, type StepNodeData } from "./StepNode";
import { StepPanel } from "./StepPanel";
import { WorkflowPanel } from "./WorkflowPanel";

const nodeTypes = { step: StepNode };
const DRAG_TYPE = "application/autopilot-step-kind";

type Loaded = { path: string; version: string | null; content: string; isNew: boolean };
type Notice = { kind: "error" | "success" | "info"; text: string; conflict?: boolean } | null;
type Tab = "properties" | "form" | "yaml" | "history";

type DesignerProps = {
  path: string | null; session: Session; newId: string | null; dagId: string | null;
  /** the kind of a new definition at `path` (`?kind=Alert`); a workflow when absent */
  newKind?: string | null;
};

/** Kinds besides Workflow that the designer lists and edits as one schema-driven form. */
const FORM_KINDS = [
  { kind: "Alert", label: "Alerts", folder: "alerts", noun: "alert" },
  { kind: "Trigger", label: "Triggers", folder: "triggers", noun: "trigger" },
];

export function Designer(props: DesignerProps) {
  return (
    <ReactFlowProvider>
      <DesignerInner {...props} />
    </ReactFlowProvider>
  );
}

function DesignerInner({ path, session, dagId, newKind }: DesignerProps) {
  const [list, setList] = useState<DefinitionSummary[]>([]);
  const [others, setOthers] = useState<Record<string, DefinitionSummary[]>>({});
  const [schema, setSchema] = useState<SchemaBundle | null>(null);
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [doc, setDoc] = useState<Document | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [selectedEdge, setSelectedEdge] = useState<string | null>(null);
  const [diagnostics, setDiagnostics] = useState<Diagnostic[]>([]);
  // the text the shown diagnostics belong to; validation is pending while it differs from the editor's
  const [validated, setValidated] = useState<string | null>(null);
  const validation = useRef(0);
  const [notice, setNotice] = useState<Notice>(null);
  const [saving, setSaving] = useState(false);
  const [tab, setTab] = useState<Tab>("properties");
  const [running, setRunning] = useState(false);
  const [positions, setPositions] = useState<Map<string, { x: number; y: number }>>(new Map());
  // React Flow's measured node sizes, handed back on every render: the nodes are rebuilt from the
  // document each time, and a node object without `measured` is hidden until React Flow measures it
  // again, which it may never do when its size did not change (xyflow's controlled-flow contract)
  const [measured, setMeasured] = useState<Map<string, { width: number; height: number }>>(new Map());
  const flowWrapper = useRef<HTMLDivElement>(null);
  const { screenToFlowPosition, fitView } = useReactFlow();

  const refreshList = useCallback(() => {
    api.definitions("Workflow").then((r) => setList(r.definitions)).catch(() => {});
    for (const { kind } of FORM_KINDS)
      api.definitions(kind).then((r) => setOthers((o) => ({ ...o, [kind]: r.definitions }))).catch(() => {});
  }, []);
  useEffect(() => {
    refreshList();
    api.schema().then(setSchema).catch((e) => setNotice({ kind: "error", text: e.message }));
  }, [refreshList]);

  // open ?dag_id=... (a workflow id) as its definition
  useEffect(() => {
    if (!path && dagId && list.length) {
      const hit = list.find((d) => d.id === dagId);
      if (hit) navigate(`designer/${hit.path}`, true);
    }
  }, [path, dagId, list]);

  // load the definition of the route
  useEffect(() => {
    setNotice(null);
    setSelected(null);
    if (!path) {
      setLoaded(null);
      setDoc(null);
      return;
    }
    let cancelled = false;
    api
      .definition(path)
      .then((d: Definition) => {
        if (cancelled) return;
        setLoaded({ path: d.path, version: d.version, content: d.content, isNew: false });
        setDoc(parse(d.content));
      })
      .catch((e) => {
        if (cancelled) return;
        if (e instanceof ApiError && e.status === 404) {
          const id = path.replace(/^.*\//, "").replace(/\.ya?ml$/, "");
          const text = newKind && newKind !== "Workflow" ? newDefinitionText(newKind, id, id.replace(/_/g, " ")) : newWorkflowText(id, id.replace(/_/g, " "));
          setLoaded({ path, version: null, content: text, isNew: true });
          setDoc(parse(text));
        } else setNotice({ kind: "error", text: e.message });
      });
    return () => {
      cancelled = true;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [path]);

  const text = useMemo(() => (doc ? toText(doc) : ""), [doc]);
  const baseline = useMemo(() => (loaded ? toText(parse(loaded.content)) : ""), [loaded]);
  const dirty = !!loaded && (loaded.isNew || text !== baseline);
  const steps = useMemo(() => (doc ? stepsOf(doc) : []), [doc]);
  const edges = useMemo(() => stepEdges(steps), [steps]);
  const placed = useMemo(() => diagnosticsByStep(text, diagnostics), [text, diagnostics]);
  const supported = useMemo(() => new Map((schema?.step_kinds ?? []).map((k) => [k.kind, k.supported])), [schema]);

  // server-side validation, live (debounced); replies are numbered and only the latest one counts,
  // so a slow reply about an older text never replaces the diagnostics of a newer one
  useEffect(() => {
    if (!loaded || !text) return;
    const seq = ++validation.current;
    const timer = setTimeout(() => {
      api
        .validate(loaded.path, text)
        .then((v) => seq === validation.current && setDiagnostics(v.diagnostics))
        .catch(() => {})
        .finally(() => seq === validation.current && setValidated(text));
    }, 350);
    return () => clearTimeout(timer);
  }, [loaded, text]);
  const checking = !!loaded && !!text && validated !== text;

  // auto-layout whenever the graph's shape changes
  const shape = JSON.stringify([steps.map((s) => s.id), edges.map((e) => e.id)]);
  useEffect(() => {
    setPositions(layout(steps.map((s) => s.id), edges));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);
  // forget the sizes of steps that are gone, so a step added again under the same id is measured anew
  useEffect(() => {
    const ids = new Set(steps.map((s) => s.id));
    setMeasured((m) => ([...m.keys()].every((id) => ids.has(id)) ? m : new Map([...m].filter(([id]) => ids.has(id)))));
  }, [steps]);
  // fit the view once every node has its size: React Flow leaves unmeasured nodes out of fitView, so
  // fitting right after a step is added could leave that step beyond the canvas' edge
  const allMeasured = steps.every((s) => measured.has(s.id));
  useEffect(() => {
    if (!allMeasured) return;
    const t = setTimeout(() => fitView({ padding: 0.2, maxZoom: 1.2 }), 30);
    return () => clearTimeout(t);
  }, [loaded?.path, steps.length, allMeasured, fitView]);

  const nodes: FlowNode<StepNodeData>[] = steps.map((s) => ({
    id: s.id,
    type: "step",
    position: positions.get(s.id) ?? { x: 0, y: 0 },
    measured: measured.get(s.id),
    selected: s.id === selected,
    data: {
      step: s,
      errors: (placed.byStep.get(s.id) ?? []).map((d) => d.message),
      supported: s.kind ? supported.get(s.kind) !== false : true,
    },
  }));
  const flowEdges: FlowEdge[] = edges.map((e) => ({
    id: e.id,
    source: e.source,
    target: e.target,
    sourceHandle: e.branch ?? undefined,
    label: e.label ?? undefined,
    data: { branch: e.branch },
    selected: e.id === selectedEdge,
    animated: false,
  }));
  const edgeSelected = flowEdges.find((e) => e.id === selectedEdge) ?? null;

  const edit = (next: Document) => {
    setDoc(next);
    setNotice((n) => (n?.conflict ? n : null));
  };

  const onNodesChange = (changes: NodeChange[]) => {
    for (const c of changes) {
      if (c.type === "position" && c.position) {
        const pos = c.position;
        setPositions((p) => new Map(p).set(c.id, pos));
      }
      if (c.type === "dimensions" && c.dimensions) {
        const size = c.dimensions;
        setMeasured((m) => new Map(m).set(c.id, size));
      }
      if (c.type === "select") setSelected((cur) => (c.selected ? c.id : cur === c.id ? null : cur));
    }
  };

  const onEdgesChange = (changes: EdgeChange[]) => {
    for (const c of changes)
      if (c.type === "select") setSelectedEdge((cur) => (c.selected ? c.id : cur === c.id ? null : cur));
  };

  const onConnect = (c: Connection) => doc && c.source && c.target && edit(connect(doc, c.source, c.target, c.sourceHandle));
  const onEdgesDelete = (deleted: FlowEdge[]) => {
    if (!doc) return;
    let d = doc;
    for (const e of deleted) d = disconnect(d, e.source, e.target, (e.data as any)?.branch ?? null);
    setSelectedEdge(null);
    edit(d);
  };
  const onNodesDelete = (deleted: FlowNode[]) => {
    if (!doc) return;
    let d = doc;
    for (const n of deleted) d = removeStep(d, n.id);
    setSelected(null);
    edit(d);
  };

  const add = (kind: string) => {
    if (!doc) return;
    const [d, id] = addStep(doc, kind);
    edit(d);
    setSelected(id);
    setTab("properties");
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    const kind = e.dataTransfer.getData(DRAG_TYPE);
    if (kind) add(kind);
    void screenToFlowPosition; // positions come from the auto-layout
  };

  const save = async () => {
    if (!loaded || !doc) return;
    setSaving(true);
    setNotice(null);
    // an unchanged definition is saved byte for byte as it was read
    const content = dirty ? text : loaded.content;
    try {
      const result = loaded.isNew
        ? await api.create(loaded.path, content)
        : await api.update(loaded.path, content, loaded.version ?? "");
      if (result.state === "pending_review") {
        // four-eyes: the file is unchanged until another user approves this revision
        const what = (result.review_reasons ?? []).join(" and ") || "approval rules";
        setNotice({
          kind: "info",
          text: `Waiting for review: this change touches ${what}, so it was stored as revision ${result.revision ?? "–"} of ${result.path} and takes effect only once another user with edit rights approves it. Until then the saved workflow is unchanged.`,
        });
        return;
      }
      setLoaded({ path: result.path, version: result.version, content, isNew: false });
      setNotice({ kind: "success", text: `Saved ${result.path} (revision ${result.revision ?? "–"}). Airflow picks the change up within seconds.` });
      refreshList();
      if (loaded.isNew) navigate(`designer/${result.path}`, true);
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && e.detail.field === "version") {
        setNotice({
          kind: "error",
          conflict: true,
          text: "Someone else saved this workflow after you opened it. Nothing was overwritten: your changes are still here, unsaved. Reload to get the current version (your changes are discarded), or copy your YAML first from the YAML tab.",
        });
      } else if (e instanceof ApiError && e.status === 409) {
        setNotice({ kind: "error", text: `Not saved: ${e.detail.message}` });
      } else if (e instanceof ApiError && e.status === 422) {
        setDiagnostics(e.detail.diagnostics ?? []);
        setNotice({ kind: "error", text: `Not saved: the definition has ${(e.detail.diagnostics ?? []).length} problem(s), shown on the steps.` });
      } else setNotice({ kind: "error", text: `Not saved: ${(e as Error).message}` });
    } finally {
      setSaving(false);
    }
  };

  const reload = () => {
    if (!loaded) return;
    api.definition(loaded.path).then((d) => {
      setLoaded({ path: d.path, version: d.version, content: d.content, isNew: false });
      setDoc(parse(d.content));
      setNotice({ kind: "info", text: "Reloaded the current version." });
    });
  };

  const [newName, setNewName] = useState("");
  const [newNames, setNewNames] = useState<Record<string, string>>({});
  const createNew = (kind = "Workflow") => {
    const id = (kind === "Workflow" ? newName : newNames[kind] ?? "").trim();
    const form = FORM_KINDS.find((k) => k.kind === kind);
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(id)) {
      setNotice({ kind: "error", text: `A${form ? "n " + form.noun : " workflow"} id has letters, digits and underscores, starting with a letter.` });
      return;
    }
    if (kind === "Workflow") {
      setNewName("");
      navigate(`designer/${id}.yaml`);
    } else {
      setNewNames((n) => ({ ...n, [kind]: "" }));
      navigate(`designer/${form?.folder ?? kind.toLowerCase()}/${id}.yaml?kind=${encodeURIComponent(kind)}`);
    }
  };
  const knownKinds = useMemo(() => definitionKinds(schema?.definition), [schema]);

  const data = (doc?.toJS() ?? {}) as any;
  // a definition of another kind (an Alert, …) is edited as one schema-driven form, without a canvas
  const docKind: string = typeof data.kind === "string" ? data.kind : "Workflow";
  const isWorkflow = docKind === "Workflow";
  const docSchema = useMemo(() => (isWorkflow ? null : kindSchema(schema?.definition, docKind)), [isWorkflow, schema, docKind]);
  const shownTab: Tab = isWorkflow ? tab : tab === "history" ? "history" : "yaml";
  const selectedStep = steps.find((s) => s.id === selected) ?? null;
  const canEdit = session.can_edit_definitions;
  const errorCount = diagnostics.length;

  return (
    <div className="designer">
      <aside className="sidebar">
        <h3 style={{ marginTop: 0 }}>Workflows</h3>
        <div className="def-list">
          {list.map((d) => (
            <Link key={d.path} to={`designer/${d.path}`} className={`${d.path === loaded?.path ? "active" : ""}${d.valid ? "" : " invalid"}`}>
              {d.title || d.id || d.path}
              <span className="muted small"> {d.path}</span>
            </Link>
          ))}
        </div>
        {canEdit && (
          <form className="row" style={{ marginTop: 8 }} onSubmit={(e) => (e.preventDefault(), createNew())}>
            <input aria-label="New workflow id" placeholder="new_workflow_id" value={newName} onChange={(e) => setNewName(e.target.value)} style={{ width: "100%" }} />
            <button type="submit" className="small">New workflow</button>
          </form>
        )}
        {FORM_KINDS.filter((k) => knownKinds.includes(k.kind) || (others[k.kind] ?? []).length > 0).map((k) => (
          <div key={k.kind} data-testid={`list-${k.kind}`}>
            <h3>{k.label}</h3>
            <div className="def-list">
              {(others[k.kind] ?? []).length === 0 && <div className="muted small">None yet.</div>}
              {(others[k.kind] ?? []).map((d) => (
                <Link key={d.path} to={`designer/${d.path}`} className={`${d.path === loaded?.path ? "active" : ""}${d.valid ? "" : " invalid"}`}>
                  {d.title || d.id || d.path}
                  <span className="muted small"> {d.path}</span>
                </Link>
              ))}
            </div>
            {canEdit && knownKinds.includes(k.kind) && (
              <form className="row" style={{ marginTop: 8 }} onSubmit={(e) => (e.preventDefault(), createNew(k.kind))}>
                <input
                  aria-label={`New ${k.noun} id`}
                  placeholder={`new_${k.noun}_id`}
                  value={newNames[k.kind] ?? ""}
                  onChange={(e) => setNewNames((n) => ({ ...n, [k.kind]: e.target.value }))}
                  style={{ width: "100%" }}
                />
                <button type="submit" className="small">New {k.noun}</button>
              </form>
            )}
          </div>
        ))}
        {doc && isWorkflow && (
          <>
            <h3>Steps</h3>
            <p className="muted small" style={{ marginTop: 0 }}>Drag onto the canvas (or click +). Connect a step's bottom handle to another's top.</p>
            {(schema?.step_kinds ?? []).map((k) => {
              // a script is code that workers run: adding one needs the code-author permission
              const allowed = canEdit && (k.kind !== "script" || session.can_author_code);
              return (
              <div
                key={k.kind}
                className="palette-item"
                draggable={allowed}
                data-testid={`palette-${k.kind}`}
                onDragStart={(e) => {
                  e.dataTransfer.setData(DRAG_TYPE, k.kind);
                  e.dataTransfer.effectAllowed = "move";
                }}
                title={
                  canEdit && !allowed
                    ? "Scripts are code that workers run: adding one needs the 'Autopilot Code' permission"
                    : k.note ?? schema?.steps[k.kind]?.description ?? ""
                }
              >
                <span>
                  <span className="kind">{k.kind}</span>
                  {!k.supported && <span className="muted small"> (soon)</span>}
                  {canEdit && !allowed && <span className="muted small"> (code authors)</span>}
                </span>
                <button className="small" disabled={!allowed} onClick={() => add(k.kind)} aria-label={`Add ${k.kind} step`}>+</button>
              </div>
              );
            })}
          </>
        )}
      </aside>

      <section className="canvas">
        {doc && loaded ? (
          <>
            <div className="toolbar">
              <strong>{data.title || data.id}</strong>
              <span className="muted small">{loaded.path}</span>
              {checking ? (
                <span className="badge" data-testid="validity" data-state="checking">checking…</span>
              ) : errorCount ? (
                <span className="badge failed" data-testid="validity" data-state="invalid">{errorCount} problem{errorCount > 1 ? "s" : ""}</span>
              ) : (
                <span className="badge success" data-testid="validity" data-state="valid">valid</span>
              )}
              {dirty && <span className="badge warn">unsaved</span>}
              <span className="spacer" />
              {isWorkflow && edgeSelected && canEdit && (
                <button onClick={() => onEdgesDelete([edgeSelected])} data-testid="disconnect">
                  Disconnect {edgeSelected.source} → {edgeSelected.target}
                </button>
              )}
              {isWorkflow && (
                <button onClick={() => setRunning(true)} disabled={loaded.isNew || dirty || !session.can_trigger} title={dirty ? "Save first" : "Start a run"}>Run</button>
              )}
              <button className="primary" onClick={save} disabled={!canEdit || saving} data-testid="save">
                {saving ? "Saving…" : "Save"}
              </button>
            </div>
            {notice && (
              <div className={`alert ${notice.kind}`} role="alert" data-testid="notice" style={{ margin: "8px 12px" }}>
                {notice.text}
                {notice.conflict && (
                  <div className="row" style={{ marginTop: 6 }}>
                    <button className="small" onClick={reload}>Reload current version</button>
                    <button className="small" onClick={() => navigator.clipboard?.writeText(text)}>Copy my YAML</button>
                  </div>
                )}
              </div>
            )}
            {isWorkflow && placed.other.length > 0 && (
              <div className="alert error" style={{ margin: "0 12px 8px" }}>
                {placed.other.map((d, i) => (
                  <div key={i}>{d.line ? `line ${d.line}: ` : ""}{d.message}</div>
                ))}
              </div>
            )}
            {!isWorkflow ? (
              <div className="definition-body">
                <DefinitionPanel
                  doc={doc}
                  kind={docKind}
                  schema={docSchema}
                  isNew={loaded.isNew}
                  readOnly={!canEdit}
                  diagnostics={diagnostics}
                  onChange={edit}
                />
              </div>
            ) : (
            <div className="flow" ref={flowWrapper} onDragOver={(e) => (e.preventDefault(), (e.dataTransfer.dropEffect = "move"))} onDrop={onDrop} data-testid="canvas">
              <ReactFlow
                nodes={nodes}
                edges={flowEdges}
                nodeTypes={nodeTypes}
                onNodesChange={onNodesChange}
                onEdgesChange={onEdgesChange}
                onConnect={canEdit ? onConnect : undefined}
                onEdgesDelete={canEdit ? onEdgesDelete : undefined}
                onNodesDelete={canEdit ? onNodesDelete : undefined}
                onPaneClick={() => (setSelected(null), setSelectedEdge(null))}
                deleteKeyCode={canEdit ? ["Backspace", "Delete"] : null}
                nodesConnectable={canEdit}
                fitView
                proOptions={{ hideAttribution: true }}
              >
                <Background gap={16} />
                <Controls showInteractive={false} />
                <MiniMap pannable zoomable />
              </ReactFlow>
            </div>
            )}
          </>
        ) : (
          <div className="empty">{notice ? <div className={`alert ${notice.kind}`}>{notice.text}</div> : "Open a workflow (or an alert) on the left, or create a new one."}</div>
        )}
      </section>

      {doc && loaded && (
        <aside className="panel">
          <div className="tabs">
            {((isWorkflow ? ["properties", "form", "yaml", "history"] : ["yaml", "history"]) as Tab[]).map((t) => (
              <button key={t} className={shownTab === t ? "active" : ""} onClick={() => setTab(t)}>
                {t === "properties" ? (selectedStep ? "Step" : "Workflow") : t === "form" ? "Request form" : t === "yaml" ? "YAML" : "History"}
              </button>
            ))}
          </div>
          {shownTab === "properties" && isWorkflow &&
            (selectedStep && schema ? (
              <StepPanel
                key={selectedStep.id}
                doc={doc}
                step={selectedStep}
                schema={schema}
                errors={placed.byStep.get(selectedStep.id) ?? []}
                readOnly={!canEdit}
                onChange={edit}
                onRenamed={setSelected}
                onDelete={() => (setSelected(null), edit(removeStep(doc, selectedStep.id)))}
              />
            ) : (
              <WorkflowPanel doc={doc} readOnly={!canEdit} onChange={edit} />
            ))}
          {shownTab === "form" && <FormEditor doc={doc} workflowId={loaded.isNew ? null : (data.id ?? null)} readOnly={!canEdit} onChange={edit} />}
          {shownTab === "yaml" && <YamlTab text={text} readOnly={!canEdit} onChange={(t) => edit(parse(t))} />}
          {shownTab === "history" && !loaded.isNew && <History path={loaded.path} version={loaded.version} current={text} onRestore={(content) => (edit(parse(content)), setNotice({ kind: "info", text: "Revision restored into the editor. Save to make it current." }))} />}
        </aside>
      )}
      {running && loaded && isWorkflow && <RunDialog dagId={data.id} form={data.form} onClose={() => setRunning(false)} />}
    </div>
  );
}

function YamlTab({ text, readOnly, onChange }: { text: string; readOnly: boolean; onChange: (t: string) => void }) {
  const [draft, setDraft] = useState(text);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setDraft(text), [text]);
  const apply = () => {
    const d = parse(draft);
    if (d.errors.length) return setError(d.errors[0].message);
    setError(null);
    if (draft !== text) onChange(draft);
  };
  return (
    <div>
      <textarea className="code" rows={30} value={draft} readOnly={readOnly} onChange={(e) => setDraft(e.target.value)} onBlur={apply} spellCheck={false} data-testid="yaml" />
      {error && <div className="alert error">{error}</div>}
      <p className="muted small">Edits apply when the text box loses focus.</p>
    </div>
  );
}
