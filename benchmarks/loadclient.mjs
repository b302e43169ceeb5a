// Load client of the broadcast benchmarks (issue #4): N WebSocket clients speaking Engine.IO v4 /
// Socket.IO v5 by hand over `ws`, so that the client costs as little CPU as possible per delivery.
//
//   node loadclient.mjs --port PORT [--n 1000] [--deliveries 200000] [--rates 50,200]
//                       [--latency-seconds 5] [--phases connect,fanout,union,latency] [--sync]
//                       [--transport websocket|polling] [--fanout-rooms K] [--extra-rooms R]
//                       [--big-room M --big-count C] [--server-stats]
//   node loadclient.mjs --port PORT --phases soak [--n 10000] [--poll-clients 500] [--soak-seconds 60]
//                       [--soak-rate 50] [--soak-all-rate 1] [--ping-interval 5] [--sync]
//
// Room layout (N a multiple of 100): client c joins "a<floor(c/100)>" and "b<floor(((c+50)%N)/100)>",
// so every room has 100 members and each "b" room overlaps two "a" rooms by 50.
// - fanout: broadcasts cycle over the "a" rooms (100 recipients each);
// - union: broadcasts cycle over [a_i, b_i, b_{i+1}] (300 memberships, 200 distinct recipients);
// - latency: one broadcast per request, sent by a control socket at a fixed rate (open loop, from an
//   absolute schedule); the latency of a delivery is its arrival time minus the time the request was
//   written, both on this process's monotonic clock (so no clock is compared across processes).
// Every phase checks that each expected delivery arrived exactly once (no loss, no duplicate, nothing
// unexpected); a phase that fails the check reports no figure.
//
// Options of the extra workloads (scenarios.py):
// - --transport polling: the N clients are Engine.IO long-polling clients (one GET loop each, POSTs
//   serialized per client, HTTP keep-alive through one http.Agent); the control sockets stay WebSocket.
// - --fanout-rooms K: fan-out cycles over the first K "a" rooms only (the same 100*K recipients at
//   every N, so that N measures the sockets outside the target).
// - --extra-rooms R: after connecting, the control socket asks the server ("bench-rooms") to create R
//   more rooms of one member each (spread over a few sockets), never broadcast to.
// - --big-room M (phase "bigroom"): clients c < M also join "big"; a second control socket asks for
//   --big-count broadcasts to "big" back to back while the first one measures, at 50/s, the latency of
//   the last "a" room (whose members are not in "big"): "small50-idle" before, "small50-big" during.
// - --trace-requests: after each latency phase, fetch ("bench-trace") when the server's handler saw each
//   request (CLOCK_MONOTONIC, the same clock as process.hrtime here) and report the request's
//   client-send -> server-handler delay apart from the whole latency.
// - --server-stats: ask the server for its debug counters ("bench-stats") around each throughput phase.
//
// The soak (soak.py; "--phases soak" runs it alone): MARK "baseline" before anything connects; then
// a control socket and the N WebSocket clients, client c in room "a<floor(c/100)>" only (N/100 rooms of
// 100), plus --poll-clients P long-polling clients, polling client p in room "a<p mod N/100>"; MARK
// "connected". The control socket then makes two "bench" requests that the server paces itself: one
// broadcast per 1/--soak-rate s cycling over the rooms, and one per 1/--soak-all-rate s to every
// socket but the control one, for --soak-seconds. Each of the two streams is checked per client:
// every expected event once (missing, duplicates, unexpected), in emission order (out of order fails
// the soak here), and no connection may end that the client did not end (lost). Pings are counted
// per client (heartbeats must be on: at least floor(seconds / --ping-interval) - 1 each). Then every
// client leaves as a Socket.IO client does (DISCONNECT "41", then a WebSocket close, or a POST of
// the Engine.IO close "1"), the control socket last; MARK "left". Marks "soak-start" and "soak-end"
// bracket the broadcasts (the runner samples the server in between).
//
// With --sync, the client prints "MARK <name>" on stdout at each phase boundary and waits for a line
// "ok" on stdin: the runner reads the server's /proc figures (CPU time, RSS) there. The result is
// one line "RESULT {json}" on stdout; progress goes to stderr. Traffic goes to 127.0.0.1 only.

import http from "node:http";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const { values: opt } = parseArgs({
  options: {
    port: { type: "string" },
    n: { type: "string", default: "1000" },
    deliveries: { type: "string", default: "200000" },
    rates: { type: "string", default: "50,200" },
    "latency-seconds": { type: "string", default: "5" },
    phases: { type: "string", default: "connect,fanout,union,latency" },
    concurrency: { type: "string", default: "500" },
    "idle-seconds": { type: "string", default: "2" },
    "phase-timeout": { type: "string", default: "120" },
    sync: { type: "boolean", default: false },
    transport: { type: "string", default: "websocket" },
    "fanout-rooms": { type: "string", default: "0" },
    "extra-rooms": { type: "string", default: "0" },
    "big-room": { type: "string", default: "0" },
    "big-count": { type: "string", default: "40" },
    "server-stats": { type: "boolean", default: false },
    "trace-requests": { type: "boolean", default: false },
    "poll-clients": { type: "string", default: "0" },
    "soak-seconds": { type: "string", default: "60" },
    "soak-rate": { type: "string", default: "50" },
    "soak-all-rate": { type: "string", default: "1" },
    "ping-interval": { type: "string", default: "0" },
    "leave-timeout": { type: "string", default: "60" },
    "poll-agent-timeout": { type: "string", default: "0" },
  },
});

