// Connects the official socket.io-client, subscribes to streams and collects the envelopes it
// receives (named events and `batch` events alike), then prints them as JSON on stdout.
// Usage: node listen.mjs '{"url": "http://127.0.0.1:8080", "path": "/ws", "namespace": "/omni_monitor",
//                          "transports": ["websocket"], "streams": ["alerts"], "count": 10}'
import { io } from "socket.io-client";

const spec = JSON.parse(process.argv[2]);
const socket = io(spec.url + spec.namespace, {
  path: spec.path, transports: spec.transports, upgrade: spec.upgrade ?? false, reconnection: false,
  forceNew: true, timeout: 5000,
});
const events = [];
let envelopes = 0;
const finish = (error) => {
  console.log(JSON.stringify({ error, transport: socket.io.engine?.transport?.name ?? null, events }));
  socket.close();
  process.exit(0);
};
const timer = setTimeout(() => finish(`timed out after ${envelopes} envelope(s)`), spec.timeout_ms ?? 20000);
socket.onAny((event, data) => {
  events.push([event, data]);
  envelopes += event === "batch" ? data.length : 1;
  if (envelopes >= spec.count) {
    clearTimeout(timer);
    finish(null);
  }
});
socket.on("connect_error", (err) => finish(`connect_error: ${err.message}`));
socket.on("connect", () => {
  socket.emit("subscribe", { streams: spec.streams }, (ack) => {
    if (!ack.ok) finish(`subscribe refused: ${JSON.stringify(ack)}`);
  });
});
