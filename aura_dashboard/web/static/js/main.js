// Starts the page: reads the configuration, the flags and the stream contract (its panels and
// their streams come from the server, GET /api/streams), shows the enabled panels, connects
// every namespace over one Socket.IO manager and asks for the API key when needed.
import { Connection } from "./connection.js";
import { Contract } from "./contract.js";
import { OmniPanel } from "./omni.js";
import { AiPanel, ArenaPanel, ChatPanel, GovernancePanel } from "./panels.js";
import { TimeRange } from "./range.js";
import { Theme } from "./theme.js";
import { Ages } from "./age.js";
import { announce, duration, el } from "./util.js";

const KEY_STORAGE = "aura.apiKey";

const apiKey = () => sessionStorage.getItem(KEY_STORAGE);
let keyWaiters = null;

/** Ask for the API key once (a form, not a prompt); every caller waiting gets the same key. */
function askForKey(why) {
  if (keyWaiters) return keyWaiters.promise;
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  keyWaiters = { promise };
  const dialog = document.getElementById("key-dialog");
  const needed = document.getElementById("key-needed");
  document.getElementById("key-why").textContent = why;
  document.getElementById("key-form").onsubmit = () => {
    const key = document.getElementById("key-input").value.trim();
    sessionStorage.setItem(KEY_STORAGE, key);
    keyWaiters = null;
    needed.hidden = true;
    resolve(key);
  };
  // Escape closes the dialog: the page then says what it is waiting for, with a way back.
  dialog.oncancel = () => {
    document.getElementById("key-needed-text").textContent =
      `${why} Nothing can be shown without it.`;
    needed.hidden = false;
    const state = document.getElementById("server-state");
    state.textContent = "API key needed";
    state.className = "badge bad";
  };
  document.getElementById("key-open").onclick = () => { needed.hidden = true; dialog.showModal(); };
  dialog.showModal();
  return promise;
}

async function getJson(path) {
  for (;;) {
    const headers = apiKey() ? { "X-API-Key": apiKey() } : {};
    const response = await fetch(path, { headers });
    if (response.status === 401 || response.status === 403) {
      await askForKey(apiKey() ? "The API key was refused; enter it again." : "This dashboard needs an API key.");
      continue;
    }
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }
}

function notice(text) {
  const node = document.getElementById("notice");
  node.textContent = text;
  node.hidden = !text;
}

function connectionText(connection, channel) {
  if (channel.refused) return [channel.refused.code === "unauthorized" ? "unauthorized" : channel.refused.code, "bad"];
  if (connection.state === "reconnecting") {
    return [`reconnecting in ${connection.schedule.secondsLeft()} s (attempt ${connection.attempt})`,
      connection.escalated ? "bad" : "warn"];
  }
  if (connection.state === "disconnected") return ["disconnected", "bad"];
  if (channel.socket.connected) return [`connected · ${connection.transport || "?"}`, "ok"];
  return ["connecting…", "warn"];
}

/** The banner while the server is away: how long, why, when the next attempt is, and a button. */
function connectionNotice(connection) {
  const banner = document.getElementById("connection-notice");
  const lost = connection.state !== "connected" && connection.schedule.lostAt !== null;
  banner.hidden = !lost;
  if (!lost) return;
  const away = duration(connection.schedule.secondsAway());
  const why = connection.lastReason ? ` (${connection.lastReason})` : "";
  const next = connection.state === "reconnecting" ? `next attempt in ${connection.schedule.secondsLeft()} s`
    : connection.state === "connecting" ? "trying now…" : "automatic reconnection is off";
  banner.className = `notice ${connection.escalated ? "bad" : ""}`;
  banner.dataset.escalated = String(connection.escalated);
  document.getElementById("connection-text").textContent = connection.escalated
    ? `The server has been unreachable for ${away}${why}, ${connection.attempt} attempts so far. Still trying (${next}); the page catches up by itself when it is back.`
    : `Lost the server ${away} ago${why}; ${next}.`;
}

const theme = new Theme();
theme.button(document.getElementById("theme-toggle"));

