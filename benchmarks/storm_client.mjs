// Storm client of the reconnect storm (storm.py, issue 13): N stock socket.io-client 4.8 clients with
// their default options (reconnectionDelay 1000, reconnectionDelayMax 5000, randomizationFactor 0.5,
// timeout 20000; transports polling then upgrade to WebSocket, or --transport websocket for
// ["websocket"] only), `forceNew` so that each client has its own Manager and connection.
//
//   node storm_client.mjs --port PORT [--n 5000] [--first 0] [--transport default|websocket]
//                         [--batch 500] [--connect-timeout 120]
//
// Client c (c from --first) joins room "a<floor(c/100)>" with an ack on every "connect" (the first one
// and each after a reconnection: a real application joins its rooms again, the new server has none).
// Lines on stdout, for the runner (storm.py); progress and errors go to stderr:
//
// 1. the clients connect --batch at a time (each batch waits for its joins); when all are connected
//    and joined, one broadcast to all their rooms checks that each client gets it once ("verify",
//    below), then "READY {json}". The storm phase starts there: from now on every disconnect, every
//    reconnection attempt and its failure, every "connect" and join ack is recorded with its time
//    (process.hrtime: CLOCK_MONOTONIC, the clock of Python's time.monotonic in the runner).
// 2. the runner kills the server and starts a new one on the same port; the clients reconnect with
//    their backoff. When every client is connected and joined again: "BACK {json}" (at once, so that the
//    runner can stop its samples there).
// 3. on a line "verify" on stdin: one more broadcast to all rooms (each client must get it exactly once;
//    clients not back are left out), then "RESULT {json}" with every client's record.
// 4. on "exit" or the end of stdin: the process exits (the sockets close with it).
//
// "verify": the first connected client emits the benchmark servers' "bench" request
// {targets: [[all rooms of this process]], count: 1, seq0, rate: 0, pad: ""} with an ack; the check
// waits for every client's "m" {i: seq0} (10 s at most) and counts missing, duplicate and unexpected
// events (an "m" with another seq0). Traffic goes to 127.0.0.1 only.

import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { io } from "socket.io-client";

const { values: opt } = parseArgs({
  options: {
    port: { type: "string" },
    n: { type: "string", default: "5000" },
    first: { type: "string", default: "0" },
    transport: { type: "string", default: "default" },
    batch: { type: "string", default: "500" },
    "connect-timeout": { type: "string", default: "120" },
    "verify-timeout": { type: "string", default: "10" },
  },
});
const N = Number(opt.n);
const FIRST = Number(opt.first);
const BATCH = Number(opt.batch);
const URL = `http://127.0.0.1:${Number(opt.port)}`;
const OPTIONS = { forceNew: true, ...(opt.transport === "websocket" ? { transports: ["websocket"] } : {}) };
if (!["default", "websocket"].includes(opt.transport)) throw new Error(`--transport ${opt.transport}`);

