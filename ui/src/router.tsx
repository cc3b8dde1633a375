// A tiny history router: the UI has a handful of pages, so no routing library is needed.
import { useEffect, useState, type MouseEvent, type ReactNode } from "react";

const BASE = typeof document !== "undefined" && document.querySelector("base") ? new URL(document.baseURI).pathname : "/";

/** The client route, e.g. "designer/hello_world.yaml" (no leading slash). */
function current(): string {
  const p = window.location.pathname;
  return decodeURIComponent(p.startsWith(BASE) ? p.slice(BASE.length) : p.replace(/^\//, ""));
}

export function href(route: string): string {
  return BASE + route.replace(/^\//, "");
}

export function navigate(route: string, replace = false) {
  const url = href(route);
  if (replace) window.history.replaceState(null, "", url);
  else window.history.pushState(null, "", url);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function useRoute(): { path: string; query: URLSearchParams } {
  const [state, setState] = useState(() => ({ path: current(), search: window.location.search }));
  useEffect(() => {
    const on = () => setState({ path: current(), search: window.location.search });
    window.addEventListener("popstate", on);
    return () => window.removeEventListener("popstate", on);
  }, []);
  return { path: state.path, query: new URLSearchParams(state.search) };
}

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  const onClick = (e: MouseEvent) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(to);
  };
  return (
    <a href={href(to)} onClick={onClick} className={className}>
      {children}
    </a>
  );
}
