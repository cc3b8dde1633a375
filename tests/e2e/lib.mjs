// Shared helpers of the UI end-to-end scenarios: Debian's chromium driven by playwright-core (from
// ui/node_modules), Airflow's real login page, and a screenshot when a scenario fails — also when the
// login fails, and when the scenario runs out of time (E2E_TIME_LIMIT_MS, which tests/test_ui_e2e.py
// sets below its own subprocess timeout so that the screenshots are taken before the process dies).
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");
const require = createRequire(join(repo, "ui", "package.json"));
const { chromium } = require("playwright-core");

export const BASE_URL = process.env.AIRFLOW_URL ?? "http://127.0.0.1:8080";
export const ARTIFACTS = process.env.ARTIFACTS ?? join(repo, "tests", "artifacts");
const EXECUTABLE = process.env.AUTOPILOT_CHROMIUM ?? "/usr/bin/chromium";
const TIME_LIMIT_MS = Number(process.env.E2E_TIME_LIMIT_MS || 240000);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
}

export async function launch() {
  return chromium.launch({ executablePath: EXECUTABLE, args: ARGS, headless: true });
}

/**
 * Log in through Airflow's own login page, as a person would; the browser then holds the `_token`
 * cookie. `track` (the scenario's) gets the page first, so a failing login is screenshotted too.
 */
export async function login(browser, user, password, track) {
  const context = await browser.newContext({ viewport: { width: 1500, height: 950 } });
  const page = await context.newPage();
  track?.(page);
  page.setDefaultTimeout(20000);
  await page.goto(`${BASE_URL}/api/v2/auth/login?next=${encodeURIComponent(`${BASE_URL}/`)}`);
  await page.locator('input[name="username"], input#username, input[type="text"]').first().fill(user);
  await page.locator('input[type="password"]').first().fill(password);
  await page.locator('button[type="submit"], button:has-text("Sign in"), button:has-text("Login")').first().click();
  // the login page sets the cookie and then navigates to `next`: wait for that navigation to end, or
  // it would interrupt the scenario's first page.goto
  await page.waitForURL(`${BASE_URL}/`, { waitUntil: "load", timeout: 30000 });
  const cookies = await context.cookies();
  if (!cookies.some((c) => c.name === "_token")) throw new Error(`login as ${user} did not set the _token cookie (at ${page.url()})`);
  return { context, page };
}

/**
 * Run named scenario steps within the time limit; on a failure (or when time is up) save a screenshot
 * of every tracked page into ARTIFACTS.
 */
export async function scenario(name, body) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await launch();
  const pages = [];
  const track = (p) => (pages.includes(p) || pages.push(p), p);
  let timer;
  let overtime = false;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => {
      overtime = true;
      reject(new Error(`the scenario ran out of its ${TIME_LIMIT_MS / 1000} s (E2E_TIME_LIMIT_MS)`));
    }, TIME_LIMIT_MS);
  });
  try {
    await Promise.race([body({ browser, track }), limit]);
    if (process.env.E2E_SCREENSHOTS) for (const [i, p] of pages.entries()) await p.screenshot({ path: join(ARTIFACTS, `${name}-pass-${i}.png`) });
    console.log(`PASS ${name}`);
  } catch (error) {
    let i = 0;
    for (const p of pages) {
      const file = join(ARTIFACTS, `${name}-${i++}.png`);
      try {
        await p.screenshot({ path: file, fullPage: true, timeout: 10000 });
        console.error(`screenshot: ${file} (${p.url()})`);
      } catch (shotError) {
        // closed, or stuck in a navigation that never commits
        console.error(`no screenshot of ${p.url()}: ${String(shotError?.message ?? shotError).split("\n")[0]}`);
      }
    }
    console.error(`FAIL ${name}: ${error?.stack ?? error}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
    await browser.close().catch(() => {});
  }
  // the abandoned scenario may still hold timers: end the process rather than wait for them
  if (overtime) process.exit(1);
}

/** The app's server-side validation has answered about the editor's current text (`state`: valid, invalid). */
export async function validated(ui, state) {
  const which = state ? `[data-state="${state}"]` : ':not([data-state="checking"])';
  await ui.locator(`[data-testid="validity"]${which}`).waitFor();
}

/** Call the Airflow/Autopilot REST API from the logged-in page (cookie auth, CSRF header). */
export async function apiCall(page, method, path, body) {
  return page.evaluate(
    async ([method, url, body]) => {
      const res = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Autopilot-Request": "1" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: await res.text() };
    },
    [method, `${BASE_URL}${path}`, body],
  );
}
