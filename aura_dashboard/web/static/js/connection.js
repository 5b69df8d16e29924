// One Socket.IO manager (one transport) for every panel namespace, reconnecting on its own
// schedule from `websocket.reconnect`, and one Channel per namespace that (re)subscribes to
// its streams with `since`, so a short outage leaves no hole and no duplicate.
import { Manager } from "/static/vendor/socket.io.esm.min.js";

/** Delay before reconnection attempt `attempt` (0-based): initial × multiplier^attempt, capped. */
export function backoffDelay(reconnect, attempt) {
  const delay = reconnect.initial_delay_ms * Math.pow(reconnect.backoff_multiplier, attempt);
  return Math.min(delay, reconnect.max_delay_ms);
}

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
    this.attempt = 0;          // failed attempts since the last successful open
    this.retryAt = null;       // when the next attempt is due (ms since epoch)
    this.gaveUp = false;
    this.reconnects = 0;       // successful re-opens after a loss (for people and tests)
    this.everOpened = false;
    this.manager = new Manager(window.location.origin, {
      path: options.path,
      autoConnect: false,
      reconnection: false,     // our own schedule below follows websocket.reconnect exactly
      transports: options.fallback ? ["websocket", "polling"] : ["websocket"],
      tryAllTransports: !!options.fallback,
      timeout: options.timeoutMs || 20000,
    });
    this.isOpen = false;  // the manager's own ready state is private (and mangled in the build)
    this.manager.on("close", (reason) => { this.isOpen = false; this.lost(reason); });
    // A failed open (also one started by a namespace's own connect()) reports "error".
    this.manager.on("error", (err) => this.lost((err && err.message) || "connect failed"));
    this.manager.on("open", () => {
      this.isOpen = true;
      const engine = this.manager.engine;
      engine.on("upgrade", () => this.changed());
      this.changed();
    });
  }

  get transport() {
    return this.isOpen && this.manager.engine ? this.manager.engine.transport.name : null;
  }

  get state() {
    if (this.isOpen) return "connected";
    if (this.gaveUp) return "gave up";
    if (this.retryAt) return "reconnecting";
    return "connecting";
  }

  onChange(listener) { this.listeners.add(listener); }
  changed() { for (const listener of this.listeners) listener(this); }

  channel(namespace, streams, handlers) {
    const channel = new Channel(this, namespace, streams, handlers);
    this.channels.push(channel);
    return channel;
  }

  open() {
    clearTimeout(this.timer);
    this.retryAt = null;
    this.gaveUp = false;
    this.changed();
    this.manager.open((err) => {
      if (err) return;  // the "error" listener schedules the next attempt
      if (this.everOpened) this.reconnects += 1;
      this.everOpened = true;
      this.attempt = 0;
      this.changed();
    });
    for (const channel of this.channels) channel.start();
  }

  lost(reason) {
    this.lastReason = String(reason || "");
    const reconnect = this.options.reconnect;
    if (this.retryAt || this.isOpen) return;  // scheduled, or not lost
    if (!reconnect.enabled || this.attempt >= reconnect.max_attempts) {
      this.gaveUp = true;
      this.changed();
      return;
    }
    const delay = backoffDelay(reconnect, this.attempt);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.changed();
    this.timer = setTimeout(() => this.open(), delay);
  }

  /** Start over after giving up (the "retry" button). */
  retry() { this.attempt = 0; this.open(); }
}

/** One namespace: its socket, its streams' subscriptions and the last `seq` seen of each. */
export class Channel {
  constructor(connection, namespace, streams, handlers) {
    this.connection = connection;
    this.namespace = namespace;
    this.handlers = handlers;
    this.refused = null;   // {code, message} once the server refused this namespace
    this.streams = Object.fromEntries(streams.map((name) => [name, {
      name, lastSeq: null, epoch: 0, serverEpoch: null, seen: new Set(), subscribed: false, pending: [], error: null,
    }]));
    this.socket = connection.manager.socket(namespace, { auth: (cb) => cb(this.auth()) });
    this.socket.on("connect", () => { this.refused = null; this.subscribeAll(); this.changed(); });
    this.socket.on("disconnect", (reason) => {
      for (const state of Object.values(this.streams)) { state.subscribed = false; state.pending = []; }
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
    for (const name of streams) this.socket.on(name, (envelope) => this.route(envelope));
    // The cluster's sequence numbers began again (its Redis lost its data): resubscribe with
    // `since`, which the server answers with `gap` and the new epoch's envelopes.
    this.socket.on("epoch", (notice) => {
      const state = notice && this.streams[notice.stream];
      if (state && state.subscribed) this.subscribe(state);
    });
  }

  auth() {
    const key = this.connection.options.apiKey();
    return key ? { api_key: key } : {};
  }

  start() { if (!this.refused && !this.socket.connected) this.socket.connect(); }

  /** Try again after a refusal (a new API key was given). */
  restart() { this.refused = null; this.socket.connect(); }

  changed() { if (this.handlers.status) this.handlers.status(this); }

  subscribeAll() {
    for (const state of Object.values(this.streams)) this.subscribe(state);
  }

  subscribe(state) {
    // One request per stream: a stream that is off must not take the others down with it.
    const payload = { streams: [state.name] };
    if (state.lastSeq !== null) {
      payload.since = { [state.name]: state.lastSeq };
      // The epoch our numbers belong to: from another one the server answers `gap`.
      if (state.serverEpoch) payload.epoch = state.serverEpoch;
    }
    state.pending = [];
    this.socket.timeout(15000).emit("subscribe", payload, (err, ack) => {
      if (err) { if (this.socket.connected) this.subscribe(state); return; }
      if (!ack || !ack.ok) {
        state.error = (ack && ack.error) || { code: "bad_answer", message: "no acknowledgement" };
        state.subscribed = false;
        if (this.handlers.unavailable) this.handlers.unavailable(state.name, state.error);
        this.changed();
        return;
      }
      state.error = null;
      state.serverEpoch = ack.epoch || null;
      const history = (ack.history && ack.history[state.name]) || [];
      const gap = !!(ack.gap && ack.gap[state.name]);
      const resumed = state.lastSeq !== null;
      if (gap) {
        // What was missed is gone (the buffer moved on, or the server restarted and its seq
        // began again): a new epoch, so old and new sequence numbers never mix.
        state.epoch += 1;
        state.seen.clear();
        state.lastSeq = null;
      }
      state.subscribed = true;
      this.deliver(state, history, { history: true, gap, resumed });
      const pending = state.pending;
      state.pending = [];
      this.deliver(state, pending, { history: false, gap: false, resumed });
      this.changed();
    });
  }

  route(envelope) {
    const state = envelope && this.streams[envelope.stream];
    if (!state) return;
    if (!state.subscribed) { state.pending.push(envelope); return; }
    this.deliver(state, [envelope], { history: false, gap: false, resumed: false });
  }

  deliver(state, envelopes, info) {
    const fresh = [];
    for (const envelope of envelopes) {
      if (typeof envelope.seq !== "number" || state.seen.has(envelope.seq)) continue;
      state.seen.add(envelope.seq);
      if (state.lastSeq === null || envelope.seq > state.lastSeq) state.lastSeq = envelope.seq;
      fresh.push({ ...envelope, epoch: state.epoch });
    }
    if (state.seen.size > 20000) {  // keep the duplicate check bounded
      const floor = state.lastSeq - 10000;
      for (const seq of state.seen) if (seq < floor) state.seen.delete(seq);
    }
    if (fresh.length || info.gap) this.handlers.envelopes(state.name, fresh, info);
  }
}
