// The client driver: N official socket.io-client connections in this process, each subscribed
// to its streams (default `alerts`); counts deliveries and the latency from the envelope's `ts`
// to its arrival.
// `ready` reports how many connected and how many had their `subscribe` acknowledged ok.
// Commands on stdin, one a line: `reset` (zero the counters), `report` (print JSON), `exit`.
// Usage: node clients.mjs '{"url", "path", "namespace", "transports", "clients", "subscribe"}'
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const spec = JSON.parse(process.argv[2]);
const BUCKET_MS = 0.1, BUCKETS = 100000;  // latency histogram: 0.1 ms buckets up to 10 s
let hist = new Uint32Array(BUCKETS), deliveries = 0, connected = 0, failed = 0, subscribed = 0;
let refused = null;  // the first refusal (connect_error or a subscribe answered not ok), for the report
const now = () => (performance.timeOrigin + performance.now()) / 1000;

function record(envelope) {
  if (envelope?.data?.pad === undefined) return;  // not the benchmark's (an emitter's sample)
  deliveries++;
  const ms = (now() - envelope.ts) * 1000;
  hist[Math.min(BUCKETS - 1, Math.max(0, Math.floor(ms / BUCKET_MS)))]++;
}

const sockets = [];
function open() {
  return new Promise((resolve) => {
    const socket = io(spec.url + spec.namespace, {
      path: spec.path, transports: spec.transports, upgrade: false, reconnection: false,
      forceNew: true, timeout: 60000,
    });
    sockets.push(socket);
    // Every stream's event (`alerts`, `system`, ...) or a `batch` of envelopes.
    socket.onAny((event, payload) => (event === "batch" ? payload.forEach(record) : record(payload)));
    socket.on("connect", () => {
      connected++;
      if (!spec.subscribe) return resolve();
      socket.timeout(60000).emit("subscribe", { streams: spec.subscribe }, (err, ack) => {
        if (!err && ack && ack.ok) subscribed++;
        else refused ??= err ? String(err) : JSON.stringify(ack);
        resolve();
      });
    });
    socket.on("connect_error", (err) => { failed++; refused ??= String(err?.message ?? err); resolve(); });
  });
}

// Connect in waves so that a server is not asked for thousands of handshakes at once.
const WAVE = 50;
for (let i = 0; i < spec.clients; i += WAVE) {
  await Promise.all(Array.from({ length: Math.min(WAVE, spec.clients - i) }, open));
}
console.log(JSON.stringify({ ready: true, connected, failed, subscribed, refused }));

function percentile(p) {
  const total = hist.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += hist[i];
    if (seen >= total * p) return (i + 1) * BUCKET_MS;
  }
  return null;
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "reset") { hist = new Uint32Array(BUCKETS); deliveries = 0; }
  else if (cmd === "report") {
    const nonzero = {};
    hist.forEach((v, i) => { if (v) nonzero[i] = v; });
    console.log(JSON.stringify({ deliveries, connected: sockets.filter((s) => s.connected).length,
                                 hist: nonzero, bucket_ms: BUCKET_MS }));
  } else if (cmd === "exit") { sockets.forEach((s) => s.close()); process.exit(0); }
});
