// Open a hand-written definition in the designer and save it without changes.
import { BASE_URL, env, login, scenario } from "./lib.mjs";

await scenario("designer-unchanged-save", async ({ browser, track }) => {
  const { page } = await login(browser, env("E2E_USER"), env("E2E_PASSWORD"), track);
  await page.goto(`${BASE_URL}/autopilot/ui/designer/${env("DEFINITION")}`);
  await page.locator(".step-node").first().waitFor();
  if ((await page.getByText("unsaved").count()) !== 0) throw new Error("an opened definition must not count as changed");
  await page.getByTestId("save").click();
  await page.getByTestId("notice").filter({ hasText: "Saved" }).waitFor();
});
