import { useEffect, useRef, useState } from "react";
import { ApiError } from "../api";

export function State({ state }: { state: string | null | undefined }) {
  return <span className={`badge state-${state ?? "none"}`}>{(state ?? "not started").replace(/_/g, " ")}</span>;
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "–";
}

/** Load data, and reload it every `every` ms (live status) while the page is shown. */
export function usePolling<T>(load: () => Promise<T>, every: number | null, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const loader = useRef(load);
  loader.current = load;
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let stop = false;
    const run = () =>
      loader.current()
        .then((d) => !stop && (setData(d), setError(null)))
        .catch((e) => !stop && setError(e));
    run();
    const timer = every ? setInterval(run, every) : null;
    return () => {
      stop = true;
      if (timer) clearInterval(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [every, tick, ...deps]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

export function LoadError({ error }: { error: Error | null }) {
  if (!error) return null;
  if (error instanceof ApiError && error.status === 404)
    return <div className="alert error">This part of Autopilot is not available on this server yet ({error.message}).</div>;
  return <div className="alert error">{error.message}</div>;
}
