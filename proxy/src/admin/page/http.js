// The admin API over fetch(), with the bearer token when the user gave one, and the
// Server-Sent Events parser for the advice stream (EventSource cannot send a header).

let token = storageGet("pgvisor.adminToken") || "";

/** The API refused the token (or wants one). */
export class Unauthorized extends Error {}
/** pgvisor did not answer at all. */
export class Offline extends Error {}

export function storageGet(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

export function storageSet(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: keep it for this page only */ }
}

export const hasToken = () => token !== "";

/** Uses `value` from now on and keeps it in the browser for the next visit. */
export function setToken(value) {
  token = value;
  storageSet("pgvisor.adminToken", value);
}

export async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let res;
  try {
    res = await fetch(path, { ...init, headers, cache: "no-store" });
  } catch (e) {
    if (init.signal && init.signal.aborted) throw e;
    throw new Offline(String(e));
  }
  if (res.status === 401) throw new Unauthorized();
  if (!res.ok) {
    const body = await res.text().catch(() => "");
    throw new Error(`${path} answered HTTP ${res.status} ${body.slice(0, 200)}`);
  }
  return res;
}

export const getJson = (path) => api(path).then((r) => r.json());

// The event stream format: https://html.spec.whatwg.org/multipage/server-sent-events.html
export async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      let line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (event.data.length) onEvent({ event: event.event, id: event.id, data: event.data.join("\n") });
        event = { event: "message", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue; // keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "event") event.event = val;
      else if (field === "data") event.data.push(val);
      else if (field === "id") event.id = val;
    }
  }
}
