// Load client of the broadcast benchmarks (issue #4): N WebSocket clients speaking Engine.IO v4 /
// Socket.IO v5 by hand over `ws`, so that the client costs as little CPU as possible per delivery.
//
//   node loadclient.mjs --port PORT [--n 1000] [--deliveries 200000] [--rates 50,200]
//                       [--latency-seconds 5] [--phases connect,fanout,union,latency] [--sync]
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
// With --sync, the client prints "MARK <name>" on stdout at each phase boundary and waits for a line
// "ok" on stdin: the runner reads the server's /proc figures (CPU time, RSS) there. The result is
// one line "RESULT {json}" on stdout; progress goes to stderr. Traffic goes to 127.0.0.1 only.

import { performance } from "node:perf_hooks";
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
if (!(N >= 100 && N % 100 === 0)) throw new Error("--n must be a positive multiple of 100");

const URL = `ws://127.0.0.1:${PORT}/socket.io/?EIO=4&transport=websocket`;
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
const members = new Map(); // room -> client indices
for (let c = 0; c < N; c++) {
  for (const r of [roomA(c), roomB(c)]) {
    if (!members.has(r)) members.set(r, []);
    members.get(r).push(c);
  }
}
const fanoutTargets = Array.from({ length: ROOMS }, (_, i) => [`a${i}`]);
const unionTargets = Array.from({ length: ROOMS }, (_, i) => [`a${i}`, `b${i}`, `b${(i + 1) % ROOMS}`]);

// ---- phases: the exactly-once check -----------------------------------------------------------------
let phase = null; // the phase whose deliveries are being checked
let stray = 0; // events that arrived while no phase was open
const lastSeq = new Float64Array(N).fill(-1);

class Phase {
  constructor(name, targets, count, seq0, { except = [], latencyWarmup = -1 } = {}) {
    this.name = name;
    this.targets = targets;
    this.count = count;
    this.seq0 = seq0;
    this.G = targets.length;
    const excluded = new Uint8Array(N);
    for (const r of except) for (const c of members.get(r) ?? []) excluded[c] = 1;
    this.member = targets.map((rooms) => {
      const m = new Uint8Array(N);
      for (const r of rooms) for (const c of members.get(r) ?? []) if (!excluded[c]) m[c] = 1;
      return m;
    });
    const sizes = this.member.map((m) => m.reduce((a, b) => a + b, 0));
    this.expected = 0;
    for (let k = 0; k < count; k++) this.expected += sizes[k % this.G];
    this.seen = new Uint8Array(N * count);
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
      return;
    }
    this.seen[o] = 1;
    if (s < lastSeq[idx]) this.reordered++;
    lastSeq[idx] = s;
    if (this.sendTimes !== undefined && k >= this.latencyWarmup) {
      this.lat[this.nlat++] = performance.now() - this.sendTimes[k];
    }
    if (++this.received === this.expected) {
      this.doneAt = performance.now();
      this.resolveDone();
    }
  }

  verdict() {
    const ok = this.received === this.expected && this.duplicates === 0 && this.unexpected === 0;
    return {
      ok,
      broadcasts: this.count,
      expected: this.expected,
      received: this.received,
      missing: this.expected - this.received,
      duplicates: this.duplicates,
      unexpected: this.unexpected,
      reordered: this.reordered,
    };
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
  if (phase === null) stray++;
  else phase.arrive(c.idx, s);
  if (frameBytes === 0) frameBytes = data.length;
}
let frameBytes = 0;

// ---- one client ------------------------------------------------------------------------------------
let closedUnexpectedly = 0;
let closing = false;

class Conn {
  constructor(idx) {
    this.idx = idx;
    this.ws = null;
    this.sid = "";
    this.nextAck = 0;
    this.acks = new Map();
    this.onConnected = null;
    this.onFailed = null;
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
      ws.on("close", () => this.fail(new Error("connection closed")));
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
      log(`client ${this.idx} lost: ${err.message}`);
    }
    this.sid = "";
    for (const [, cb] of this.acks) cb(null, err);
    this.acks.clear();
    if (this.ws !== null) this.ws.terminate();
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
    } else if (b0 === 0x32) this.ws.send("3"); // ping -> pong
    else if (b0 === 0x30) this.ws.send("40"); // Engine.IO open -> Socket.IO CONNECT to "/"
    else if (b0 === 0x31) this.fail(new Error("Engine.IO close"));
  }

  emit(event, arg) {
    this.ws.send(`42${JSON.stringify([event, arg])}`);
  }

  emitWithAck(event, arg, timeoutMs) {
    return new Promise((resolve, reject) => {
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
      this.ws.send(`42${id}${JSON.stringify([event, arg])}`);
    });
  }
}