async function start() {
  const [config, features, described] = await Promise.all(
    [getJson("/api/config"), getJson("/api/features"), getJson("/api/streams")]);
  let flags = features.effective || {};
  const contract = new Contract(described);
  const capacity = config.panels.omni_monitor.graph_history_points;
  const range = new TimeRange(getJson);
  range.picker(document.querySelector("#panel-omni_monitor > header"));
  const connection = new Connection({
    path: config.websocket.path, reconnect: config.websocket.reconnect,
    fallback: flags.websocket_fallback !== false, timeoutMs: config.websocket.connect_timeout_ms, apiKey,
  });
  const views = {
    omni_monitor: new OmniPanel(contract, capacity, range, (config.monitoring || {}).thresholds || {}), governance: new GovernancePanel(contract, getJson),
    ai_system: new AiPanel(contract), arena: new ArenaPanel(contract),
    chat: new ChatPanel(contract, config.panels.chat.modes || ["auto"], () => flags),
  };
  // The chat form hears how the chat backend (mcp) is, from the backends stream.
  views.omni_monitor.onBackends = (data) => views.chat.backend(data && data.mcp);
  const channels = {};
  const ages = new Ages();
  // Every value stamped with its sample time (util.stamp) is dimmed past twice its stream's
  // interval, and says how old it is.
  const markAges = () => {
    const now = Date.now();
    for (const node of document.querySelectorAll("[data-ts]")) {
      const { stale, text } = ages.describe(Number(node.dataset.ts), contract.intervalMs(node.dataset.stream), now);
      node.classList.toggle("stale", stale);
      const head = node.querySelector(":scope > .host-head") || node;
      let label = head.querySelector(":scope > .age");
      if (stale) {
        if (!label) { label = el("span", { class: "age" }); head.prepend(label); }
        label.textContent = text;
      } else if (label) label.remove();
    }
    for (const node of document.querySelectorAll("[data-since]")) {
      node.textContent = duration(ages.ageMs(Number(node.dataset.since), now) / 1000);
    }
  };
  setInterval(markAges, 500);
  const connectPanel = (panel) => {
    const section = document.getElementById(`panel-${panel.name}`);
    const view = views[panel.name];
    const badge = section.querySelector(".conn");
    const notes = section.querySelector(".notes");
    const channel = connection.channel(panel.namespace, panel.streams, {
      envelopes: (stream, list, info) => {
        // A break is said once, where a chart shows it, and fades; other panels show the latest.
        if (info.gap && info.resumed && view.charted && view.charted.has(stream)) {
          notes.textContent = `Some ${stream} data was lost while disconnected (the server restarted or its buffer moved on); the charts show the break.`;
          notes.classList.remove("fade");
          // A second break restarts the note's time (the first one's timers would cut it short).
          clearTimeout(notes.fadeTimer);
          clearTimeout(notes.clearTimer);
          notes.fadeTimer = setTimeout(() => notes.classList.add("fade"), 10000);
          notes.clearTimer = setTimeout(() => { notes.textContent = ""; notes.classList.remove("fade"); }, 13000);
        }
        if (!info.history) { const now = Date.now(); for (const e of list) ages.observe(e.ts, now); }
        if (view.available) view.available(stream);
        view.envelopes(stream, list, info);
      },
      unavailable: (stream, error) => view.unavailable(stream, error),
      subscribed: (stream, count) => { if (!count && view.empty) view.empty(stream); },
      features: (body) => { if (body && body.effective) { flags = body.effective; views.chat.offerModes(); } followFlags(); },
      status: () => {
        const [text, kind] = connectionText(connection, channel);
        badge.textContent = text;
        badge.className = `conn badge ${kind}`;
        section.dataset.connected = String(channel.socket.connected);
      },
      refused: async (error, ch) => {
        if (error.code === "panel_disabled") section.hidden = true;
        if (error.code === "unauthorized") {
          await askForKey(apiKey() ? "The API key was refused; enter it again." : "This dashboard needs an API key.");
          for (const other of Object.values(channels)) if (other.refused) other.restart();
          if (ch.refused) ch.restart();
        }
      },
    });
    channels[panel.name] = channel;
    if (view.attach) view.attach(channel);
    return channel;
  };
  for (const panel of contract.panels) {
    document.getElementById(`panel-${panel.name}`).hidden = !panel.on;
    if (panel.on) connectPanel(panel);
  }

  // A flag changed (the `features` event on any namespace), or the page is back after an
  // outage: read which panels and streams are on, and show, hide, connect, subscribe to match.
  let following = null, again = false;
  const followFlags = () => {
    if (following) { again = true; return following; }
    following = (async () => {
      do {
        again = false;
        try {
          contract.update(await getJson("/api/streams"));
          for (const panel of contract.panels) {
            const section = document.getElementById(`panel-${panel.name}`);
            section.hidden = !panel.on;
            if (!panel.on) continue;
            const channel = channels[panel.name] || connectPanel(panel);
            if (channel.refused) channel.restart(); else channel.start();
            const view = views[panel.name];
            for (const stream of panel.streams) {
              const state = channel.streams[stream];
              if (!contract.isOn(stream)) view.unavailable(stream, { code: "stream_disabled", message: "" });
              else if (state.error && state.error.code === "stream_disabled" && view.waiting) view.waiting(stream);
            }
            channel.retryRefusedStreams();
          }
        } catch (err) {
          console.warn("could not follow the flags", err);
        }
      } while (again);
      following = null;
    })();
    return following;
  };
  let reconnectsSeen = 0;
  connection.onChange(() => {
    if (connection.reconnects > reconnectsSeen) { reconnectsSeen = connection.reconnects; followFlags(); }
  });

  const refresh = () => {
    for (const channel of Object.values(channels)) channel.changed();
    const state = document.getElementById("server-state");
    state.textContent = connection.state === "connected" ? `live · ${connection.transport}` : connection.state;
    state.className = `badge ${connection.state === "connected" ? "ok" : connection.escalated || connection.state === "disconnected" ? "bad" : "warn"}`;
    connectionNotice(connection);
  };
  connection.onChange(refresh);
  theme.onChange(() => views.omni_monitor.redraw());
  let said = connection.state;
  connection.onChange(() => {
    const now = connection.state === "connected" ? "connected" : connection.state === "connecting" ? said : "lost";
    if (now === said) return;
    if (now === "lost" && said === "connected") announce("Connection to the server lost; reconnecting.");
    if (now === "connected" && said === "lost") announce("Connected to the server again.");
    said = now;
  });
  document.getElementById("retry-now").addEventListener("click", () => connection.retryNow());
  setInterval(() => {
    document.getElementById("clock").textContent = new Date().toLocaleTimeString([], { hour12: false });
    if (connection.state !== "connected") refresh();
  }, 1000);
  connection.open();

  // For people debugging in the console, and for the browser tests.
  window.aura = {
    connection, channels, views, contract, followFlags,
    theme: (choice) => theme.set(choice),
    hosts: () => views.omni_monitor.debug(),
    charts: () => views.omni_monitor.charts(),
    range: () => range.debug(),
    reconnects: () => connection.reconnects,
    // Each stream: subscribed or why not, and the state its card shows.
    states: () => Object.fromEntries(Object.entries(channels).flatMap(([panel, ch]) => Object.values(ch.streams).map((s) => [s.name, {
      panel, connected: ch.socket.connected, refused: ch.refused && ch.refused.code, subscribed: s.subscribed,
      error: s.error && s.error.code, card: (document.getElementById(views[panel].target ? views[panel].target(s.name) : s.name) || {}).dataset?.state,
    }]))),
    lastSeq: (ns, stream) => channels[ns] && channels[ns].streams[stream].lastSeq,
    // A stream's numbering: floor (every seq below it taken), repairs (holes asked for again).
    sequence: (ns, stream) => channels[ns] && channels[ns].streams[stream].sequence,
  };
  document.body.dataset.ready = "true";
}

start().catch((err) => {
  notice(`The dashboard could not start: ${err.message}`);
  console.warn(err);
});
