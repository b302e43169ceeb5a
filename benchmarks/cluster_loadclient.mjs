// Load client of the cross-server fan-out benchmark (cluster_fanout.py): raw Engine.IO v4 / Socket.IO v5
// over `ws`, against the cluster test servers (tests/helpers/cluster_server.py, tests/interop/node_cluster_server.mjs),
// which share the handler "do_broadcast" (rooms, except, event, ...args) -> ack "ok".
//
//   node cluster_loadclient.mjs --ports P1,P2,P3 [--clients 100] [--window 4] [--warmup 1] [--seconds 5]
//
// On each server: --clients receivers in room "bench" (joined through the CONNECT auth {rooms}), and one
// sender, outside the room, that keeps --window "do_broadcast" requests in flight (each to "bench"), so
// every broadcast reaches the receivers of all servers: one third locally, two thirds through Redis.
// Phases: warmup (not counted), then the measured window, then the senders stop and the client waits
// until every broadcast acked so far has reached every receiver exactly once (or 10 s pass).
// stdout: "MARK start" and "MARK end" at the measured window's bounds (the runner reads the servers'
// CPU time there; no reply is awaited), then "RESULT {json}". Traffic goes to 127.0.0.1 only.
import { WebSocket } from "ws";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : fallback;
};
const ports = String(opt("ports", "")).split(",").filter(Boolean).map(Number);
const perServer = Number(opt("clients", 100));
const windowSize = Number(opt("window", 4));
const warmup = Number(opt("warmup", 1));
const seconds = Number(opt("seconds", 5));
if (ports.length === 0) {
  console.error("usage: node cluster_loadclient.mjs --ports P1,P2,P3 [--clients N] [--window W]");
  process.exit(3);
}

const PAYLOAD = "x".repeat(64);
let counting = false;
let measured = 0; // deliveries inside the measured window
let acked = 0; // broadcasts acknowledged by their server
let ackedMeasured = 0;
const seen = new Map(); // broadcast key -> deliveries
let duplicatesOrStrays = 0;

function connect(port, auth, onEvent) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, {
      perMessageDeflate: false,
    });
    const timer = setTimeout(() => reject(new Error(`connect to ${port} timed out`)), 10000);
    ws.on("error", reject);
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const text = data.toString();
      if (text === "2") return ws.send("3");
      if (text[0] === "0") return ws.send(`40${JSON.stringify(auth)}`);
      if (text.startsWith("40")) {
        clearTimeout(timer);
        return resolve(ws);
      }
      if (text.startsWith("4")) onEvent(text);
    });
  });
}

const receivers = [];
const senders = [];
for (const [index, port] of ports.entries()) {
  for (let c = 0; c < perServer; c++) {
    receivers.push(
      connect(port, { name: `r${index}-${c}`, rooms: ["bench"] }, (text) => {
        // 42["news","<sender>:<seq>","xxx..."]
        if (!text.startsWith('42["news"')) return;
        const key = text.slice(11, text.indexOf('"', 11));
        seen.set(key, (seen.get(key) || 0) + 1);
        if (counting) measured++;
      }),
    );
  }
}
await Promise.all(receivers);
const totalReceivers = receivers.length;

let running = true;
const ackedKeys = [];
for (const [index, port] of ports.entries()) {
  let nextAck = 0;
  const pending = new Map();
  let ws;
  const send = () => {
    const id = nextAck++;
    const key = `s${index}:${id}`;
    pending.set(id, key);
    ws.send(`42${id}["do_broadcast",["bench"],[],"news","${key}","${PAYLOAD}"]`);
  };
  ws = await connect(port, { name: `s${index}`, rooms: [] }, (text) => {
    // 43<id>["ok"]
    if (!text.startsWith("43")) return;
    const id = Number(text.slice(2, text.indexOf("[")));
    const key = pending.get(id);
    pending.delete(id);
    if (key === undefined) return;
    acked++;
    if (counting) ackedMeasured++;
    ackedKeys.push(key);
    if (running) send();
  });
  senders.push({ start: () => { for (let i = 0; i < windowSize; i++) send(); }, pending: () => pending.size });
}

for (const sender of senders) sender.start();
await new Promise((r) => setTimeout(r, warmup * 1000));
counting = true;
const started = performance.now();
console.log("MARK start");
await new Promise((r) => setTimeout(r, seconds * 1000));
const elapsed = (performance.now() - started) / 1000;
counting = false;
console.log("MARK end");
running = false;

// Drain: every acked broadcast must reach every receiver exactly once.
const deadline = Date.now() + 10000;
const complete = () =>
  senders.every((s) => s.pending() === 0) && ackedKeys.every((key) => seen.get(key) === totalReceivers);
while (Date.now() < deadline && !complete()) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 300));
let missing = 0;
for (const key of ackedKeys) {
  const count = seen.get(key) || 0;
  if (count < totalReceivers) missing += totalReceivers - count;
  if (count > totalReceivers) duplicatesOrStrays += count - totalReceivers;
}
for (const key of seen.keys()) if (!key.startsWith("s")) duplicatesOrStrays++;
const exact = missing === 0 && duplicatesOrStrays === 0;
console.log(
  `RESULT ${JSON.stringify({
    servers: ports.length,
    receivers: totalReceivers,
    seconds: elapsed,
    deliveries: measured,
    deliveries_per_second: measured / elapsed,
    broadcasts_acked: ackedMeasured,
    broadcasts_total: acked,
    missing,
    duplicates: duplicatesOrStrays,
    exactly_once: exact,
  })}`,
);
process.exit(0);
