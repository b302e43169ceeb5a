// Interop checks: the real JavaScript socket.io-client (4.8) against the trio_rooms interop app
// (app.py beside this file), over one transport mode:
//
//   websocket  transports: ["websocket"]         (WebSocket from the first request)
//   default    the client's default options      (HTTP long-polling, then the upgrade to WebSocket)
//   polling    transports: ["polling"]           (HTTP long-polling only, never upgraded)
//
// Usage: node js_client.mjs http://127.0.0.1:PORT [websocket|default|polling] [overall_timeout_ms]
//        (mode "default" when omitted)
//
// Prints one line per check, "ok <name>" or "FAIL <name>: <detail>", then a summary line, and exits
// 0 only when every check passed (1 on a failed check, 2 on the overall timeout, 3 on bad usage).

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { io } from "socket.io-client";

const BASE_URL = (process.argv[2] ?? "").replace(/\/+$/, "");
const MODE = process.argv[3] ?? "default";
const OVERALL_MS = Number(process.argv[4] ?? 40000);
const CHECK_MS = 5000; // the bound of one check
const STEP_MS = 2000; // the bound of one connect, ack or expected event
const SETTLE_MS = 250; // how long to wait for deliveries that must NOT (or not twice) arrive

// The client options of each mode (reconnection off: a check must see the first connection fail).
const MODES = {
  websocket: { transports: ["websocket"] },
  default: {},
  polling: { transports: ["polling"] },
};

if (!/^https?:\/\/[^/]+$/.test(BASE_URL) || !Object.hasOwn(MODES, MODE) || !(OVERALL_MS > 0)) {
  console.error("usage: node js_client.mjs http://HOST:PORT [websocket|default|polling] [overall_timeout_ms]");
  process.exit(3);
}

const OPTS = { ...MODES[MODE], reconnection: false, timeout: STEP_MS };
// The transport of the first request, which the server's handshake.query reports.
const FIRST_TRANSPORT = MODE === "websocket" ? "websocket" : "polling";

// Every Engine.IO connection the checks opened, with the upgrades it went through (for the checks of
// the transport in use).
const engines = new Map();

function track(socket) {
  const engine = socket.io.engine;
  if (engine && !engines.has(engine)) {
    const seen = { upgrading: 0, upgraded: 0 };
    engines.set(engine, seen);
    engine.on("upgrading", () => (seen.upgrading += 1));
    engine.on("upgrade", () => (seen.upgraded += 1));
  }
  return socket;
}

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let tagCounter = 0;
const tag = (what) => `${what}-${++tagCounter}-${randomBytes(4).toString("hex")}`;

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolve with the arguments of the next `event` on `socket`. */
function nextEvent(socket, event, ms = STEP_MS) {
  return withTimeout(
    new Promise((resolve) => socket.once(event, (...args) => resolve(args))),
    ms,
    `waiting for "${event}"`,
  );
}

/** Emit with an acknowledgement; resolve with the array of the ack's arguments. */
function ack(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(STEP_MS).emit(event, ...args, (err, ...answer) => {
      if (err) reject(new Error(`no ack for "${event}" within ${STEP_MS} ms`));
      else resolve(answer);
    });
  });
}

/** Like ack() but for events whose ack is one value. */
async function ack1(socket, event, ...args) {
  const answer = await ack(socket, event, ...args);
  assert.equal(answer.length, 1, `ack of "${event}" should carry one argument, got ${inspect(answer)}`);
  return answer[0];
}

/** Count the "msg" events carrying `{tag}` on each socket. */
function counter(sockets, event = "msg") {
  const counts = new Map(sockets.map((s) => [s, []]));
  for (const s of sockets) s.on(event, (payload) => counts.get(s).push(payload));
  return {
    count(s, t) {
      return counts.get(s).filter((p) => p && p.tag === t).length;
    },
  };
}

function inspect(value) {
  return JSON.stringify(value, (_, v) => (v && v.type === "Buffer" && Array.isArray(v.data) ? `<Buffer ${Buffer.from(v.data).toString("hex")}>` : v));
}

function isBinary(x) {
  return Buffer.isBuffer(x) || x instanceof ArrayBuffer || ArrayBuffer.isView(x);
}

function toBuffer(x) {
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof ArrayBuffer) return Buffer.from(x);
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  throw new Error(`not binary: ${inspect(x)}`);
}

