// Light/dark like Airflow's UI. Inside Airflow's iframe (same origin) follow the parent's theme
// (next-themes puts the class on <html> and stores the choice under localStorage "theme").

type Mode = "light" | "dark";

function parentMode(): Mode | null {
  try {
    if (window.parent !== window) {
      const root = window.parent.document.documentElement;
      if (root.classList.contains("dark") || root.dataset.theme === "dark") return "dark";
      if (root.classList.contains("light") || root.dataset.theme === "light") return "light";
    }
  } catch {
    /* another origin */
  }
  return null;
}

function storedMode(): Mode {
  let stored: string | null = null;
  try {
    stored = localStorage.getItem("theme");
  } catch {
    /* storage unavailable */
  }
  if (stored === "dark" || stored === "light") return stored;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function apply() {
  const mode = parentMode() ?? storedMode();
  document.documentElement.dataset.theme = mode;
  document.documentElement.style.colorScheme = mode;
}

export function followTheme() {
  apply();
  window.addEventListener("storage", apply);
  window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", apply);
  try {
    if (window.parent !== window) {
      new MutationObserver(apply).observe(window.parent.document.documentElement, {
        attributes: true,
        attributeFilter: ["class", "data-theme", "style"],
      });
    }
  } catch {
    /* another origin */
  }
}

export function isEmbedded(): boolean {
  try {
    return window.parent !== window;
  } catch {
    return true;
  }
}
