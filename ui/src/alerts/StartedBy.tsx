// "Can also be started by: …" — the alerts whose routes start a workflow, on the catalog's cards, the
// request page and the designer's workflow panel.
import { useEffect, useState } from "react";
import { api } from "../api";
import { Link } from "../router";
import { alertsByWorkflow, type StartingAlert } from "./startedBy";

/** The alerts that can start `workflow`; `link` makes each a link to its deliveries (designers). */
export function StartedBy({ alerts, link = false }: { alerts: StartingAlert[] | undefined; link?: boolean }) {
  if (!alerts?.length) return null;
  return (
    <div className="small muted started-by" data-testid="started-by">
      Can also be started by:{" "}
      {alerts.map((a, i) => (
        <span key={a.id} title={`alert ${a.id}, route ${a.routes.join(", ")}`}>
          {i > 0 && ", "}
          {link ? <Link to={`alerts?alert=${encodeURIComponent(a.id)}`}>{a.title || a.id}</Link> : a.title || a.id}
        </span>
      ))}{" "}
      (alert{alerts.length > 1 ? "s" : ""})
    </div>
  );
}

/** "Can also be started by: …" for one workflow (nothing while loading, or when no alert can). */
export function WorkflowAlerts({ workflow, link = false }: { workflow: string; link?: boolean }) {
  return <StartedBy alerts={useStartingAlerts(workflow)} link={link} />;
}

/** The alerts that can start one workflow (`GET /alerts?workflow=`); none when the server has no alerts
 * or the caller may not list them. */
export function useStartingAlerts(workflow: string | null): StartingAlert[] | undefined {
  const [alerts, setAlerts] = useState<StartingAlert[] | undefined>(undefined);
  useEffect(() => {
    setAlerts(undefined);
    if (!workflow) return;
    let cancelled = false;
    api
      .alerts(workflow)
      .then((r) => !cancelled && setAlerts(alertsByWorkflow(r.alerts).get(workflow) ?? []))
      .catch(() => !cancelled && setAlerts([]));
    return () => {
      cancelled = true;
    };
  }, [workflow]);
  return alerts;
}

/** workflow id → the alerts that can start it, for a whole catalog at once (one `GET /alerts`). */
export function useAlertsByWorkflow(): Map<string, StartingAlert[]> {
  const [map, setMap] = useState<Map<string, StartingAlert[]>>(new Map());
  useEffect(() => {
    let cancelled = false;
    api
      .alerts()
      .then((r) => !cancelled && setMap(alertsByWorkflow(r.alerts)))
      .catch(() => {});
    return () => {
      cancelled = true;
    };
  }, []);
  return map;
}
