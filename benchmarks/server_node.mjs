// Benchmark server on Node socket.io 4.8: the same handlers as server_trio.py (see README.md).
//
// - "join", rooms: joins the list of rooms; acks true.
// - "bench", {targets, except?, count, seq0, rate, pad}: broadcasts `count` events
//   "m", {i: seq0 + i, p: pad}, event i to the rooms targets[i % targets.length] (each member once),
//   leaving out the members of `except`; rate > 0 paces them at that many per second from an
//   absolute schedule, 0 sends them back to back. Acks {sent: count} when done, if asked.
// - "bench-rooms", {count, prefix, sockets} and "bench-stats": see server_trio.py.
//
// Compression is off (perMessageDeflate, httpCompression); run it with NODE_ENV=production.
// Prints {"server": "node", "port": PORT, ...} on one line when it listens (127.0.0.1 only).

import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values: opt } = parseArgs({
  options: { port: { type: "string", default: "0" }, recovery: { type: "boolean", default: false } },
});
const versionOf = (...path) => {
  const file = new URL(`./node_modules/${path.join("/node_modules/")}/package.json`, import.meta.url);
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")).version : null;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const httpServer = createServer();
const io = new Server(httpServer, {
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  // --recovery: connection state recovery with its defaults (run.py's "node-recovery").
  ...(opt.recovery ? { connectionStateRecovery: {} } : {}),
});

io.on("connection", (socket) => {
  socket.on("join", (rooms, ack) => {
    socket.join(rooms);
    if (typeof ack === "function") ack(true);
  });

  socket.on("bench", async (req, ack) => {
    const excluded = req.except ?? [];
    const ops = req.targets.map((t) => (excluded.length ? io.to(t).except(excluded) : io.to(t)));
    const { count, seq0, pad } = req;
    const rate = req.rate ?? 0;
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      if (rate > 0) {
        const wait = start + (i * 1000) / rate - performance.now();
        if (wait > 0) await sleep(wait);
      }
      ops[i % ops.length].emit("m", { i: seq0 + i, p: pad });
    }
    if (typeof ack === "function") ack({ sent: count });
  });

  // Extra workloads (scenarios.py): `count` rooms of one member each, spread over `sockets` sockets.
  socket.on("bench-rooms", (req, ack) => {
    const nsp = io.of("/");
    const others = [...nsp.sockets.keys()].filter((id) => id !== socket.id);
    const owners = [socket.id, ...others.slice(0, Math.max(0, (req.sockets ?? 1) - 1))];
    owners.forEach((owner, k) => {
      const rooms = new Set();
      for (let i = k; i < req.count; i += owners.length) rooms.add(`${req.prefix}${i}`);
      nsp.adapter.addAll(owner, rooms);
    });
    if (typeof ack === "function") ack({ rooms: nsp.adapter.rooms.size, owners: owners.length });
  });

  socket.on("bench-stats", (req, ack) => {
    if (typeof ack === "function") ack({});
  });
});

httpServer.listen(Number(opt.port), "127.0.0.1", () => {
  const ready = {
    server: "node",
    port: httpServer.address().port,
    versions: {
      node: process.versions.node,
      "socket.io": versionOf("socket.io"),
      "engine.io": versionOf("engine.io"),
      ws: versionOf("engine.io", "ws") ?? versionOf("ws"),
    },
    node_env: process.env.NODE_ENV ?? null,
    recovery: opt.recovery,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
});
