// pgvisor's admin page: reads the admin API (docs/admin-api.md) like any other client.
//
// - Advice arrives on GET /api/advice/stream (Server-Sent Events, read with fetch() so the
//   token can go in a header) and changes the feed in place.
// - /api/queries, /api/sessions and /metrics are polled once a second at most, and not while the
//   tab is hidden, so the page never costs pgvisor more than three small requests per second.
//   The queries table and the traffic chart share the same answer (the top 100 queries); while
//   the table is filtered by a tag, the table has its own (`&tag=`) and the chart keeps the whole.
// - One connection state for the whole page: live, offline (pgvisor gone: retry every second),
//   token (the API answered 401), error.

import { Offline, Unauthorized, api, getJson, hasToken, readEvents, setToken, storageGet, storageSet } from "./http.js";
import { adviceMarks, clearAdvice, reconcileAdvice, tickTimes, updateAdviceCount, upsertAdvice } from "./feed.js";
import { renderQueries, renderSessions } from "./tables.js";
import { el } from "./format.js";
import { isSetupStatement } from "./setup.js";
import { isTagFilter, tagOptions } from "./callers.js";
import { recordGap, recordSample, renderChart } from "./chart.js";

const POLL_MS = 1000;
const RECONCILE_EVERY = 5; // polls between checks that the feed still matches /api/advice
const QUERY_LIMITS = [10, 50]; // rows in the queries table: the top ones, or more on request
const SORTS = ["total", "calls", "mean", "p99"];
// Rows asked of /api/queries: enough to fill the table after hiding setup statements, and the
// queries whose p95 the chart compares.
const QUERY_FETCH = 100;

const $ = (id) => document.getElementById(id);

const page = {
  sort: SORTS.includes(storageGet("pgvisor.sort")) ? storageGet("pgvisor.sort") : "total",
  limit: QUERY_LIMITS.includes(Number(storageGet("pgvisor.limit"))) ? Number(storageGet("pgvisor.limit")) : QUERY_LIMITS[0],
  state: "connecting", // connecting | live | offline | token | error
  polls: 0,
  pollTimer: 0,
  stream: null, // AbortController of the open stream
  wake: [], // resolvers waiting for the page to be live again
  lastUpdate: null,
  hideSetup: storageGet("pgvisor.hideSetup") !== "false",
  queries: [], // the last answer of /api/queries, for redrawing without asking again
  tag: "", // `key:value`: the table shows only the queries run with it (not kept across reloads)
};

// ---------------------------------------------------------------------------------------------
// Connection state

function failed(err) {
  if (err instanceof Unauthorized) askForToken();
  else if (err instanceof Offline) setState("offline");
  else if (err && err.name === "AbortError") return;
  else setState("error", err && err.message ? err.message : String(err));
}

function setState(state, detail) {
  const was = page.state;
  page.state = state;
  const status = $("status");
  status.dataset.state = state;
  const text = {
    connecting: "Connecting to pgvisor…",
    live: "Live",
    offline: "Disconnected from pgvisor, retrying every second…",
    token: "Admin token required",
    error: `Error: ${detail || "unexpected answer"}. Retrying…`,
  }[state];
  if (status.textContent !== text) status.textContent = text;
  document.body.classList.toggle("offline", state === "offline");
  $("reset").disabled = state !== "live";
  if (state === "offline" && was !== "offline" && page.lastUpdate) {
    $("updated").textContent = `Showing data from ${page.lastUpdate.toLocaleTimeString()}`;
  }
  // A stream may outlive the server's other answers (a half-open connection): start over.
  if (state === "offline" && page.stream) page.stream.abort();
  if (state === "live" && was !== "live") {
    const waiting = page.wake;
    page.wake = [];
    waiting.forEach((resolve) => resolve());
  }
}