// ---- the run -----------------------------------------------------------------------------------------
const conns = new Array(N);
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
  phase = null;
  const v = ph.verdict();
  if (!v.ok) log(`${ph.name}: exactly-once check FAILED ${JSON.stringify(v)}`);
  return v;
}

async function connectPhase(ctl) {
  await mark("connect-start");
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const idx = next++;
      const c = new Conn(idx);
      conns[idx] = c;
      await c.connect(30_000);
      const ack = await c.emitWithAck("join", [roomA(idx), roomB(idx)], 30_000);
      if (ack === null || ack.length !== 1) throw new Error(`bad join ack ${JSON.stringify(ack)}`);
    }
  };
  await withTimeout(Promise.all(Array.from({ length: Math.min(CONCURRENCY, N) }, worker)), PHASE_TIMEOUT_MS, "connect");
  const seconds = (performance.now() - t0) / 1000;
  await mark("connect-end");
  result.phases.connect = { ok: true, connections: N, seconds, connects_per_s: N / seconds };
  log(`connect: ${N} clients connected and joined in ${seconds.toFixed(2)} s`);
  void ctl;
}

async function throughputPhase(ctl, name, targets, deliveries, measured) {
  const per = targets.length === 0 ? 1 : new Phase("probe", targets, targets.length, 0).expected / targets.length;
  const count = Math.max(targets.length, Math.round(deliveries / per / targets.length) * targets.length);
  const seq0 = 1_000_000 + ++phaseNo * SEQ_STRIDE;
  const ph = new Phase(name, targets, count, seq0);
  if (measured) await mark(`${name}-start`);
  phase = ph;
  const t0 = performance.now();
  const req = { targets, count, seq0, rate: 0, pad: PAD };
  const ack = ctl.emitWithAck("bench", req, PHASE_TIMEOUT_MS);
  await withTimeout(Promise.all([ph.done, ack]), PHASE_TIMEOUT_MS, name).catch((err) => {
    result.errors.push(`${name}: ${err.message}`);
  });
  const end = ph.doneAt > 0 ? ph.doneAt : performance.now();
  if (measured) await mark(`${name}-end`);
  const v = await settle(ph);
  const seconds = (end - t0) / 1000;
  if (v.ok) {
    Object.assign(v, { seconds, deliveries_per_s: v.expected / seconds });
    log(`${name}: ${v.expected} deliveries in ${seconds.toFixed(2)} s (${Math.round(v.expected / seconds)}/s)`);
  }
  if (measured) result.phases[name] = v;
  if (!v.ok) result.ok = false;
}

async function latencyPhase(ctl, rate) {
  const name = `latency${rate}`;
  const count = Math.round(rate * LATENCY_SECONDS);
  const seq0 = 1_000_000 + ++phaseNo * SEQ_STRIDE;
  const warmup = Math.floor(rate / 2); // the first half second is not counted
  const ph = new Phase(name, fanoutTargets, count, seq0, { latencyWarmup: warmup });
  await mark(`${name}-start`);
  phase = ph;
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
    ctl.emit("bench", { targets: [fanoutTargets[k % fanoutTargets.length]], count: 1, seq0: seq0 + k, rate: 0, pad: PAD });
  }
  const sentSeconds = (performance.now() - t0) / 1000;
  await withTimeout(ph.done, PHASE_TIMEOUT_MS, name).catch((err) => result.errors.push(`${name}: ${err.message}`));
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
    });
    log(`${name}: p50 ${v.p50_ms.toFixed(3)} ms, p99 ${v.p99_ms.toFixed(3)} ms over ${lat.length} deliveries`);
  } else result.ok = false;
  result.phases[name] = v;
}

async function main() {
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
  // An unmeasured warm-up (lets V8 optimize, fills Python's caches): 2 broadcasts per room.
  await throughputPhase(ctl, "warmup", fanoutTargets, 2 * N, false);
  if (PHASES.has("fanout")) await throughputPhase(ctl, "fanout", fanoutTargets, DELIVERIES, true);
  if (PHASES.has("union")) await throughputPhase(ctl, "union", unionTargets, DELIVERIES, true);
  if (PHASES.has("latency")) for (const rate of RATES) await latencyPhase(ctl, rate);
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
  for (const c of conns) if (c !== undefined && c.ws !== null) c.ws.terminate();
  ctl.ws.terminate();
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
