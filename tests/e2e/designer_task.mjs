// A task step: pick an API and an operation from the OpenAPI catalog; the operation's parameters and
// request body become the step's form, and what is typed there lands in the step's YAML.
import { BASE_URL, env, login, scenario, validated } from "./lib.mjs";

await scenario("designer-task-step", async ({ browser, track }) => {
  const { page } = await login(browser, env("E2E_USER"), env("E2E_PASSWORD"), track);
  await page.goto(`${BASE_URL}/autopilot/ui/designer/hello_world.yaml`);
  await page.getByTestId("step-count").waitFor();
  await page.getByRole("button", { name: "Add task step" }).click();
  await page.getByTestId("step-task_1").getByTestId("step-errors").waitFor();

  const panel = page.locator('[data-testid="step-panel"][data-step="task_1"]');
  await panel.getByLabel("API").selectOption("backup_product");
  await panel.locator("#op-operation option[value=installAgent]").waitFor({ state: "attached" });
  await panel.getByLabel("Search operations").fill("install");
  await panel.locator("#op-operation").selectOption("installAgent");
  await panel.getByLabel("hostname (path, string)").fill("{{ form.name }}");
  await panel.getByRole("heading", { name: "Request body" }).waitFor();
  await panel.getByLabel("Version").fill("7.3");

  await page.getByTestId("step-task_1").click();
  await page.getByRole("button", { name: "YAML" }).click();
  const yaml = await page.getByTestId("yaml").inputValue();
  for (const expected of ["api: backup_product", "operation: installAgent", 'hostname: "{{ form.name }}"', 'version: "7.3"']) {
    if (!yaml.includes(expected)) throw new Error(`the YAML lacks ${expected}:\n${yaml}`);
  }
  await validated(page, "valid");
});