const whenLive = () => (page.state === "live" ? Promise.resolve() : new Promise((r) => page.wake.push(r)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Token

function askForToken() {
  const form = $("token-form");
  const input = $("token");
  $("token-title").textContent = hasToken() ? "pgvisor refused the admin token" : "This pgvisor needs its admin token";
  if (page.state !== "token" || form.hidden) {
    form.hidden = false;
    input.value = "";
    input.focus();
  }
  setState("token");
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  setToken(token);
  $("token-form").hidden = true;
  setState("connecting");
  pollNow();
});

// ---------------------------------------------------------------------------------------------
// Polling: queries and sessions

async function poll() {
  clearTimeout(page.pollTimer);
  // Polls go on while the token form shows: pgvisor restarted without a token recovers alone.
  if (!document.hidden) {
    try {
      const tag = page.tag;
      const [queries, tagged, sessions, metrics] = await Promise.all([
        getJson(queriesPath(page.sort, "")),
        tag ? getJson(queriesPath(page.sort, tag)) : null,
        getJson("/api/sessions"),
        api("/metrics").then((r) => r.text()),
      ]);
      const all = queries.queries || [];
      // A filter changed while this poll was out: its own poll follows at once.
      if (tag === page.tag) {
        page.queries = tagged ? tagged.queries || [] : all;
        showQueries();
      }
      showTagOptions(all);
      renderSessions(sessions.sessions || []);
      recordSample(Date.now(), statementsTotal(metrics), all);
      showChart();
      $("token-form").hidden = true;
      setState("live");
      page.lastUpdate = new Date();
      $("updated").textContent = `Updated ${page.lastUpdate.toLocaleTimeString()}`;
      if (page.polls % RECONCILE_EVERY === 0) await checkAdvice();
    } catch (e) {
      recordGap(Date.now());
      failed(e);
    }
    page.polls += 1;
  }
  page.pollTimer = setTimeout(poll, POLL_MS);
}

// Out of turn, after a user action (sort, reset, token); the next poll is a second later.
function pollNow() {
  clearTimeout(page.pollTimer);
  page.pollTimer = setTimeout(poll, 0);
}

document.addEventListener("visibilitychange", () => { if (!document.hidden) pollNow(); });

// `/api/queries` sorted by `sort`, only the queries run with `tag` when given (escaped: a route
// holds `/` and `:`, a value may hold `&`).
function queriesPath(sort, tag) {
  const params = new URLSearchParams({ sort, limit: String(QUERY_FETCH) });
  if (tag) params.set("tag", tag);
  return `/api/queries?${params}`;
}

// The top `page.limit` queries, without the setup statements when they are hidden (setup.js).
function showQueries() {
  const rows = page.queries;
  const setup = rows.filter((q) => isSetupStatement(q.query)).length;
  const kept = page.hideSetup ? rows.filter((q) => !isSetupStatement(q.query)) : rows;
  renderQueries(kept.slice(0, page.limit), { onPickTag: setTag });
  $("more-queries").hidden = kept.length <= QUERY_LIMITS[0] && page.limit === QUERY_LIMITS[0];
  const hidden = page.hideSetup ? setup : 0;
  $("setup-hidden").textContent = hidden ? `${hidden} hidden` : "";
  let empty = "No queries recorded yet.";
  if (page.tag && rows.length === 0) {
    empty = `No query ran with the tag ${page.tag}. Tags come from SQL comments (/*route='/users/:id'*/) and application names; \u201cShow all\u201d lists every query with its callers.`;
  } else if (hidden) {
    empty = "Only DDL and maintenance statements so far: clear \u201cHide DDL and maintenance\u201d to see them.";
  }
  $("queries-empty").textContent = empty;
}

// ---------------------------------------------------------------------------------------------
// The tag filter of Top queries: `key:value`, typed, chosen from the suggestions, or clicked in
// the callers column.

function setTag(value) {
  const tag = value.trim();
  const help = $("tag-help");
  if (tag && !isTagFilter(tag)) {
    $("tag-filter").setAttribute("aria-invalid", "true");
    help.textContent = "Write the tag as key:value, for example route:/users/:id or application_name:shop-web.";
    help.hidden = false;
    return;
  }
  $("tag-filter").removeAttribute("aria-invalid");
  help.hidden = true;
  if ($("tag-filter").value !== tag) $("tag-filter").value = tag;
  $("tag-clear").hidden = !tag;
  if (tag === page.tag) return;
  page.tag = tag;
  pollNow();
}

function showTagOptions(rows) {
  const options = tagOptions(rows);
  const list = $("tag-options");
  if (list.dataset.options === JSON.stringify(options)) return;
  list.dataset.options = JSON.stringify(options);
  list.replaceChildren(...options.map((value) => el("option", { value })));
}

$("tag-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  setTag($("tag-filter").value);
});
// A suggestion picked, or the field left: apply; the field emptied (its clear button): show all.
$("tag-filter").addEventListener("change", (ev) => setTag(ev.target.value));
$("tag-filter").addEventListener("input", (ev) => { if (ev.target.value === "") setTag(""); });
$("tag-clear").addEventListener("click", () => setTag(""));