/** Replace every binary value by {bytes: hex}, as app.py's describe() does on the server side. */
function describe(value) {
  if (isBinary(value)) return { bytes: toBuffer(value).toString("hex") };
  if (Array.isArray(value)) return value.map(describe);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)]));
  }
  return value;
}

/** Poll `last_disconnect` until the server recorded what its disconnect handlers saw for `sid`. */
async function lastDisconnect(observer, sid) {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const answer = await ack(observer, "last_disconnect", sid);
    if (answer.length === 1 && answer[0]) return answer[0];
    if (Date.now() > deadline) throw new Error(`the server recorded no disconnect for ${sid}`);
    await sleep(50);
  }
}

// One context per check: it opens sockets and closes every one of them when the check ends.
class Ctx {
  constructor() {
    this.sockets = [];
  }

  /** A new connection (new Manager) to `nsp`, resolved once connected. */
  connect(nsp = "/", opts = {}) {
    return this.connectWith(io(BASE_URL + nsp, { ...OPTS, forceNew: true, ...opts }));
  }

  connectWith(socket) {
    this.sockets.push(track(socket));
    return withTimeout(
      new Promise((resolve, reject) => {
        socket.once("connect", () => resolve(socket));
        socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}${err.data === undefined ? "" : " " + inspect(err.data)}`)));
      }),
      STEP_MS,
      `connecting to ${socket.nsp}`,
    );
  }

  /** A connection attempt that must fail: resolve with the connect_error. */
  refused(nsp = "/", opts = {}) {
    const socket = io(BASE_URL + nsp, { ...OPTS, forceNew: true, ...opts });
    return this.refusedWith(socket);
  }

  refusedWith(socket) {
    this.sockets.push(track(socket));
    return withTimeout(
      new Promise((resolve, reject) => {
        socket.once("connect", () => reject(new Error(`connected to ${socket.nsp}, expected connect_error`)));
        socket.once("connect_error", (err) => resolve(err));
      }),
      STEP_MS,
      `connect_error from ${socket.nsp}`,
    );
  }

  close() {
    for (const s of this.sockets) {
      s.removeAllListeners();
      s.disconnect();
    }
  }
}

// ---------------------------------------------------------------- checks

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

check("connect and handshake auth/query", async (ctx) => {
  const s = await ctx.connect("/", { auth: { token: "good", n: 1, nested: { a: [1, "x"] } }, query: { foo: "bar", n: "2" } });
  assert.ok(s.id, "client got no socket id");
  const hs = await ack1(s, "handshake");
  assert.equal(hs.id, s.id, "server socket.id differs from the id in the CONNECT answer");
  assert.deepEqual(hs.auth, { token: "good", n: 1, nested: { a: [1, "x"] } }, "handshake.auth");
  assert.equal(hs.query.foo, "bar", `handshake.query.foo (query ${inspect(hs.query)})`);
  assert.equal(hs.query.n, "2", `handshake.query.n (query ${inspect(hs.query)})`);
  assert.equal(hs.query.EIO, "4", `handshake.query.EIO (query ${inspect(hs.query)})`);
  assert.equal(hs.query.transport, FIRST_TRANSPORT, `handshake.query.transport (query ${inspect(hs.query)})`);
  assert.deepEqual(hs.rooms, [s.id], "a new socket is in its own room only");
  assert.notEqual(s.id, s.io.engine.id, "the namespace socket id must not be the Engine.IO sid");
  const bare = await ctx.connect("/");
  assert.deepEqual((await ack1(bare, "handshake")).auth, {}, "handshake.auth without auth must be {}");
  assert.notEqual(bare.id, s.id, "two sockets got the same id");
});

check("middleware refusal (connect_error message and data)", async (ctx) => {
  const err = await ctx.refused("/", { auth: { token: "bad" } });
  assert.equal(err.message, "not authorized", "connect_error message");
  assert.deepEqual(err.data, { code: 42 }, "connect_error data");
  const err2 = await ctx.refused("/admin", { auth: { role: "guest" } });
  assert.equal(err2.message, "admins only", "connect_error message (/admin)");
  assert.ok(err2.data === undefined || err2.data === null, `connect_error data should be absent, got ${inspect(err2.data)}`);
});

check("unknown namespace -> Invalid namespace", async (ctx) => {
  const err = await ctx.refused("/nope");
  assert.equal(err.message, "Invalid namespace");
  const err2 = await ctx.refused("/dyn-abc");
  assert.equal(err2.message, "Invalid namespace", "/dyn-abc does not match ^/dyn-\\d+$");
});

check("rooms join/leave", async (ctx) => {
  const s = await ctx.connect();
  const [r1, r2, r3] = [tag("r"), tag("r"), tag("r")];
  assert.deepEqual(await ack1(s, "join", r1), [r1, s.id].sort(), "join one room");
  assert.deepEqual(await ack1(s, "join", [r2, r3]), [r1, r2, r3, s.id].sort(), "join a list of rooms");
  assert.deepEqual(await ack1(s, "join", r1), [r1, r2, r3, s.id].sort(), "joining again is a no-op");
  assert.deepEqual(await ack1(s, "leave", r2), [r1, r3, s.id].sort(), "leave");
  assert.deepEqual(await ack1(s, "leave", tag("never")), [r1, r3, s.id].sort(), "leaving a non-member room");
  // Deliveries follow membership: r2 (left) reaches nobody, r3 reaches the socket.
  const c = counter([s]);
  const sender = await ctx.connect();
  const [t2, t3] = [tag("t"), tag("t")];
  await ack(sender, "to_rooms", r2, [], { tag: t2 });
  await ack(sender, "to_rooms", r3, [], { tag: t3 });
  await sleep(SETTLE_MS);
  assert.equal(c.count(s, t2), 0, "a left room still delivered");
  assert.equal(c.count(s, t3), 1, "a joined room did not deliver once");
});

check("union broadcast to overlapping rooms (each member once)", async (ctx) => {
  const [a, b, both, none, sender] = await Promise.all([1, 2, 3, 4, 5].map(() => ctx.connect()));
  const [r1, r2] = [tag("r"), tag("r")];
  await ack(a, "join", r1);
  await ack(b, "join", r2);
  await ack(both, "join", [r1, r2]);
  await ack(sender, "join", r1);
  const c = counter([a, b, both, none, sender]);
  const t = tag("union");
  assert.deepEqual(await ack(sender, "to_rooms", [r1, r2], [], { tag: t }), [true]);
  await sleep(SETTLE_MS);
  const got = [a, b, both, none, sender].map((s) => c.count(s, t));
  assert.deepEqual(got, [1, 1, 1, 0, 1], "arrivals per socket [in r1, in r2, in both, in none, sender in r1]");
});

check("except_ (rooms and socket ids)", async (ctx) => {
  const [a, b, both, sender] = await Promise.all([1, 2, 3, 4].map(() => ctx.connect()));
  const [r1, r2] = [tag("r"), tag("r")];
  await ack(a, "join", r1);
  await ack(b, "join", r2);
  await ack(both, "join", [r1, r2]);
  const c = counter([a, b, both, sender]);
  const t1 = tag("except");
  await ack(sender, "to_rooms", [r1, r2], [r2], { tag: t1 });
  const t2 = tag("except-id");
  await ack(sender, "to_rooms", [r1, r2], [a.id], { tag: t2 });
  const t3 = tag("except-all");
  await ack(sender, "to_rooms", r1, [r1], { tag: t3 });
  await sleep(SETTLE_MS);
  const sockets = [a, b, both, sender];
  assert.deepEqual(sockets.map((s) => c.count(s, t1)), [1, 0, 0, 0], "to(r1,r2).except_(r2) [a in r1, b in r2, both, sender]");
  assert.deepEqual(sockets.map((s) => c.count(s, t2)), [0, 1, 1, 0], "to(r1,r2).except_(a.id)");
  assert.deepEqual(sockets.map((s) => c.count(s, t3)), [0, 0, 0, 0], "to(r1).except_(r1)");
});

check("socket.to / socket.broadcast exclude the sender", async (ctx) => {
  const [a, b, c2, outsider] = await Promise.all([1, 2, 3, 4].map(() => ctx.connect()));
  const [r1, r2] = [tag("r"), tag("r")];
  await ack(a, "join", [r1, r2]);
  await ack(b, "join", r1);
  await ack(c2, "join", [r1, r2]);
  const c = counter([a, b, c2, outsider]);
  const t = tag("socket-to");
  await ack(a, "socket_to", [r1, r2], { tag: t });
  const tb = tag("broadcast");
  await ack(a, "socket_broadcast", { tag: tb });
  await sleep(SETTLE_MS);
  assert.deepEqual([a, b, c2, outsider].map((s) => c.count(s, t)), [0, 1, 1, 0], "socket.to(r1,r2) [sender, b, c, outsider]");
  assert.deepEqual([a, b, c2, outsider].map((s) => c.count(s, tb)), [0, 1, 1, 1], "socket.broadcast [sender, b, c, outsider]");
});

check("private message by socket id", async (ctx) => {
  const [a, b, c2] = await Promise.all([1, 2, 3].map(() => ctx.connect()));
  const got = { a: [], b: [], c: [] };
  a.on("private", (...args) => got.a.push(args));
  b.on("private", (...args) => got.b.push(args));
  c2.on("private", (...args) => got.c.push(args));
  const t = tag("private");
  await ack(a, "private", b.id, { tag: t });
  await sleep(SETTLE_MS);
  assert.deepEqual(got.b, [[{ tag: t }, a.id]], "the target got (payload, sender id) once");
  assert.deepEqual(got.a, [], "the sender got its private message");
  assert.deepEqual(got.c, [], "a third socket got a private message");
});

check("acks client->server (0, 1, 2+ args)", async (ctx) => {
  const s = await ctx.connect();
  assert.deepEqual(await ack(s, "ack_none"), [], "handler returning None acks with no argument");
  assert.deepEqual(await ack(s, "echo"), [], "echo of nothing (empty tuple) acks with no argument");
  assert.deepEqual(await ack(s, "echo", "one"), ["one"], "one argument");
  const many = ["two", 2, 2.5, true, null, { k: [1, { v: "é✓😀" }] }, [], {}, -(2 ** 53 - 1)];
  assert.deepEqual(await ack(s, "echo", ...many), many, "2+ arguments (a tuple is spread)");
  const big = "x".repeat(200_000);
  assert.deepEqual(await ack(s, "echo", big), [big], "a 200 kB argument");
  // Many acks in flight at once: each answer goes to its own callback.
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => ack(s, "echo", i, `n${i}`)));
  answers.forEach((answer, i) => assert.deepEqual(answer, [i, `n${i}`], `concurrent ack #${i}`));
});

check("acks server->client (emit_with_ack)", async (ctx) => {
  const s = await ctx.connect();
  s.on("question", (q, cb) => {
    if (q.mode === "none") cb();
    else if (q.mode === "one") cb(q.x * 2);
    else if (q.mode === "many") cb(q.x, "b", { c: [true] });
    else if (q.mode === "binary") cb(Buffer.from([q.x]), { b: Buffer.from("ok") });
    // mode "silent": never answer
  });
  assert.deepEqual(await ack1(s, "ask_client", { mode: "one", x: 21 }, 2), { n: 1, args: [42] });
  assert.deepEqual(await ack1(s, "ask_client", { mode: "none" }, 2), { n: 0, args: [] });
  assert.deepEqual(await ack1(s, "ask_client", { mode: "many", x: 1 }, 2), { n: 3, args: [1, "b", { c: [true] }] });
  assert.deepEqual(await ack1(s, "ask_client", { mode: "binary", x: 7 }, 2), {
    n: 2,
    args: [{ bytes: "07" }, { b: { bytes: Buffer.from("ok").toString("hex") } }],
  });
  assert.deepEqual(await ack1(s, "ask_client", { mode: "silent" }, 0.3), { timeout: true }, "AckTimeout");
});

check("broadcast with acks (to(room).timeout().emit_with_ack)", async (ctx) => {
  const [a, b, silent, asker] = await Promise.all([1, 2, 3, 4].map(() => ctx.connect()));
  for (const s of [a, b]) s.on("question", (q, cb) => cb(s.id));
  silent.on("question", () => {});
  const [r, rs] = [tag("r"), tag("r")];
  await ack(a, "join", [r, rs]);
  await ack(b, "join", [r, rs]);
  await ack(silent, "join", rs);
  const ok = await ack1(asker, "ask_room", r, "who?", 2);
  assert.equal(ok.timeout, false, `unexpected timeout: ${inspect(ok)}`);
  assert.deepEqual([...ok.responses].sort(), [a.id, b.id].sort(), "one answer per member");
  const partial = await ack1(asker, "ask_room", rs, "who?", 0.3);
  assert.equal(partial.timeout, true, `expected AckTimeout, got ${inspect(partial)}`);
  assert.deepEqual([...partial.responses].sort(), [a.id, b.id].sort(), "AckTimeout.responses holds the answers that came");
});

check("binary both ways", async (ctx) => {
  const s = await ctx.connect();
  const args = [
    { a: Buffer.from([0, 1, 2, 255]), list: [Buffer.from("hello"), { deep: Buffer.alloc(0) }], n: 1 },
    Buffer.from(randomBytes(1024)),
    "text",
    [Buffer.from([9]), Buffer.from([10])],
  ];
  // client -> server: the server saw real bytes at the right places
  assert.deepEqual(await ack1(s, "describe", ...args), describe(args), "server-side view of the binary arguments");
  // round trip: binary event in, binary ack out
  const echoed = await ack(s, "echo_binary", ...args);
  assert.deepEqual(describe(echoed), describe(args), "binary ack");
  assert.ok(isBinary(echoed[1]), "top-level binary argument came back as binary");
  // server -> client: a binary event with several attachments
  const got = nextEvent(s, "binary");
  await ack(s, "send_binary");
  const received = await got;
  assert.deepEqual(
    describe(received),
    [
      { a: { bytes: "000102" }, nested: [{ bytes: "ff" }, { deep: { bytes: Buffer.from("trio").toString("hex") } }], text: "t" },
      { bytes: "" },
      { bytes: Buffer.from("last").toString("hex") },
    ],
    "server-emitted binary event",
  );
});

check("server emits keep their order (text and binary interleaved)", async (ctx) => {
  const s = await ctx.connect();
  const seen = [];
  s.on("burst", (i, buf) => seen.push(i % 3 === 0 ? [i, toBuffer(buf).readUInt32BE(0)] : [i]));
  await ack(s, "burst", 300);
  const deadline = Date.now() + STEP_MS;
  while (seen.length < 300 && Date.now() < deadline) await sleep(20);
  const expected = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? [i, i] : [i]));
  assert.deepEqual(seen, expected, "burst arrived out of order or incomplete");
});

