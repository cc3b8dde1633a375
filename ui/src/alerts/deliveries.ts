// The Alerts page's logic, kept apart from its components so that it is unit-tested: the delivery
// log's filters (the page's URL query ↔ the API's query string), what each delivery status looks like,
// and how a stored (masked) delivery is shown.
import type { DeliveryStatus } from "../api";

export const PAGE_SIZE = 50;

/** Every status of the delivery log, in the order the filter lists them. */
export const STATUSES: DeliveryStatus[] = ["accepted", "duplicate", "filtered", "rejected", "invalid", "failed"];

type Badge = { className: string; label: string; description: string; ok: boolean };

const BADGES: Record<DeliveryStatus, Badge> = {
  accepted: { className: "badge success", label: "accepted", ok: true, description: "Authenticated and accepted: the routes' runs were started." },
  duplicate: {
    className: "badge",
    label: "duplicate",
    ok: true,
    description: "The same delivery id came again: answered with the earlier runs, nothing started.",
  },
  filtered: { className: "badge", label: "filtered out", ok: true, description: "The alert's match rules dropped it: nothing started." },
  rejected: {
    className: "badge failed",
    label: "rejected",
    ok: false,
    description: "Refused: bad or missing signature or token, or a timestamp outside the tolerance window. Nothing started.",
  },
  invalid: {
    className: "badge warn",
    label: "invalid",
    ok: false,
    description: "The mapped form values failed the target workflow's form validation (422). Nothing started.",
  },
  failed: { className: "badge failed", label: "failed", ok: false, description: "Accepted, but a run could not be started." },
};

/** How a delivery status is shown: only `accepted` looks like success; rejected, invalid and failed
 * look like problems; duplicate and filtered are neutral. An unknown status is shown as it is. */
export function statusBadge(status: string): Badge {
  return BADGES[status as DeliveryStatus] ?? { className: "badge", label: status.replace(/_/g, " "), ok: false, description: status };
}

// ---- filters ------------------------------------------------------------------------------------

/** The delivery log's filters, as the page keeps them in its URL (times as ISO 8601, UTC). */
export type Filters = { alert: string; status: string; since: string; until: string; offset: number };

export const NO_FILTERS: Filters = { alert: "", status: "", since: "", until: "", offset: 0 };

const isStatus = (s: string) => (STATUSES as string[]).includes(s);
const isIso = (s: string) => s !== "" && !Number.isNaN(Date.parse(s));

/** The filters of the page's URL query; values that make no sense (an unknown status, a time that is
 * not one, a negative offset) are dropped rather than sent. */
export function filtersFromQuery(query: URLSearchParams): Filters {
  const status = query.get("status") ?? "";
  const since = query.get("since") ?? "";
  const until = query.get("until") ?? "";
  const offset = Number(query.get("offset") ?? 0);
  return {
    alert: (query.get("alert") ?? "").trim(),
    status: isStatus(status) ? status : "",
    since: isIso(since) ? since : "",
    until: isIso(until) ? until : "",
    offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
  };
}

