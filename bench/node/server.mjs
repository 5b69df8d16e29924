// The baseline: a minimal socket.io 4 server doing what the dashboard's hub does for one stream:
// clients `subscribe` to join the stream's room, envelopes are broadcast to that room.
// POST /bench/publish {"rate": R or 0 for as fast as possible, "seconds": S, "bytes": B,
// "streams": [...] (default ["alerts"], round-robin)} runs a publisher; the envelope's `ts` (UNIX seconds) is taken when it is published.
// Usage: node server.mjs PORT [REDIS_URL CHANNEL_PREFIX]: with a Redis URL, instances with the same
// prefix form one cluster through `@socket.io/redis-adapter` (the cluster scenario's baseline).
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const port = Number(process.argv[2]);
const http = createServer((req, res) => {
  if (req.method === "POST" && req.url === "/bench/publish") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      const result = await publish(JSON.parse(body));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(result));
    });
    return;
  }
  if (req.url === "/bench/ping") { res.end("ok"); return; }
});
const io = new Server(http, { path: "/ws", cors: { origin: "*" } });
const [redisUrl, prefix] = process.argv.slice(3);
if (redisUrl) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub, { key: prefix || "socket.io" }));
}
const room = (stream) => `stream:${stream}`;
io.on("connection", (socket) => {
  socket.on("subscribe", (req, ack) => {
    for (const stream of req.streams) socket.join(room(stream));
    ack?.({ ok: true, streams: req.streams, history: {}, gap: {} });
  });
});

let seq = 0;
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const tick = () => new Promise((r) => setImmediate(r));
const sleep = (s) => new Promise((r) => setTimeout(r, Math.max(0, s * 1000)));
async function publish({ rate, seconds, bytes, streams }) {
  streams = streams?.length ? streams : ["alerts"];  // published round-robin, each its own event
  const perStream = Object.fromEntries(streams.map((s) => [s, 0]));
  const pad = "x".repeat(bytes);
  const start = now();
  let n = 0;
  const took = [];
  while (now() - start < seconds) {
    const t0 = performance.now();
    const stream = streams[n % streams.length];
    io.to(room(stream)).emit(stream, { stream, seq: ++seq, ts: now(), source: "node", data: { n, pad } });
    perStream[stream]++;
    took.push(performance.now() - t0);
    n++;
    if (rate > 0) await sleep(start + n / rate - now());
    else await tick();
  }
  took.sort((a, b) => a - b);
  const at = (p) => Math.round(took[Math.floor(took.length * p)] * 100) / 100;
  return { published: n, per_stream: perStream, publish_ms_p50: at(0.5), publish_ms_p99: at(0.99) };
}
http.listen(port, "127.0.0.1", () => console.log("listening"));