check("handler exception keeps the socket connected", async (ctx) => {
  const s = await ctx.connect();
  let disconnected = null;
  s.on("disconnect", (reason) => (disconnected = reason));
  const err = await new Promise((resolve) => s.timeout(300).emit("boom", (e) => resolve(e)));
  assert.ok(err instanceof Error, "a handler that raised must not ack");
  assert.deepEqual(await ack(s, "echo", "still here"), ["still here"]);
  assert.equal(disconnected, null, `disconnected: ${disconnected}`);
});

check("several namespaces on one connection (multiplexed) and dynamic namespaces", async (ctx) => {
  // io() without forceNew shares one Manager (one Engine.IO connection) per origin.
  const main = await ctx.connectWith(io(BASE_URL, { ...OPTS }));
  const adminSocket = io(BASE_URL + "/admin", { ...OPTS, auth: { role: "admin" } });
  const welcome = nextEvent(adminSocket, "welcome");
  const admin = await ctx.connectWith(adminSocket);
  assert.equal(admin.io, main.io, "the /admin socket did not share the Manager");
  assert.deepEqual(await welcome, ["/admin", admin.id], "emit from the connection handler");
  const dynSocket = await ctx.connectWith(main.io.socket("/dyn-42", {}));
  assert.equal(new Set([main.id, admin.id, dynSocket.id]).size, 3, "socket ids are per namespace");
  assert.deepEqual(await ack1(admin, "whoami"), { nsp: "/admin", id: admin.id, auth: { role: "admin" } });
  assert.deepEqual(await ack1(dynSocket, "whoami"), { nsp: "dyn", id: dynSocket.id });

  // A refused namespace on the shared connection leaves the others connected.
  const err = await ctx.refusedWith(main.io.socket("/admin-nope", {}));
  assert.equal(err.message, "Invalid namespace");
  assert.deepEqual(await ack(main, "echo", 1), [1], "/ still works after a refused namespace");

  // server.of("/admin").to(room).except_(...) reaches /admin sockets only.
  const admin2 = await ctx.connect("/admin", { auth: { role: "admin" } });
  const room = tag("r");
  await ack(admin, "join", room);
  await ack(admin2, "join", room);
  await ack(main, "join", room);
  const seen = { admin: [], admin2: [], main: [] };
  admin.on("admin_msg", (p) => seen.admin.push(p));
  admin2.on("admin_msg", (p) => seen.admin2.push(p));
  main.on("admin_msg", (p) => seen.main.push(p));
  main.on("msg", (p) => seen.main.push(p));
  const t = tag("admin");
  await ack(main, "admin_to", room, [admin2.id], { tag: t });
  await sleep(SETTLE_MS);
  assert.deepEqual(seen, { admin: [{ tag: t }], admin2: [], main: [] }, "server.of('/admin').to(room).except_(id)");

  // Emitting on the dynamic parent reaches every child namespace.
  const dyn7 = await ctx.connect("/dyn-7");
  const dynSeen = { d42: [], d7: [], main: [] };
  dynSocket.on("dyn_msg", (p) => dynSeen.d42.push(p));
  dyn7.on("dyn_msg", (p) => dynSeen.d7.push(p));
  main.on("dyn_msg", (p) => dynSeen.main.push(p));
  const td = tag("dyn");
  await ack(main, "dyn_broadcast", { tag: td });
  await sleep(SETTLE_MS);
  assert.deepEqual(dynSeen, { d42: [{ tag: td }], d7: [{ tag: td }], main: [] }, "emit on the dynamic parent");

  // Leaving one namespace keeps the shared connection and the other namespaces.
  admin.disconnect();
  await sleep(100);
  assert.ok(main.connected && dynSocket.connected, "leaving /admin dropped the other namespaces");
  assert.deepEqual(await ack(main, "echo", 2), [2], "/ after leaving /admin");
});

