// One Socket.IO manager (one transport) for every panel namespace, reconnecting on its own
// schedule from `websocket.reconnect` (reconnect.js: for ever, capped), and one Channel per
// namespace that (re)subscribes to its streams with `since`, so a short outage leaves no hole
// and no duplicate.
import { Manager } from "/static/vendor/socket.io.esm.min.js";
import { ReconnectSchedule, backoffDelay } from "./reconnect.js";
import { HOLE_REPAIR_MS, StreamSequence } from "./sequence.js";

export { backoffDelay };

export class Connection {
  /**
   * @param options.path          websocket.path
   * @param options.reconnect     websocket.reconnect
   * @param options.fallback      features.websocket_fallback: long-polling allowed
   * @param options.timeoutMs     websocket.connect_timeout_ms
   * @param options.apiKey        () => the API key or null
   */
  constructor(options) {
    this.options = options;
    this.channels = [];
    this.listeners = new Set();
    this.schedule = new ReconnectSchedule(options.reconnect);
    this.reconnects = 0;       // successful re-opens after a loss (for people and tests)
    this.attempts = 0;         // every attempt started, scheduled or asked for (for tests)
    this.everOpened = false;
    this.manager = new Manager(window.location.origin, {
      path: options.path,
      autoConnect: false,
      reconnection: false,     // our own schedule (reconnect.js) follows websocket.reconnect
      transports: options.fallback ? ["websocket", "polling"] : ["websocket"],
      tryAllTransports: !!options.fallback,
      timeout: options.timeoutMs || 20000,
    });
    this.isOpen = false;  // the manager's own ready state is private (and mangled in the build)
    this.inFlight = false;
    this.manager.on("close", (reason) => { this.isOpen = false; this.lost(reason); });
    // A failed open (also one started by a namespace's own connect()) reports "error".
    this.manager.on("error", (err) => this.lost((err && err.message) || "connect failed"));
    this.manager.on("open", () => {
      this.isOpen = true;
      this.inFlight = false;
      const engine = this.manager.engine;
      engine.on("upgrade", () => this.changed());
      this.changed();
    });
  }

  get transport() {
    return this.isOpen && this.manager.engine ? this.manager.engine.transport.name : null;
  }

  /** connected, connecting (an attempt is under way), reconnecting (one is scheduled) or
   * disconnected (reconnecting is switched off: only "retry now"). */
  get state() {
    if (this.isOpen) return "connected";
    if (this.schedule.scheduled) return "reconnecting";
    if (this.inFlight || !this.everOpened) return "connecting";
    return "disconnected";
  }

  /** The loss has lasted past `max_attempts` attempts. */
  get escalated() { return !this.isOpen && this.schedule.escalated; }

  get attempt() { return this.schedule.attempt; }
  get retryAt() { return this.schedule.retryAt; }

  onChange(listener) { this.listeners.add(listener); }
  changed() { for (const listener of this.listeners) listener(this); }

  channel(namespace, streams, handlers) {
    const channel = new Channel(this, namespace, streams, handlers);
    this.channels.push(channel);
    return channel;
  }

  open() {
    clearTimeout(this.timer);
    this.schedule.starting();
    this.inFlight = true;
    this.attempts += 1;
    this.changed();
    this.manager.open((err) => {
      if (err) return;  // the "error" listener schedules the next attempt
      this.inFlight = false;
      if (this.everOpened) this.reconnects += 1;
      this.everOpened = true;
      this.schedule.opened();
      this.changed();
    });
    for (const channel of this.channels) channel.start();
  }

  lost(reason) {
    this.lastReason = String(reason || "");
    if (this.schedule.scheduled || this.isOpen) return;  // scheduled, or not lost
    this.inFlight = false;
    const delay = this.schedule.failed();
    this.changed();
    if (delay !== null) this.timer = setTimeout(() => this.open(), delay);
  }

  /** The "retry now" button: an attempt at once, the schedule going on from there. */
  retryNow() {
    if (this.isOpen) return;
    this.open();
  }
}