/** The page's URL query for filters (empty ones left out), e.g. `?status=rejected&offset=50`. */
export function filtersToQuery(filters: Filters): string {
  const q = new URLSearchParams();
  if (filters.alert) q.set("alert", filters.alert);
  if (filters.status) q.set("status", filters.status);
  if (filters.since) q.set("since", filters.since);
  if (filters.until) q.set("until", filters.until);
  if (filters.offset > 0) q.set("offset", String(filters.offset));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The API's query string for a page of the log: `GET /alerts/deliveries?alert=&status=&since=&until=&limit=&offset=`. */
export function deliveriesQuery(filters: Partial<Filters>, limit = PAGE_SIZE): string {
  const q = new URLSearchParams();
  if (filters.alert) q.set("alert", filters.alert);
  if (filters.status) q.set("status", filters.status);
  if (filters.since) q.set("since", filters.since);
  if (filters.until) q.set("until", filters.until);
  q.set("limit", String(limit));
  q.set("offset", String(Math.max(0, filters.offset ?? 0)));
  return `?${q.toString()}`;
}

/** Changing a filter starts again at the first page. */
export function withFilter(filters: Filters, key: Exclude<keyof Filters, "offset">, value: string): Filters {
  return { ...filters, [key]: value, offset: 0 };
}

const pad = (n: number) => String(n).padStart(2, "0");

/** An ISO time as the value of an `<input type="datetime-local">` (the browser's time zone). */
export function isoToLocalInput(iso: string): string {
  if (!isIso(iso)) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** An `<input type="datetime-local">` value (the browser's time zone) as ISO 8601 in UTC; "" stays "". */
export function localInputToIso(value: string): string {
  if (!value) return "";
  const d = new Date(value); // a date-time without an offset is local time
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** "51–100 of 230", and whether there are earlier and later pages. */
export function pageInfo(offset: number, shown: number, total: number): { text: string; previous: number | null; next: number | null } {
  const text = total === 0 ? "0 of 0" : `${Math.min(offset + 1, total)}–${Math.min(offset + shown, total)} of ${total}`;
  return {
    text,
    previous: offset > 0 ? Math.max(0, offset - PAGE_SIZE) : null,
    next: offset + shown < total ? offset + PAGE_SIZE : null,
  };
}

// ---- a stored delivery --------------------------------------------------------------------------

/** Whether a stored value was masked by the server (it keeps masks such as `***` or `[masked]`, never
 * the secret). */
export function isMasked(value: unknown): boolean {
  if (typeof value !== "string") return false;
  const v = value.trim().toLowerCase();
  return /^\*{3,}$/.test(v) || /^[[<(]?(masked|redacted|hidden)[\]>)]?$/.test(v) || /^\*+ ?\(?masked\)?$/.test(v);
}

export type HeaderRow = { name: string; value: string; masked: boolean };

/** A delivery's headers as rows, sorted by name (lower case, as the server stores them). */
export function headerRows(headers: Record<string, unknown> | null | undefined): HeaderRow[] {
  return Object.entries(headers ?? {})
    .map(([name, value]) => {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      return { name: name.toLowerCase(), value: text, masked: isMasked(value) };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A payload, pretty-printed: JSON with two spaces, a string (form-encoded, text) as it is. */
export function prettyPayload(payload: unknown): string {
  if (payload === undefined || payload === null) return "";
  if (typeof payload === "string") {
    try {
      return JSON.stringify(JSON.parse(payload), null, 2);
    } catch {
      return payload;
    }
  }
  return JSON.stringify(payload, null, 2);
}

/** The number of masked values anywhere in a payload (the detail says how many were hidden). */
export function maskedCount(value: unknown, depth = 0): number {
  if (depth > 50) return 0;
  if (isMasked(value)) return 1;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + maskedCount(v, depth + 1), 0);
  if (value && typeof value === "object") return Object.values(value).reduce((n: number, v) => n + maskedCount(v, depth + 1), 0);
  return 0;
}

/** The URL to give a sender: the server's, made absolute against this page when it is a path. */
export function senderUrl(url: string, origin: string): string {
  if (/^https?:\/\//i.test(url)) return url;
  return origin.replace(/\/$/, "") + (url.startsWith("/") ? url : `/${url}`);
}

/** What the page says when a replay is refused: a 403 says plainly that replay is for (alert) admins. */
export function replayProblem(status: number, message: string): string {
  if (status === 403) return `Only admins may replay deliveries (the 'Autopilot Alerts' permission): ${message}`;
  if (status === 409) return `Nothing to replay: ${message}`;
  if (status === 404) return `Not replayed: the delivery or its alert is gone (${message})`;
  return `Not replayed: ${message}`;
}

/** Whether the server kept only a marker of a payload too large to log (`{"_truncated": true}`). */
export function isTruncated(payload: unknown): boolean {
  return !!payload && typeof payload === "object" && !Array.isArray(payload) && (payload as Record<string, unknown>)._truncated === true;
}

/** Whether a logged delivery can be replayed: only one whose payload was kept whole (a refused
 * delivery keeps none; a payload too large to log is only a marker). */
export function canReplay(payload: unknown): boolean {
  return payload !== null && payload !== undefined && !isTruncated(payload);
}