check("fetch_sockets / sockets_join / sockets_leave", async (ctx) => {
  const [a, b, c2] = await Promise.all([1, 2, 3].map(() => ctx.connect()));
  const [r, extra] = [tag("r"), tag("extra")];
  await ack(a, "join", r);
  await ack(b, "join", r);
  const found = await ack1(c2, "fetch_sockets", r);
  assert.deepEqual(
    found,
    [
      { id: a.id, rooms: [r, a.id].sort() },
      { id: b.id, rooms: [r, b.id].sort() },
    ].sort((x, y) => (x.id < y.id ? -1 : 1)),
    "fetch_sockets",
  );
  await ack(c2, "sockets_join", r, extra);
  assert.deepEqual(await ack1(a, "rooms"), [r, extra, a.id].sort(), "sockets_join");
  assert.deepEqual(await ack1(c2, "rooms"), [c2.id], "sockets_join touched a non-member");
  await ack(c2, "sockets_leave", r, extra);
  assert.deepEqual(await ack1(b, "rooms"), [r, b.id].sort(), "sockets_leave");
});

check("server-side disconnect (io server disconnect)", async (ctx) => {
  const [s, observer] = await Promise.all([ctx.connect(), ctx.connect()]);
  const room = tag("r");
  await ack(s, "join", room);
  const sid = s.id; // the client forgets its id on disconnect
  const reason = nextEvent(s, "disconnect");
  s.emit("server_disconnect_me");
  assert.equal((await reason)[0], "io server disconnect", "client-side reason");
  const rec = await lastDisconnect(observer, sid);
  assert.equal(rec.disconnecting_reason, "server namespace disconnect", `disconnecting reason (${inspect(rec)})`);
  assert.equal(rec.disconnect_reason, "server namespace disconnect", `disconnect reason (${inspect(rec)})`);
  assert.deepEqual(rec.disconnecting_rooms, [room, sid].sort(), "rooms seen by disconnecting");
  assert.deepEqual(rec.disconnect_rooms, [], "rooms seen by disconnect");
});

