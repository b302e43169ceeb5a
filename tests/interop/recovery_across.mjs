// Connection state recovery across the servers of a cluster (Redis Streams adapter), with the stock
// JavaScript socket.io-client 4.8: a client connected through a switching proxy to server A drops and
// reconnects by itself, through the same proxy, to server B, where it recovers. The servers are
// tests/helpers/cluster_server.py --streams --recovery S and tests/interop/node_cluster_server.mjs
// --streams --recovery MS (their "do_broadcast" and "do_fetch" handlers); tests/test_recovery_across.py
// runs the cluster and the proxy.
//
// Usage: node recovery_across.mjs PROXY_URL CONTROL_URL MODE
//   PROXY_URL    the proxy: new connections go to A; "GET /__switch" sends the new ones to B and cuts
//                the open ones (answered 200)
//   CONTROL_URL  a third server of the cluster: it broadcasts the ticks and looks the sockets up
//   MODE         default (polling, then the upgrade), polling, or websocket
// Prints "ok <check>" or "FAIL <check>: <detail>" per check; exits 0 only when every check passed.

import assert from "node:assert/strict";
import { io } from "socket.io-client";

const [PROXY_URL, CONTROL_URL, MODE = "default"] = process.argv.slice(2).map((arg) => arg.replace(/\/+$/, ""));
const STEP_MS = 4000;
const SETTLE_MS = 300;
const RECONNECT_MS = 800;
const MODES = { websocket: { transports: ["websocket"] }, default: {}, polling: { transports: ["polling"] } };
if (!PROXY_URL || !CONTROL_URL || !Object.hasOwn(MODES, MODE)) {
  console.error("usage: node recovery_across.mjs PROXY_URL CONTROL_URL [default|polling|websocket]");
  process.exit(3);
}
const OPTS = {
  ...MODES[MODE],
  reconnectionDelay: RECONNECT_MS,
  reconnectionDelayMax: RECONNECT_MS,
  randomizationFactor: 0,
  timeout: STEP_MS,
  forceNew: true,
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const once = (socket, event, ms = STEP_MS) =>
  withTimeout(new Promise((resolve) => socket.once(event, (...args) => resolve(args))), ms, event);

const ack = (socket, event, ...args) => socket.timeout(STEP_MS * 2).emitWithAck(event, ...args);

async function until(predicate, what, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

let control;
const opened = [];
const tick = (from, to) => {
  const sends = [];
  for (let n = from; n < to; n++) sends.push(n);
  return sends.reduce(
    (done, n) => done.then(() => ack(control, "do_broadcast", ["r"], [], "tick", n)),
    Promise.resolve(),
  );
};
const lookUp = async (id) => (await ack(control, "do_fetch", [id])).find((found) => found.id === id);

async function ticking(name) {
  const socket = io(PROXY_URL, { ...OPTS, auth: { name, rooms: ["r"] } });
  opened.push(socket);
  const ticks = [];
  socket.on("tick", (n, offset) => ticks.push([n, typeof offset]));
  await once(socket, "connect");
  return { socket, ticks };
}

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

check("a client dropped on A recovers on B: same id, rooms and data, the missed ticks once, in order", async () => {
  const { socket, ticks } = await ticking("ann");
  const id = socket.id;
  assert.equal(socket.recovered, false);
  const before = await lookUp(id);
  assert.ok(before, "the control server finds the socket");
  await tick(0, 1);
  await until(() => ticks.length === 1, "the first tick");
  if (MODE === "default") await until(() => socket.io.engine.transport.name === "websocket", "the upgrade");
  const disconnected = once(socket, "disconnect");
  assert.equal((await fetch(`${PROXY_URL}/__switch`)).status, 200, "the proxy switched to B");
  socket.io.engine.close(); // abruptly (if the proxy's cut did not come first)
  await disconnected;
  await until(async () => (await lookUp(id)) === undefined, "the socket gone from the cluster");
  await tick(1, 6);
  assert.equal(socket.connected, false, "ticks 1-5 were sent while the client was away");
  await once(socket, "connect", STEP_MS + RECONNECT_MS);
  assert.equal(socket.recovered, true, "socket.recovered after the reconnection to B");
  assert.equal(socket.id, id, "the same id");
  await until(() => ticks.length >= 6, "the missed ticks");
  await tick(6, 7);
  await until(() => ticks.length >= 7, "a new tick after the recovery");
  await sleep(SETTLE_MS);
  assert.deepEqual(ticks.map(([n]) => n), [0, 1, 2, 3, 4, 5, 6], "every tick exactly once, in order");
  assert.ok(ticks.every(([, kind]) => kind === "string"), "each broadcast ends with its offset");
  const after = await lookUp(id);
  assert.deepEqual(after.rooms, [id, "r"].sort(), "the same rooms");
  assert.deepEqual(after.data, before.data, "the same data (set on A)");
  socket.disconnect();
});

check("an explicit disconnect saves nothing: connecting again (to B) gives a new socket", async () => {
  const { socket } = await ticking("cy");
  const id = socket.id;
  await tick(0, 1);
  socket.disconnect();
  await until(async () => (await lookUp(id)) === undefined, "the socket gone from the cluster");
  const connected = once(socket, "connect");
  socket.connect();
  await connected;
  assert.equal(socket.recovered, false, "not recovered");
  assert.notEqual(socket.id, id, "a new id");
  socket.disconnect();
});

async function main() {
  control = io(CONTROL_URL, { transports: ["websocket"], reconnection: false, timeout: STEP_MS, forceNew: true });
  await once(control, "connect");
  let failed = 0;
  for (const { name, fn } of checks) {
    try {
      await withTimeout(fn(), 25000, name);
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
