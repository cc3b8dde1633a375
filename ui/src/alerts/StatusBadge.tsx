import { statusBadge } from "./deliveries";

/** A delivery's status (and the HTTP status the sender got): only `accepted` looks like success. */
export function StatusBadge({ status, httpStatus }: { status: string; httpStatus?: number | null }) {
  const b = statusBadge(status);
  return (
    <span className={b.className} title={b.description} data-status={status}>
      {b.label}
      {httpStatus ? ` · ${httpStatus}` : ""}
    </span>
  );
}
