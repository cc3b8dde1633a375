/** The submission's Idempotency-Key: the previous one while the values (and the start) are the same, else a new one. */
export function submissionKey(previous: { body: string; key: string } | null, form: Record<string, unknown>, startAt: string | null = null) {
  const body = JSON.stringify(startAt ? { form, start_at: startAt } : form);
  if (previous && previous.body === body) return previous;
  const key = typeof crypto !== "undefined" && "randomUUID" in crypto ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  return { body, key };
}

/** A `datetime-local` input's value (the browser's local time, no zone) as the API's `start_at`: an
 * ISO 8601 instant in UTC. Empty: start now (null). */
export function startAtFromLocal(value: string): string | null {
  if (!value) return null;
  const moment = new Date(value); // a date-time without a zone is local time
  return Number.isNaN(moment.getTime()) ? null : moment.toISOString();
}

/** What My requests says about when a request runs: scheduled for later, or cancelled before it started. */
export function schedule(r: { state: string; scheduled_for?: string | null; cancelled?: boolean }, when: (iso: string) => string): string | null {
  if (r.cancelled) return r.scheduled_for ? `cancelled (was scheduled for ${when(r.scheduled_for)})` : "cancelled before it started";
  if (r.state === "queued" && r.scheduled_for) return `scheduled for ${when(r.scheduled_for)}`;
  return null;
}
