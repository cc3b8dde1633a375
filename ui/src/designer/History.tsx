import { diffLines } from "diff";
import { useEffect, useState } from "react";
import { api, type Revision, type RevisionDetail } from "../api";

/** The revisions of a definition; read again whenever the editor's version changes (a save, a reload). */
export function History({ path, version, current, onRestore }: { path: string; version: string | null; current: string; onRestore: (content: string) => void }) {
  const [revisions, setRevisions] = useState<Revision[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<RevisionDetail | null>(null);

  useEffect(() => {
    let cancelled = false;
    setError(null);
    api
      .revisions(path)
      .then((r) => !cancelled && setRevisions(r.revisions))
      .catch((e) => !cancelled && setError(e.message));
    return () => {
      cancelled = true;
    };
  }, [path, version]);

  if (error) return <div className="alert error">{error}</div>;
  if (!revisions) return <div className="muted">Loading…</div>;
  if (!revisions.length) return <p className="muted">No revisions yet: the history starts with the first save through Autopilot.</p>;
  return (
    <div data-testid="history">
      <table className="list">
        <thead>
          <tr><th>#</th><th>When</th><th>Who</th><th /></tr>
        </thead>
        <tbody>
          {revisions.map((r) => (
            <tr key={r.number} style={open?.number === r.number ? { background: "var(--accent-subtle)" } : undefined}>
              <td>{r.number}</td>
              <td className="small">{new Date(r.created_at).toLocaleString()}<div className="muted">{r.action}{r.state === "pending_review" ? " · waiting for review" : r.state === "rejected" ? " · rejected in review" : ""}</div></td>
              <td className="small">{r.author}</td>
              <td><button className="small" onClick={() => api.revision(path, r.number).then(setOpen)}>Diff</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      {open && (
        <>
          <div className="row" style={{ marginTop: 10 }}>
            <strong>Revision {open.number} → editor</strong>
            <span className="spacer" />
            {open.content !== null && <button className="small" onClick={() => onRestore(open.content!)}>Restore this revision</button>}
          </div>
          <div className="diff">
            {diffLines(open.content ?? "", current).map((part, i) => (
              <div key={i} className={part.added ? "add" : part.removed ? "del" : "muted"}>
                {part.value.replace(/\n$/, "").split("\n").map((l) => `${part.added ? "+" : part.removed ? "-" : " "} ${l}`).join("\n")}
              </div>
            ))}
          </div>
        </>
      )}
    </div>
  );
}
