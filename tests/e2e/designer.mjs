// The designer inside Airflow's UI: create a workflow, drag two script steps from the palette, connect
// them (and disconnect and connect again), edit a step in the side panel — a common field and one of
// the form generated from the step kind's JSON Schema —, watch server-side validation on the nodes,
// save; then lose a save conflict without overwriting anything, and restore a revision from the history.
// tests/test_ui_e2e.py checks the YAML file, the revisions and that the DAG appears in Airflow.
import { apiCall, BASE_URL, env, login, scenario, validated } from "./lib.mjs";

const workflowId = env("WORKFLOW_ID");
const path = `${workflowId}.yaml`;

/**
 * The locator's box once the canvas stopped moving: server-side validation has answered (its problems
 * change the nodes' sizes and the messages above the canvas), and the box is the same twice in a row
 * (the auto layout and the fit to view run again after each change).
 */
async function settledBox(ui, locator) {
  await validated(ui);
  let last = null;
  for (let i = 0; i < 50; i++) {
    const box = await locator.boundingBox();
    if (box && last && box.x === last.x && box.y === last.y && box.width === last.width && box.height === last.height) return box;
    last = box;
    await new Promise((resolve) => setTimeout(resolve, 150)); // polling interval, not synchronisation
  }
  throw new Error("the canvas kept moving");
}

const inside = (box, area) =>
  box.x >= area.x && box.y >= area.y && box.x + box.width <= area.x + area.width && box.y + box.height <= area.y + area.height;

/** Drag a connection from one handle to another, once both are in view, and wait for the edge. */
async function connectHandles(page, ui, from, to) {
  const pane = ui.locator(".react-flow");
  for (let attempt = 1; ; attempt++) {
    // both steps in view: a new step can land beyond the canvas' edge, under the side panel
    let a, b;
    for (let i = 0; ; i++) {
      await ui.locator(".react-flow__controls-fitview").click();
      [a, b] = [await settledBox(ui, from), await settledBox(ui, to)];
      const area = await pane.boundingBox();
      if (inside(a, area) && inside(b, area)) break;
      if (i === 20) throw new Error(`the steps stay out of view: ${JSON.stringify({ a, b, area })}`);
    }
    await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
    await page.mouse.down();
    await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2 + 10, { steps: 5 });
    await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 5 });
    await page.mouse.up();
    try {
      await ui.locator(".react-flow__edge").first().waitFor({ state: "attached", timeout: 5000 });
      return;
    } catch (error) {
      // a re-layout between reading the boxes and the drop moves the handle: measure and drag again
      if (attempt === 3) throw error;
    }
  }
}

/** Select the (only) connection by clicking it, then remove it with the toolbar's Disconnect. */
async function disconnectEdge(ui) {
  const edge = ui.locator(".react-flow__edge").first();
  const button = ui.getByTestId("disconnect");
  for (let attempt = 1; ; attempt++) {
    await settledBox(ui, edge);
    // a straight edge has a zero-width box, which Playwright counts as invisible: the click goes to the
    // box's centre, on the edge's (20 px wide) interaction path, without the visibility check
    await edge.click({ force: true });
    try {
      await button.waitFor({ timeout: 5000 });
      break;
    } catch (error) {
      // the canvas moved between measuring and clicking: the click missed the edge
      if (attempt === 3) throw error;
    }
  }
  await button.click();
  await ui.locator(".react-flow__edge").first().waitFor({ state: "detached" });
}

/** Select a step on the canvas and return its side panel, once it shows that step. */
async function openStep(ui, id) {
  await validated(ui);
  await ui.getByTestId(`step-${id}`).click();
  const panel = ui.locator(`[data-testid="step-panel"][data-step="${id}"]`);
  await panel.waitFor();
  return panel;
}

