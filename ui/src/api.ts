// The one data layer: every call the UI makes to the Autopilot API (and the two it makes to Airflow's).
// Authentication is Airflow's `_token` cookie (same origin); state-changing calls carry the
// X-Autopilot-Request header the plugin's CSRF check requires.

function meta(name: string, fallback: string): string {
  if (typeof document === "undefined") return fallback; // unit tests (node)
  const el = document.querySelector(`meta[name="${name}"]`);
  return el?.getAttribute("content") || fallback;
}

export const API = meta("autopilot-api", "/autopilot/api/v1");
export const AIRFLOW_ROOT = meta("airflow-root", "/");

export type ErrorDetail = {
  message: string;
  field?: string | null;
  current_version?: string | null;
  diagnostics?: Diagnostic[] | null;
  errors?: { field: string; message: string }[];
};

export class ApiError extends Error {
  status: number;
  detail: ErrorDetail;
  constructor(status: number, detail: ErrorDetail) {
    super(detail.message);
    this.status = status;
    this.detail = detail;
  }
}

function toDetail(status: number, body: any): ErrorDetail {
  const d = body?.detail;
  if (d && typeof d === "object" && !Array.isArray(d) && typeof d.message === "string") return d;
  if (typeof d === "string") return { message: d };
  if (Array.isArray(d)) {
    // FastAPI's validation errors
    return { message: d.map((e: any) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ") };
  }
  return { message: `HTTP ${status}` };
}

export async function request<T>(method: string, url: string, body?: unknown, extraHeaders?: Record<string, string>): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...extraHeaders };
  if (method !== "GET") headers["X-Autopilot-Request"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (res.status === 401) {
    notAuthenticated();
  }
  if (!res.ok) throw new ApiError(res.status, toDetail(res.status, data));
  return data as T;
}

function notAuthenticated() {
  // Airflow's login page sends the user back here afterwards
  window.dispatchEvent(new CustomEvent("autopilot:unauthenticated"));
}

export function loginUrl(): string {
  let here = window.location.href;
  try {
    here = window.top?.location.href ?? here; // inside Airflow's iframe: come back to Airflow's page
  } catch {
    /* another origin */
  }
  return `${AIRFLOW_ROOT}api/v2/auth/login?next=${encodeURIComponent(here)}`;
}

const enc = encodeURIComponent;
const encPath = (p: string) => p.split("/").map(enc).join("/");
const qs = (params: Record<string, string | number | boolean | undefined | null>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, String(v));
  const t = s.toString();
  return t ? `?${t}` : "";
};

// ---- types ------------------------------------------------------------------------------------

export type Session = {
  user: string;
  user_id: string;
  can_edit_definitions: boolean;
  /** May add or change scripts (the 'Autopilot Code' permission). */
  can_author_code: boolean;
  can_trigger: boolean;
  /** May read the alert delivery log (designers and alert admins); absent from servers without alerts. */
  can_read_alert_deliveries?: boolean;
  /** May replay deliveries of the alert log (alert admins); absent from servers without alerts. */
  can_replay_alerts?: boolean;
};
export type StepKind = { kind: string; supported: boolean; note?: string | null };
export type SchemaBundle = { definition: any; steps: Record<string, any>; step_kinds: StepKind[] };

export type Diagnostic = { path: string; line: number | null; column: number | null; message: string; text: string };
export type DefinitionSummary = {
  path: string; kind: string | null; id: string | null; title: string | null; version: string; valid: boolean; error_count: number;
};
export type Definition = DefinitionSummary & { content: string; diagnostics: Diagnostic[] };
export type Validation = { path: string; kind: string | null; id: string | null; valid: boolean; error_count: number; diagnostics: Diagnostic[] };
export type SaveResult = {
  path: string; action: string; revision: number | null; version: string; kind: string | null; id: string | null;
  /** "pending_review" (HTTP 202): stored, not in effect until another user approves the revision */
  state?: "applied" | "pending_review" | "rejected"; review_reasons?: string[];
};
export type Revision = {
  number: number; version: string | null; author: string | null; created_at: string; action: string;
  state?: "applied" | "pending_review" | "rejected"; reviewer?: string | null;
};
export type RevisionDetail = Revision & { path: string; content: string | null };

