// Sticky sessions behind a load balancer, with the stock JavaScript socket.io-client 4.8: CLIENTS
// clients connect to one URL (HAProxy in front of two examples/cluster/member.py servers sharing
// their rooms through Redis), join the room "lobby", and each says ROUNDS lines, one at a time, each
// acknowledged; every "said" broadcast is counted by its sender. The last UPGRADE clients use the
// default transports (polling, then the upgrade to WebSocket); the others stay on HTTP long-polling,
// where every message is an HTTP request of its own that must reach the client's server (or, with
// BASE "websocket", use WebSocket only: one connection per session, which needs no stickiness).
// withCredentials: true turns on the client's cookie jar in Node (engine.io-client >= 6.5): it keeps
// the load balancer's SERVERID cookie and sends it back with every request and the WebSocket upgrade.
// tests/test_sticky_sessions.py runs the servers and HAProxy, then this script.
//
// Usage: node sticky_client.mjs URL CLIENTS ROUNDS UPGRADE [BASE]    (BASE: polling, or websocket)
// Before closing the clients it requests URL/__sticky_boundary__ once (a 404, logged by HAProxy).
// Prints one line "REPORT <json>": per client its name, the server that welcomed it, the cookie it
// held, its transport at the end, its acks, the "said" lines it received by sender, and every error
// (connect_error, an unexpected disconnect: reason, HTTP status, response body). Exits 0 once the
// report is printed, whatever it says (the test judges it); 3 on bad usage, 4 when the boundary
// request failed.

import { io } from "socket.io-client";

const [TARGET, CLIENTS, ROUNDS, UPGRADE, BASE = "polling"] = process.argv.slice(2);
const BASES = { polling: ["polling"], websocket: ["websocket"] };
const clients = Number(CLIENTS);
const rounds = Number(ROUNDS);
const upgrade = Number(UPGRADE);
if (!TARGET || !(clients > 0) || !(rounds > 0) || !(upgrade >= 0) || upgrade > clients || !Object.hasOwn(BASES, BASE)) {
  console.error("usage: node sticky_client.mjs URL CLIENTS ROUNDS UPGRADE [polling|websocket]");
  process.exit(3);
}
const STEP_MS = 8000;
const ROOM = "lobby";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What an error of the client says: message, HTTP status (a transport error's description), body. */
function describe(kind, error) {
  const context = error?.context;
  let body;
  try {
    body = typeof context?.responseText === "string" ? context.responseText.slice(0, 200) : undefined;
  } catch {
    body = undefined;
  }
  return {
    kind,
    message: String(error?.message ?? error),
    status: error?.description === undefined ? null : String(error.description),
    body: body ?? null,
  };
}

function cookieOf(socket) {
  // The jar is internal (engine.io-client's Socket._cookieJar); read only to report what was held.
  const jar = socket.io.engine?._cookieJar;
  const found = {};
  if (jar) {
    for (const [name, cookie] of jar.cookies) found[name] = cookie.value;
  }
  return found;
}

const states = [];
for (let index = 0; index < clients; index++) {
  const base = index < clients - upgrade;
  const name = `c${index}`;
  const state = {
    name,
    transports: base ? BASE : "default",
    server: null,
    cookie: {},
    transport: null,
    id: null,
    sid: null,
    acks: 0,
    said: {},
    errors: [],
    closing: false,
  };
  const socket = io(TARGET, {
    transports: base ? BASES[BASE] : ["polling", "websocket"],
    withCredentials: true,
    reconnection: false,
    forceNew: true,
    timeout: STEP_MS,
    auth: { name },
  });
  state.socket = socket;
  // the "welcome" event, or the first error (no reconnection: the client is done then)
  state.welcomed = withTimeout(
    new Promise((resolve, reject) => {
      socket.once("welcome", (message) => resolve(message));
      socket.once("connect_error", (error) => reject(error));
      socket.once("disconnect", (reason) => reject(new Error(`disconnected: ${reason}`)));
    }),
    STEP_MS,
    "welcome",
  );
  state.welcomed.catch(() => {});
  socket.on("connect_error", (error) => state.errors.push(describe("connect_error", error)));
  socket.on("disconnect", (reason, details) => {
    if (!state.closing) state.errors.push({ ...describe("disconnect", details), reason });
  });
  socket.on("said", (message) => {
    if (message?.room === ROOM) state.said[message.name] = (state.said[message.name] ?? 0) + 1;
  });
  states.push(state);
}

async function joinRoom(state) {
  const { socket } = state;
  const welcome = await state.welcomed;
  state.server = welcome?.server ?? null;
  state.id = socket.id ?? null;
  state.sid = socket.io.engine?.id ?? null; // the Engine.IO session id, in every request's query
  const answer = await socket.timeout(STEP_MS).emitWithAck("join", ROOM);
  if (!answer?.rooms?.includes(ROOM)) throw new Error(`join answered ${JSON.stringify(answer)}`);
}

async function talk(state) {
  for (let round = 0; round < rounds; round++) {
    const answer = await state.socket.timeout(STEP_MS).emitWithAck("say", { room: ROOM, text: `${state.name} ${round}` });
    if (answer?.ok !== true) throw new Error(`say answered ${JSON.stringify(answer)}`);
    state.acks++;
  }
}

function record(state, step) {
  return (error) => {
    state.errors.push(describe(step, error));
    state.failed = true;
  };
}

// Everyone joins first (so that every line reaches every member), then everyone talks at once.
await Promise.all(states.map((state) => joinRoom(state).catch(record(state, "join"))));
const alive = states.filter((state) => !state.failed);
await Promise.all(alive.map((state) => talk(state).catch(record(state, "say"))));
// Then wait until every member still there has received every acknowledged line.
const total = states.reduce((sum, state) => sum + state.acks, 0);
const received = (state) => Object.values(state.said).reduce((sum, count) => sum + count, 0);
const deadline = Date.now() + STEP_MS;
while (Date.now() < deadline && alive.some((state) => state.socket.connected && received(state) < total)) {
  await sleep(20);
}

// A request HAProxy logs between the clients' traffic and their closing (the test checks the log up
// to it: a poll that crosses the client's close may rightly get 400 "Session ID unknown").
try {
  await withTimeout(fetch(new URL("/__sticky_boundary__", TARGET)), STEP_MS, "the boundary request");
} catch (error) {
  console.error(`boundary request failed: ${error}`);
  process.exit(4);
}

const report = states.map((state) => {
  state.cookie = cookieOf(state.socket);
  state.transport = state.socket.io.engine?.transport?.name ?? null;
  state.connected = state.socket.connected;
  state.closing = true;
  state.socket.close();
  const { socket, welcomed, closing, failed, ...rest } = state;
  return rest;
});
console.log(`REPORT ${JSON.stringify(report)}`);
await sleep(200); // let the close requests finish
process.exit(0);
