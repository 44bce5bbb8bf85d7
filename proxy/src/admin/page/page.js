// pgvisor's admin page: reads the admin API (docs/admin-api.md) like any other client.
//
// - Advice arrives on GET /api/advice/stream (Server-Sent Events, read with fetch() so the
//   token can go in a header) and changes the feed in place.
// - /api/queries, /api/sessions and /metrics are polled once a second at most, and not while the
//   tab is hidden, so the page never costs pgvisor more than three small requests per second.
//   The queries table and the traffic chart share the same answer (the top 100 queries).
// - One connection state for the whole page: live, offline (pgvisor gone: retry every second),
//   token (the API answered 401), error.

import { Offline, Unauthorized, api, getJson, hasToken, readEvents, setToken, storageGet, storageSet } from "./http.js";
import { adviceMarks, clearAdvice, reconcileAdvice, tickTimes, updateAdviceCount, upsertAdvice } from "./feed.js";
import { renderQueries, renderSessions } from "./tables.js";
import { isSetupStatement } from "./setup.js";
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
      const [queries, sessions, metrics] = await Promise.all([
        getJson(`/api/queries?sort=${page.sort}&limit=${QUERY_FETCH}`),
        getJson("/api/sessions"),
        api("/metrics").then((r) => r.text()),
      ]);
      page.queries = queries.queries || [];
      showQueries();
      renderSessions(sessions.sessions || []);
      recordSample(Date.now(), statementsTotal(metrics), page.queries);
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

// The top `page.limit` queries, without the setup statements when they are hidden (setup.js).
function showQueries() {
  const rows = page.queries;
  const setup = rows.filter((q) => isSetupStatement(q.query)).length;
  const kept = page.hideSetup ? rows.filter((q) => !isSetupStatement(q.query)) : rows;
  renderQueries(kept.slice(0, page.limit));
  $("more-queries").hidden = kept.length <= QUERY_LIMITS[0] && page.limit === QUERY_LIMITS[0];
  const hidden = page.hideSetup ? setup : 0;
  $("setup-hidden").textContent = hidden ? `${hidden} hidden` : "";
  $("queries-empty").textContent = hidden
    ? "Only DDL and maintenance statements so far: clear \u201cHide DDL and maintenance\u201d to see them."
    : "No queries recorded yet.";
}

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
