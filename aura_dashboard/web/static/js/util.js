// Small DOM and formatting helpers shared by the panels.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(target, ...children) {
  const node = typeof target === "string" ? document.getElementById(target) : target;
  if (!node) return;
  node.classList.remove("muted");
  node.dataset.state = "ready";
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function muted(text) { return el("span", { class: "muted", text }); }

const GOOD = new Set(["up", "ok", "connected", "done", "open", "healthy", "resolved", "ready", "running"]);
const WARN = new Set(["slow", "degraded", "queued", "sending", "retrying", "reconnecting", "connecting",
  "warning", "timed_out", "disabled", "unknown"]);

export function badge(text, kind) {
  const value = String(text ?? "unknown");
  const cls = kind || (GOOD.has(value) ? "ok" : WARN.has(value) ? "warn" : "bad");
  return el("span", { class: `badge ${cls}`, text: value });
}

export function num(value, digits = 1) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

export function time(ts) {
  if (typeof ts !== "number") return "–";
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

/** A key/value grid of a stream's declared scalar fields under `prefix`, each by its unit. */
export function fieldGrid(contract, stream, data, prefix = "") {
  const rows = [];
  for (const field of contract.scalars(stream, prefix)) {
    const key = field.path.slice(prefix.length);
    const value = data ? data[key] : undefined;
    if (value === undefined || value === null) continue;
    rows.push(el("span", { class: "k", text: key.replaceAll("_", " "), title: field.meaning }),
      el("span", { class: "v", text: contract.format(stream, field.path, value) }));
  }
  return rows.length ? el("div", { class: "kv" }, rows) : muted("nothing reported yet");
}

export function table(columns, rows) {
  // In a box of its own, so a wide table scrolls inside its card instead of widening the page.
  return el("div", { class: "table-scroll", tabindex: "0" }, el("table", {},
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null, text: c.label })))),
    el("tbody", {}, rows.map((row) => el("tr", {}, columns.map((c) => {
      const value = c.value(row);
      return el("td", { class: c.num ? "num" : null }, value instanceof Node ? value : String(value ?? "–"));
    }))))));
}

/** "2 min 5 s", "42 s". */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// The four states of a card that has no figures to show, each with its own words:
// loading (asked, nothing yet), empty (answered: there is nothing), disabled (switched off),
// error (could not be had).
export function stateNote(target, state, text) {
  const node = typeof target === "string" ? document.getElementById(target) : target;
  if (!node) return;
  node.classList.remove("muted");
  node.dataset.state = state;
  node.replaceChildren(el("p", { class: `state ${state}`, text }));
}

/** A refused subscription in words: switched off, or what went wrong. */
export function unavailableNote(target, error) {
  if (error.code === "stream_disabled") stateNote(target, "disabled", "switched off");
  else stateNote(target, "error", `not available: ${error.message || error.code}`);
}

/** Mark `target` as showing `stream`'s value sampled at `ts` (s): the page's ticker dims it
 * and says its age once it is stale (age.js). */
export function stamp(target, stream, ts) {
  const node = typeof target === "string" ? document.getElementById(target) : target;
  if (!node || typeof ts !== "number") return;
  node.dataset.stream = stream;
  node.dataset.ts = String(ts);
}

/** Said once to screen readers through the page's aria-live region (connection changes, new alerts). */
export function announce(text) {
  const node = document.getElementById("announcer");
  if (!node) return;
  node.textContent = "";
  setTimeout(() => { node.textContent = text; }, 50);
}
