// The governance, ai_system, arena and chat panels. Their streams' data is sketched by the
// protocol, so each renderer takes the documented fields and shows any others plainly.
import { badge, el, kv, ms, muted, num, pct, pick, replace, table, time } from "./util.js";

const unavailable = (target, error) =>
  replace(target, muted(`not available: ${error.code}${error.message ? ` (${error.message})` : ""}`));
const rate = (v) => (typeof v === "number" ? pct(v <= 1 ? v * 100 : v) : "–");

export class GovernancePanel {
  constructor() { this.audit = new Map(); }
  envelopes(stream, list) {
    if (stream === "governance" && list.length) {
      const d = list[list.length - 1].data || {};
      const status = pick(d, ["status", "state"], d.service && d.service.status);
      replace("governance", el("div", {}, badge(status || "unknown"), " ",
        el("span", { class: "muted", text: ms(d.latency_ms) })), kv(d, ["status", "state"]),
        d.summary && typeof d.summary === "object" ? kv(d.summary) : null);
    }
    if (stream === "audit") {
      for (const e of list) {
        const entry = e.data || {};
        this.audit.set(entry.id ?? `${e.source}:${e.seq}`, { ...entry, ts: entry.ts ?? e.ts });
      }
      const rows = [...this.audit.values()].sort((a, b) => b.ts - a.ts).slice(0, 200);
      replace("audit", rows.length ? table([
        { label: "time", value: (r) => time(r.ts) }, { label: "actor", value: (r) => r.actor },
        { label: "action", value: (r) => r.action }, { label: "target", value: (r) => r.target },
        { label: "detail", value: (r) => (typeof r.detail === "object" ? JSON.stringify(r.detail) : r.detail) },
      ], rows) : muted("no audited actions yet"));
    }
  }
  unavailable(stream, error) { unavailable(stream, error); }
}

export class AiPanel {
  envelopes(stream, list) {
    if (!list.length) return;
    const d = list[list.length - 1].data || {};
    if (stream === "models") {
      const models = d.models || [];
      const entries = Array.isArray(models) ? models.map((m) => (typeof m === "object" ? m : { name: m }))
        : Object.entries(models).map(([name, m]) => ({ name, ...(typeof m === "object" ? m : { status: m }) }));
      replace("models", el("div", {}, badge(pick(d, ["status", "state"], "unknown")), " ",
        el("span", { class: "muted", text: ms(d.latency_ms) })),
        entries.length ? table([{ label: "model", value: (m) => pick(m, ["name", "id", "model"]) },
          { label: "status", value: (m) => (m.status ? badge(m.status) : "–") },
          { label: "details", value: (m) => Object.entries(m).filter(([k, v]) => !["name", "id", "model", "status"].includes(k) && typeof v !== "object").map(([k, v]) => `${k}: ${v}`).join(", ") }],
        entries) : muted("no models reported"));
    }
    if (stream === "inference") {
      const all = d.models || d;
      const rows = Array.isArray(all) ? all : Object.entries(all)
        .filter(([, v]) => v && typeof v === "object").map(([model, v]) => ({ model, ...v }));
      const lat = (r, p) => pick(r, [`p${p}_ms`, `latency_p${p}_ms`, `p${p}`], r.latency_ms && pick(r.latency_ms, [`p${p}`]));
      replace("inference", rows.length ? table([
        { label: "model", value: (r) => pick(r, ["model", "name"]) },
        { label: "req/s", num: true, value: (r) => num(pick(r, ["rps", "requests_per_s", "requests_per_second"]), 2) },
        { label: "p50", num: true, value: (r) => ms(lat(r, 50)) },
        { label: "p95", num: true, value: (r) => ms(lat(r, 95)) },
        { label: "p99", num: true, value: (r) => ms(lat(r, 99)) },
        { label: "errors", num: true, value: (r) => rate(pick(r, ["error_rate", "errors"])) },
      ], rows) : muted("no inference results in the window"));
    }
  }
  unavailable(stream, error) { unavailable(stream, error); }
}

