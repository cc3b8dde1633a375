// Which alerts can start a workflow: the routes of every alert source, grouped by target workflow.
import type { AlertSource } from "../api";

export type StartingAlert = { id: string; title: string | null; routes: string[] };

/** workflow id → the alerts with a route to it (each once, its route ids listed), in the API's order. */
export function alertsByWorkflow(alerts: AlertSource[]): Map<string, StartingAlert[]> {
  const out = new Map<string, StartingAlert[]>();
  for (const a of alerts)
    for (const r of a.routes ?? []) {
      const list = out.get(r.workflow) ?? [];
      const hit = list.find((x) => x.id === a.id);
      if (hit) {
        if (!hit.routes.includes(r.id)) hit.routes.push(r.id);
      } else list.push({ id: a.id, title: a.title, routes: [r.id] });
      out.set(r.workflow, list);
    }
  return out;
}
