// What My requests says next to a step, beside its Airflow state.
import type { RequestApproval, RequestStep } from "../api";

const DECIDED: Record<string, string> = { approved: "approved", rejected: "rejected", timed_out: "timed out", answered: "answered" };

/** The time column of a step; a step still waiting for input whose approval or form is already
 * decided says so: an answer that comes soon after the step parked resumes it only when Autopilot's
 * resume grace is over, and the step's Airflow state lags until then. */
export function stepNote(step: RequestStep, approvals: RequestApproval[], when: (iso: string) => string): string {
  if (step.state === "awaiting_input") {
    // the server's decided states; a "closed" request belongs to an earlier try of the step
    const decided = approvals.find((a) => a.step_id === step.id && a.state in DECIDED);
    if (decided) return `${DECIDED[decided.state]}; continuing shortly`;
  }
  if (step.end_date) return `finished ${when(step.end_date)}`;
  if (step.start_date) return `started ${when(step.start_date)}`;
  return "";
}
