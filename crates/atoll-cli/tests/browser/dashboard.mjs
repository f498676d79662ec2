// Drives Debian's chromium through playwright-core for the dashboard test
// (tests/e2e/admin.rs starts atoll and talks to this script over stdin/stdout):
//   node dashboard.mjs ADMIN_URL EXPECTED_HELLO_REQUESTS SCREENSHOT_PATH
// 1. loads the dashboard and waits until the hello row shows the requests made before;
// 2. prints READY and waits for a line on stdin (the test then makes a failing request);
// 3. waits, without reloading, until the failure shows with its reason and the log tail
//    shows the guest's failure line, and checks that a guest's line of HTML is shown as
//    text; takes a screenshot; exits 0. Any miss exits 1.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [url, expected, screenshot] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
if (!url || !expected || !screenshot) fail("usage: node dashboard.mjs URL EXPECTED SCREENSHOT");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let page;
try {
  page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Nothing but the admin server: no CDN, nothing fetched from elsewhere.
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(url)) foreign.push(r.url()); });
  await page.goto(url, { waitUntil: "load" });
  const row = page.locator('#components tr[data-app="admin"][data-component="hello"]');
  await row.locator("td.requests").filter({ hasText: new RegExp("^" + expected + "$") })
    .waitFor({ timeout: 20000 }).catch(() => fail("the hello row never showed " + expected + " requests"));
  const granted = await row.locator("td").last().textContent();
  if (!granted.includes("nothing beyond its own memory")) fail("hello's grants shown as: " + granted);
  await page.locator("#status.live").waitFor({ timeout: 10000 }).catch(() => fail("the live connection never opened"));
  console.log("READY");

  const rl = createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once("line", resolve));

  await page.locator("#failures tbody tr", { hasText: "hostile" }).first()
    .waitFor({ timeout: 20000 }).catch(() => fail("the failure never showed up without a reload"));
  const text = await page.locator("#failures tbody tr", { hasText: "hostile" }).first().textContent();
  for (const want of ["trap", "(in wasi:http/incoming-handler", "the guest had been denied a TCP socket"]) {
    if (!text.includes(want)) fail("the failure row lacks `" + want + "`: " + text);
  }
  await page.locator("#log div", { hasText: "guest failed" }).first()
    .waitFor({ timeout: 20000 }).catch(() => fail("the log tail never showed the failure"));
  await page.locator("#log div", { hasText: "no network for this guest" }).first()
    .waitFor({ timeout: 5000 }).catch(() => fail("the log tail never showed the guest's panic message"));
  await page.locator("#log div", { hasText: "capability denied" }).first()
    .waitFor({ timeout: 5000 }).catch(() => fail("the log tail never showed the denial"));
  // A guest's HTML is shown as text, never run or rendered.
  await page.locator("#log div", { hasText: "<img src=x onerror=" }).first()
    .waitFor({ timeout: 5000 }).catch(() => fail("the guest's HTML line is not shown as text"));
  if (await page.locator("#log img, #log b").count() > 0) fail("the guest's HTML became elements");
  if ((await page.title()) === "pwned") fail("the guest's script ran");
  if (errors.length) fail("page errors: " + errors.join("; "));
  if (foreign.length) fail("requests beyond the admin server: " + foreign.join(", "));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("OK");
} finally {
  await browser.close();
}
