// Drives pgvisor's admin page in Debian's headless Chromium (playwright-core, no downloaded
// browser). Run by tests/tests/web_page.rs, which owns the proxy and the database traffic:
//
//   node tests/browser/page.mjs <admin-url> live|token
//
// The two processes talk in lines. This script prints `wait <action>` when it needs the Rust
// side to do something (run an N+1 burst, pgbench, stop pgvisor...) and reads `done <action>`
// from stdin before it goes on. It prints `ok <check>` for each passed check, and ends with
// `PASS <n> checks` (exit 0) or `FAIL <reason>` (exit 1). Screenshots go to
// $PGVISOR_BROWSER_ARTIFACTS (default target/browser-artifacts).

import { mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, scenario = "live"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node page.mjs <admin-url> [live|token]");
  process.exit(2);
}
const artifacts = process.env.PGVISOR_BROWSER_ARTIFACTS || "target/browser-artifacts";
const executablePath = process.env.PGVISOR_CHROMIUM || "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });

const PGBENCH_SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
// The tagged statements of the Rust side's `tagged` step, as shown (comments removed).
const TAGGED_USER = "select name from users where id = $1";
const TAGGED_REPORT = "select count(*) from orders";
// As the test's client wrote it: pgvisor shows statements as written (docs/fingerprints.md).
const N_PLUS_ONE_CHILD = "select * from orders where user_id = $1";

// ---------------------------------------------------------------------------------------------
// Talking to the Rust side

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function rust(action) {
  console.log(`wait ${action}`);
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`stdin closed while waiting for ${action}`);
  if (value.trim() !== `done ${action}`) throw new Error(`expected "done ${action}", got "${value}"`);
}

let checks = 0;
function ok(what) {
  checks += 1;
  console.log(`ok ${what}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const text = (handle, selector) => handle.$eval(selector, (e) => e.textContent);
const norm = (s) => (s || "").replace(/\s+/g, " ").trim();

// ---------------------------------------------------------------------------------------------
// Browser

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // playwright-core gives each launch a fresh temporary profile (its own --user-data-dir).
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
// The Copy buttons write to the clipboard; the check reads it back.
await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(url).origin });
const page = await context.newPage();

const consoleErrors = [];
const pageErrors = [];
const offsiteRequests = [];
const queryRequests = []; // query strings of /api/queries requests, to see the tag filter escaped
page.on("request", (r) => { const u = new URL(r.url()); if (u.pathname === "/api/queries") queryRequests.push(u.search); });
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => pageErrors.push(String(e)));
page.on("request", (r) => { if (!r.url().startsWith(new URL(url).origin)) offsiteRequests.push(r.url()); });

async function shot(name, options = {}) {
  const path = join(artifacts, name);
  await page.screenshot({ path, animations: "disabled", ...options });
  console.log(`screenshot ${path}`);
}

async function waitStatus(state, timeout) {
  await page.waitForSelector(`#status[data-state="${state}"]`, { timeout });
  return page.textContent("#status");
}

function noErrorsSoFar(what, allow = () => false) {
  const errors = consoleErrors.filter((e) => !allow(e));
  check(errors.length === 0 && pageErrors.length === 0, `${what}: console errors ${JSON.stringify(errors)}, page errors ${JSON.stringify(pageErrors)}`);
  check(offsiteRequests.length === 0, `the page asked for other origins: ${offsiteRequests}`);
  ok(`no console errors ${what}`);
}

// Text colour against the first opaque background behind it, for every visible text node's
// element: WCAG AA asks for 4.5:1 (3:1 for bold text of 18.66px and up, not used here).
async function contrastFailures() {
  return page.evaluate(() => {
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const failures = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!n.textContent.trim() || seen.has(el)) continue;
      seen.add(el);
      const box = el.getBoundingClientRect();
      if (!box.width || !box.height || el.closest("[hidden], .sr-only")) continue;
      const style = getComputedStyle(el);
      const fg = rgb(style.color).slice(0, 3);
      const [a, b] = [lum(fg), lum(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) failures.push(`${ratio.toFixed(2)} "${n.textContent.trim().slice(0, 30)}" (${el.tagName.toLowerCase()}.${el.className})`);
    }
    return failures;
  });
}