check("disconnect_sockets by room", async (ctx) => {
  const [a, b, keep] = await Promise.all([1, 2, 3].map(() => ctx.connect()));
  const room = tag("r");
  await ack(a, "join", room);
  await ack(b, "join", room);
  const reasons = Promise.all([nextEvent(a, "disconnect"), nextEvent(b, "disconnect")]);
  await ack(keep, "disconnect_sockets", room);
  assert.deepEqual((await reasons).map((args) => args[0]), ["io server disconnect", "io server disconnect"]);
  assert.ok(keep.connected, "a socket outside the room was disconnected");
  assert.deepEqual(await ack(keep, "echo", "k"), ["k"]);
});

check("client disconnect -> disconnecting saw rooms, reason client namespace disconnect", async (ctx) => {
  const [s, observer] = await Promise.all([ctx.connect(), ctx.connect()]);
  const [r1, r2] = [tag("r"), tag("r")];
  await ack(s, "join", [r1, r2]);
  const sid = s.id;
  s.disconnect();
  const rec = await lastDisconnect(observer, sid);
  assert.equal(rec.disconnecting_reason, "client namespace disconnect", `disconnecting reason (${inspect(rec)})`);
  assert.equal(rec.disconnect_reason, "client namespace disconnect", `disconnect reason (${inspect(rec)})`);
  assert.deepEqual(rec.disconnecting_rooms, [r1, r2, sid].sort(), "rooms seen by disconnecting");
  assert.deepEqual(rec.disconnect_rooms, [], "rooms seen by disconnect");
  // Its rooms are gone: a broadcast to them reaches nobody (and does not fail).
  assert.deepEqual(await ack1(observer, "fetch_sockets", [r1, r2]), [], "rooms left after disconnect");
});

