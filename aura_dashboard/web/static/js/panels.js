// The governance, ai_system, arena and chat panels. Each renders the fields its streams'
// contract declares (GET /api/streams), formatted by their declared unit.
import { Cards } from "./cards.js";
import { badge, el, fieldGrid, muted, replace, stamp, stateNote, table, time } from "./util.js";

const AUDIT_PAGE = 50;

/** "high_error_rate:governance" that may break after "_" and ":" (and nowhere else). */
function breakable(text) {
  return el("span", {}, String(text).split(/(?<=[_:])/).flatMap((part, i) => (i ? [el("wbr"), part] : [part])));
}

/** An audit entry's particulars in words: "kind: cpu_percent · message: CPU at 96.4 %", not a
 * line of JSON cut off at the card's edge. */
function particulars(c, detail) {
  if (!detail || typeof detail !== "object" || Array.isArray(detail)) return c.format("audit", "detail", detail);
  return Object.entries(detail).filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ") || "–";
}

/** A backend's health (as the backends stream has it) as a badge and its latency. Never
 * checked (0 checks: health checks off, or the first still to come) is no "unknown" alarm:
 * it says so, and why. */
function health(c, stream, prefix, state) {
  if (state.status === "unknown" && !state.checks) {
    return [badge("not checked", "neutral"), " ", el("span", { class: "muted", text: c.isOn("backends")
      ? "its first health check is still to come" : "health checks are off (health_checks.enabled)" })];
  }
  return [badge(state.status), " ", el("span", { class: "muted", text: c.format(stream, `${prefix}.latency_ms`, state.latency_ms) })];
}

export class GovernancePanel extends Cards {
  /** @param getJson  (path) => the JSON of a REST read (with the API key) */
  constructor(contract, getJson) {
    super(contract, {}, { audit: "no audited actions yet" });
    this.getJson = getJson;
    this.audit = new Map();
    this.older = null;          // the cursor of the next older page, null when none (or no paging)
    this.auditState = "idle";   // idle, loading, loaded, error
  }

  /** The panel opened: the latest page of the audit log comes from the store, not only what
   * happens from now on. */
  attach(channel) {
    if (this.auditState === "idle") this.loadAudit();
    // A read that failed is tried again when the panel (re)connects.
    channel.socket.on("connect", () => { if (this.auditState === "error") this.loadAudit(); });
  }

  async loadAudit(before = null) {
    this.auditState = "loading";
    if (!this.audit.size) stateNote("audit", "loading", "loading the audit log…");
    const query = new URLSearchParams({ limit: String(AUDIT_PAGE) });
    if (before !== null) query.set("before", String(before));
    try {
      const page = await this.getJson(`/api/audit?${query}`);
      for (const entry of page.entries || []) if (entry && entry.id !== undefined) this.audit.set(entry.id, entry);
      // Paging where the server offers it ({more, next_before}); without it, no "older".
      this.older = page.more && page.next_before !== null && page.next_before !== undefined ? page.next_before : null;
      this.auditState = "loaded";
    } catch (err) {
      this.auditState = "error";
      if (!this.audit.size) { stateNote("audit", "error", `could not read the audit log (${err.message})`); return; }
    }
    this.renderAudit();
  }

  renderAudit() {
    const c = this.contract;
    const rows = [...this.audit.values()].sort((a, b) => b.ts - a.ts);
    if (!rows.length) { stateNote("audit", "empty", "no audited actions yet"); return; }
    const older = this.older !== null
      ? el("button", { type: "button", class: "older", text: "older" }) : null;
    if (older) older.addEventListener("click", () => { older.disabled = true; this.loadAudit(this.older); });
    replace("audit", table([
      { label: "time", value: (r) => c.format("audit", "ts", r.ts) }, { label: "actor", value: (r) => r.actor },
      { label: "action", value: (r) => r.action }, { label: "target", value: (r) => breakable(r.target ?? "–") },
      { label: "detail", value: (r) => el("span", { class: "audit-detail", text: particulars(c, r.detail) }) },
    ], rows), older);
  }

  empty(stream) {
    if (stream === "audit" && this.auditState !== "idle") return;  // the store's page says it
    super.empty(stream);
  }

