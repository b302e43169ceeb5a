// Connection state recovery checks: the stock JavaScript socket.io-client (4.8) against a trio_rooms
// server with Server(connection_state_recovery=ConnectionStateRecovery(max_disconnection_duration=D))
// (tests/test_interop_recovery.py serves it), over one transport mode:
//
//   default    the client's default options      (HTTP long-polling, then the upgrade to WebSocket)
//   polling    transports: ["polling"]           (HTTP long-polling only)
//   websocket  transports: ["websocket"]
//
// The server: every socket joins room "r" and keeps data {name: auth.name} on its first connection;
// "whoami" acks {id, recovered, rooms, data, auth}; "tick", {room, from, to} broadcasts "tick", n to
// the room for n in [from, to); "gone", sid acks true once that socket is gone from the namespace.
//
// Usage: node recovery_client.mjs http://127.0.0.1:PORT MODE MAX_DISCONNECTION_SECONDS
// Prints "ok <check>" or "FAIL <check>: <detail>" per check; exits 0 only when every check passed.

import assert from "node:assert/strict";
import { io } from "socket.io-client";

const BASE_URL = (process.argv[2] ?? "").replace(/\/+$/, "");
const MODE = process.argv[3] ?? "default";
const MAX_DISCONNECTION_MS = Number(process.argv[4] ?? 2) * 1000;
const STEP_MS = 3000; // the bound of one connect, ack or expected event
const SETTLE_MS = 300; // how long to wait for deliveries that must NOT (or not twice) arrive
// Long enough for the test to broadcast while the client is away, short against the expiry.
const RECONNECT_MS = 800;

const MODES = {
  websocket: { transports: ["websocket"] },
  default: {},
  polling: { transports: ["polling"] },
};
if (!/^https?:\/\/[^/]+$/.test(BASE_URL) || !Object.hasOwn(MODES, MODE) || !(MAX_DISCONNECTION_MS > 0)) {
  console.error("usage: node recovery_client.mjs http://HOST:PORT [default|polling|websocket] SECONDS");
  process.exit(3);
}
const OPTS = {
  ...MODES[MODE],
  reconnectionDelay: RECONNECT_MS,
  reconnectionDelayMax: RECONNECT_MS,
  randomizationFactor: 0,
  timeout: STEP_MS,
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function once(socket, event, ms = STEP_MS) {
  return withTimeout(new Promise((resolve) => socket.once(event, (...args) => resolve(args))), ms, event);
}

async function ack(socket, event, ...args) {
  const answer = await socket.timeout(STEP_MS).emitWithAck(event, ...args);
  return answer;
}

async function until(predicate, what, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(10);
  }
}

/** A client recording its "tick" events as [n, typeof offset], connected. */
async function ticking(auth) {
  const socket = io(BASE_URL, { ...OPTS, auth, forceNew: true });
  const ticks = [];
  socket.on("tick", (n, offset) => ticks.push([n, typeof offset]));
  await once(socket, "connect");
  return { socket, ticks };
}

/** Ticks 0 to the room and waits for it: the client then holds an offset. */
async function firstTick(control, client) {
  await ack(control, "tick", { room: "r", from: 0, to: 1 });
  await until(() => client.ticks.length === 1, "the first tick");
}

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

let control;
const opened = [];

check("a dropped client recovers: same id, rooms and data, the missed events once and in order", async () => {
  const client = await ticking({ name: "ann" });
  opened.push(client.socket);
  const { socket, ticks } = client;
  assert.equal(socket.recovered, false, "a first connection is not a recovery");
  const id = socket.id;
  await firstTick(control, client);
  if (MODE === "default") await until(() => socket.io.engine.transport.name === "websocket", "the upgrade");
  const disconnected = once(socket, "disconnect");
  socket.io.engine.close(); // the transport closes abruptly; the client reconnects by itself
  const [reason] = await disconnected;
  assert.equal(reason, "forced close", "the client's reason for engine.close()");
  assert.equal(await ack(control, "gone", id), true, "the server saw the socket go");
  await ack(control, "tick", { room: "r", from: 1, to: 6 });
  assert.equal(socket.connected, false, "ticks 1-5 were sent while the client was away");
  await once(socket, "connect", STEP_MS + RECONNECT_MS);
  assert.equal(socket.recovered, true, "socket.recovered after the reconnection");
  assert.equal(socket.id, id, "the same id");
  await until(() => ticks.length >= 6, "the missed ticks");
  await ack(control, "tick", { room: "r", from: 6, to: 7 });
  await until(() => ticks.length >= 7, "a new tick after the recovery");
  await sleep(SETTLE_MS);
  assert.deepEqual(
    ticks.map(([n]) => n),
    [0, 1, 2, 3, 4, 5, 6],
    "every tick exactly once, in order",
  );
  assert.ok(
    ticks.every(([, kind]) => kind === "string"),
    "each broadcast ends with its offset",
  );
  const who = await ack(socket, "whoami");
  assert.deepEqual(who, {
    id,
    recovered: true,
    rooms: [id, "r"].sort(),
    data: { name: "ann" },
    auth: ["name"],
  });
  socket.disconnect();
});

check("after max_disconnection_duration, recovery fails cleanly: a new id, recovered false", async () => {
  const client = await ticking({ name: "bob" });
  opened.push(client.socket);
  const { socket, ticks } = client;
  const id = socket.id;
  await firstTick(control, client);
  socket.io.reconnection(false); // reconnect by hand, once the session expired
  const disconnected = once(socket, "disconnect");
  socket.io.engine.close();
  await disconnected;
  assert.equal(await ack(control, "gone", id), true, "the server saw the socket go");
  await ack(control, "tick", { room: "r", from: 1, to: 2 });
  await sleep(MAX_DISCONNECTION_MS + 500);
  const connected = once(socket, "connect");
  socket.connect();
  await connected;
  assert.equal(socket.recovered, false, "not recovered");
  assert.notEqual(socket.id, id, "a new id");
  await sleep(SETTLE_MS);
  assert.deepEqual(
    ticks.map(([n]) => n),
    [0],
    "the expired session's missed tick is not sent",
  );
  const who = await ack(socket, "whoami");
  assert.equal(who.recovered, false);
  assert.equal(who.id, socket.id);
  socket.disconnect();
});

check("an explicit client disconnect saves nothing: connecting again gives a new socket", async () => {
  const client = await ticking({ name: "cy" });
  opened.push(client.socket);
  const { socket } = client;
  const id = socket.id;
  await firstTick(control, client);
  socket.disconnect(); // "client namespace disconnect"; the client still holds its pid and offset
  assert.equal(await ack(control, "gone", id), true, "the server saw the socket go");
  const connected = once(socket, "connect");
  socket.connect();
  await connected;
  assert.equal(socket.recovered, false, "not recovered");
  assert.notEqual(socket.id, id, "a new id");
  socket.disconnect();
});

async function main() {
  control = io(BASE_URL, { ...MODES[MODE], reconnection: false, timeout: STEP_MS, forceNew: true });
  await once(control, "connect");
  let failed = 0;
  for (const { name, fn } of checks) {
    try {
      await withTimeout(fn(), 20000, name);
      console.log(`ok ${name}`);
    } catch (err) {
      failed += 1;
      console.log(`FAIL ${name}: ${String(err?.message ?? err).split("\n").join(" | ")}`);
    }
  }
  for (const socket of [control, ...opened]) socket.disconnect();
  console.log(`summary: ${checks.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`FAIL main: ${err?.stack ?? err}`);
  process.exit(1);
});