export class ArenaPanel {
  constructor() { this.debates = new Map(); }
  envelopes(stream, list) {
    for (const e of list) {
      const d = e.data || {};
      if (d.id !== undefined) this.debates.set(d.id, { ...d, ts: e.ts });
    }
    const all = [...this.debates.values()].sort((a, b) => (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) || b.ts - a.ts);
    replace("debates", all.length ? all.slice(0, 50).map((d) => el("div", { class: "debate", "data-debate": d.id },
      el("div", { class: "host-head" }, el("strong", { text: d.topic || d.id }), badge(d.status || "unknown"),
        d.winner ? el("span", { text: `winner: ${d.winner}` }) : null),
      el("div", { class: "muted", text: (d.participants || []).join(" · ") }),
      (Array.isArray(d.turns) ? d.turns : []).map((t) => el("div", { class: "turn" },
        el("b", { text: `${t.speaker ?? "?"}: ` }), t.text ?? "")))) : muted("no debates"));
  }
  unavailable(stream, error) { unavailable("debates", error); }
}

export class ChatPanel {
  constructor(modes) {
    this.messages = new Map();
    const select = document.getElementById("chat-mode");
    select.replaceChildren(...modes.map((m) => el("option", { value: m, text: m })));
    document.getElementById("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("chat-text");
      if (input.value.trim()) this.send(input.value.trim(), select.value);
      input.value = "";
    });
  }
  attach(channel) {
    this.channel = channel;
    channel.socket.on("chat_update", (payload) => this.update(payload && payload.stream && payload.data ? payload.data : payload));
  }
  send(text, mode) {
    const local = `local-${Date.now()}-${Math.random().toString(16).slice(2)}`;
    const message = { local, text, mode, state: "sending", detail: "" };
    this.messages.set(local, message);
    this.render();
    if (!this.channel || !this.channel.socket.connected) {
      Object.assign(message, { state: "failed", detail: "not connected" });
      this.render();
      return;
    }
    this.channel.socket.timeout(30000).emit("message", { text, mode }, (err, ack) => {
      if (err || !ack || !ack.ok) {
        const error = err ? { code: "timeout", message: String(err.message || err) } : (ack && ack.error) || {};
        Object.assign(message, { state: "failed", detail: `${error.code || "error"}${error.message ? `: ${error.message}` : ""}` });
      } else {
        message.id = ack.id;
        if (message.state === "sending" && !message.updated) message.state = "queued";
        message.detail ||= typeof ack.position === "number" ? `position ${ack.position}` : "";
        // chat_update events may have arrived before the acknowledgement
        const early = this.messages.get(ack.id);
        if (early && early !== message) { Object.assign(message, early, { local, text, mode }); this.messages.delete(ack.id); }
        this.messages.delete(local);
        this.messages.set(ack.id, message);
      }
      this.render();
    });
  }
  update(u) {
    if (!u || u.id === undefined) return;
    let message = this.messages.get(u.id);
    if (!message) { message = { id: u.id, text: u.text || "", mode: u.mode || "" }; this.messages.set(u.id, message); }
    message.updated = true;
    message.state = pick(u, ["state", "status", "event", "type"], message.state);
    if (message.state === "retrying") message.detail = `attempt ${pick(u, ["attempt"], "?")}${u.reason ? `: ${u.reason}` : ""}`;
    else if (message.state === "queued") message.detail = typeof u.position === "number" ? `position ${u.position}` : "";
    else if (message.state === "failed") message.detail = pick(u, ["reason", "error", "message"], "");
    else if (message.state === "done") message.reply = pick(u, ["reply", "response", "text", "answer"], "");
    if (typeof message.detail === "object") message.detail = JSON.stringify(message.detail);
    this.render();
  }
  render() {
    const log = document.getElementById("chat-log");
    log.replaceChildren(...[...this.messages.values()].map((m) => el("div", { class: "msg", "data-state": m.state, "data-id": m.id || m.local },
      el("div", { class: "meta" }, badge(m.state), el("span", { text: m.mode }), el("span", { text: m.detail || "" })),
      el("div", { text: m.text }),
      m.reply !== undefined ? el("div", { class: "reply", text: typeof m.reply === "string" ? m.reply : JSON.stringify(m.reply) }) : null)));
    log.scrollTop = log.scrollHeight;
  }
  envelopes(stream, list) {
    if (stream === "status" && list.length) {
      const d = list[list.length - 1].data || {};
      replace("chat-status", kv(d));
    }
  }
  unavailable(stream, error) { unavailable("chat-status", error); }
}
