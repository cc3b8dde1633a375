// "Run" in the designer starts a run of the saved workflow and links to it in Airflow's grid view.
// Prints RUN_ID=<run id>.
import { BASE_URL, env, login, scenario } from "./lib.mjs";

const workflowId = env("WORKFLOW_ID");

await scenario("designer-run", async ({ browser, track }) => {
  const { page } = await login(browser, env("E2E_USER"), env("E2E_PASSWORD"), track);
  await page.goto(`${BASE_URL}/autopilot/ui/designer/${workflowId}.yaml`);
  await page.getByTestId("step-script_1").waitFor();
  await page.getByRole("button", { name: "Run" }).click();
  await page.getByRole("button", { name: "Start run" }).click();
  const started = page.getByTestId("run-started");
  await started.waitFor();
  const link = await started.getByRole("link").getAttribute("href");
  if (!link.startsWith(`/dags/${workflowId}/runs/`)) throw new Error(`the run links to ${link}`);
  console.log(`RUN_ID=${(await started.locator("code").innerText()).trim()}`);
});