async function accessible(mode) {
  const fails = await contrastFailures();
  check(fails.length === 0, `contrast below 4.5:1 in ${mode} mode: ${fails.join("; ")}`);
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll("button, input")].filter((e) => {
      if (e.closest("[hidden]")) return false;
      const label = e.tagName === "INPUT" ? (e.labels && e.labels.length ? e.labels[0].textContent : "") : e.textContent;
      return !norm(label);
      function norm(s) { return (s || "").trim(); }
    }).map((e) => e.outerHTML.slice(0, 80)));
  check(unnamed.length === 0, `controls without a name: ${unnamed}`);
  ok(`text contrast >= 4.5:1 and named controls in ${mode} mode`);
}

// The page never scrolls sideways; with `tables`, neither do the tables inside their panels.
async function noHorizontalScroll(what, { tables = false } = {}) {
  const { scroll, width, wide } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: innerWidth,
    wide: [...document.querySelectorAll(".scroll")].filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.getAttribute("aria-labelledby")),
  }));
  check(scroll <= width, `${what}: the page is ${scroll}px wide in a ${width}px window`);
  check(!tables || wide.length === 0, `${what}: these tables scroll sideways: ${wide}`);
  ok(`no sideways scrolling ${what}${tables ? ", tables included" : ""}`);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async function live() {
  const started = Date.now();
  await page.goto(url, { waitUntil: "load" });
  await waitStatus("live", 5000);
  ok(`page live in ${Date.now() - started} ms`);
  // Set once; a reload would lose it, so its presence at the end proves nothing reloaded.
  await page.evaluate(() => { window.__noReload = true; });
  check(await page.isVisible("#advice-empty"), "the empty feed says so");
  check(await page.isVisible("#queries-empty"), "a fresh pgvisor shows no queries");
  noErrorsSoFar("after loading");

  // An N+1 burst appears without reload, within 2 s of the burst's end.
  await rust("n_plus_one");
  let t = Date.now();
  const card = await page.waitForSelector('#advice-list li[data-kind="n_plus_one"]', { timeout: 2000 });
  ok(`n_plus_one advice in the feed ${Date.now() - t} ms after the burst`);
  check(await card.getAttribute("data-source") === "stream", "the advice came from the live stream");
  check(norm(await text(card, ".msg")).includes(N_PLUS_ONE_CHILD), "the message names the child query");
  check((await text(card, ".suggestion")).includes("ANY($1)"), "the suggestion gives the single query");
  check(norm(await text(card, ".evidence")).includes("users.id -> orders.user_id"), "the evidence names the join");
  check(Number(await text(card, ".count")) >= 1, "a count is shown");
  check(await page.evaluate(() => window.__noReload === true), "the page was not reloaded");
  ok("the card shows title, message, suggestion and evidence");

  // Collapsed at first: title and message show, the fix and the evidence open on a click.
  check(await card.isVisible(), "the card shows");
  check(!(await card.$eval("details.more", (d) => d.open)), "the card starts collapsed");
  check(!(await (await card.$(".suggestion")).isVisible()) && !(await (await card.$(".evidence")).isVisible()),
    "the suggestion and the evidence are hidden until asked for");
  const closedHeight = (await card.boundingBox()).height;
  await (await card.$("details.more > summary")).click();
  await page.waitForFunction((li) => li.querySelector("details.more").open && li.classList.contains("open"), card, { timeout: 2000 });
  check(await (await card.$(".suggestion")).isVisible() && await (await card.$(".evidence")).isVisible(), "a click opens the fix and the evidence");
  const openHeight = (await card.boundingBox()).height;
  check(openHeight > closedHeight + 80, `the card grows when opened (${closedHeight} -> ${openHeight} px)`);
  ok(`the card is collapsed (${Math.round(closedHeight)} px) and opens on a click (${Math.round(openHeight)} px)`);

  // The suggested SQL is a code block of its own, with a Copy button that fills the clipboard.
  const block = await card.$(".suggestion .sql-block");
  check(block, "the suggestion's SQL is a code block");
  const sql = await block.getAttribute("data-sql");
  check(/= ANY\(\$1\)$/i.test(sql) && /^select /i.test(sql), `the block holds the batched query alone: ${sql}`);
  check(norm(await text(block, "pre")) === norm(sql), "the block shows that SQL");
  const prose = norm(await card.$eval(".suggestion", (s) => [...s.querySelectorAll("p")].map((p) => p.textContent).join(" | ")));
  check(/fetch all rows at once/i.test(prose) && !prose.includes("= ANY($1)"), `the prose is apart from the SQL: ${prose}`);
  const copy = await block.$("button.copy");
  check(copy && await copy.isVisible() && norm(await copy.textContent()) === "Copy", "a Copy button next to the SQL");
  await copy.click();
  await page.waitForFunction((b) => b.textContent === "Copied", copy, { timeout: 2000 });
  const clipboard = await page.evaluate(() => navigator.clipboard.readText());
  check(clipboard === sql, `the clipboard holds the SQL: ${clipboard}`);
  ok("the suggested SQL is a code block with a working Copy button");

  // Setup statements (DDL, COPY, ANALYZE, INSERT ... SELECT) are hidden from Top queries by
  // default, and shown on request.
  await rust("setup");
  const setupRows = () => page.$$eval("#queries-body tr .sql", (cells) =>
    cells.map((c) => c.textContent.replace(/\s+/g, " ").trim()).filter((q) => /^(alter|copy|create|analyze|insert into setup_scratch select)\b/i.test(q)));
  await page.waitForFunction(() => /^[4-9] hidden|^\d\d+ hidden/.test(document.getElementById("setup-hidden").textContent), null, { timeout: 5000 });
  check(await page.isChecked("#hide-setup"), "the toggle is on by default");
  check((await setupRows()).length === 0, `no setup statement in the table: ${await setupRows()}`);
  await page.click("#hide-setup");
  await page.waitForFunction(() => [...document.querySelectorAll("#queries-body tr .sql")].some((c) => /^alter /i.test(c.textContent.trim())), null, { timeout: 3000 });
  const shownSetup = await setupRows();
  check(shownSetup.some((q) => /^copy /i.test(q)) && shownSetup.some((q) => /^alter /i.test(q)), `COPY and ALTER show when asked: ${shownSetup}`);
  check(await page.textContent("#setup-hidden") === "", "nothing is said hidden then");
  await page.click("#hide-setup");
  await page.waitForFunction(() => ![...document.querySelectorAll("#queries-body tr .sql")].some((c) => /^(alter|copy) /i.test(c.textContent.trim())), null, { timeout: 3000 });
  ok(`the DDL toggle hides setup statements from Top queries and shows them again: ${shownSetup.map((q) => q.split(" ").slice(0, 2).join(" ")).join(", ")}`);

  // pgbench's query with its calls in the table, and sorting by calls.
  await rust("pgbench");
  t = Date.now();
  const pgbenchEnded = Date.now();
  const calls = await page.waitForFunction((sql) => {
    for (const tr of document.querySelectorAll("#queries-body tr")) {
      if (tr.querySelector(".sql").textContent.replace(/\s+/g, " ").trim() === sql) return tr.querySelector(".calls").textContent;
    }
    return false;
  }, PGBENCH_SELECT, { timeout: 5000 });
  const shown = await calls.jsonValue();
  check(shown === "200", `pgbench ran 200 transactions, the table shows ${shown} calls`);
  ok(`pgbench's query with 200 calls in the table ${Date.now() - t} ms after pgbench ended`);
  await page.click('#queries-table th[data-sort="calls"] button');
  await page.waitForFunction((sql) => {
    const first = document.querySelector("#queries-body tr .sql");
    return first && first.textContent.replace(/\s+/g, " ").trim() === sql;
  }, PGBENCH_SELECT, { timeout: 3000 });
  check(await page.getAttribute('#queries-table th[data-sort="calls"]', "aria-sort") === "descending", "aria-sort follows the sort");
  const bars = await page.getAttribute("#queries-body tr:first-child .lat svg", "aria-label");
  check(/p50 .* p95 .* p99 .* max /.test(bars || ""), `latency bars are labelled: ${bars}`);
  ok("sorted by calls, pgbench's query first, with labelled latency bars");
  await page.click('#queries-table th[data-sort="total"] button');
  await callers();

  // The traffic chart: statements per second (pgbench's 200 transactions make a peak), a p95 line,
  // and a mark for the N+1 advice.
  await page.waitForFunction(() => {
    const svg = document.querySelector("#chart svg");
    return svg && Number(svg.dataset.points) >= 5 && Number(svg.dataset.p95Points) >= 1;
  }, null, { timeout: 8000 });
  const chart = await page.$eval("#chart svg", (svg) => ({
    points: Number(svg.dataset.points),
    rate: svg.querySelector("path.line.rate").getAttribute("d"),
    p95: svg.querySelector("path.line.p95").getAttribute("d"),
    marks: [...svg.querySelectorAll(".mark title")].map((t) => t.textContent),
    label: svg.getAttribute("aria-label"),
    peak: Math.min(...[...svg.querySelector("path.line.rate").getAttribute("d").matchAll(/[ML][\d.]+ ([\d.]+)/g)].map((m) => Number(m[1]))),
    bottom: svg.querySelector("line.grid").getAttribute("y1"),
  }));
  check((chart.rate.match(/[ML]/g) || []).length >= 5 && /^M/.test(chart.p95), `the chart has lines: ${JSON.stringify(chart)}`);
  check(chart.peak < Number(chart.bottom) - 20, `pgbench's statements rise above the baseline: ${JSON.stringify(chart)}`);
  check(chart.marks.some((m) => m.includes("n_plus_one")), `the N+1 advice is marked: ${chart.marks}`);
  check(/statements\/s/.test(chart.label), `the chart is labelled: ${chart.label}`);
  ok(`the traffic chart has ${chart.points} points ${Date.now() - pgbenchEnded} ms after pgbench, a peak and an advice mark`);

  // A session left idle in its transaction: its row, then its advice.
  await rust("idle_in_transaction");
  const row = await page.waitForSelector("#sessions-body tr:has(.state.idle_in_transaction)", { timeout: 3000 });
  check(norm(await text(row, ".client")).includes("checkout-worker"), "the session row shows the application");
  check(/\d/.test(await text(row, ".txn")), "the transaction age is shown");
  ok("the idle-in-transaction session is listed with its transaction age");
  await page.waitForSelector('#advice-list li[data-kind="idle_in_transaction"]', { timeout: 5000 });
  const order = await page.$$eval("#advice-list > li", (lis) => lis.map((li) => li.dataset.kind));
  check(order[0] === "idle_in_transaction", `newest first: ${order}`);
  ok("idle_in_transaction advice on top of the feed");

  // Filters: by kind, then by severity; hidden cards are counted, "Show all" brings them back.
  const visibleKinds = () => page.$$eval("#advice-list > li:not([hidden])", (lis) => lis.map((li) => li.dataset.kind));
  const total = (await page.$$("#advice-list > li")).length;
  await page.selectOption("#kind-filter", "n_plus_one");
  let kinds = await visibleKinds();
  check(kinds.length === 1 && kinds[0] === "n_plus_one", `the kind filter shows only n_plus_one: ${kinds}`);
  check(await page.isVisible("#advice-filtered"), "the hidden cards are counted");
  await page.selectOption("#kind-filter", "");
  check((await visibleKinds()).length === total, "all kinds again");
  const warnings = await page.$$eval("#advice-list > li.warning", (lis) => lis.length);
  check(warnings >= 2, `the N+1 and the idle transaction are warnings: ${warnings}`);
  await page.click('.sev-filter[data-severity="warning"]');
  kinds = await visibleKinds();
  const shownWarnings = await page.$$eval("#advice-list > li.warning:not([hidden])", (lis) => lis.length);
  check(shownWarnings === 0 && kinds.length === total - warnings, `the severity filter hides the warnings: ${kinds}`);
  check(await page.getAttribute('.sev-filter[data-severity="warning"]', "aria-pressed") === "false", "the button says it is off");
  check(norm(await page.textContent("#advice-count")) === `${total - warnings} of ${total}`, "the count says how many show");
  await page.click("#advice-show-all");
  check((await visibleKinds()).length === total && !(await page.isVisible("#advice-filtered")), "Show all brings every card back");
  ok(`the kind and severity filters hide and show cards (${total} cards, ${warnings} warnings)`);
  await page.waitForTimeout(1200); // one more poll, so the transaction age in the picture is fresh

  // Pictures, light, dark and narrow, and the same checks in each.
  await accessible("light");
  await noHorizontalScroll("at 1280x800", { tables: true });
  await shot("page.png");
  await shot("page-full.png", { fullPage: true });
  await page.emulateMedia({ colorScheme: "dark" });
  await accessible("dark");
  await shot("page-dark.png");
  await page.setViewportSize({ width: 390, height: 844 });
  await noHorizontalScroll("at 390 px wide");
  await shot("page-narrow.png", { fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 800 });
  noErrorsSoFar("after the advice, queries and sessions arrived");

  // Reset empties the feed and the table, and they stay empty on the next polls.
  await rust("commit");
  await page.click("#reset");
  await page.waitForFunction(() =>
    document.querySelectorAll("#advice-list > li").length === 0 && document.querySelectorAll("#queries-body tr").length === 0,
  null, { timeout: 2000 });
  await page.waitForTimeout(2200);
  const after = await page.evaluate(() => ({
    advice: document.querySelectorAll("#advice-list > li").length,
    queries: document.querySelectorAll("#queries-body tr").length,
    emptyShown: !document.getElementById("advice-empty").hidden && !document.getElementById("queries-empty").hidden,
  }));
  check(after.advice === 0 && after.queries === 0 && after.emptyShown, `after reset: ${JSON.stringify(after)}`);
  ok("reset empties the feed and the queries table");
  noErrorsSoFar("after reset");

  // pgvisor goes away: a clear disconnected state; it comes back: live again, same page.
  await rust("stop");
  t = Date.now();
  const status = await waitStatus("offline", 4000);
  check(/disconnected/i.test(status) && /retrying/i.test(status), `status while pgvisor is down: ${status}`);
  ok(`"${status}" ${Date.now() - t} ms after pgvisor stopped`);
  await shot("page-offline.png");
  await rust("start");
  t = Date.now();
  await waitStatus("live", 5000);
  check(await page.evaluate(() => window.__noReload === true), "the page was not reloaded");
  ok(`live again ${Date.now() - t} ms after pgvisor came back`);
  // Refused connections while pgvisor was down are logged by Chromium itself; nothing else.
  noErrorsSoFar("after reconnecting", (e) => e.includes("ERR_CONNECTION_REFUSED") || e.includes("ERR_EMPTY_RESPONSE") || e.includes("ERR_CONNECTION_RESET"));
}