const PORT = Number(opt.port);
const N = Number(opt.n);
const DELIVERIES = Number(opt.deliveries);
const RATES = opt.rates.split(",").filter(Boolean).map(Number);
const LATENCY_SECONDS = Number(opt["latency-seconds"]);
const PHASES = new Set(opt.phases.split(",").filter(Boolean));
const CONCURRENCY = Number(opt.concurrency);
const IDLE_MS = Number(opt["idle-seconds"]) * 1000;
const PHASE_TIMEOUT_MS = Number(opt["phase-timeout"]) * 1000;
if (!(PORT > 0 && PORT < 65536)) throw new Error("--port is required");
const POLLING = opt.transport === "polling";
const FANOUT_ROOMS = Number(opt["fanout-rooms"]);
const EXTRA_ROOMS = Number(opt["extra-rooms"]);
const BIG = Number(opt["big-room"]);
const BIG_COUNT = Number(opt["big-count"]);
if (!(N >= 100 && N % 100 === 0)) throw new Error("--n must be a positive multiple of 100");
const SOAK = PHASES.has("soak");
// Long-polling clients beside the N WebSocket ones (the soak only): indices N .. N + POLL_EXTRA - 1.
const POLL_EXTRA = Number(opt["poll-clients"]);
const TOTAL = N + POLL_EXTRA;
if (POLL_EXTRA > 0 && !SOAK) throw new Error("--poll-clients is for the soak (--phases soak)");
if (!["websocket", "polling"].includes(opt.transport)) throw new Error("--transport: websocket or polling");
if (BIG > 0 && !(BIG % 100 === 0 && BIG <= N - 100)) throw new Error("--big-room: a multiple of 100, <= N - 100");

const URL = `ws://127.0.0.1:${PORT}/socket.io/?EIO=4&transport=websocket`;
const POLL_PATH = "/socket.io/?EIO=4&transport=polling";
const ROOMS = N / 100;
const SEQ_STRIDE = 10_000_000; // phase p numbers its events from 1e6 + p * SEQ_STRIDE
const PAD = "x".repeat(71); // 42["m",{"i":<8 digits>,"p":"<pad>"}] is 100 bytes
const I_KEY = Buffer.from('"i":');

