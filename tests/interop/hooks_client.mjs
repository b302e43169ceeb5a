// The application hooks of issue 15 (catch-all listeners, per-packet middleware, outgoing listeners,
// off/off_any, timeout/volatile/send) checked with the real JavaScript socket.io-client against
// hooks_app.py (beside this file), over one transport mode:
//
//   websocket  transports: ["websocket"]   (WebSocket from the first request)
//   default    the client's default options (HTTP long-polling, then the upgrade to WebSocket)
//
// Usage: node hooks_client.mjs http://127.0.0.1:PORT MODE [CHECK ...]   (every check when none named)
//
// Prints one line per check, "ok <name>" or "FAIL <name>: <detail>", then a summary line; exits 0
// only when every check passed (1 on a failed check, 2 on the overall timeout, 3 on bad usage).

import assert from "node:assert/strict";
import { io } from "socket.io-client";

const BASE_URL = (process.argv[2] ?? "").replace(/\/+$/, "");
const MODE = process.argv[3] ?? "default";
const ONLY = process.argv.slice(4);
const OVERALL_MS = 30000;
const CHECK_MS = 8000; // the bound of one check
const STEP_MS = 2000; // the bound of one connect, ack or expected event
const NO_ACK_MS = 500; // how long an ack that must not come is waited for
const SETTLE_MS = 250; // how long to wait for deliveries that must NOT (or not twice) arrive

const MODES = { websocket: { transports: ["websocket"] }, default: {} };

if (!/^https?:\/\/[^/]+$/.test(BASE_URL) || !Object.hasOwn(MODES, MODE)) {
  console.error("usage: node hooks_client.mjs http://HOST:PORT websocket|default [CHECK ...]");
  process.exit(3);
}

const OPTS = { ...MODES[MODE], reconnection: false, timeout: STEP_MS };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const inspect = (value) => JSON.stringify(value);

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Emit with an ack within `ms`; resolve with the ack's arguments, or reject on the timeout. */
function ack(socket, event, ...args) {
  return ackWithin(STEP_MS, socket, event, ...args);
}

function ackWithin(ms, socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(ms).emit(event, ...args, (err, ...answer) => {
      if (err) reject(new Error(`no ack for "${event}" within ${ms} ms`));
      else resolve(answer);
    });
  });
}

/** Assert that `event` gets no ack within NO_ACK_MS. */
async function noAck(socket, event, ...args) {
  let answered = null;
  try {
    answered = await ackWithin(NO_ACK_MS, socket, event, ...args);
  } catch {
    return;
  }
  throw new Error(`"${event}" was acked (${inspect(answered)}), expected no ack`);
}

/** Collect the events `socket` receives: {event: [args, ...]} (an ack function left out). */
function collect(socket) {
  const got = {};
  socket.onAny((event, ...args) => (got[event] ??= []).push(args.filter((a) => typeof a !== "function")));
  return got;
}

class Ctx {
  constructor() {
    this.sockets = [];
  }

  connect(nsp = "/", opts = {}) {
    const socket = io(BASE_URL + nsp, { ...OPTS, forceNew: true, ...opts });
    this.sockets.push(socket);
    return withTimeout(
      new Promise((resolve, reject) => {
        socket.once("connect", () => resolve(socket));
        socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
      }),
      STEP_MS,
      `connecting to ${nsp}`,
    );
  }

  /** What the hooks of socket `s` recorded (through the /observer namespace). */
  async records(s) {
    this.observer ??= await this.connect("/observer");
    const [records] = await ack(this.observer, "records", s.id);
    return records;
  }

  close() {
    for (const s of this.sockets) {
      s.removeAllListeners();
      s.disconnect();
    }
  }
}

const of = (records, event) => records.filter((r) => r[1] === event || (r[0] === "handler" && r[1] === event));
const outs = (records) => records.filter((r) => r[0] === "out");

// ---------------------------------------------------------------- checks

const checks = new Map();
const check = (name, fn) => checks.set(name, fn);

check("order", async (ctx) => {
  const s = await ctx.connect();
  assert.deepEqual(await ack(s, "echo", "x"), ["x"], "the echo's ack");
  assert.deepEqual(
    of(await ctx.records(s), "echo"),
    [["pre2", "echo"], ["pre1", "echo"], ["any1", "echo", ["x"]], ["any2", "echo"], ["use1", "echo"], ["use2", "echo", ["x"]], ["handler", "echo"]],
    "catch-all listeners (prepended first, newest first), then the middlewares in order, then the handler",
  );
});

