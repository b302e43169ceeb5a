// The Socket.IO Admin UI's protocol (@socket.io/admin-ui 0.5), end to end: the stock socket.io-client
// plays the page on "/admin" (as the page does: its events, its commands) against admin_app.py, while
// other socket.io-clients play the application's users on "/".
//
// Usage: node admin_client.mjs http://127.0.0.1:PORT [dev|readonly|production] [overall_timeout_ms]
//
// Prints one line per check, "ok <name>" or "FAIL <name>: <detail>", then a summary line, and exits
// 0 only when every check passed (1 on a failed check, 2 on the overall timeout, 3 on bad usage).

import assert from "node:assert/strict";
import { io } from "socket.io-client";

const BASE_URL = (process.argv[2] ?? "").replace(/\/+$/, "");
const MODE = process.argv[3] ?? "dev";
const OVERALL_MS = Number(process.argv[4] ?? 60000);
const CHECK_MS = 8000;
const STEP_MS = 3000;
const SETTLE_MS = 400;
const USERNAME = "admin";
const PASSWORD = "admin-password";
const COMMANDS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"];
const ISO_DATE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

if (!/^https?:\/\/[^/]+$/.test(BASE_URL) || !["dev", "readonly", "production"].includes(MODE)) {
  console.error("usage: node admin_client.mjs http://HOST:PORT [dev|readonly|production]");
  process.exit(3);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const opened = [];

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An admin page: every event it receives is logged as {event, args, at}. */
function admin(auth, opts = {}) {
  const socket = io(`${BASE_URL}/admin`, { forceNew: true, reconnection: false, auth, ...opts });
  socket.log = [];
  socket.onAny((event, ...args) => socket.log.push({ event, args, at: Date.now() }));
  opened.push(socket);
  return socket;
}

/** An application user on "/". */
function user(opts = {}) {
  const socket = io(BASE_URL, { forceNew: true, reconnection: false, ...opts });
  opened.push(socket);
  return socket;
}

function connected(socket) {
  return withTimeout(
    new Promise((resolve, reject) => {
      if (socket.connected) return resolve(socket);
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
    }),
    STEP_MS,
    "connect",
  );
}

function refused(socket) {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", () => reject(new Error("connected, expected a refusal")));
      socket.once("connect_error", (err) => resolve(err));
    }),
    STEP_MS,
    "connect_error",
  );
}

/** The first logged event matching (at or after index `from`), waiting up to `ms`. */
async function seen(socket, event, match = () => true, ms = STEP_MS, from = 0) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = socket.log.slice(from).find((e) => e.event === event && match(...e.args));
    if (found) return found.args;
    if (Date.now() > deadline) {
      const got = socket.log.map((e) => e.event).join(", ");
      throw new Error(`no matching "${event}" within ${ms} ms (got: ${got})`);
    }
    await sleep(20);
  }
}

async function notSeen(socket, event, match = () => true, ms = SETTLE_MS) {
  await sleep(ms);
  const found = socket.log.find((e) => e.event === event && match(...e.args));
  assert.equal(found, undefined, `unexpected "${event}": ${JSON.stringify(found?.args)}`);
}

function ack(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(STEP_MS).emit(event, ...args, (err, ...answer) => {
      if (err) reject(new Error(`no ack for "${event}"`));
      else resolve(answer);
    });
  });
}

function gone(socket) {
  return withTimeout(
    new Promise((resolve) => (socket.connected ? socket.once("disconnect", resolve) : resolve("already"))),
    STEP_MS,
    "disconnect",
  );
}

// ---------------------------------------------------------------- checks

const results = [];
async function check(name, fn, ms = CHECK_MS) {
  try {
    await withTimeout(fn(), ms, name);
    results.push(true);
    console.log(`ok ${name}`);
  } catch (err) {
    results.push(false);
    console.log(`FAIL ${name}: ${err && err.message ? err.message : err}`);
  }
}

function checkStats(stats) {
  for (const key of ["serverId", "hostname", "pid", "uptime", "clientsCount", "pollingClientsCount"]) {
    assert.ok(key in stats, `server_stats has no ${key}`);
  }
  assert.equal(stats.serverId, "trio-admin-test");
  assert.equal(typeof stats.pid, "number");
  assert.equal(typeof stats.uptime, "number");
  assert.ok(Array.isArray(stats.aggregatedEvents));
  for (const e of stats.aggregatedEvents) {
    assert.equal(e.timestamp % 1000, 0, `timestamp not truncated to the second: ${e.timestamp}`);
    assert.equal(typeof e.type, "string");
    assert.ok(e.count > 0);
  }
  const names = stats.namespaces.map((n) => n.name);
  assert.ok(names.includes("/") && names.includes("/admin"), `namespaces: ${names}`);
}