check("transport close -> reason transport close", async (ctx) => {
  const [s, observer] = await Promise.all([ctx.connect(), ctx.connect()]);
  const room = tag("r");
  await ack(s, "join", room);
  const sid = s.id;
  // Closes the Engine.IO connection without a Socket.IO DISCONNECT: the WebSocket is closed, or, on
  // polling, a close packet is POSTed.
  s.io.engine.close();
  const rec = await lastDisconnect(observer, sid);
  assert.equal(rec.disconnecting_reason, "transport close", `disconnecting reason (${inspect(rec)})`);
  assert.equal(rec.disconnect_reason, "transport close", `disconnect reason (${inspect(rec)})`);
  assert.deepEqual(rec.disconnecting_rooms, [room, sid].sort(), "rooms seen by disconnecting");
});

// ---------------------------------------------------------------- checks of the transport mode

const SERVER_BURST = 120; // numbered server emits, one every SERVER_GAP_S (binary every third)
const SERVER_GAP_S = 0.004;
const CLIENT_GAP_MS = 3; // the client emits one numbered "record" event this often...
const CLIENT_AFTER = 15; // ...until this many were sent after the upgrade
const CLIENT_MAX = 400;
const BEFORE_PROBE = 10; // in the "held probe" run: emits each way on polling before the probe starts

