import { lazy, Suspense, useEffect, useState } from "react";
import { Alerts } from "./alerts/Alerts";
import { api, ApiError, loginUrl, type Session } from "./api";
import { Inbox } from "./inbox/Inbox";
import { Catalog } from "./portal/Catalog";
import { MyRequests } from "./portal/MyRequests";
import { RequestPage } from "./portal/RequestPage";
import { href, Link, navigate, useRoute } from "./router";
import { isEmbedded } from "./theme";

// the designer (React Flow, dagre, YAML, diff) loads only when opened
const Designer = lazy(() => import("./designer/Designer").then((m) => ({ default: m.Designer })));

const SECTIONS: { route: string; label: string; shown?: (s: Session) => boolean }[] = [
  { route: "requests", label: "Request a service" },
  { route: "my-requests", label: "My requests" },
  { route: "approvals", label: "Approvals" },
  { route: "designer", label: "Designer" },
  // the alert sources and their delivery log are for designers and admins
  { route: "alerts", label: "Alerts", shown: (s) => s.can_read_alert_deliveries ?? (s.can_edit_definitions || !!s.can_replay_alerts) },
];

export function App() {
  const { path, query } = useRoute();
  const [session, setSession] = useState<Session | null>(null);
  const [authError, setAuthError] = useState<string | null>(null);

  useEffect(() => {
    api
      .session()
      .then(setSession)
      .catch((e) => setAuthError(e instanceof ApiError && e.status === 401 ? "login" : String(e.message ?? e)));
    const on = () => setAuthError("login");
    window.addEventListener("autopilot:unauthenticated", on);
    return () => window.removeEventListener("autopilot:unauthenticated", on);
  }, []);

  useEffect(() => {
    if (path === "") navigate("requests", true);
  }, [path]);

  const [section, ...rest] = path.split("/");
  const restPath = rest.join("/");

  let page;
  if (authError === "login") {
    page = (
      <div className="card" style={{ maxWidth: 480, margin: "40px auto" }}>
        <h2>Please log in to Airflow</h2>
        <p className="muted">Autopilot uses your Airflow login.</p>
        <a className="button primary" href={loginUrl()} target="_top">Log in</a>
      </div>
    );
  } else if (authError) {
    page = <div className="alert error">{authError}</div>;
  } else if (!session) {
    page = <div className="empty">Loading…</div>;
  } else if (section === "designer") {
    page = (
      <Suspense fallback={<div className="empty">Loading the designer…</div>}>
        <Designer path={restPath || null} session={session} newId={query.get("new")} dagId={query.get("dag_id")} newKind={query.get("kind")} />
      </Suspense>
    );
  } else if (section === "requests" && rest[0] === "new" && rest[1]) {
    page = <RequestPage workflowId={rest[1]} session={session} />;
  } else if (section === "requests") {
    page = <Catalog />;
  } else if (section === "my-requests") {
    page = <MyRequests session={session} />;
  } else if (section === "alerts") {
    page = <Alerts session={session} rest={rest} query={query} />;
  } else if (section === "approvals") {
    page = <Inbox session={session} tab={rest[0] === "history" ? "history" : "pending"} />;
  } else {
    page = <div className="empty">Nothing here. <Link to="requests">Back to the catalog</Link></div>;
  }

  return (
    <div className="app">
      <nav className="topbar">
        {!isEmbedded() && (
          <a className="brand" href={href("requests")}>
            <img src="icon.svg" alt="" /> Autopilot
          </a>
        )}
        {SECTIONS.filter((s) => !s.shown || (session && s.shown(session)) || section === s.route).map((s) => (
          <Link key={s.route} to={s.route} className={`tab${section === s.route ? " active" : ""}`}>
            {s.label}
          </Link>
        ))}
        {session && <span className="user">{session.user}</span>}
      </nav>
      <main className={`page${section === "designer" ? " full" : ""}`}>{page}</main>
    </div>
  );
}