async function devChecks() {
  await check("refused login: wrong password", async () => {
    const err = await refused(admin({ username: USERNAME, password: "wrong" }));
    assert.equal(err.message, "invalid credentials");
  });
  await check("refused login: no credentials", async () => {
    const err = await refused(admin({}));
    assert.equal(err.message, "invalid credentials");
  });

  const page = admin({ username: USERNAME, password: PASSWORD });
  let sessionId;
  await check("accepted login: session, config, all_sockets, server_stats", async () => {
    await connected(page);
    [sessionId] = await seen(page, "session");
    assert.match(sessionId, /^[0-9a-f]{16,}$/);
    const [config] = await seen(page, "config");
    assert.deepEqual(config.supportedFeatures, [...COMMANDS, "AGGREGATED_EVENTS", "ALL_EVENTS"]);
    const [sockets] = await seen(page, "all_sockets");
    const mine = sockets.find((s) => s.id === page.id);
    assert.ok(mine, "all_sockets lists the admin's own socket");
    assert.equal(mine.nsp, "/admin");
    const [stats] = await seen(page, "server_stats");
    checkStats(stats);
    const order = page.log.map((e) => e.event).filter((e) => ["session", "config", "all_sockets"].includes(e));
    assert.deepEqual(order, ["session", "config", "all_sockets"]);
  });

  await check("session id login: accepted without the password, no new session", async () => {
    const again = admin({ sessionId });
    await connected(again);
    await seen(again, "config");
    await notSeen(again, "session");
    again.disconnect();
  });
  await check("session id login: an unknown id is refused", async () => {
    const err = await refused(admin({ sessionId: "0123456789abcdef0123456789abcdef" }));
    assert.equal(err.message, "invalid credentials");
  });

  await check("server_stats: every 2 s, aggregated events cleared after each emit", async () => {
    // From the next periodic emit on, the counts cover only what follows.
    await seen(page, "server_stats", () => true, 3000, page.log.length);
    const from = page.log.length;
    const u = user({ transports: ["websocket"] });
    await connected(u);
    await ack(u, "ping_me", "x".repeat(100));
    const deadline = Date.now() + 7000;
    while (page.log.slice(from).filter((e) => e.event === "server_stats").length < 3 && Date.now() < deadline) {
      await sleep(50);
    }
    const stats = page.log.slice(from).filter((e) => e.event === "server_stats");
    assert.ok(stats.length >= 3, `only ${stats.length} server_stats in 7 s`);
    for (const s of stats) checkStats(s.args[0]);
    const gaps = stats.slice(1).map((s, i) => s.at - stats[i].at);
    for (const gap of gaps) assert.ok(gap > 1500 && gap < 2700, `server_stats gap ${gap} ms`);
    const all = stats.flatMap((s) => s.args[0].aggregatedEvents);
    const total = (type) => all.filter((e) => e.type === type).reduce((n, e) => n + e.count, 0);
    assert.equal(total("rawConnection"), 1, `rawConnection counted ${total("rawConnection")} times`);
    for (const type of ["packetsIn", "packetsOut", "bytesIn", "bytesOut"]) assert.ok(total(type) > 0, type);
    assert.ok(total("bytesIn") >= 100, `bytesIn ${total("bytesIn")}`);
    assert.ok(stats.at(-1).args[0].clientsCount >= 2);
    const from2 = page.log.length;
    u.disconnect();
    const [later] = await seen(page, "server_stats", () => true, 3000, from2);
    const closes = later.aggregatedEvents.filter((e) => e.type === "rawDisconnection");
    assert.deepEqual(closes.map((e) => [e.subType, e.count]), [["transport close", 1]]);
  }, 16000);

  await check("pollingClientsCount: a polling client counts until its upgrade", async () => {
    const u = user({ transports: ["polling"] });
    await connected(u);
    const from = page.log.length;
    const [stats] = await seen(page, "server_stats", () => true, 3000, from);
    assert.ok(stats.pollingClientsCount >= 1, `pollingClientsCount ${stats.pollingClientsCount}`);
    u.disconnect();
  });

  let from = page.log.length;
  const alice = user(); // polling, then the upgrade to WebSocket
  await check("live: socket_connected (polling), own room joined", async () => {
    await connected(alice);
    const [s, date] = await seen(page, "socket_connected", (s) => s.id === alice.id, STEP_MS, from);
    assert.match(date, ISO_DATE);
    assert.equal(s.nsp, "/");
    assert.equal(s.transport, "polling");
    assert.equal(s.clientId.length, 12);
    assert.equal(s.clientId, alice.io.engine.id.slice(0, 12));
    assert.deepEqual(s.rooms, [alice.id]);
    assert.deepEqual(s.data, {});
    assert.equal(s.handshake.address, "127.0.0.1");
    for (const key of ["headers", "query", "issued", "secure", "time", "url", "xdomain"]) assert.ok(key in s.handshake, key);
    assert.ok(!("auth" in s.handshake), "no auth in the handshake");
    const [nsp, room, id, at] = await seen(page, "room_joined", (n, r) => r === alice.id, STEP_MS, from);
    assert.deepEqual([nsp, room, id], ["/", alice.id, alice.id]);
    assert.match(at, ISO_DATE);
  });
  await check("live: socket_updated after the upgrade", async () => {
    const [u] = await seen(page, "socket_updated", (u) => u.id === alice.id, 5000, from);
    assert.deepEqual(u, { id: alice.id, nsp: "/", transport: "websocket" });
  });
  await check("live: room_joined, event_received", async () => {
    from = page.log.length;
    await ack(alice, "join", "lobby");
    const args = await seen(page, "room_joined", (n, r, id) => r === "lobby" && id === alice.id, STEP_MS, from);
    assert.equal(args[0], "/");
    const [nsp, id, ev, at] = await seen(page, "event_received", (n, id, ev) => ev[0] === "join", STEP_MS, from);
    assert.deepEqual([nsp, id, ev], ["/", alice.id, ["join", "lobby"]]);
    assert.match(at, ISO_DATE);
  });
  await check("live: event_sent for an emit to one socket", async () => {
    from = page.log.length;
    await ack(alice, "ping_me", { n: 7 });
    const [nsp, id, ev, at] = await seen(page, "event_sent", (n, id, ev) => ev[0] === "pong_you", STEP_MS, from);
    assert.deepEqual([nsp, id, ev], ["/", alice.id, ["pong_you", { n: 7 }]]);
    assert.match(at, ISO_DATE);
  });
  await check("live: room_left", async () => {
    from = page.log.length;
    await ack(alice, "leave", "lobby");
    const [nsp, room, id, at] = await seen(page, "room_left", (n, r) => r === "lobby", STEP_MS, from);
    assert.deepEqual([nsp, room, id], ["/", "lobby", alice.id]);
    assert.match(at, ISO_DATE);
  });
  await check("live: socket_disconnected with the reason", async () => {
    from = page.log.length;
    const sid = alice.id;
    alice.disconnect();
    const [nsp, id, reason, at] = await seen(page, "socket_disconnected", (n, id) => id === sid, STEP_MS, from);
    assert.deepEqual([nsp, id, reason], ["/", sid, "client namespace disconnect"]);
    assert.match(at, ISO_DATE);
    await seen(page, "room_left", (n, r) => r === sid, STEP_MS, from);
  });

  const bob = user({ transports: ["websocket"] });
  const carol = user({ transports: ["websocket"] });
  await check("all_sockets: a new page sees the sockets and their rooms", async () => {
    await connected(bob);
    await connected(carol);
    await ack(bob, "join", "blue");
    const second = admin({ sessionId });
    await connected(second);
    const [sockets] = await seen(second, "all_sockets");
    const b = sockets.find((s) => s.id === bob.id);
    assert.ok(b, "bob is listed");
    assert.deepEqual([...b.rooms].sort(), [bob.id, "blue"].sort());
    assert.equal(b.transport, "websocket");
    assert.equal(b.clientId, bob.io.engine.id.slice(0, 12));
    assert.ok(sockets.find((s) => s.id === carol.id));
    assert.ok(sockets.find((s) => s.id === second.id && s.nsp === "/admin"));
    second.disconnect();
  });
  await check("command emit: to a namespace, and to a room", async () => {
    const got = { bob: [], carol: [] };
    bob.on("hello", (...a) => got.bob.push(a));
    carol.on("hello", (...a) => got.carol.push(a));
    page.emit("emit", "/", null, "hello", 1, "two");
    page.emit("emit", "/", "blue", "hello", 3);
    await sleep(SETTLE_MS);
    assert.deepEqual(got.bob, [[1, "two"], [3]]);
    assert.deepEqual(got.carol, [[1, "two"]]);
  });
  await check("command join / leave: by socket id, and for a whole namespace", async () => {
    page.emit("join", "/", "green", bob.id);
    await sleep(SETTLE_MS);
    assert.deepEqual((await ack(bob, "rooms"))[0], [bob.id, "blue", "green"].sort());
    assert.ok(!(await ack(carol, "rooms"))[0].includes("green"));
    page.emit("join", "/", "all");
    await sleep(SETTLE_MS);
    assert.ok((await ack(carol, "rooms"))[0].includes("all"));
    page.emit("leave", "/", "green", bob.id);
    page.emit("leave", "/", "all");
    await sleep(SETTLE_MS);
    assert.deepEqual((await ack(bob, "rooms"))[0], [bob.id, "blue"].sort());
    assert.deepEqual((await ack(carol, "rooms"))[0], [carol.id]);
  });
  await check("command _disconnect: one socket, then a room with close", async () => {
    const reason = gone(carol);
    page.emit("_disconnect", "/", false, carol.id);
    assert.equal(await reason, "io server disconnect");
    assert.ok(bob.connected, "bob stays connected");
    const bobGone = gone(bob);
    page.emit("_disconnect", "/", true, "blue");
    await bobGone;
  });
  await check("commands for an unknown namespace are ignored", async () => {
    page.emit("emit", "/nowhere", null, "x");
    page.emit("_disconnect", "/nowhere", false);
    await sleep(SETTLE_MS);
    assert.ok(page.connected);
    const [config] = await seen(page, "config");
    assert.ok(config);
  });
}

