// node ui_check.js BASE_URL SCREENSHOT.png: drives the web UI of a running `spate run` in headless
// Chromium (Debian's, through playwright-core; CHROMIUM overrides /usr/bin/chromium) and prints
// one JSON object with what it saw; the test (tests/e2e/test_web_ui.py) asserts on it.
//   - /ui: waits (up to UI_WAIT_MS, default 90 s) until the throughput and latency charts have
//     drawn points, a window result and an alert are shown; counts the pixels each chart's
//     series painted; takes a full-page screenshot; lists every request the page made and every
//     console error.
//   - /docs: waits for the rendered operations and counts them.
"use strict";
const path = require("path");
const req = require("module").createRequire(path.join(process.env.SPATE_WEB_NODE_DIR || __dirname, "package.json"));
const { chromium } = req("playwright-core");

async function main() {
  const [base, shot] = process.argv.slice(2);
  const out = { requests: [], console_errors: [], page_errors: [] };
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on("request", (r) => out.requests.push(r.url()));
    page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
    page.on("pageerror", (e) => out.page_errors.push(String(e)));
    await page.goto(base + "/ui", { waitUntil: "load" });
    const wait = Number(process.env.UI_WAIT_MS || 90000);
    try {
      await page.waitForFunction(() => {
        const u = window.spateUi;
        return u && u.polls >= 10 && u.charts.throughput >= 3 && u.charts.latency >= 1 && u.results > 0 &&
          document.querySelector("#alerts .alert") !== null;
      }, null, { timeout: wait, polling: 250 });
      out.waited = "ok";
    } catch (e) {
      out.waited = "timeout: " + e.message.split("\n")[0];
    }
    out.ui = await page.evaluate(() => {
      // Pixels painted in each chart in one of the series colours (lines that were drawn; the
      // grid and the labels have other colours). Lines may hide each other, so any series counts.
      const painted = {};
      const palette = ["--c1", "--c2", "--c3", "--c4", "--c5"].map((v) => {
        const color = getComputedStyle(document.documentElement).getPropertyValue(v).trim();
        return [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
      });
      for (const c of document.querySelectorAll("canvas")) {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] > 120 && palette.some((w) => Math.abs(d[i] - w[0]) < 40 && Math.abs(d[i + 1] - w[1]) < 40 && Math.abs(d[i + 2] - w[2]) < 40)) n++;
        }
        painted[c.id] = { points: Number(c.dataset.points || 0), pixels: n };
      }
      return {
        state: window.spateUi,
        painted,
        alerts: [...document.querySelectorAll("#alerts .alert")].map((e) => ({ rule: e.dataset.rule, state: e.dataset.state, text: e.textContent })),
        result_rows: document.querySelectorAll("#results tr").length,
        components: [...document.querySelectorAll("#components tr")].slice(1).map((r) => ({ name: r.children[0].textContent, health: r.dataset.health })),
        cards: Object.fromEntries([...document.querySelectorAll(".card")].map((c) => [c.querySelector(".k").textContent, c.querySelector(".v").textContent])),
        title: document.title,
      };
    });
    await page.screenshot({ path: shot, fullPage: true });

    const docs = await browser.newPage();
    docs.on("request", (r) => out.requests.push(r.url()));
    docs.on("pageerror", (e) => out.page_errors.push("docs: " + String(e)));
    await docs.goto(base + "/docs", { waitUntil: "load" });
    try {
      await docs.waitForFunction(() => document.body.dataset.operations !== undefined, null, { timeout: 30000 });
    } catch (e) { /* reported as null below */ }
    out.docs = await docs.evaluate(() => ({
      operations: document.body.dataset.operations === undefined ? null : Number(document.body.dataset.operations),
      title: document.title,
      error: (document.getElementById("error") || {}).textContent || "",
    }));
    await docs.screenshot({ path: shot.replace(/\.png$/, "") + "-docs.png", fullPage: false });
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
}
main().catch((e) => { console.log(JSON.stringify({ fatal: String(e && e.stack || e) })); process.exit(1); });