  envelopes(stream, list) {
    const c = this.contract;
    if (stream === "governance" && list.length) {
      const d = list[list.length - 1].data;
      const last = d.audit.last;
      replace("governance",
        el("div", {}, el("span", { class: "muted", text: "service " }), ...health(c, "governance", "service", d.service)),
        fieldGrid(c, "governance", d.service, "service."),
        fieldGrid(c, "governance", d.audit, "audit."),
        el("div", { class: "muted", text: `last hour: ${Object.entries(d.audit.last_hour).map(([a, n]) => `${a} ${n}`).join(", ") || "nothing audited"}` }),
        last ? el("div", { class: "muted", text: `last audited: ${last.action} of ${last.target} by ${last.actor}, ${c.format("audit", "ts", last.ts)}` }) : null);
      stamp("governance", "governance", list[list.length - 1].ts);
    }
    if (stream === "audit") {
      for (const e of list) this.audit.set(e.data.id, e.data);
      if (this.auditState !== "loading" || this.audit.size) this.renderAudit();
    }
  }
}

export class AiPanel extends Cards {
  constructor(contract) { super(contract); }
  envelopes(stream, list) {
    if (!list.length) return;
    const c = this.contract;
    const d = list[list.length - 1].data;
    const ts = list[list.length - 1].ts;
    if (stream === "models") {
      const entries = d.entries || [];
      replace("models", el("div", {}, el("span", { class: "muted", text: "ML backend " }), ...health(c, "models", "backend", d.backend)),
        entries.length ? table([{ label: "model", value: (m) => m.name },
          { label: "status", value: (m) => (m.status ? badge(m.status) : "–") },
          { label: "details", value: (m) => Object.entries(m.details).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ") }],
        entries) : muted(d.models_note || "no models reported"));
      stamp("models", "models", ts);
    }
    if (stream === "inference") {
      const rows = Object.entries(d.models).map(([model, v]) => ({ model, ...v }));
      const f = (path) => (r) => c.format("inference", `models.*.${path}`, r[path]);
      replace("inference", rows.length ? table([
        { label: "model", value: (r) => r.model },
        { label: "req/s", num: true, value: f("rps") },
        { label: "p50", num: true, value: f("p50_ms") },
        { label: "p95", num: true, value: f("p95_ms") },
        { label: "p99", num: true, value: f("p99_ms") },
        { label: "errors", num: true, value: f("error_rate") },
      ], rows) : muted("no inference results in the window"));
      stamp("inference", "inference", ts);
    }
  }
}

export class ArenaPanel extends Cards {
  constructor(contract) { super(contract, {}, { debates: "no debates yet" }); this.debates = new Map(); }
  envelopes(stream, list, info = {}) {
    // A subscribe's snapshot is the whole truth (debates of a server that restarted are gone);
    // only a resume with nothing lost adds to what the page holds.
    if (info.history && (info.gap || !info.resumed)) this.debates.clear();
    for (const e of list) {
      const d = e.data || {};
      if (d.id !== undefined) this.debates.set(d.id, { ...d, ts: e.ts });
    }
    const all = [...this.debates.values()].sort((a, b) => (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) || b.ts - a.ts);
    if (!all.length) { stateNote("debates", "empty", "no debates yet"); return; }
    replace("debates", all.slice(0, 50).map((d) => el("div", { class: "debate", "data-debate": d.id },
      el("div", { class: "host-head" }, el("strong", { text: d.topic || d.id }), badge(d.status || "unknown"),
        d.winner ? el("span", { text: `winner: ${d.winner}` }) : null),
      el("div", { class: "muted", text: (d.participants || []).join(" · ") }),
      (Array.isArray(d.turns) ? d.turns : []).map((t) => el("div", { class: "turn" },
        el("b", { text: `${t.speaker ?? "?"}: ` }), t.text ?? "")))));
  }
}

/** A chat failure in words; the raw reason stays for the details toggle. */
export function chatWords(code, reason) {
  const raw = String(reason || "");
  if (code === "queue_full") return "the chat queue is full; try again in a moment";
  if (code === "debug_disabled") return "debug mode is switched off";
  if (code === "bad_mode") return "this mode is not offered";
  if (code === "not_connected") return "not connected to the server";
  if (code === "timeout") return "the server did not acknowledge the message in time";
  if (/ClientConnector|Connect call failed|Cannot connect|ConnectionRefused/i.test(raw)) return "the chat backend is unreachable";
  if (/timeout|timed out|no answer/i.test(raw)) return "the chat backend did not answer in time";
  const http = raw.match(/HTTP (\d{3})/);
  if (http) return http[1].startsWith("5") ? `the chat backend failed (HTTP ${http[1]})` : `the chat backend refused the message (HTTP ${http[1]})`;
  return raw || code || "failed";
}

export class ChatPanel extends Cards {
  /**
   * @param modes  panels.chat.modes
   * @param flags  () => the effective feature flags (a mode that is off is not offered)
   */
  constructor(contract, modes, flags = () => ({})) {
    super(contract, { status: "chat-status" });
    this.messages = new Map();
    this.modes = modes;
    this.flags = flags;
    this.select = document.getElementById("chat-mode");
    this.offerModes();
    document.getElementById("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("chat-text");
      if (input.value.trim()) this.send(input.value.trim(), this.select.value);
      input.value = "";
    });
  }

  /** The modes that are on now: `debug` only while features.debug_mode is. */
  offerModes() {
    const flags = this.flags();
    const offered = this.modes.filter((m) => m !== "debug" || flags.debug_mode === true);
    const current = this.select.value;
    this.select.replaceChildren(...offered.map((m) => el("option", { value: m, text: m })));
    if (offered.includes(current)) this.select.value = current;
  }

  /** The chat backend's (mcp's) health, from the backends stream: the form says when it is down. */
  backend(state) {
    const note = document.getElementById("chat-backend");
    const down = !!state && state.status === "down";
    note.hidden = !down;
    document.getElementById("chat-form").dataset.backend = state ? state.status : "unknown";
    if (down) note.textContent = "The chat backend is down: messages will wait in the queue and may fail.";
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
      Object.assign(message, { state: "failed", detail: chatWords("not_connected") });
      this.render();
      return;
    }
    this.channel.socket.timeout(30000).emit("message", { text, mode }, (err, ack) => {
      if (err || !ack || !ack.ok) {
        const error = err ? { code: "timeout", message: String(err.message || err) } : (ack && ack.error) || {};
        Object.assign(message, { state: "failed", detail: chatWords(error.code, error.message), raw: error.message || error.code });
      } else {
        message.id = ack.id;
        if (message.state === "sending" && !message.updated) message.state = "queued";
        if (!message.updated && typeof ack.position === "number" && ack.position > 0) message.detail = `position ${ack.position}`;
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
    if (!message) { message = { id: u.id, text: "", mode: u.mode || "" }; this.messages.set(u.id, message); }
    message.updated = true;
    message.state = u.state;  // queued, sending, retrying, done, failed (docs/protocol.md, Chat)
    message.raw = undefined;
    if (u.state === "retrying") {
      message.detail = `attempt ${u.attempt}: ${chatWords(null, u.reason)}`;
      message.raw = u.reason;
    } else if (u.state === "queued") message.detail = `position ${u.position}`;
    else if (u.state === "sending") message.detail = "";
    else if (u.state === "failed") { message.detail = chatWords(null, u.reason); message.raw = u.reason; }
    else if (u.state === "done") {
      message.reply = u.reply;
      message.detail = typeof u.latency_ms === "number" ? `answered in ${this.contract.format("status", "latency_p50_ms", u.latency_ms)}` : "";
    }
    this.render();
  }

  render() {
    const log = document.getElementById("chat-log");
    log.replaceChildren(...[...this.messages.values()].map((m) => el("div", { class: "msg", "data-state": m.state, "data-id": m.id || m.local },
      el("div", { class: "meta" }, badge(m.state), el("span", { text: m.mode }), el("span", { class: "msg-detail", text: m.detail || "" })),
      el("div", { text: m.text }),
      m.raw && m.raw !== m.detail ? el("details", { class: "alert-detail" }, el("summary", { text: "details" }), el("code", { text: m.raw })) : null,
      m.reply !== undefined ? (typeof m.reply === "string"
        ? el("div", { class: "reply", text: m.reply })
        : el("pre", { class: "reply json", text: JSON.stringify(m.reply, null, 2) })) : null)));
    log.scrollTop = log.scrollHeight;
  }

  envelopes(stream, list) {
    if (stream === "status" && list.length) {
      replace("chat-status", fieldGrid(this.contract, "status", list[list.length - 1].data));
      stamp("chat-status", "status", list[list.length - 1].ts);
    }
  }
}