/**
 * One connection with default options: the server emits a paced numbered burst, starting as soon as
 * the namespace is connected, and the client emits numbered events on a timer, both across the
 * upgrade. Assert that each side received every number exactly once (the server events in order)
 * and that the engine ended on "websocket"; return how many emits went over each transport.
 *
 * holdProbe: start the client's upgrade probe only once BEFORE_PROBE emits went each way over polling
 * (as on a slow network), where the client would start it at once: on localhost the probe otherwise
 * often completes before the namespace is connected, and nothing crosses the upgrade. The probe and
 * the upgrade themselves are the client's own code.
 */
async function upgradeRun(ctx, holdProbe) {
  const s = track(io(BASE_URL, { ...OPTS, forceNew: true }));
  ctx.sockets.push(s);
  const engine = s.io.engine;
  const seen = []; // [i, the number carried by the attachment or null, transport at arrival]
  const sentOn = []; // the transport in use when each "record" was emitted
  let releaseProbe = () => {};
  if (holdProbe) {
    assert.equal(typeof engine._probe, "function", "engine.io-client has no _probe() to hold (version changed?)");
    const probe = engine._probe;
    const held = [];
    engine._probe = function (...args) {
      held.push(() => probe.apply(this, args));
    };
    releaseProbe = () => {
      const polled = (list) => list.filter((t) => t === "polling").length;
      if (polled(seen.map(([, , t]) => t)) >= BEFORE_PROBE && polled(sentOn) >= BEFORE_PROBE) {
        held.splice(0).forEach((start) => start());
      }
    };
  }
  s.on("seq", (i, buf) => {
    seen.push([i, buf === undefined ? null : toBuffer(buf).readUInt32BE(0), engine.transport.name]);
    releaseProbe();
  });
  let upgraded = false;
  engine.on("upgrade", () => (upgraded = true));
  // Both buffered until the namespace is connected, then sent first, in this order.
  s.emit("paced_burst", SERVER_BURST, SERVER_GAP_S);
  let afterUpgrade = 0;
  const timer = setInterval(() => {
    if (sentOn.length >= CLIENT_MAX || afterUpgrade >= CLIENT_AFTER) return clearInterval(timer);
    if (upgraded) afterUpgrade += 1;
    sentOn.push(!s.connected ? "buffered" : upgraded ? "websocket" : "polling");
    s.emit("record", sentOn.length - 1);
    releaseProbe();
  }, CLIENT_GAP_MS);
  try {
    await ctx.connectWith(s);
    const deadline = Date.now() + STEP_MS;
    while ((seen.length < SERVER_BURST || !upgraded || afterUpgrade < CLIENT_AFTER) && Date.now() < deadline) await sleep(20);
  } finally {
    clearInterval(timer);
  }
  assert.ok(upgraded, `the engine never upgraded (transport ${engine.transport.name})`);
  assert.equal(engine.transport.name, "websocket", "the transport after the upgrade");
  const expected = Array.from({ length: SERVER_BURST }, (_, i) => [i, i % 3 === 0 ? i : null]);
  assert.deepEqual(seen.map(([i, b]) => [i, b]), expected, "server emits across the upgrade (each once, in order)");
  await sleep(SETTLE_MS);
  assert.equal(seen.length, SERVER_BURST, "server emits arrived twice");
  const recorded = await ack1(s, "recorded");
  const sortedRecorded = [...recorded].sort((a, b) => a - b);
  assert.deepEqual(sortedRecorded, Array.from({ length: sentOn.length }, (_, i) => i), "client emits across the upgrade (each once)");
  const count = (list, name) => list.filter((t) => t === name).length;
  const serverOn = seen.map(([, , t]) => t);
  return {
    server: { polling: count(serverOn, "polling"), websocket: count(serverOn, "websocket") },
    client: { buffered: count(sentOn, "buffered"), polling: count(sentOn, "polling"), websocket: count(sentOn, "websocket") },
  };
}