check("rejected", async (ctx) => {
  const s = await ctx.connect();
  const got = collect(s);
  await noAck(s, "forbidden", "secret");
  await sleep(SETTLE_MS);
  assert.deepEqual(got, {}, "the client got something for a rejected event");
  assert.ok(s.connected, "the client was disconnected");
  const records = await ctx.records(s);
  assert.deepEqual(
    of(records, "forbidden"),
    [["pre2", "forbidden"], ["pre1", "forbidden"], ["any1", "forbidden", ["secret"]], ["any2", "forbidden"], ["use1", "forbidden"]],
    "the catch-all listeners and the first middleware saw it; the second middleware and the handler did not run",
  );
  assert.deepEqual(records.filter((r) => r[0] === "error"), [["error", "PermissionError", "forbidden event"]], "the error handler");
  assert.deepEqual(await ack(s, "echo", 1), [1], "the socket still answers");
});

check("rewrite", async (ctx) => {
  const s = await ctx.connect();
  assert.deepEqual(await ack(s, "rewrite", "hello", 7), ["HELLO", 7], "the handler's answer");
  assert.deepEqual(
    of(await ctx.records(s), "rewrite"),
    [["pre2", "rewrite"], ["pre1", "rewrite"], ["any1", "rewrite", ["hello", 7]], ["any2", "rewrite"], ["use1", "rewrite"], ["use2", "rewrite", ["HELLO", 7]], ["handler", "rewrite", ["HELLO", 7]]],
    "the catch-all listener saw the arguments as sent, the later middleware and the handler the rewrite",
  );
});

check("off", async (ctx) => {
  const s = await ctx.connect();
  assert.deepEqual(await ack(s, "remove", "off_echo_other"), [true]);
  assert.deepEqual(await ack(s, "echo", "still"), ["still"], "off(event, another handler) removed the handler");
  assert.deepEqual(await ack(s, "remove", "off_echo"), [true]);
  await noAck(s, "echo", "gone");
  assert.ok(s.connected, "the client was disconnected");
  const echoes = of(await ctx.records(s), "echo");
  assert.equal(echoes.filter((r) => r[0] === "handler").length, 1, `the handler ran after off (${inspect(echoes)})`);
  assert.deepEqual(echoes.filter((r) => r[0] === "any1").map((r) => r[2]), [["still"], ["gone"]], "catch-all listeners see an event without handler");
});

check("off_any", async (ctx) => {
  const s = await ctx.connect();
  assert.deepEqual(await ack(s, "remove", "off_any1"), [true]);
  const before = (await ctx.records(s)).length;
  assert.deepEqual(await ack(s, "echo", "a"), ["a"]);
  const afterOne = await ctx.records(s);
  assert.deepEqual(
    afterOne.slice(before).filter((r) => r[1] === "echo"),
    [["pre2", "echo"], ["pre1", "echo"], ["any2", "echo"], ["use1", "echo"], ["use2", "echo", ["a"]], ["handler", "echo"]],
    "off_any(listener) removed that listener only",
  );
  assert.deepEqual(await ack(s, "remove", "off_any_all"), [true]);
  const middle = (await ctx.records(s)).length;
  assert.deepEqual(await ack(s, "echo", "b"), ["b"]);
  assert.deepEqual(
    (await ctx.records(s)).slice(middle).filter((r) => r[1] === "echo"),
    [["use1", "echo"], ["use2", "echo", ["b"]], ["handler", "echo"]],
    "off_any() removed every catch-all listener",
  );
});

check("outgoing_broadcasts", async (ctx) => {
  const room = `room-${Date.now()}-${Math.random()}`;
  const [a, b, c] = await Promise.all([
    ctx.connect("/", { auth: { outgoing: true } }),
    ctx.connect("/", { auth: { outgoing: true } }),
    ctx.connect("/"),
  ]);
  const got = [a, b, c].map(collect);
  for (const s of [a, b, c]) assert.deepEqual(await ack(s, "join", room), [true]);
  assert.deepEqual(await ack(b, "to_room", room, "p1"), [true]);
  assert.deepEqual(await ack(b, "server_to_room", room, "p2"), [true]);
  assert.deepEqual(await ack(a, "echo", "acked"), ["acked"]);
  await sleep(SETTLE_MS);
  assert.deepEqual(got[0].news, [["p1"], ["p2"]], "a's news");
  assert.deepEqual(got[1].news, [["p2"]], "b's news (socket.to leaves the sender out)");
  assert.deepEqual(got[2].news, [["p1"], ["p2"]], "c's news");
  assert.deepEqual(outs(await ctx.records(a)), [["out", "news", ["p1"]], ["out", "news", ["p2"]]], "a's outgoing listener: each broadcast once, no ack");
  assert.deepEqual(outs(await ctx.records(b)), [["out", "news", ["p2"]]], "b's outgoing listener: not its own socket.to, no ack");
  assert.deepEqual(await ack(a, "remove", "off_outgoing"), [true]);
  assert.deepEqual(await ack(b, "server_to_room", room, "p3"), [true]);
  await sleep(SETTLE_MS);
  assert.deepEqual(got[0].news, [["p1"], ["p2"], ["p3"]], "a's news after off_any_outgoing");
  assert.deepEqual(outs(await ctx.records(a)), [["out", "news", ["p1"]], ["out", "news", ["p2"]]], "off_any_outgoing removed a's listener");
  assert.deepEqual(outs(await ctx.records(b)), [["out", "news", ["p2"]], ["out", "news", ["p3"]]], "b's listener still there");
});