const log = (...a) => process.stderr.write(`[loadclient] ${a.join(" ")}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- runner handshake ------------------------------------------------------------------------------
const stdinLines = opt.sync ? createInterface({ input: process.stdin })[Symbol.asyncIterator]() : null;
async function mark(name) {
  if (!stdinLines) return;
  process.stdout.write(`MARK ${name}\n`);
  const { value, done } = await stdinLines.next();
  if (done || value.trim() !== "ok") throw new Error(`mark ${name}: the runner answered ${value}`);
}

// ---- rooms -------------------------------------------------------------------------------------------
const roomA = (c) => `a${Math.floor(c / 100)}`;
const roomB = (c) => `b${Math.floor(((c + 50) % N) / 100)}`;
function roomsOf(c) {
  if (SOAK) return c < N ? [roomA(c)] : [`a${(c - N) % ROOMS}`];
  return c < BIG ? [roomA(c), roomB(c), "big"] : [roomA(c), roomB(c)];
}
const members = new Map(); // room -> client indices
for (let c = 0; c < TOTAL; c++) {
  for (const r of roomsOf(c)) {
    if (!members.has(r)) members.set(r, []);
    members.get(r).push(c);
  }
}
const fanoutTargets = Array.from({ length: FANOUT_ROOMS > 0 ? Math.min(FANOUT_ROOMS, ROOMS) : ROOMS }, (_, i) => [
  `a${i}`,
]);
const unionTargets = Array.from({ length: ROOMS }, (_, i) => [`a${i}`, `b${i}`, `b${(i + 1) % ROOMS}`]);

// ---- phases: the exactly-once check -----------------------------------------------------------------
const openPhases = new Map(); // phase number (seq / SEQ_STRIDE) -> the Phase being checked
let stray = 0; // events that arrived while no phase was open
const lastSeq = new Float64Array(TOTAL).fill(-1);

class Phase {
  // A target is a list of rooms (the union of their members); an empty list is every client.
  // perClient (the soak): figures per client, an order of its own (one stream of emissions) and
  // out-of-order deliveries fail the check.
  constructor(name, targets, count, seq0, { except = [], latencyWarmup = -1, perClient = false } = {}) {
    this.name = name;
    this.targets = targets;
    this.count = count;
    this.seq0 = seq0;
    this.G = targets.length;
    const excluded = new Uint8Array(TOTAL);
    for (const r of except) for (const c of members.get(r) ?? []) excluded[c] = 1;
    this.member = targets.map((rooms) => {
      const m = new Uint8Array(TOTAL);
      if (rooms.length === 0) m.fill(1);
      for (const r of rooms) for (const c of members.get(r) ?? []) m[c] = 1;
      for (let c = 0; c < TOTAL; c++) if (excluded[c]) m[c] = 0;
      return m;
    });
    const sizes = this.member.map((m) => m.reduce((a, b) => a + b, 0));
    this.expected = 0;
    for (let k = 0; k < count; k++) this.expected += sizes[k % this.G];
    this.perClient = perClient;
    this.lastSeq = perClient ? new Float64Array(TOTAL).fill(-1) : lastSeq;
    if (perClient) {
      this.got = new Uint32Array(TOTAL);
      this.dupOf = new Uint32Array(TOTAL);
      this.reorderedOf = new Uint32Array(TOTAL);
    }
    this.seen = new Uint8Array(TOTAL * count);
    this.received = 0;
    this.duplicates = 0;
    this.unexpected = 0;
    this.reordered = 0;
    this.latencyWarmup = latencyWarmup;
    if (latencyWarmup >= 0) {
      this.sendTimes = new Float64Array(count);
      this.lat = new Float64Array(this.expected);
      this.nlat = 0;
    }
    this.key = Math.floor(seq0 / SEQ_STRIDE);
    this.doneAt = 0;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    if (this.expected === 0) this.resolveDone();
  }

  arrive(idx, s) {
    const k = s - this.seq0;
    if (k < 0 || k >= this.count || this.member[k % this.G][idx] !== 1) {
      this.unexpected++;
      return;
    }
    const o = idx * this.count + k;
    if (this.seen[o] !== 0) {
      this.duplicates++;
      if (this.perClient) this.dupOf[idx]++;
      return;
    }
    this.seen[o] = 1;
    const last = this.lastSeq;
    if (s < last[idx]) {
      this.reordered++;
      if (this.perClient) this.reorderedOf[idx]++;
    }
    last[idx] = s;
    if (this.perClient) this.got[idx]++;
    if (this.sendTimes !== undefined && k >= this.latencyWarmup) {
      this.lat[this.nlat++] = performance.now() - this.sendTimes[k];
    }
    if (++this.received === this.expected) {
      this.doneAt = performance.now();
      this.resolveDone();
    }
  }

  verdict() {
    let ok = this.received === this.expected && this.duplicates === 0 && this.unexpected === 0;
    const v = {
      ok,
      broadcasts: this.count,
      expected: this.expected,
      received: this.received,
      missing: this.expected - this.received,
      duplicates: this.duplicates,
      unexpected: this.unexpected,
      reordered: this.reordered,
    };
    if (this.perClient) {
      // Expected events per client: target g is used by broadcasts k = g, g + G, ... < count.
      const expectedOf = new Uint32Array(TOTAL);
      this.member.forEach((m, g) => {
        const times = g < this.count ? Math.floor((this.count - 1 - g) / this.G) + 1 : 0;
        for (let c = 0; c < TOTAL; c++) if (m[c]) expectedOf[c] += times;
      });
      const pc = { clients: 0, missing: 0, duplicates: 0, reordered: 0, min_expected: Infinity, max_expected: 0 };
      const examples = [];
      for (let c = 0; c < TOTAL; c++) {
        if (expectedOf[c] === 0) continue;
        pc.clients++;
        pc.min_expected = Math.min(pc.min_expected, expectedOf[c]);
        pc.max_expected = Math.max(pc.max_expected, expectedOf[c]);
        const bad = this.got[c] < expectedOf[c] || this.dupOf[c] > 0 || this.reorderedOf[c] > 0;
        if (this.got[c] < expectedOf[c]) pc.missing++;
        if (this.dupOf[c] > 0) pc.duplicates++;
        if (this.reorderedOf[c] > 0) pc.reordered++;
        if (bad && examples.length < 20) {
          examples.push({
            client: c,
            transport: c < N ? "websocket" : "polling",
            expected: expectedOf[c],
            received: this.got[c],
            duplicates: this.dupOf[c],
            reordered: this.reorderedOf[c],
          });
        }
      }
      ok = ok && this.reordered === 0;
      Object.assign(v, { ok, clients_with: pc, bad_clients: examples });
    }
    return v;
  }
}

function onEvent(c, data) {
  // 42["m",{"i":<seq>,"p":"..."}]: read the sequence number without a JSON parse.
  if (data[2] !== 0x5b || data[3] !== 0x22 || data[4] !== 0x6d || data[5] !== 0x22) return;
  let j = data.indexOf(I_KEY, 6);
  if (j < 0) {
    stray++;
    return;
  }
  j += 4;
  while (data[j] === 0x20) j++;
  let s = 0;
  for (; j < data.length; j++) {
    const d = data[j] - 0x30;
    if (d < 0 || d > 9) break;
    s = s * 10 + d;
  }
  const ph = openPhases.get(Math.floor(s / SEQ_STRIDE));
  if (ph !== undefined) ph.arrive(c.idx, s);
  else if (openPhases.size === 0) stray++;
  else for (const p of openPhases.values()) p.unexpected++;
  if (frameBytes === 0) frameBytes = data.length;
}
let frameBytes = 0;

// ---- one client ------------------------------------------------------------------------------------
let closedUnexpectedly = 0;
let closing = false;
const lost = []; // the first lost connections: {client, transport, error, t_s}
const lostBy = {}; // error message -> count
const pings = new Uint32Array(TOTAL); // pings received per client
const runT0 = performance.now();

class Conn {
  constructor(idx) {
    this.idx = idx;
    this.ws = null;
    this.sid = "";
    this.nextAck = 0;
    this.acks = new Map();
    this.onConnected = null;
    this.onFailed = null;
    this.dead = null; // the error that ended the connection
  }

  connect(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error("connect timeout")), timeoutMs);
      this.onConnected = () => {
        clearTimeout(timer);
        this.onConnected = null;
        this.onFailed = null;
        resolve();
      };
      this.onFailed = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      const ws = new WebSocket(URL, { perMessageDeflate: false, skipUTF8Validation: true });
      this.ws = ws;
      ws.on("message", (data) => this.onMessage(data));
      ws.on("error", (err) => this.fail(err));
      ws.on("close", (code) => this.fail(new Error(`connection closed (code ${code})`)));
    });
  }

  fail(err) {
    if (this.onConnected !== null) {
      // still connecting: the connect promise rejects
      const f = this.onFailed;
      this.onConnected = null;
      this.onFailed = null;
      if (f !== null) f(err);
    } else if (!closing && this.sid !== "") {
      closedUnexpectedly++;
      lostBy[err.message] = (lostBy[err.message] ?? 0) + 1;
      if (lost.length < 50) {
        const transport = this instanceof PollConn ? "polling" : "websocket";
        lost.push({ client: this.idx, transport, error: err.message, t_s: (performance.now() - runT0) / 1000 });
      }
      if (closedUnexpectedly <= 20) log(`client ${this.idx} lost: ${err.message}`);
    }
    this.sid = "";
    this.dead ??= err;
    for (const [, cb] of this.acks) cb(null, err);
    this.acks.clear();
    this.terminate();
  }

  terminate() {
    if (this.ws !== null) this.ws.terminate();
  }

  // Leave as a Socket.IO client does: DISCONNECT, then close the WebSocket (a close frame); true once
  // the server closed it too, false if it was already gone or did not close within timeoutMs.
  leave(timeoutMs) {
    return new Promise((resolve) => {
      const ws = this.ws;
      if (ws === null || ws.readyState !== WebSocket.OPEN) {
        resolve(false);
        return;
      }
      const timer = setTimeout(() => {
        ws.terminate();
        resolve(false);
      }, timeoutMs);
      ws.once("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
      ws.send("41");
      ws.close(1000);
    });
  }

  send(text) {
    this.ws.send(text);
  }

  onMessage(data) {
    const b0 = data[0];
    if (b0 === 0x34) {
      // Engine.IO message: a Socket.IO packet of the main namespace
      const b1 = data[1];
      if (b1 === 0x32) onEvent(this, data);
      else if (b1 === 0x33) {
        let j = 2;
        let id = 0;
        for (; j < data.length && data[j] >= 0x30 && data[j] <= 0x39; j++) id = id * 10 + data[j] - 0x30;
        const cb = this.acks.get(id);
        if (cb !== undefined) {
          this.acks.delete(id);
          cb(JSON.parse(data.toString("utf8", j)), null);
        }
      } else if (b1 === 0x30) {
        this.sid = JSON.parse(data.toString("utf8", 2)).sid;
        if (this.onConnected !== null) this.onConnected();
      } else if (b1 === 0x34) this.fail(new Error(`CONNECT_ERROR ${data}`));
      else if (b1 === 0x31) this.fail(new Error("server disconnected the socket"));
    } else if (b0 === 0x32) {
      // ping -> pong
      if (this.idx >= 0) pings[this.idx]++;
      this.send("3");
    }
    else if (b0 === 0x30) this.send("40"); // Engine.IO open -> Socket.IO CONNECT to "/"
    else if (b0 === 0x31) this.fail(new Error("Engine.IO close"));
  }

  emit(event, arg) {
    this.send(`42${JSON.stringify([event, arg])}`);
  }

  emitWithAck(event, arg, timeoutMs) {
    return new Promise((resolve, reject) => {
      if (this.dead !== null) {
        reject(new Error(`${event}: the connection is gone (${this.dead.message})`));
        return;
      }
      const id = this.nextAck++;
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error(`ack timeout for ${event}`));
      }, timeoutMs);
      this.acks.set(id, (value, err) => {
        clearTimeout(timer);
        if (err !== null) reject(err);
        else resolve(value);
      });
      this.send(`42${id}${JSON.stringify([event, arg])}`);
    });
  }
}

// ---- one long-polling client -------------------------------------------------------------------------
// One keep-alive agent for every polling client: a held GET keeps its socket, a POST takes another.
let pollResponses = 0; // GET responses that carried packets (not a noop)
let pollNoops = 0; // GET responses that were a noop ("6")
// --poll-agent-timeout S (diagnostic, off by default as in Node): the agent closes a keep-alive socket
// idle for S seconds itself, before the server's idle timeout can close it under a new request.
const pollAgentTimeout = Number(opt["poll-agent-timeout"]) * 1000;
const pollAgent = new http.Agent({
  keepAlive: true,
  maxSockets: Infinity,
  maxFreeSockets: 4096,
  ...(pollAgentTimeout > 0 ? { timeout: pollAgentTimeout } : {}),
});

function httpRequest(method, path, body) {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { "content-type": "text/plain;charset=UTF-8" };
    const req = http.request({ host: "127.0.0.1", port: PORT, method, path, agent: pollAgent, headers }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

class PollConn extends Conn {
  constructor(idx) {
    super(idx);
    this.path = "";
    this.posting = Promise.resolve();
    this.stopped = false;
    this.leaving = false;
    this.loopDone = Promise.resolve();
  }

  connect(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error("connect timeout")), timeoutMs);
      this.onConnected = () => {
        clearTimeout(timer);
        this.onConnected = null;
        this.onFailed = null;
        resolve();
      };
      this.onFailed = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      httpRequest("GET", POLL_PATH)
        .then(({ status, body }) => {
          if (status !== 200 || body[0] !== 0x30) throw new Error(`handshake: ${status} ${body}`);
          this.path = `${POLL_PATH}&sid=${encodeURIComponent(JSON.parse(body.toString("utf8", 1)).sid)}`;
          this.send("40");
          this.loopDone = this.pollLoop();
        })
        .catch((err) => this.fail(err));
    });
  }

  async pollLoop() {
    while (!this.stopped) {
      let res;
      try {
        res = await httpRequest("GET", this.path);
      } catch (err) {
        if (!this.stopped) this.fail(err);
        return;
      }
      if (res.status !== 200) {
        if (!this.leaving) this.fail(new Error(`GET: ${res.status} ${res.body}`));
        return;
      }
      if (this.leaving) return; // the server answers the pending GET once it has the close
      const body = res.body;
      if (body[0] !== 0x36) pollResponses++;
      else pollNoops++;
      let start = 0;
      while (start <= body.length) {
        let end = body.indexOf(0x1e, start);
        if (end < 0) end = body.length;
        if (end > start && body[start] !== 0x36) this.onMessage(body.subarray(start, end)); // 6: noop
        start = end + 1;
      }
    }
  }

  send(text) {
    // POSTs one after the other (Engine.IO allows one at a time per session).
    if (this.leaving) return;
    this.posting = this.posting.then(async () => {
      if (this.stopped) return;
      try {
        const res = await httpRequest("POST", this.path, text);
        if (res.status !== 200) throw new Error(`POST: ${res.status} ${res.body}`);
      } catch (err) {
        if (!this.stopped) this.fail(err);
      }
    });
  }

  terminate() {
    this.stopped = true;
  }

  // Leave as a Socket.IO client does: POST the DISCONNECT "41", then the Engine.IO close "1" (after
  // what was being posted); true once both were taken and the GET loop has ended.
  async leave(timeoutMs) {
    if (this.sid === "" || this.stopped) return false;
    this.leaving = true;
    const post = async (text) => {
      const res = await httpRequest("POST", this.path, text);
      if (res.status !== 200) throw new Error(`POST ${text}: ${res.status} ${res.body}`);
    };
    const closed = this.posting.then(() => post("41")).then(() => post("1"));
    try {
      await withTimeout(Promise.all([closed, this.loopDone]), timeoutMs, `leave of client ${this.idx}`);
      return true;
    } catch (err) {
      log(`client ${this.idx}: ${err.message}`);
      return false;
    } finally {
      this.stopped = true;
    }
  }
}

// ---- the run -----------------------------------------------------------------------------------------
const conns = new Array(TOTAL);
const result = { n: N, ok: true, phases: {}, errors: [] };
let phaseNo = 0;

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timeout after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function settle(ph) {
  // Leave the phase open a moment after its last expected delivery: a late duplicate or an
  // unexpected delivery still fails the check.
  await sleep(200);
  openPhases.delete(ph.key);
  const v = ph.verdict();
  if (!v.ok) log(`${ph.name}: exactly-once check FAILED ${JSON.stringify(v)}`);
  return v;
}

async function connectPhase(ctl) {
  await mark("connect-start");
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < TOTAL) {
      const idx = next++;
      const c = POLLING || idx >= N ? new PollConn(idx) : new Conn(idx);
      conns[idx] = c;
      await c.connect(30_000);
      const ack = await c.emitWithAck("join", roomsOf(idx), 30_000);
      if (ack === null || ack.length !== 1) throw new Error(`bad join ack ${JSON.stringify(ack)}`);
    }
  };
  await withTimeout(
    Promise.all(Array.from({ length: Math.min(CONCURRENCY, TOTAL) }, worker)),
    PHASE_TIMEOUT_MS,
    "connect",
  );
  const seconds = (performance.now() - t0) / 1000;
  await mark("connect-end");
  result.phases.connect = { ok: true, connections: TOTAL, seconds, connects_per_s: TOTAL / seconds };
  if (POLL_EXTRA > 0) Object.assign(result.phases.connect, { websocket: N, polling: POLL_EXTRA });
  log(`connect: ${TOTAL} clients connected and joined in ${seconds.toFixed(2)} s`);
  void ctl;
}

async function throughputPhase(ctl, name, targets, deliveries, measured) {
  const per = targets.length === 0 ? 1 : new Phase("probe", targets, targets.length, 0).expected / targets.length;
  const count = Math.max(targets.length, Math.round(deliveries / per / targets.length) * targets.length);
  const seq0 = 1_000_000 + ++phaseNo * SEQ_STRIDE;
  const ph = new Phase(name, targets, count, seq0);
  const stats0 = measured && opt["server-stats"] ? (await ctl.emitWithAck("bench-stats", {}, 30_000))[0] : null;
  if (measured) await mark(`${name}-start`);
  openPhases.set(ph.key, ph);
  const responses0 = pollResponses;
  const noops0 = pollNoops;
  const t0 = performance.now();
  const req = { targets, count, seq0, rate: 0, pad: PAD };
  const ack = ctl.emitWithAck("bench", req, PHASE_TIMEOUT_MS);
  await withTimeout(Promise.all([ph.done, ack]), PHASE_TIMEOUT_MS, name).catch((err) => {
    result.errors.push(`${name}: ${err.message}`);
  });
  const end = ph.doneAt > 0 ? ph.doneAt : performance.now();
  if (measured) await mark(`${name}-end`);
  const v = await settle(ph);
  if (stats0 !== null) {
    const stats1 = (await ctl.emitWithAck("bench-stats", {}, 30_000))[0];
    v.server_stats = Object.fromEntries(Object.keys(stats1).map((k) => [k, stats1[k] - (stats0[k] ?? 0)]));
  }
  const seconds = (end - t0) / 1000;
  if (v.ok) {
    Object.assign(v, { seconds, deliveries_per_s: v.expected / seconds });
    if (POLLING) Object.assign(v, { poll_responses: pollResponses - responses0, poll_noops: pollNoops - noops0 });
    log(`${name}: ${v.expected} deliveries in ${seconds.toFixed(2)} s (${Math.round(v.expected / seconds)}/s)`);
  }
  if (measured) result.phases[name] = v;
  if (!v.ok) result.ok = false;
}

async function latencyPhase(ctl, rate, name = `latency${rate}`, targets = fanoutTargets) {
  const count = Math.round(rate * LATENCY_SECONDS);
  const seq0 = 1_000_000 + ++phaseNo * SEQ_STRIDE;
  const warmup = Math.floor(rate / 2); // the first half second is not counted
  const ph = new Phase(name, targets, count, seq0, { latencyWarmup: warmup });
  await mark(`${name}-start`);
  openPhases.set(ph.key, ph);
  const sendNs = opt["trace-requests"] ? new Array(count) : null;
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const interval = 1000 / rate;
  const t0 = performance.now();
  let maxLag = 0;
  for (let k = 0; k < count; k++) {
    const due = t0 + k * interval;
    let now = performance.now();
    if (due - now > 0.5) {
      await sleep(due - now);
      now = performance.now();
    }
    maxLag = Math.max(maxLag, now - due);
    ph.sendTimes[k] = now;
    if (sendNs !== null) sendNs[k] = process.hrtime.bigint();
    ctl.emit("bench", { targets: [targets[k % targets.length]], count: 1, seq0: seq0 + k, rate: 0, pad: PAD });
  }
  ph.lastSentAt = performance.now();
  const sentSeconds = (ph.lastSentAt - t0) / 1000;
  await withTimeout(ph.done, PHASE_TIMEOUT_MS, name).catch((err) => result.errors.push(`${name}: ${err.message}`));
  loopDelay.disable();
  await mark(`${name}-end`);
  const v = await settle(ph);
  if (v.ok) {
    const lat = ph.lat.subarray(0, ph.nlat).sort();
    Object.assign(v, {
      rate,
      achieved_rate: count / sentSeconds,
      max_send_lag_ms: maxLag,
      samples: lat.length,
      p50_ms: quantile(lat, 0.5),
      p99_ms: quantile(lat, 0.99),
      max_ms: lat.length ? lat[lat.length - 1] : null,
      // this client's own event-loop delay over the phase (its share of the latency)
      client_loop_delay_p50_ms: loopDelay.percentile(50) / 1e6,
      client_loop_delay_p99_ms: loopDelay.percentile(99) / 1e6,
    });
    if (sendNs !== null) {
      const [trace] = await ctl.emitWithAck("bench-trace", {}, 30_000);
      const d = [];
      for (let k = warmup; k < count; k++) {
        const at = trace[String(seq0 + k)];
        if (at !== undefined) d.push(Number(BigInt(at) - sendNs[k]) / 1e6);
      }
      d.sort((x, y) => x - y);
      Object.assign(v, { request_samples: d.length, request_p50_ms: quantile(d, 0.5), request_p99_ms: quantile(d, 0.99) });
    }
    log(`${name}: p50 ${v.p50_ms.toFixed(3)} ms, p99 ${v.p99_ms.toFixed(3)} ms over ${lat.length} deliveries`);
  } else result.ok = false;
  result.phases[name] = v;
  return ph;
}

async function bigRoomPhase(ctl) {
  // A second control socket asks for BIG_COUNT broadcasts to "big" back to back; meanwhile the first
  // one measures the latency of the last "a" room (no member of it is in "big").
  const ctl2 = new Conn(-2);
  await ctl2.connect(30_000);
  const small = [[`a${ROOMS - 1}`]];
  await latencyPhase(ctl, 50, "small50-idle", small);
  const seq0 = 1_000_000 + ++phaseNo * SEQ_STRIDE;
  const ph = new Phase("bigroom", [["big"]], BIG_COUNT, seq0);
  await mark("bigroom-start");
  openPhases.set(ph.key, ph);
  const t0 = performance.now();
  const ack = ctl2.emitWithAck("bench", { targets: [["big"]], count: BIG_COUNT, seq0, rate: 0, pad: PAD }, PHASE_TIMEOUT_MS);
  await sleep(500);
  const smallPh = await latencyPhase(ctl, 50, "small50-big", small);
  // The big broadcasts were still arriving when the last latency request was sent.
  const overlapped = ph.doneAt === 0 || ph.doneAt > smallPh.lastSentAt;
  await withTimeout(Promise.all([ph.done, ack]), PHASE_TIMEOUT_MS, "bigroom").catch((err) => {
    result.errors.push(`bigroom: ${err.message}`);
  });
  const end = ph.doneAt > 0 ? ph.doneAt : performance.now();
  await mark("bigroom-end");
  const v = await settle(ph);
  const seconds = (end - t0) / 1000;
  Object.assign(v, { seconds, deliveries_per_s: v.received / seconds, overlapped, members: BIG });
  if (!overlapped) {
    v.ok = false;
    result.errors.push("bigroom: the big broadcasts ended before the last latency request: raise --big-count");
  }
  if (!v.ok) result.ok = false;
  result.phases.bigroom = v;
  log(`bigroom: ${v.received} deliveries in ${seconds.toFixed(2)} s, overlapped ${overlapped}`);
  ctl2.terminate();
}

async function soakMain() {
  const seconds = Number(opt["soak-seconds"]);
  const rate = Number(opt["soak-rate"]);
  const allRate = Number(opt["soak-all-rate"]);
  const pingInterval = Number(opt["ping-interval"]);
  const leaveTimeoutMs = Number(opt["leave-timeout"]) * 1000;
  const t0 = performance.now();
  await mark("baseline"); // nothing connected yet
  const ctl = new Conn(-1); // joins no room, and is left out of the broadcasts to all
  await ctl.connect(30_000);
  await connectPhase(ctl);
  await sleep(IDLE_MS);
  await mark("connected");

  const roomTargets = Array.from({ length: ROOMS }, (_, i) => [`a${i}`]);
  const count = Math.round(rate * seconds);
  const allCount = Math.round(allRate * seconds);
  const rooms = new Phase("soak-rooms", roomTargets, count, 1_000_000 + ++phaseNo * SEQ_STRIDE, { perClient: true });
  const all = new Phase("soak-all", [[]], allCount, 1_000_000 + ++phaseNo * SEQ_STRIDE, {
    except: [ctl.sid],
    perClient: true,
  });
  const pings0 = pings.slice();
  const lost0 = closedUnexpectedly;
  const cpu0 = process.cpuUsage();
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  await mark("soak-start");
  loopDelay.enable();
  const started = performance.now();
  openPhases.set(rooms.key, rooms);
  openPhases.set(all.key, all);
  const bound = seconds * 1000 + PHASE_TIMEOUT_MS;
  const reqs = [
    ctl.emitWithAck("bench", { targets: roomTargets, count, seq0: rooms.seq0, rate, pad: PAD }, bound),
    ctl.emitWithAck("bench", { targets: [[]], except: [ctl.sid], count: allCount, seq0: all.seq0, rate: allRate, pad: PAD }, bound),
  ];
  await withTimeout(Promise.all([rooms.done, all.done, ...reqs]), bound, "soak").catch((err) => {
    result.errors.push(`soak: ${err.message}`);
  });
  const soakSeconds = (performance.now() - started) / 1000;
  loopDelay.disable();
  const cpu = process.cpuUsage(cpu0);
  await mark("soak-end");
  const phases = {};
  for (const ph of [rooms, all]) {
    const v = await settle(ph);
    phases[ph.name] = v;
    if (!v.ok) result.ok = false;
  }
  // Heartbeats: pings per client over the soak.
  let minPings = Infinity;
  let maxPings = 0;
  for (let c = 0; c < TOTAL; c++) {
    const d = pings[c] - pings0[c];
    minPings = Math.min(minPings, d);
    maxPings = Math.max(maxPings, d);
  }
  const minExpectedPings = pingInterval > 0 ? Math.max(1, Math.floor(soakSeconds / pingInterval) - 1) : 0;
  const heartbeat = { ping_interval: pingInterval, min_pings: minPings, max_pings: maxPings, min_expected: minExpectedPings };
  heartbeat.ok = minPings >= minExpectedPings;
  if (!heartbeat.ok) {
    result.ok = false;
    result.errors.push(`heartbeat: a client got ${minPings} pings in ${soakSeconds.toFixed(0)} s, fewer than ${minExpectedPings}`);
  }
  const lostDuringSoak = closedUnexpectedly - lost0;

  // Leave: every client as a Socket.IO client does, at once; then the control socket.
  closing = true;
  const leaveT0 = performance.now();
  const left = await Promise.all(conns.map((c) => (c === undefined ? false : c.leave(leaveTimeoutMs))));
  const ctlLeft = await ctl.leave(leaveTimeoutMs);
  pollAgent.destroy();
  const leave = {
    left: left.filter(Boolean).length,
    not_left: left.filter((x) => !x).length,
    control_left: ctlLeft,
    seconds: (performance.now() - leaveT0) / 1000,
  };
  await mark("left");
  log(`left: ${JSON.stringify(leave)}`);

  result.soak = {
    clients: TOTAL,
    websocket: N,
    polling: POLL_EXTRA,
    rooms: ROOMS,
    seconds,
    measured_seconds: soakSeconds,
    rate,
    all_rate: allRate,
    phases,
    heartbeat,
    lost_during_soak: lostDuringSoak,
    leave,
    client_cpu_s: (cpu.user + cpu.system) / 1e6,
    client_cpu_share: (cpu.user + cpu.system) / 1e6 / soakSeconds,
    client_loop_delay_p99_ms: loopDelay.percentile(99) / 1e6,
    client_loop_delay_max_ms: loopDelay.max / 1e6,
  };
  if (leave.not_left > 0 || !ctlLeft) {
    result.ok = false;
    result.errors.push(`leave: ${leave.not_left} clients (control: ${ctlLeft ? "left" : "not left"}) did not leave cleanly`);
  }
  if (closedUnexpectedly > 0) {
    result.ok = false;
    result.errors.push(`${closedUnexpectedly} clients lost their connection`);
  }
  result.lost = { count: closedUnexpectedly, by_error: lostBy, first: lost };
  if (stray > 0) {
    result.ok = false;
    result.errors.push(`${stray} events arrived outside any phase`);
  }
  result.frame_bytes = frameBytes;
  result.seconds = (performance.now() - t0) / 1000;
}

async function main() {
  if (SOAK) return soakMain();
  const t0 = performance.now();
  // The control socket joins no room: it asks for the broadcasts.
  const ctl = new Conn(-1);
  await ctl.connect(30_000);
  // Warm the request path once before the baseline (no recipient: the rooms do not exist yet).
  await ctl.emitWithAck("bench", { targets: [["nobody"]], count: 1, seq0: 0, rate: 0, pad: PAD }, 30_000);
  await mark("baseline");
  await connectPhase(ctl);
  await sleep(IDLE_MS);
  await mark("idle");
  if (EXTRA_ROOMS > 0) {
    const [made] = await ctl.emitWithAck("bench-rooms", { count: EXTRA_ROOMS, prefix: "x", sockets: 4 }, 60_000);
    result.extra_rooms = made;
    log(`extra rooms: ${JSON.stringify(made)}`);
  }
  // An unmeasured warm-up (lets V8 optimize, fills Python's caches): 2 broadcasts per room.
  await throughputPhase(ctl, "warmup", fanoutTargets, 2 * N, false);
  if (PHASES.has("fanout")) await throughputPhase(ctl, "fanout", fanoutTargets, DELIVERIES, true);
  if (PHASES.has("union")) await throughputPhase(ctl, "union", unionTargets, DELIVERIES, true);
  if (PHASES.has("latency")) for (const rate of RATES) await latencyPhase(ctl, rate);
  if (PHASES.has("bigroom")) await bigRoomPhase(ctl);
  if (closedUnexpectedly > 0) {
    result.ok = false;
    result.errors.push(`${closedUnexpectedly} clients lost their connection`);
  }
  if (stray > 0) {
    result.ok = false;
    result.errors.push(`${stray} events arrived outside any phase`);
  }
  result.frame_bytes = frameBytes;
  result.seconds = (performance.now() - t0) / 1000;
  closing = true;
  for (const c of conns) if (c !== undefined) c.terminate();
  ctl.terminate();
  pollAgent.destroy();
}

main()
  .catch((err) => {
    result.ok = false;
    result.errors.push(String(err?.stack ?? err));
    log(`FAILED: ${err?.stack ?? err}`);
  })
  .finally(() => {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    process.exit(result.ok ? 0 : 1);
  });
