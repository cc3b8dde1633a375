// A requester submits a form in the portal (inside Airflow's UI) and follows it in "My requests";
// an approver approves it in the inbox (at the UI's own URL) and finds it in their decisions; then
// the requester asks for something tomorrow and cancels it in "My requests" before it starts.
// Prints RUN_ID=<run id> and LATER_RUN_ID=<run id> for tests/test_ui_e2e_requests.py, which checks
// the runs in Airflow.
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

  // -- a request for later: the requester picks a start, My requests shows it scheduled, and she
  // cancels it there before it starts
  await page.goto(`${BASE_URL}/plugin/autopilot-requests`);
  await portal.getByLabel("Search").fill("firewall");
  await portal.locator(".card", { hasText: title }).getByRole("link", { name: "Request" }).click();
  await portal.getByLabel("Host").fill("later01.example.com");
  const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  const local = `${tomorrow.getFullYear()}-${pad(tomorrow.getMonth() + 1)}-${pad(tomorrow.getDate())}T09:30`;
  await portal.getByTestId("start-at").fill(local);
  await portal.getByTestId("submit-request").click();
  const scheduled = portal.getByTestId("request-started");
  await scheduled.getByText("scheduled for").waitFor();
  console.log(`LATER_RUN_ID=${(await scheduled.locator("code").innerText()).trim()}`);
  await portal.getByRole("link", { name: "My requests" }).first().click();
  const later = portal.getByTestId("request").filter({ hasText: "later01.example.com" }).first();
  await later.getByTestId("schedule").getByText("scheduled for").waitFor();
  await later.getByTestId("cancel-request").click();
  await later.getByTestId("confirm-cancel").click(); // "Cancel it? It will not start."
  await later.getByTestId("schedule").getByText("cancelled (was scheduled for").waitFor();
  await later.getByTestId("cancel-request").waitFor({ state: "detached" });
});