function showChart() {
  renderChart($("chart"), $("chart-empty"), adviceMarks());
}

// `pgvisor_statements_total N` of the Prometheus text, or null.
function statementsTotal(text) {
  const m = /^pgvisor_statements_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

// ---------------------------------------------------------------------------------------------
// Advice: the live stream, and a check against the list now and then

async function streamAdvice() {
  for (;;) {
    await whenLive();
    const ctrl = new AbortController();
    page.stream = ctrl;
    try {
      const res = await api("/api/advice/stream", { signal: ctrl.signal, headers: { Accept: "text/event-stream" } });
      // The stream starts with every current finding; cards of findings that went away while we
      // were not listening (a reset, a restarted pgvisor) go.
      checkAdvice();
      await readEvents(res.body, (ev) => {
        if (ev.event === "advice" && ev.data) upsertAdvice(JSON.parse(ev.data), { source: "stream" });
      });
      throw new Offline("the advice stream ended");
    } catch (e) {
      if (!ctrl.signal.aborted) failed(e);
    } finally {
      if (page.stream === ctrl) page.stream = null;
    }
    await sleep(POLL_MS);
  }
}

async function checkAdvice() {
  const asked = performance.now();
  try {
    const { advice } = await getJson("/api/advice");
    reconcileAdvice(advice || [], asked);
  } catch (e) {
    failed(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Sorting, how many queries, reset

function showSort() {
  for (const th of document.querySelectorAll("#queries-table th[data-sort]")) {
    if (th.dataset.sort === page.sort) th.setAttribute("aria-sort", "descending");
    else th.removeAttribute("aria-sort");
  }
}

for (const th of document.querySelectorAll("#queries-table th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => {
    page.sort = th.dataset.sort;
    storageSet("pgvisor.sort", page.sort);
    showSort();
    pollNow();
  });
}

function showLimit() {
  const more = page.limit === QUERY_LIMITS[0];
  $("more-queries").textContent = more ? `Show top ${QUERY_LIMITS[1]}` : `Show top ${QUERY_LIMITS[0]} only`;
  $("queries-title").textContent = `Top ${page.limit} queries`;
}

$("more-queries").addEventListener("click", () => {
  page.limit = page.limit === QUERY_LIMITS[0] ? QUERY_LIMITS[1] : QUERY_LIMITS[0];
  storageSet("pgvisor.limit", String(page.limit));
  showLimit();
  pollNow();
});

$("hide-setup").checked = page.hideSetup;
$("hide-setup").addEventListener("change", (ev) => {
  page.hideSetup = ev.target.checked;
  storageSet("pgvisor.hideSetup", String(page.hideSetup));
  showQueries();
});

addEventListener("resize", showChart);

$("reset").addEventListener("click", async () => {
  const button = $("reset");
  button.disabled = true;
  try {
    await api("/api/reset", { method: "POST" });
    clearAdvice();
    page.queries = [];
    showQueries();
    $("updated").textContent = `Reset at ${new Date().toLocaleTimeString()}`;
    pollNow();
  } catch (e) {
    failed(e);
  } finally {
    button.disabled = page.state !== "live";
  }
});

// ---------------------------------------------------------------------------------------------

setInterval(tickTimes, 1000);
showSort();
showLimit();
updateAdviceCount();
poll();
streamAdvice();
