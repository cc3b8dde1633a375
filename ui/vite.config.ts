import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Built into the Python package (plugins/ui_dist), served by the plugin at <airflow>/autopilot/ui/.
// Asset URLs are relative: the server puts a <base href> into index.html, so the same build works
// under any Airflow base_url sub-path and for deep client routes.
export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "../plugins/ui_dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    // `npm run dev` against a running Airflow (make run): the API and Airflow's login come from there
    proxy: { "/autopilot/api": "http://localhost:8080", "/auth": "http://localhost:8080" },
  },
  test: {
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