await scenario("designer-drag-connect-save", async ({ browser, track }) => {
  const { page } = await login(browser, env("E2E_USER"), env("E2E_PASSWORD"), track);
  // the designer as Airflow shows it: an iframe page of its navigation
  await page.goto(`${BASE_URL}/plugin/autopilot-designer`);
  const ui = page.frameLocator('iframe[title="Workflow designer"]');
  await ui.getByLabel("New workflow id").fill(workflowId);
  await ui.getByRole("button", { name: "New workflow" }).click();
  const canvas = ui.getByTestId("canvas");
  await canvas.waitFor();
  // an empty workflow is invalid; wait for the verdict so the page stops moving before dragging
  await validated(ui, "invalid");

  // drop on an empty corner of the canvas: the auto layout centres the first step where a drop at
  // the canvas' centre would land on it
  const corner = { targetPosition: { x: 40, y: 40 } };
  await ui.getByTestId("palette-script").dragTo(canvas, corner);
  await ui.getByTestId("step-script_1").waitFor();
  await ui.getByTestId("palette-script").dragTo(canvas, corner);
  await ui.getByTestId("step-script_2").waitFor();
  if ((await ui.locator(".react-flow__edge").count()) !== 0) throw new Error("new steps should start unconnected");

  const source = ui.getByTestId("step-script_1").locator(".react-flow__handle.source");
  const target = ui.getByTestId("step-script_2").locator(".react-flow__handle.target");
  await connectHandles(page, ui, source, target);
  // disconnect (select the connection, Disconnect) and connect again
  await disconnectEdge(ui);
  await connectHandles(page, ui, source, target);

  // the side panel: a common field, and the script's `bash` from the form generated from its JSON Schema
  const second = await openStep(ui, "script_2");
  await second.getByLabel("Title", { exact: true }).fill("Second step");
  await second.locator("#step_script_bash").fill("echo second step");
  await validated(ui, "valid");

  // server-side validation shows on the node: a `use` step without a function is invalid
  await ui.getByRole("button", { name: "Add use step" }).click();
  await ui.getByTestId("step-use_1").getByTestId("step-errors").waitFor();
  await validated(ui, "invalid");
  await ui.locator('[data-testid="step-panel"][data-step="use_1"]').getByRole("button", { name: "Delete step" }).click();
  await ui.getByTestId("step-use_1").waitFor({ state: "detached" });
  await validated(ui, "valid");

  await ui.getByTestId("save").click();
  await ui.getByTestId("notice").filter({ hasText: "Saved" }).waitFor();

  // someone else saves meanwhile; our next save must not overwrite it
  const current = JSON.parse((await apiCall(page, "GET", `/autopilot/api/v1/definitions/${path}`)).body);
  const theirs = current.content.replace("bash: echo hello", "bash: echo theirs");
  const put = await apiCall(page, "PUT", `/autopilot/api/v1/definitions/${path}`, { content: theirs, version: current.version });
  if (put.status !== 200) throw new Error(`the concurrent save failed: ${put.status} ${put.body}`);
  const first = await openStep(ui, "script_1");
  await first.getByLabel("Title", { exact: true }).fill("Mine");
  await ui.getByTestId("save").click();
  await ui.getByTestId("notice").filter({ hasText: "Nothing was overwritten" }).waitFor();
  await ui.getByRole("button", { name: "Reload current version" }).click();
  await ui.getByTestId("notice").filter({ hasText: "Reloaded" }).waitFor();

  // history: diff revision 1 against the editor, restore it, save it as revision 3
  await ui.getByRole("button", { name: "History" }).click();
  const history = ui.getByTestId("history");
  await history.locator("tr", { hasText: "update" }).waitFor();
  await history.locator("tr", { hasText: "create" }).getByRole("button", { name: "Diff" }).click();
  await ui.locator(".diff .add", { hasText: "echo theirs" }).waitFor();
  await ui.getByRole("button", { name: "Restore this revision" }).click();
  await ui.getByText("unsaved").waitFor();
  await ui.getByTestId("save").click();
  await ui.getByTestId("notice").filter({ hasText: "revision 3" }).waitFor();
  // the history follows the save
  await history.locator("tbody tr td:first-child").getByText("3", { exact: true }).waitFor();
});
