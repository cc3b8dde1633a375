// A requester submits a form in the portal (inside Airflow's UI) and follows it in "My requests";
// an approver approves it in the inbox (at the UI's own URL) and finds it in their decisions.
// Prints RUN_ID=<run id> for tests/test_ui_e2e_requests.py, which checks the run in Airflow.
import { BASE_URL, env, login, scenario } from "./lib.mjs";

const title = env("WORKFLOW_TITLE");
const subject = env("APPROVAL_SUBJECT");

await scenario("portal-request-and-inbox-approval", async ({ browser, track }) => {
  // -- the requester, in Airflow's navigation
  const requester = await login(browser, env("REQUESTER"), env("REQUESTER_PASSWORD"), track);
  const page = requester.page;
  await page.goto(`${BASE_URL}/plugin/autopilot-requests`);
  const portal = page.frameLocator('iframe[title="Request a service"]');
  await portal.getByLabel("Search").fill("firewall");
  const card = portal.locator(".card", { hasText: title });
  await card.waitFor();
  await card.getByRole("link", { name: "Request" }).click();
  await portal.getByLabel("Host").fill("web01.example.com");
  await portal.getByTestId("submit-request").click();
  const started = portal.getByTestId("request-started");
  await started.waitFor();
  const runId = (await started.locator("code").innerText()).trim();
  console.log(`RUN_ID=${runId}`);

  await portal.getByRole("link", { name: "My requests" }).first().click();
  const mine = portal.getByTestId("request").filter({ hasText: title }).first();
  await mine.waitFor();
  await mine.getByText("web01.example.com").first().waitFor({ state: "attached" });
  await mine.getByText("waiting for Operations").waitFor({ timeout: 60000 });

  // -- the approver, at the UI's own URL
  const approver = await login(browser, env("APPROVER"), env("APPROVER_PASSWORD"), track);
  const inbox = approver.page;
  await inbox.goto(`${BASE_URL}/autopilot/ui/approvals`);
  const item = inbox.locator(".card", { hasText: subject });
  await item.waitFor({ timeout: 90000 });
  await item.getByText("web01.example.com").first().waitFor();
  await item.getByLabel("Comment").fill("Looks fine");
  await item.getByTestId("approve").click();
  // durable outcomes rather than the card's short-lived "Approved.": the request leaves the inbox once
  // decided (an error would keep it there, saying why), the requester's page shows the approval live,
  // and the decision is in the approver's history
  await item.waitFor({ state: "detached", timeout: 30000 });
  await mine.getByText("bob approved").waitFor({ timeout: 30000 });
  await inbox.getByRole("link", { name: "My decisions" }).click();
  await inbox.locator("table.list tr", { hasText: subject }).filter({ hasText: "Looks fine" }).waitFor();
});