// The callers column and the tag filter of Top queries, on statements tagged by sqlcommenter
// comments (one route's value is HTML, which must show as text).
async function callers() {
  const rowOf = (sql) => page.waitForFunction((sql) => {
    for (const tr of document.querySelectorAll("#queries-body tr")) {
      if (tr.querySelector(".sql").textContent.replace(/\s+/g, " ").trim() === sql) return tr;
    }
    return false;
  }, sql, { timeout: 5000 });
  const shownQueries = () => page.$$eval("#queries-body tr .sql", (cells) => cells.map((c) => c.textContent.replace(/\s+/g, " ").trim()));
  // The tagged queries are quick: make room for them when the table is full.
  const fewer = await page.isVisible("#more-queries") && norm(await page.textContent("#more-queries")) === "Show top 50";
  if (fewer) await page.click("#more-queries");
  await rust("tagged");
  let t = Date.now();
  const user = (await rowOf(TAGGED_USER)).asElement();
  // All 4 calls counted (the row may show before the last ones arrive).
  await page.waitForFunction((tr) => tr.querySelector(".calls").textContent === "4" && tr.querySelector('.callers .tag[data-filter="route:/users/:id"]'), user, { timeout: 3000 });
  ok(`the tagged query shows its callers ${Date.now() - t} ms after it ran`);
  check(await page.isVisible("#queries-table th.callers-col"), "the Callers column shows");
  const chips = await user.$$eval(".callers .tag", (tags) => tags.map((b) => b.textContent));
  check(chips[0] === "route=/users/:id (3, +1 more)" && chips[1] === "controller=users",
    `the top route with its share, then the controller that ran every call: ${JSON.stringify(chips)}`);
  const tooltip = await user.$eval(".callers", (td) => td.title);
  check(tooltip.includes("route: /users/:id (3 calls), /admin/users (1 call)") && tooltip.includes("controller: users (4 calls)"),
    `the tooltip lists every value with its calls: ${tooltip}`);
  const report = (await rowOf(TAGGED_REPORT)).asElement();
  const html = await report.$eval(".callers", (td) => ({ text: td.querySelector(".tag").textContent, elements: td.querySelectorAll("b").length }));
  check(html.text === "route=<b>reports</b>" && html.elements === 0, `a tag is shown as text, never as HTML: ${JSON.stringify(html)}`);
  const pgbenchRow = (await rowOf(PGBENCH_SELECT)).asElement();
  const app = await pgbenchRow.$eval(".callers", (td) => ({ chip: td.querySelector(".tag").textContent, title: td.title }));
  check(app.chip === "app=pgbench" && app.title.includes("application_name: pgbench (200 calls)"),
    `application_name is app= in the narrow column, in full in the tooltip: ${JSON.stringify(app)}`);
  ok(`the callers column shows ${chips.join(" | ")}, with every value in the tooltip, as text`);

  // Typing a filter: only the queries run with it, asked of pgvisor with the tag escaped.
  await page.fill("#tag-filter", "route:/users/:id");
  await page.press("#tag-filter", "Enter");
  await page.waitForFunction((sql) => {
    const rows = [...document.querySelectorAll("#queries-body tr .sql")].map((c) => c.textContent.replace(/\s+/g, " ").trim());
    return rows.length === 1 && rows[0] === sql;
  }, TAGGED_USER, { timeout: 3000 });
  check(queryRequests.some((q) => q.includes("tag=route%3A%2Fusers%2F%3Aid")), `the filter went to /api/queries escaped: ${queryRequests.slice(-3)}`);
  check(await page.isVisible("#tag-clear"), "a Show all button offers the way back");
  ok("the tag filter route:/users/:id leaves only the query that route ran");

  await page.fill("#tag-filter", "route:/nowhere");
  await page.press("#tag-filter", "Enter");
  await page.waitForFunction(() => !document.getElementById("queries-empty").hidden, null, { timeout: 3000 });
  const empty = norm(await page.textContent("#queries-empty"));
  check(empty.startsWith("No query ran with the tag route:/nowhere."), `the empty table says why: ${empty}`);
  check(!(await page.isVisible("#queries-table")), "no empty table");
  ok(`a filter that matches nothing says so: "${empty.slice(0, 60)}..."`);

  await page.fill("#tag-filter", "nowhere");
  await page.press("#tag-filter", "Enter");
  check(await page.isVisible("#tag-help") && await page.getAttribute("#tag-filter", "aria-invalid") === "true", "a filter without key: is explained");
  ok("a filter that is not key:value is explained, not sent");

  await page.click("#tag-clear");
  await rowOf(PGBENCH_SELECT);
  check(await page.inputValue("#tag-filter") === "" && !(await page.isVisible("#tag-help")), "Show all empties the filter");
  ok("Show all brings every query back");

  // Clicking a caller filters by it.
  await page.click('#queries-body .callers .tag[data-filter="route:<b>reports</b>"]');
  await page.waitForFunction((sql) => {
    const rows = [...document.querySelectorAll("#queries-body tr .sql")].map((c) => c.textContent.replace(/\s+/g, " ").trim());
    return rows.length === 1 && rows[0] === sql;
  }, TAGGED_REPORT, { timeout: 3000 });
  check(await page.inputValue("#tag-filter") === "route:<b>reports</b>", "the clicked caller is in the filter field");
  ok("clicking a caller shows only the queries it ran");
  await page.click("#tag-clear");
  await rowOf(PGBENCH_SELECT);
  check((await shownQueries()).length > 2, "every query again");
  if (fewer) await page.click("#more-queries");
}

