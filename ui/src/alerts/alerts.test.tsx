import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { AlertSource, DeliveryDetail, Session } from "../api";
import { Detail } from "./DeliveryPage";
import { StartedBy } from "./StartedBy";
import { alertsByWorkflow } from "./startedBy";
import { StatusBadge } from "./StatusBadge";

const session = (extra: Partial<Session> = {}): Session => ({
  user: "admin", user_id: "1", can_edit_definitions: true, can_author_code: true, can_trigger: true, ...extra,
});

const DELIVERY: DeliveryDetail = {
  id: 7,
  alert: "backup_array_events",
  delivery_id: "d-1",
  received_at: "2026-05-01T10:00:00Z",
  status: "accepted",
  reason: null,
  http_status: 202,
  runs: [{ route: "add_backup", workflow: "add_machine_to_backups", run_id: "alert__backup_array_events__abc", url: "/dags/add_machine_to_backups/runs/alert__backup_array_events__abc" }],
  replay_of: null,
  headers: { "content-type": "application/json", "x-hub-signature-256": "***" },
  payload: { host: "web01", api_key: "***", alerts: [{ status: "firing" }] },
};

describe("a delivery's detail", () => {
  it("shows masked headers as masked, never their stored text, and the payload pretty-printed", () => {
    const html = renderToStaticMarkup(<Detail delivery={DELIVERY} session={session()} />);
    expect(html).toContain("x-hub-signature-256");
    expect(html).toMatch(/data-masked="true"[^]*?>masked</);
    expect(html).toContain("application/json");
    expect(html).toContain("2 values that look like secrets");
    expect(html).toContain("&quot;host&quot;: &quot;web01&quot;,\n  &quot;api_key&quot;");
    expect(html).toContain('href="/dags/add_machine_to_backups/runs/alert__backup_array_events__abc"');
    expect(html).toContain('data-testid="replay"');
  });

  it("offers Replay only to those the server allows, and says why nothing started", () => {
    const rejected = { ...DELIVERY, status: "rejected", http_status: 401, reason: "invalid signature", runs: [] };
    const html = renderToStaticMarkup(<Detail delivery={rejected} session={session({ can_replay_alerts: false })} />);
    expect(html).not.toContain('data-testid="replay"');
    expect(html).toContain("invalid signature");
    expect(html).toContain("Nothing was started: the sender was not authenticated.");
    expect(html).toMatch(/class="badge failed"[^>]*data-status="rejected"/);
    // a refused delivery keeps no payload: nothing to replay, even for an admin
    const kept = renderToStaticMarkup(<Detail delivery={{ ...rejected, payload: null }} session={session({ can_replay_alerts: true })} />);
    expect(kept).not.toContain('data-testid="replay"');
    expect(kept).toContain("a refused delivery&#x27;s body is not kept");
    expect(kept).toContain("1 value that looks like a secret is masked");
  });
});

describe("status badges", () => {
  it("carry the HTTP status and the explanation", () => {
    const html = renderToStaticMarkup(<StatusBadge status="invalid" httpStatus={422} />);
    expect(html).toContain("invalid · 422");
    expect(html).toContain('class="badge warn"');
    expect(html).toContain("form validation");
  });
});

describe("which alerts can start a workflow", () => {
  const alerts: AlertSource[] = [
    { id: "a", title: "Array events", description: null, owner: null, scheme: "github", url: "/x", routes: [{ id: "r1", workflow: "w" }, { id: "r2", workflow: "w" }, { id: "r3", workflow: "v" }] },
    { id: "b", title: null, description: null, owner: null, scheme: "bearer", url: "/y", routes: [{ id: "r", workflow: "w" }] },
  ];
  it("groups the routes by workflow, each alert once", () => {
    const map = alertsByWorkflow(alerts);
    expect(map.get("w")).toEqual([{ id: "a", title: "Array events", routes: ["r1", "r2"] }, { id: "b", title: null, routes: ["r"] }]);
    expect(map.get("v")).toEqual([{ id: "a", title: "Array events", routes: ["r3"] }]);
    expect(map.get("none")).toBeUndefined();
  });
  it("says so on a workflow, or nothing when none can", () => {
    expect(renderToStaticMarkup(<StartedBy alerts={alertsByWorkflow(alerts).get("w")} />)).toContain("Can also be started by: <span");
    expect(renderToStaticMarkup(<StartedBy alerts={alertsByWorkflow(alerts).get("w")} />)).toMatch(/Array events.*, .*b.*\(alerts\)/);
    expect(renderToStaticMarkup(<StartedBy alerts={[]} />)).toBe("");
  });
});