const now = () => Number(process.hrtime.bigint()) / 1e9; // CLOCK_MONOTONIC, seconds
const log = (...args) => process.stderr.write(`[storm_client ${FIRST}] ${args.join(" ")}\n`);
const emit = (tag, doc) => process.stdout.write(`${tag} ${JSON.stringify(doc)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let phase = "connect"; // then "storm" after READY
let connectedNow = 0;
let joinedNow = 0;
let backAt = null;
let seqOfVerify = null;
const counters = { unexpected: 0, connect_errors_initial: 0, errors: [] };
const rooms = new Set();

/** One client: its socket and what happened to it in the storm. */
function makeClient(c) {
  const room = `a${Math.floor(c / 100)}`;
  rooms.add(room);
  const socket = io(URL, OPTIONS);
  const rec = {
    c,
    socket,
    connected: false,
    joined: false,
    // the storm (after READY):
    disconnect: null, // time of the first disconnect
    reasons: [],
    attempts: 0, // "reconnect_attempt" events
    failures: 0, // "reconnect_error" events (an attempt that failed)
    failureKinds: {},
    failureTimes: [],
    reconnected: null, // time of the first "connect" after the disconnect
    lastConnect: null, // time of the last "connect"
    connects: 0, // "connect" events in the storm
    joinedAt: null, // time of the join ack after the last "connect"
    upgradedAt: null, // time of the first upgrade to WebSocket after the disconnect (default transports)
    upgradeErrors: [], // the engine's "upgradeError" (a failed WebSocket probe) in the storm: [time, message]
    got: 0, // "m" events of the current verify
    drops: 0, // disconnects so far
    dropsAtVerify: 0,
  };
  socket.on("connect", () => {
    rec.connected = true;
    connectedNow += 1;
    if (phase === "storm") {
      rec.connects += 1;
      if (rec.reconnected === null) rec.reconnected = now();
      rec.lastConnect = now();
      const engine = socket.io.engine;
      if (engine.transport.name === "websocket") {
        if (rec.upgradedAt === null) rec.upgradedAt = now();
      } else {
        engine.once("upgrade", () => {
          if (rec.upgradedAt === null && phase === "storm") rec.upgradedAt = now();
        });
      }
    }
    socket.emit("join", [room], (ok) => {
      if (ok !== true) counters.errors.push(`client ${c}: join acked ${JSON.stringify(ok)}`);
      if (!socket.connected || rec.joined) return;
      rec.joined = true;
      joinedNow += 1;
      if (phase === "storm") {
        rec.joinedAt = now();
        if (joinedNow === N && connectedNow === N && backAt === null) {
          backAt = now();
          emit("BACK", { at: backAt, n: N });
        }
      }
    });
  });
  socket.on("disconnect", (reason) => {
    rec.drops += 1;
    if (rec.connected) connectedNow -= 1;
    if (rec.joined) joinedNow -= 1;
    rec.connected = false;
    rec.joined = false;
    if (phase === "storm") {
      if (rec.disconnect === null) rec.disconnect = now();
      rec.reasons.push(reason);
    } else {
      counters.errors.push(`client ${c} disconnected before the storm: ${reason}`);
    }
  });
  socket.on("connect_error", (err) => {
    if (phase === "connect") counters.connect_errors_initial += 1;
    void err;
  });
  socket.io.on("open", () => {
    socket.io.engine.on("upgradeError", (err) => {
      if (phase === "storm") rec.upgradeErrors.push([now(), String(err?.message ?? err)]);
    });
  });
  socket.io.on("reconnect_attempt", () => {
    if (phase === "storm") rec.attempts += 1;
  });
  socket.io.on("reconnect_error", (err) => {
    if (phase !== "storm") return;
    rec.failures += 1;
    rec.failureTimes.push(now());
    // e.g. "xhr poll error 0 ECONNREFUSED", "websocket error ECONNRESET", "timeout"
    const parts = [err?.message ?? String(err)];
    if (typeof err?.description === "number") parts.push(String(err.description));
    const cause = err?.context?.statusText ?? err?.description?.error ?? err?.description;
    if (cause && typeof cause === "object" && cause.code) parts.push(cause.code);
    const kind = parts.join(" ");
    rec.failureKinds[kind] = (rec.failureKinds[kind] ?? 0) + 1;
  });
  socket.on("m", (data) => {
    if (seqOfVerify !== null && data?.i === seqOfVerify) rec.got += 1;
    else counters.unexpected += 1;
  });
  return rec;
}

/** One broadcast to every room of this process; each joined client must get it once. */
async function verify(clients, seq0) {
  for (const rec of clients) {
    rec.got = 0;
    rec.dropsAtVerify = rec.drops;
  }
  seqOfVerify = seq0;
  const targets = [[...rooms].sort()];
  const sender = clients.find((rec) => rec.joined);
  if (!sender) return { ok: false, error: "no client is joined", expected: 0 };
  const expected = clients.filter((rec) => rec.joined);
  const started = now();
  const acked = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), Number(opt["verify-timeout"]) * 1000);
    sender.socket.emit("bench", { targets, count: 1, seq0, rate: 0, pad: "" }, (ack) => {
      clearTimeout(timer);
      resolve(ack);
    });
  });
  const deadline = started + Number(opt["verify-timeout"]);
  while (now() < deadline && expected.some((rec) => rec.got < 1)) await sleep(20);
  await sleep(100); // a duplicate would arrive by now
  // a client that lost its connection during the check may miss it: counted apart
  const missed = expected.filter((rec) => rec.got === 0);
  const missing = missed.filter((rec) => rec.drops === rec.dropsAtVerify).length;
  const missingDisconnected = missed.length - missing;
  const duplicates = expected.filter((rec) => rec.got > 1).length;
  const ok = acked !== null && missed.length === 0 && duplicates === 0 && counters.unexpected === 0;
  return {
    ok,
    expected: expected.length,
    missing,
    missing_disconnected: missingDisconnected,
    missing_clients: missed.slice(0, 20).map((rec) => rec.c),
    duplicates,
    unexpected: counters.unexpected,
    acked,
  };
}

async function connectAll() {
  const clients = [];
  const deadline = now() + Number(opt["connect-timeout"]);
  for (let start = 0; start < N; start += BATCH) {
    const batch = [];
    for (let c = start; c < Math.min(N, start + BATCH); c++) batch.push(makeClient(FIRST + c));
    clients.push(...batch);
    while (batch.some((rec) => !rec.joined)) {
      if (now() > deadline) throw new Error(`connect: ${joinedNow} of ${clients.length} joined in time`);
      await sleep(10);
    }
  }
  return clients;
}

const lines = createInterface({ input: process.stdin });
const commands = [];
let wake = null;
let stdinEnded = false;
lines.on("line", (line) => {
  commands.push(line.trim());
  wake?.();
});
lines.on("close", () => {
  stdinEnded = true;
  wake?.();
});
async function nextCommand() {
  while (commands.length === 0 && !stdinEnded) await new Promise((r) => (wake = r));
  return commands.shift() ?? "exit";
}

const started = now();
const clients = await connectAll();
const connectSeconds = now() - started;
const before = await verify(clients, 1_000_000 + FIRST);
log(`connected ${N} in ${connectSeconds.toFixed(1)} s; verify ${JSON.stringify(before)}`);
counters.unexpected = 0;
phase = "storm";
const transports = {};
for (const rec of clients) {
  const name = rec.socket.io.engine?.transport?.name ?? "none";
  transports[name] = (transports[name] ?? 0) + 1;
}
emit("READY", {
  n: N,
  first: FIRST,
  connect_seconds: connectSeconds,
  connect_errors: counters.connect_errors_initial,
  transports,
  verify: before,
  errors: counters.errors,
});

for (;;) {
  const command = await nextCommand();
  if (command === "verify") {
    const after = await verify(clients, 2_000_000 + FIRST);
    const byClient = clients.map((rec) => ({
      c: rec.c,
      disconnect: rec.disconnect,
      reasons: rec.reasons,
      attempts: rec.attempts,
      failures: rec.failures,
      failure_kinds: rec.failureKinds,
      failure_times: rec.failureTimes,
      upgrade_errors: rec.upgradeErrors,
      reconnected: rec.reconnected,
      last_connect: rec.lastConnect,
      connects: rec.connects,
      joined: rec.joinedAt,
      upgraded: rec.upgradedAt,
      now_connected: rec.connected,
      now_joined: rec.joined,
    }));
    emit("RESULT", {
      n: N,
      first: FIRST,
      back_at: backAt,
      connected_now: connectedNow,
      joined_now: joinedNow,
      verify_before: before,
      verify_after: after,
      errors: counters.errors.slice(0, 50),
      error_count: counters.errors.length,
      clients: byClient,
    });
  } else if (command === "exit") {
    process.exit(0);
  }
}