async function token() {
  const statuses = [];
  page.on("response", (r) => { if (new URL(r.url()).pathname.startsWith("/api/")) statuses.push(r.status()); });
  await page.goto(url, { waitUntil: "load" });
  await waitStatus("token", 5000);
  check(await page.isVisible("#token-form"), "the token form shows");
  check(statuses.includes(401), "the API answered 401 without the token");
  ok("the page loads without the token and asks for it");

  await page.fill("#token", "wrong-token");
  await page.click('#token-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("token-title").textContent.includes("refused"), null, { timeout: 3000 });
  check(await page.isVisible("#token-form"), "a wrong token asks again");
  ok("a wrong token is refused");

  await page.fill("#token", process.env.PGVISOR_ADMIN_TOKEN || "");
  await page.click('#token-form button[type="submit"]');
  await waitStatus("live", 3000);
  check(!(await page.isVisible("#token-form")), "the form goes away");
  check(await page.evaluate(() => localStorage.getItem("pgvisor.adminToken")) === process.env.PGVISOR_ADMIN_TOKEN, "the token is kept in local storage");
  ok("the right token makes the page live and is kept in local storage");

  await page.reload({ waitUntil: "load" });
  await waitStatus("live", 5000);
  check(!(await page.isVisible("#token-form")), "no form after a reload");
  ok("after a reload the kept token is used");

  // The advice stream is read with the token too (fetch with an Authorization header).
  await rust("n_plus_one");
  const card = await page.waitForSelector('#advice-list li[data-kind="n_plus_one"]', { timeout: 2000 });
  check(await card.getAttribute("data-source") === "stream", "the advice came from the live stream");
  ok("advice streams in with the token");
  await shot("page-token.png");
  noErrorsSoFar("with a token", (e) => e.includes("401"));
}

try {
  await (scenario === "token" ? token() : live());
  console.log(`PASS ${checks} checks`);
  await browser.close();
  process.exit(0);
} catch (e) {
  console.log(`FAIL ${String(e && e.stack ? e.stack : e).split("\n").slice(0, 4).join(" | ")}`);
  await page.screenshot({ path: join(artifacts, `failure-${scenario}.png`), fullPage: true }).catch(() => {});
  console.log(`screenshot ${join(artifacts, `failure-${scenario}.png`)}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