/** One namespace: its socket, and each stream's subscription and numbering (sequence.js). */
export class Channel {
  constructor(connection, namespace, streams, handlers) {
    this.connection = connection;
    this.namespace = namespace;
    this.handlers = handlers;
    this.refused = null;   // {code, message} once the server refused this namespace
    this.streams = Object.fromEntries(streams.map((name) => [name, {
      name, sequence: new StreamSequence(), subscribed: false, error: null,
      get lastSeq() { return this.sequence.lastSeq; },
    }]));
    this.socket = connection.manager.socket(namespace, { auth: (cb) => cb(this.auth()) });
    this.socket.on("connect", () => { this.refused = null; this.subscribeAll(); this.changed(); });
    this.socket.on("disconnect", (reason) => {
      for (const state of Object.values(this.streams)) { state.subscribed = false; state.sequence.abandoned(); }
      this.changed();
      if (reason === "io server disconnect") {
        // The server closed this namespace (a panel switched off): ask again later.
        setTimeout(() => this.socket.connect(), backoffDelay(connection.options.reconnect, 0));
      }
    });
    this.socket.on("connect_error", (err) => {
      if (err && err.data && err.data.code) {
        this.refused = err.data;
        this.changed();
        if (handlers.refused) handlers.refused(err.data, this);
      }
    });
    this.socket.on("batch", (list) => { for (const envelope of list || []) this.route(envelope); });
    this.socket.on("features", (body) => { if (handlers.features) handlers.features(body, this); });
    for (const name of streams) this.socket.on(name, (envelope) => this.route(envelope));
    // The stream's numbering changed (the cluster's Redis lost its data, this instance's link
    // to it broke, or it is away): resubscribe with `since`, which the server answers with
    // `gap` and the new epoch's envelopes; the envelopes that come meanwhile are of the new
    // epoch already, and wait for that answer (sequence.js).
    this.socket.on("epoch", (notice) => {
      const state = notice && this.streams[notice.stream];
      if (state && state.subscribed) this.subscribe(state);
    });
    // A `seq` missing below the highest for HOLE_REPAIR_MS is asked for again.
    this.holeCheck = setInterval(() => this.repairHoles(), HOLE_REPAIR_MS / 3);
  }

  auth() {
    const key = this.connection.options.apiKey();
    return key ? { api_key: key } : {};
  }

  /** Connect unless connected, refused, or already on its way (a second connect() while one is
   * under way sends the namespace's CONNECT twice, and a subscribe can be lost between them). */
  start() { if (!this.refused && !this.socket.connected && !this.socket.active) this.socket.connect(); }

  /** Try again after a refusal (a new API key was given). */
  restart() { this.refused = null; this.socket.connect(); }

  changed() { if (this.handlers.status) this.handlers.status(this); }

  /** Subscribe again to the streams refused as switched off (a flag came back on). */
  retryRefusedStreams() {
    if (!this.socket.connected) return;
    for (const state of Object.values(this.streams)) if (state.error && !state.subscribed) this.subscribe(state);
  }

  subscribeAll() {
    for (const state of Object.values(this.streams)) this.subscribe(state);
  }

  repairHoles() {
    if (!this.socket.connected) return;
    for (const state of Object.values(this.streams)) {
      if (state.subscribed && state.sequence.holeOutstanding()) {
        state.sequence.repairing();
        this.subscribe(state);
      }
    }
  }

  subscribe(state) {
    // One request per stream: a stream that is off must not take the others down with it.
    const payload = { streams: [state.name], ...sinceOf(state) };
    this.socket.timeout(15000).emit("subscribe", payload, (err, ack) => {
      if (err) {
        state.sequence.abandoned();
        if (this.socket.connected) this.subscribe(state);
        return;
      }
      if (!ack || !ack.ok) {
        state.sequence.abandoned();
        state.error = (ack && ack.error) || { code: "bad_answer", message: "no acknowledgement" };
        state.subscribed = false;
        if (this.handlers.unavailable) this.handlers.unavailable(state.name, state.error);
        this.changed();
        return;
      }
      state.error = null;
      const { gap, resumed, history, live } = state.sequence.acked(ack, state.name);
      state.subscribed = true;
      if (this.handlers.subscribed) this.handlers.subscribed(state.name, history.length);
      if (history.length || gap) this.handlers.envelopes(state.name, history, { history: true, gap, resumed });
      if (live.length) this.handlers.envelopes(state.name, live, { history: false, gap: false, resumed });
      this.changed();
    });
  }

  route(envelope) {
    const state = envelope && this.streams[envelope.stream];
    if (!state) return;
    const fresh = state.sequence.arrived(envelope);
    if (fresh.length) this.handlers.envelopes(state.name, fresh, { history: false, gap: false, resumed: false });
  }
}

/** The `since` (and `epoch`) of a stream's next subscribe; envelopes are held from now until
 * its answer (a first subscribe holds them too: they come after the history it answers). */
function sinceOf(state) {
  const asked = state.sequence.request();
  if (asked.since === undefined) return {};
  const payload = { since: { [state.name]: asked.since } };
  if (asked.epoch) payload.epoch = asked.epoch;
  return payload;
}