/** Ask the server for every emit form, answering "ask" and ignoring "ignore". */
async function emitForms(ctx) {
  const s = await ctx.connect("/", { auth: { outgoing: true } });
  const got = collect(s);
  s.on("ask", (n, callback) => callback(n * 10));
  s.on("ignore", () => {});
  const [answer] = await withTimeout(ack(s, "emit_forms"), STEP_MS * 2, "emit_forms");
  await sleep(SETTLE_MS);
  return { s, got, answer };
}

check("outgoing_emits", async (ctx) => {
  const { s } = await emitForms(ctx);
  assert.deepEqual(
    outs(await ctx.records(s)),
    [["out", "direct", [1]], ["out", "ask", [2]], ["out", "vol", [3]], ["out", "ask", [4]], ["out", "ignore", [5]], ["out", "message", ["hello", 6]]],
    "the outgoing listener saw emit, emit_with_ack, volatile, timeout and send, each once, and no ack",
  );
});

check("timeout_volatile", async (ctx) => {
  const { got, answer } = await emitForms(ctx);
  assert.deepEqual(answer, [20, 40, "timeout"], "emit_with_ack, timeout(2).emit_with_ack, timeout(0.3) unanswered -> AckTimeout");
  assert.deepEqual(got.direct, [[1]], "emit");
  assert.deepEqual(got.vol, [[3]], "volatile.emit");
  assert.deepEqual(got.ignore, [[5]], "the event whose ack timed out");
});

check("send_message", async (ctx) => {
  const s = await ctx.connect();
  const reply = withTimeout(new Promise((resolve) => s.on("message", (...args) => resolve(args))), STEP_MS, "the server's message");
  s.send("hi", 1);
  assert.deepEqual(await reply, ["got", "hi", 1], "the server's socket.send reaches the client's message handler");
  assert.deepEqual(
    of(await ctx.records(s), "message").filter((r) => r[0] === "any1" || r[0] === "handler"),
    [["any1", "message", ["hi", 1]], ["handler", "message", ["hi", 1]]],
    "the client's send reaches @socket.on(\"message\")",
  );
});

check("error_reserved", async (ctx) => {
  const s = await ctx.connect();
  await noAck(s, "error", "from the client");
  assert.ok(s.connected, "the client was disconnected");
  const records = await ctx.records(s);
  assert.deepEqual(records.filter((r) => r[1] === "error" || r[0] === "error"), [], "a client event \"error\" reached a hook or the handler");
  assert.deepEqual(await ack(s, "echo", 2), [2], "the socket still answers");
});

check("server_level_warning", async (ctx) => {
  const s = await ctx.connect();
  await noAck(s, "server_only", 1);
  assert.ok(s.connected, "the client was disconnected");
  assert.deepEqual(await ack(s, "echo", 3), [3], "the socket still answers");
});

// ---------------------------------------------------------------- runner

function failureDetail(err) {
  if (!err || !err.message) return String(err);
  if (err.code === "ERR_ASSERTION") {
    const what = err.message.split("\n")[0].replace(/:$/, "");
    return `${what}: expected ${inspect(err.expected)}, got ${inspect(err.actual)}`;
  }
  return err.message.replace(/\s*\n\s*/g, " | ");
}

async function main() {
  const unknown = ONLY.filter((name) => !checks.has(name));
  if (unknown.length) {
    console.error(`unknown check(s): ${unknown.join(", ")}; known: ${[...checks.keys()].join(", ")}`);
    process.exit(3);
  }
  const selected = ONLY.length ? ONLY : [...checks.keys()];
  let passed = 0;
  const overall = setTimeout(() => {
    console.log(`FAIL overall: the checks did not finish within ${OVERALL_MS} ms`);
    process.exit(2);
  }, OVERALL_MS);
  for (const name of selected) {
    const ctx = new Ctx();
    try {
      await withTimeout(checks.get(name)(ctx), CHECK_MS, `check "${name}"`);
      console.log(`ok ${name}`);
      passed += 1;
    } catch (err) {
      console.log(`FAIL ${name}: ${failureDetail(err)}`);
    } finally {
      ctx.close();
    }
  }
  clearTimeout(overall);
  console.log(`summary: ${passed} passed, ${selected.length - passed} failed`);
  process.exit(passed === selected.length ? 0 : 1);
}

main().catch((err) => {
  console.log(`FAIL runner: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