async function readonlyChecks() {
  const page = admin(undefined);
  await check("read-only: no auth needed, config without commands", async () => {
    await connected(page);
    const [config] = await seen(page, "config");
    assert.deepEqual(config.supportedFeatures, ["AGGREGATED_EVENTS", "ALL_EVENTS"]);
    await seen(page, "all_sockets");
    await notSeen(page, "session");
  });
  await check("read-only: commands are not taken", async () => {
    const u = user({ transports: ["websocket"] });
    await connected(u);
    await seen(page, "socket_connected", (s) => s.id === u.id);
    const got = [];
    u.on("hello", (...a) => got.push(a));
    page.emit("emit", "/", null, "hello", 1);
    page.emit("join", "/", "x", u.id);
    page.emit("_disconnect", "/", true);
    await sleep(SETTLE_MS);
    assert.ok(u.connected, "the user stays connected");
    assert.deepEqual(got, []);
    assert.deepEqual((await ack(u, "rooms"))[0], [u.id]);
    u.disconnect();
  });
}

async function productionChecks() {
  const page = admin(undefined);
  await check("production: config without ALL_EVENTS, no all_sockets", async () => {
    await connected(page);
    const [config] = await seen(page, "config");
    assert.deepEqual(config.supportedFeatures, [...COMMANDS, "AGGREGATED_EVENTS"]);
    await notSeen(page, "all_sockets");
  });
  await check("production: no live events, aggregated events still", async () => {
    const from = page.log.length;
    const u = user({ transports: ["websocket"] });
    await connected(u);
    await ack(u, "join", "room");
    await ack(u, "ping_me", 1);
    const [stats] = await seen(page, "server_stats", (s) => s.aggregatedEvents.some((e) => e.type === "rawConnection"), 5000, from);
    checkStats(stats);
    u.disconnect();
    await sleep(SETTLE_MS);
    const live = ["socket_connected", "socket_disconnected", "room_joined", "room_left", "event_received", "event_sent", "socket_updated"];
    const got = page.log.filter((e) => live.includes(e.event)).map((e) => e.event);
    assert.deepEqual(got, []);
  });
  await check("production: commands act", async () => {
    const u = user({ transports: ["websocket"] });
    await connected(u);
    const reason = gone(u);
    page.emit("_disconnect", "/", false, u.id);
    assert.equal(await reason, "io server disconnect");
  });
}

const overall = setTimeout(() => {
  console.log(`FAIL overall: did not finish within ${OVERALL_MS} ms`);
  process.exit(2);
}, OVERALL_MS);

if (MODE === "dev") await devChecks();
else if (MODE === "readonly") await readonlyChecks();
else await productionChecks();

clearTimeout(overall);
for (const s of opened) s.disconnect();
const failed = results.filter((r) => !r).length;
console.log(`${results.length - failed}/${results.length} checks passed (${MODE})`);
process.exit(failed ? 1 : 0);