export type ApiEntry = { id: string; title: string | null; valid: boolean; error?: string | null; operations?: number | null };
export type Parameter = { name: string; in: string; required: boolean; description?: string | null; schema: any };
export type Operation = {
  operationId: string; method: string; path: string; summary: string | null; tags: string[];
  parameters: Parameter[]; request_body: { required: boolean; media_types: string[]; schema: any } | null;
};

export type WorkflowEntry = {
  id: string; title: string | null; description: string | null; tags: string[]; owner: string | null; has_form: boolean; dag_id: string;
  /** whether the caller may start runs of it (a viewer sees the catalog but may not request) */
  can_request: boolean;
};
export type WorkflowForm = { workflow: WorkflowEntry; schema: any; ui_schema: any; sections: { title: string; fields: string[] }[] };
export type RunStarted = { dag_id: string; run_id: string; state: string; url: string; scheduled_for?: string | null };
export type RequestCancelled = { dag_id: string; run_id: string; state: string; url: string; scheduled_for: string | null; cancelled: boolean; cancelled_by: string };
export type RequestStep = { id: string; task_id: string; title: string | null; state: string | null; start_date: string | null; end_date: string | null };
export type RequestEntry = {
  dag_id: string; run_id: string; title: string | null; state: string; requester: string | null; created_at: string;
  form: Record<string, unknown>; steps: RequestStep[]; url: string; approvals: RequestApproval[]; tickets?: string[];
  ticket_links?: { number: string; url?: string | null; table?: string | null }[];
  /** a request for later: when it was asked to start (it waits queued until then) */
  scheduled_for?: string | null; start_date?: string | null;
  /** ended without ever starting; the caller may cancel it now (theirs, still queued) */
  cancelled?: boolean; cancellable?: boolean;
};
/** An approval or mid-flow form as one request of GET /requests carries it. */
export type RequestApproval = {
  id: string; kind: "approval" | "form"; step_id: string; subject: string | null; state: string;
  slots: { label: string; state: Slot["state"]; decided_by: string | null }[]; votes: Vote[];
};
export type Slot = { ref: string; label: string; state: "open" | "approved" | "rejected" | "answered"; decided_by: string | null };
export type Vote = { user: string; slot: string | null; decision: string; comment: string | null; at: string; via: string | null; answer?: Record<string, unknown> | null };
export type Approval = {
  id: string | number; kind: "approval" | "form"; dag_id: string; run_id: string; task_id: string; step_id: string;
  workflow_title: string | null; subject: string | null; body: string | null;
  state: "pending" | "approved" | "rejected" | "timed_out" | "answered" | "closed"; quorum: unknown; requester: string | null;
  requester_name?: string | null; created_at: string; deadline: string | null; slots: Slot[]; votes: Vote[]; can_vote: boolean;
  why_not?: string | null; form: { schema: any; ui_schema?: any; error?: { field: string; message: string } } | null; request: Record<string, unknown> | null;
};
/** An alert source (kind `Alert`): where a sender posts, and the workflows it can start. */
export type AlertRoute = { id: string; workflow: string };
export type AlertSource = {
  id: string; title: string | null; description: string | null; owner: string | null;
  /** how the sender authenticates: github | stripe | standard | bearer */
  scheme: string;
  /** the URL to give the sender (POST) */
  url: string;
  routes: AlertRoute[];
};
export type DeliveryStatus = "accepted" | "duplicate" | "filtered" | "rejected" | "invalid" | "failed";
export type DeliveryRun = { route: string; workflow: string; run_id: string; url: string };
/** One delivery of the log (newest first). */
export type Delivery = {
  id: number; alert: string; delivery_id: string | null; received_at: string; status: DeliveryStatus | string;
  reason: string | null; http_status: number | null; runs: DeliveryRun[]; replay_of: number | null;
};
/** A delivery with what was stored of it, secrets masked by the server. */
export type DeliveryDetail = Delivery & { headers: Record<string, string>; payload: unknown };

export type HistoryVote = {
  approval_id: string | number; dag_id: string; run_id: string; step_id: string; subject: string | null;
  decision: string; comment: string | null; at: string; slot: string | null;
};

// ---- calls ------------------------------------------------------------------------------------

