// The Alerts page against the real alert endpoint: a designer/admin opens the page (in Airflow's
// navigation), finds the alert source and the URL to give its sender; a sender posts a correctly
// signed delivery and a wrongly signed one; the log shows both (the refused one not as a success),
// filters them by status and alert, opens the accepted one (signature header masked, payload
// pretty-printed, its run linked into Airflow) and — as admin — replays it; a designer who is not an
// alert admin is not offered Replay (and the API refuses it). The designer lists the alert with its form and the
// workflow names the alert that can start it; so does the catalog card.
// Prints DELIVERY=<id>, REPLAY=<id> and RUN_ID=<run id> for tests/test_ui_e2e_alerts.py.
import { createHmac, randomUUID } from "node:crypto";
import { BASE_URL, env, login, scenario } from "./lib.mjs";

const alertId = env("ALERT_ID");
const alertTitle = env("ALERT_TITLE");
const secret = env("ALERT_SECRET");
const workflowId = env("WORKFLOW_ID");
const alertPath = env("ALERT_PATH");
const host = env("ALERT_HOST");

/** POST a delivery the way a GitHub-style sender does: HMAC-SHA256 of the raw body. */
async function send(body, key, deliveryId) {
  const raw = JSON.stringify(body);
  const signature = `sha256=${createHmac("sha256", key).update(raw).digest("hex")}`;
  const res = await fetch(`${BASE_URL}/autopilot/api/v1/alerts/${alertId}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Hub-Signature-256": signature, "X-GitHub-Delivery": deliveryId, "X-GitHub-Event": "alert" },
    body: raw,
  });
  return { status: res.status, body: await res.text() };
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

await scenario("alerts-page", async ({ browser, track }) => {
  const { page } = await login(browser, env("ADMIN"), env("ADMIN_PASSWORD"), track);

  // -- the page, in Airflow's navigation: the source and where its sender posts
  await page.goto(`${BASE_URL}/plugin/autopilot-alerts`);
  const frame = page.frameLocator('iframe[title="Alerts"]');
  const source = frame.getByTestId(`alert-${alertId}`);
  await source.waitFor();
  await source.getByText(`/autopilot/api/v1/alerts/${alertId}`).waitFor();
  await source.getByRole("link", { name: workflowId }).waitFor();

  // the rest at the UI's own URL (the same app), filtered to this alert from its row
  await page.goto(`${BASE_URL}/autopilot/ui/alerts`);
  await page.getByTestId(`alert-${alertId}`).getByRole("button", { name: `Deliveries of ${alertId}` }).click();
  await page.waitForURL(/[?&]alert=/);
  await page.getByTestId("no-deliveries").waitFor();

  // -- a sender posts: one correctly signed delivery, one signed with the wrong secret
  const good = randomUUID();
  const bad = randomUUID();
  const accepted = await send({ host, severity: "critical", api_key: "do-not-store-me" }, secret, good);
  expect(accepted.status === 202, `the signed delivery was answered ${accepted.status}: ${accepted.body}`);
  const refused = await send({ host, severity: "critical" }, `${secret}-wrong`, bad);
  expect(refused.status === 401, `the wrongly signed delivery was answered ${refused.status}: ${refused.body}`);

  await page.getByTestId("refresh").click();
  const goodRow = page.locator(`tr[data-delivery-id="${good}"]`);
  const badRow = page.locator(`tr[data-delivery-id="${bad}"]`);
  await goodRow.waitFor();
  await badRow.waitFor();
  const goodStatus = goodRow.locator("[data-status]");
  const badStatus = badRow.locator("[data-status]");
  expect((await goodStatus.getAttribute("data-status")) === "accepted", "the signed delivery is not shown as accepted");
  expect((await badStatus.getAttribute("data-status")) === "rejected", "the wrongly signed delivery is not shown as rejected");
  expect((await goodStatus.getAttribute("class")).includes("success"), "accepted does not look like success");
  expect(!(await badStatus.getAttribute("class")).includes("success"), "rejected looks like success");

  // -- filters: by status (kept in the URL), then cleared
  await page.getByTestId("filter-status").selectOption("rejected");
  await page.waitForURL(/status=rejected/);
  await badRow.waitFor();
  await goodRow.waitFor({ state: "detached" });
  await page.getByTestId("filter-status").selectOption("accepted");
  await goodRow.waitFor();
  await badRow.waitFor({ state: "detached" });
  // a time range that ends before the deliveries came hides them
  await page.getByTestId("filter-until").fill("2000-01-01T00:00");
  await page.getByTestId("no-deliveries").waitFor();
  await page.getByRole("button", { name: "Clear filters" }).click();
  await goodRow.waitFor();
  await badRow.waitFor();

  // -- the detail, opened from the keyboard: masked signature, payload, the run
  await goodRow.getByRole("link").first().focus();
  await page.keyboard.press("Enter");
  const detail = page.getByTestId("delivery-detail");
  await detail.waitFor();
  const deliveryNumber = await detail.getAttribute("data-delivery");
  console.log(`DELIVERY=${deliveryNumber}`);
  const signatureRow = detail.getByTestId("headers").locator("tr", { hasText: "x-hub-signature-256" });
  await signatureRow.getByText("masked", { exact: true }).waitFor();
  const headersText = await detail.getByTestId("headers").innerText();
  expect(!headersText.includes("sha256="), "the signature header is shown");
  const payload = await detail.getByTestId("payload").innerText();
  expect(payload.includes(`"host": "${host}"`), `the payload is not pretty-printed: ${payload}`);
  expect(!payload.includes("do-not-store-me"), "a secret-looking payload key is shown unmasked");
  const runLink = detail.getByTestId("runs").locator("a[href*='/runs/']").first();
  const runHref = await runLink.getAttribute("href");
  expect(runHref.includes(`/dags/${workflowId}/runs/`), `the run links to ${runHref}`);
  console.log(`RUN_ID=${(await runLink.innerText()).trim()}`);

  // -- replay (admin): a new delivery, shown and linked
  await detail.getByTestId("replay").click();
  await detail.getByTestId("confirm-replay").click();
  const replayed = detail.getByTestId("replayed");
  await replayed.waitFor();
  await replayed.getByText(`${good}#replay-1`).waitFor();
  const replayLink = replayed.getByRole("link", { name: /delivery #\d+/ });
  const replayId = (await replayLink.innerText()).replace(/\D/g, "");
  console.log(`REPLAY=${replayId}`);
  await replayLink.click();
  await page.getByTestId("delivery-detail").and(page.locator(`[data-delivery="${replayId}"]`)).waitFor();
  await page.getByRole("link", { name: `delivery #${deliveryNumber}` }).waitFor(); // "Replay of"

  // -- the designer: the alert as a schema-driven form; the workflow names the alert
  await page.goto(`${BASE_URL}/autopilot/ui/designer/${alertPath}`);
  const panel = page.getByTestId("definition-panel");
  await panel.waitFor();
  expect((await panel.getAttribute("data-kind")) === "Alert", "the alert is not shown as an Alert");
  await page.getByTestId("list-Alert").getByRole("link", { name: alertTitle }).waitFor();
  await panel.locator(`input[value="${workflowId}"]`).first().waitFor();
  await page.locator('[data-testid="validity"][data-state="valid"]').waitFor();
  await page.goto(`${BASE_URL}/autopilot/ui/designer?dag_id=${workflowId}`);
  await page.getByTestId("workflow-alerts").getByTestId("started-by").getByText(alertTitle).waitFor();
  // and the catalog card
  await page.goto(`${BASE_URL}/autopilot/ui/requests`);
  await page.getByTestId(`workflow-${workflowId}`).getByTestId("started-by").getByText(alertTitle).waitFor();

  // -- a designer who is not an alert admin reads the log and the detail, but is not offered Replay
  // (the session says so: can_replay_alerts; the API refuses it too, which the Python test checks)
  const designer = await login(browser, env("DESIGNER"), env("DESIGNER_PASSWORD"), track);
  await designer.page.goto(`${BASE_URL}/autopilot/ui/alerts/deliveries/${deliveryNumber}`);
  const theirs = designer.page.getByTestId("delivery-detail");
  await theirs.getByTestId("payload").waitFor();
  expect((await theirs.getByTestId("replay").count()) === 0, "a designer who is not an alert admin is offered Replay");
  await designer.page.getByRole("link", { name: "Alerts", exact: true }).waitFor(); // the tab, for designers
});