if (MODE === "default") {
  check("upgrade to websocket loses and duplicates nothing (bursts both ways across it)", async (ctx) => {
    // As the client does it on its own (whatever crosses the upgrade on this machine).
    await upgradeRun(ctx, false);
    // With the probe held until emits went both ways over polling, so that both bursts cross it.
    const run = await upgradeRun(ctx, true);
    const crossed = run.server.polling > 0 && run.server.websocket > 0 && run.client.polling > 0 && run.client.websocket > 0;
    assert.ok(crossed, `the bursts did not cross the upgrade: ${inspect(run)}`);
  });
}

if (MODE === "polling") {
  check("polling only: every connection stayed on polling", async (ctx) => {
    const s = await ctx.connect();
    assert.deepEqual(await ack(s, "echo", "p"), ["p"]);
    await sleep(SETTLE_MS);
    assert.equal(s.io.engine.transport.name, "polling", "this connection's transport");
    const moved = [...engines].filter(([e, seen]) => e.transport.name !== "polling" || seen.upgrading || seen.upgraded);
    assert.equal(moved.length, 0, `of ${engines.size} connections, ${moved.length} left polling or tried to upgrade`);
  });
}

if (MODE === "websocket") {
  check("websocket only: every connection was on websocket", async () => {
    const other = [...engines.keys()].filter((e) => e.transport.name !== "websocket");
    assert.equal(other.length, 0, `of ${engines.size} connections, ${other.length} were not on websocket`);
  });
}

// ---------------------------------------------------------------- runner

function failureDetail(err) {
  if (!err || !err.message) return String(err);
  if (err.code === "ERR_ASSERTION") {
    // The first line is our message (or node's own summary); the diff below it goes on one line.
    const what = err.message.split("\n")[0].replace(/:$/, "");
    return `${what}: expected ${inspect(err.expected)}, got ${inspect(err.actual)}`;
  }
  return err.message.replace(/\s*\n\s*/g, " | ");
}

async function main() {
  let passed = 0;
  const overall = setTimeout(() => {
    console.log(`FAIL overall: the checks did not finish within ${OVERALL_MS} ms`);
    console.log(`summary: ${passed} passed, ${checks.length - passed} failed (timeout)`);
    process.exit(2);
  }, OVERALL_MS);
  for (const { name, fn } of checks) {
    const ctx = new Ctx();
    try {
      await withTimeout(fn(ctx), CHECK_MS, `check "${name}"`);
      console.log(`ok ${name}`);
      passed += 1;
    } catch (err) {
      console.log(`FAIL ${name}: ${failureDetail(err)}`);
    } finally {
      ctx.close();
    }
  }
  clearTimeout(overall);
  const failed = checks.length - passed;
  console.log(`summary: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`FAIL runner: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
