// Connects the official socket.io-client to each requested namespace and reports what
// happened, as JSON on stdout: [{namespace, transports, connected, transport, error}].
// Usage: node probe.mjs '{"url": "http://127.0.0.1:8080", "path": "/ws",
//                          "checks": [{"namespace": "/chat", "transports": ["polling"]}]}'
import { io } from "socket.io-client";

const spec = JSON.parse(process.argv[2]);

function probe({ namespace, transports, auth, extraHeaders }) {
  return new Promise((resolve) => {
    const socket = io(spec.url + namespace, {
      path: spec.path,
      transports,
      upgrade: false,
      reconnection: false,
      forceNew: true,
      timeout: 5000,
      auth,
      extraHeaders,
    });
    const done = (result) => {
      socket.close();
      resolve({ namespace, transports, ...result });
    };
    socket.on("connect", () =>
      done({ connected: true, transport: socket.io.engine.transport.name, error: null }));
    socket.on("connect_error", (err) =>
      done({ connected: false, transport: null,
             error: { message: err.message, data: err.data ?? null, description: String(err.description ?? "") } }));
  });
}

const results = [];
for (const check of spec.checks) {
  results.push(await probe(check));
}
console.log(JSON.stringify(results));
process.exit(0);
