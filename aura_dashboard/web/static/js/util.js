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

export function pct(value) { return typeof value === "number" ? `${value.toFixed(1)} %` : "–"; }

export function bytes(value, perSecond = false) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = value, i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}${perSecond ? "/s" : ""}`;
}

export function ms(value) { return typeof value === "number" ? `${value.toFixed(value < 10 ? 1 : 0)} ms` : "–"; }

export function time(ts) {
  if (typeof ts !== "number") return "–";
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

/** The first of `names` that `obj` has, for fields whose spelling the protocol leaves open. */
export function pick(obj, names, fallback = undefined) {
  if (!obj || typeof obj !== "object") return fallback;
  for (const name of names) {
    if (obj[name] !== undefined && obj[name] !== null) return obj[name];
  }
  return fallback;
}

/** A key/value grid of plain fields, for data whose shape the protocol only sketches. */
export function kv(obj, skip = []) {
  const rows = [];
  for (const [key, value] of Object.entries(obj || {})) {
    if (skip.includes(key) || value === null || typeof value === "object") continue;
    rows.push(el("span", { class: "k", text: key.replaceAll("_", " ") }),
      el("span", { class: "v", text: typeof value === "number" ? String(+value.toFixed(3)) : String(value) }));
  }
  return rows.length ? el("div", { class: "kv" }, rows) : muted("no fields");
}

export function table(columns, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null, text: c.label })))),
    el("tbody", {}, rows.map((row) => el("tr", {}, columns.map((c) => {
      const value = c.value(row);
      return el("td", { class: c.num ? "num" : null }, value instanceof Node ? value : String(value ?? "–"));
    })))));
}
