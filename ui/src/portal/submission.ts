/** The submission's Idempotency-Key: the previous one while the values are the same, else a new one. */
export function submissionKey(previous: { body: string; key: string } | null, form: Record<string, unknown>) {
  const body = JSON.stringify(form);
  if (previous && previous.body === body) return previous;
  const key = typeof crypto !== "undefined" && "randomUUID" in crypto ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  return { body, key };
}