export const api = {
  session: () => request<Session>("GET", `${API}/session`),
  schema: () => request<SchemaBundle>("GET", `${API}/schema`),

  definitions: (kind?: string) =>
    request<{ definitions: DefinitionSummary[]; total_entries: number }>("GET", `${API}/definitions${qs({ kind })}`),
  definition: (path: string) => request<Definition>("GET", `${API}/definitions/${encPath(path)}`),
  validate: (path: string, content: string) => request<Validation>("POST", `${API}/definitions/validate`, { path, content }),
  create: (path: string, content: string) => request<SaveResult>("POST", `${API}/definitions`, { path, content }),
  update: (path: string, content: string, version: string) =>
    request<SaveResult>("PUT", `${API}/definitions/${encPath(path)}`, { content, version }),
  revisions: (path: string) =>
    request<{ path: string; revisions: Revision[]; total_entries: number }>("GET", `${API}/definitions/${encPath(path)}/revisions`),
  revision: (path: string, n: number) => request<RevisionDetail>("GET", `${API}/definitions/${encPath(path)}/revisions/${n}`),

  apis: () => request<{ apis: ApiEntry[]; total_entries: number }>("GET", `${API}/apis`),
  operations: (name: string, q?: string) =>
    request<{ api: string; operations: Operation[]; total_entries: number }>("GET", `${API}/apis/${enc(name)}/operations${qs({ q, limit: 200 })}`),
  operation: (name: string, op: string) => request<Operation>("GET", `${API}/apis/${enc(name)}/operations/${encPath(op)}`),

  workflows: (q?: string, tag?: string) =>
    request<{ workflows: WorkflowEntry[]; total_entries: number }>("GET", `${API}/workflows${qs({ q, tag })}`),
  workflowForm: (id: string) => request<WorkflowForm>("GET", `${API}/workflows/${enc(id)}/form`),
  submit: (id: string, form: Record<string, unknown>, idempotencyKey?: string, startAt?: string | null) =>
    request<RunStarted>(
      "POST",
      `${API}/workflows/${enc(id)}/runs`,
      startAt ? { form, start_at: startAt } : { form },
      idempotencyKey ? { "Idempotency-Key": idempotencyKey } : undefined,
    ),
  myRequests: () => request<{ requests: RequestEntry[]; total_entries: number }>("GET", `${API}/requests${qs({ mine: true })}`),
  cancelRequest: (dagId: string, runId: string) =>
    request<RequestCancelled>("POST", `${API}/requests/${enc(dagId)}/${enc(runId)}/cancel`),

  approvals: (state: "pending" | "decided" | "all", mine = true, dagId?: string) =>
    request<{ approvals: Approval[]; total_entries: number }>("GET", `${API}/approvals${qs({ state, mine, dag_id: dagId })}`),
  vote: (id: string | number, decision: "approve" | "reject", comment: string, slot?: string | null) =>
    request<Approval>("POST", `${API}/approvals/${enc(String(id))}/votes`, { decision, comment, ...(slot ? { slot } : {}) }),
  respond: (id: string | number, values: Record<string, unknown>) =>
    request<Approval>("POST", `${API}/approvals/${enc(String(id))}/responses`, { values }),
  history: () => request<{ votes: HistoryVote[] }>("GET", `${API}/approvals/history`),

  alerts: (workflow?: string) => request<{ alerts: AlertSource[]; total_entries: number }>("GET", `${API}/alerts${qs({ workflow })}`),
  /** `query`: from deliveriesQuery() (alerts/deliveries.ts) */
  deliveries: (query: string) => request<{ deliveries: Delivery[]; total_entries: number }>("GET", `${API}/alerts/deliveries${query}`),
  delivery: (id: number | string) => request<DeliveryDetail>("GET", `${API}/alerts/deliveries/${enc(String(id))}`),
  replay: (id: number | string) => request<{ delivery: Delivery }>("POST", `${API}/alerts/deliveries/${enc(String(id))}/replay`),

  // Airflow's own REST API (same cookie): start a run of a workflow from the designer, and whether
  // its DAG is paused (the run then waits)
  triggerDag: (dagId: string, conf: Record<string, unknown>) =>
    request<{ dag_id: string; dag_run_id: string; state: string }>("POST", `${AIRFLOW_ROOT}api/v2/dags/${enc(dagId)}/dagRuns`, {
      logical_date: null,
      conf,
    }),
  dag: (dagId: string) => request<{ dag_id: string; is_paused: boolean }>("GET", `${AIRFLOW_ROOT}api/v2/dags/${enc(dagId)}`),
};

export function gridUrl(dagId: string, runId?: string): string {
  return runId ? `${AIRFLOW_ROOT}dags/${enc(dagId)}/runs/${enc(runId)}` : `${AIRFLOW_ROOT}dags/${enc(dagId)}`;
}
