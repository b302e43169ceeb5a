// A Node socket.io 4.8 server with @socket.io/redis-adapter 8.3 (or @socket.io/redis-streams-adapter 0.3),
// for the mixed-cluster tests
// (tests/test_mixed_cluster.py) and examples/cluster: the same test handlers as tests/helpers/cluster_server.py,
// so that a test can drive a Node member and a trio_rooms member of one cluster the same way.
//
// Usage: node node_cluster_server.mjs NAME REDIS_URL KEY [--sharded MODE | --streams] [--recovery MS] [--port N]
//   classic: createAdapter(pub, sub, { key: KEY, requestsTimeout: 2000 }) on REDIS_URL
//   sharded: createShardedAdapter(pub, sub, { channelPrefix: KEY, subscriptionMode: MODE }) on a
//            Redis Cluster (node-redis 4 createCluster; REDIS_URL is one node, or several joined by ",")
//   streams: @socket.io/redis-streams-adapter createAdapter(client, { streamName: KEY, channelPrefix: KEY })
//   --recovery MS: connectionStateRecovery with maxDisconnectionDuration MS (skipMiddlewares true)
// Prints "PORT <n>" once serving on 127.0.0.1 (port 0, i.e. a free one, unless --port).
// Differences from the trio_rooms server, all Node's: serverSideEmitWithAck waits for the adapter's
// own timeout (classic: requestsTimeout, 2 s here; sharded: 5 s, fixed), not the timeout argument.
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { createClient, createCluster } from "redis";

const args = process.argv.slice(2);
const [name, redisUrl, key] = args;
if (!name || !redisUrl || !key) {
  console.error("usage: node node_cluster_server.mjs NAME REDIS_URL KEY [--sharded MODE] [--port N]");
  process.exit(3);
}
const option = (flag) => {
  const index = args.indexOf(flag);
  return index >= 0 ? args[index + 1] : undefined;
};
const shardedMode = option("--sharded");
const streams = args.includes("--streams");
const recovery = option("--recovery");
const port = Number(option("--port") ?? 0);

async function adapterFactory() {
  let pub;
  if (shardedMode) {
    pub = createCluster({ rootNodes: redisUrl.split(",").map((url) => ({ url })) });
  } else {
    pub = createClient({ url: redisUrl });
  }
  if (streams) {
    pub.on("error", (err) => console.error(`redis error: ${err.message}`));
    await pub.connect();
    return createStreamsAdapter(pub, { streamName: key, channelPrefix: key });
  }
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err) => console.error(`redis error: ${err.message}`));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  if (shardedMode) {
    return createShardedAdapter(pub, sub, { channelPrefix: key, subscriptionMode: shardedMode });
  }
  return createAdapter(pub, sub, { key, requestsTimeout: 2000 });
}

const httpServer = createServer();
const serverOptions = { adapter: await adapterFactory(), pingInterval: 5000, pingTimeout: 5000 };
if (recovery) {
  serverOptions.connectionStateRecovery = { maxDisconnectionDuration: Number(recovery), skipMiddlewares: true };
}
const io = new Server(httpServer, serverOptions);
const serverEvents = [];
const sorted = (items) => [...items].map(String).sort();
const errorText = (err) => `Error: ${err && err.message}`;

// Server-side emits from the other servers (io.on is the main namespace's on).
io.on("hello", (...eventArgs) => {
  const ack = typeof eventArgs[eventArgs.length - 1] === "function" ? eventArgs.pop() : null;
  serverEvents.push(["hello", ...eventArgs]);
  if (ack) ack(`hello from ${name}`);
});
io.on("silent", (...eventArgs) => {
  if (typeof eventArgs[eventArgs.length - 1] === "function") eventArgs.pop(); // never answered
  serverEvents.push(["silent", ...eventArgs]);
});

// A handler whose last argument is the client's ack callback: its result (or error text) is the answer.
function handle(socket, event, fn) {
  socket.on(event, async (...eventArgs) => {
    const ack = typeof eventArgs[eventArgs.length - 1] === "function" ? eventArgs.pop() : () => {};
    try {
      ack(await fn(...eventArgs));
    } catch (err) {
      ack(errorText(err));
    }
  });
}

io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  if (!socket.recovered) {
    // a recovered socket has its data and rooms back
    socket.data.name = auth.name ?? null;
    socket.data.server = name;
    socket.join(auth.rooms || []);
  }

  handle(socket, "do_broadcast", async (rooms, exceptRooms, event, ...rest) => {
    let operator = rooms.length ? io.of("/").to(rooms) : io.of("/").except([]);
    if (exceptRooms.length) operator = operator.except(exceptRooms);
    operator.emit(event, ...rest);
    return "ok";
  });

  handle(socket, "do_local_broadcast", async (event, ...rest) => {
    io.local.emit(event, ...rest);
    return "ok";
  });

  handle(socket, "do_socket_to", async (room, event, ...rest) => {
    socket.to(room).emit(event, ...rest);
    return "ok";
  });

  handle(socket, "do_ack_broadcast", async (rooms, timeout) => {
    const operator = rooms.length ? io.to(rooms) : io;
    try {
      const answers = await operator.timeout(timeout * 1000).emitWithAck("question", name);
      return { timeout: false, answers: sorted(answers) };
    } catch (err) {
      return { timeout: true, answers: sorted(err.responses || []) };
    }
  });

  handle(socket, "do_fetch", async (rooms) => {
    const operator = rooms.length ? io.in(rooms) : io.of("/").except([]);
    let found;
    try {
      found = await operator.fetchSockets();
    } catch (err) {
      return errorText(err);
    }
    return found
      .map((s) => ({ id: s.id, rooms: sorted(s.rooms), data: s.data, auth: s.handshake.auth, handshake: s.handshake }))
      .sort((a, b) => String(a.data.name).localeCompare(String(b.data.name)));
  });

  handle(socket, "do_remote", async (sid, action, arg) => {
    for (const found of await io.in(sid).fetchSockets()) {
      if (action === "emit") found.emit("private", arg);
      else if (action === "join") found.join(arg);
      else if (action === "leave") found.leave(arg);
      else if (action === "disconnect") found.disconnect();
      return "ok";
    }
    return "not found";
  });

  handle(socket, "do_sockets", async (action, rooms, arg) => {
    const operator = io.in(rooms);
    if (action === "join") operator.socketsJoin(arg);
    else if (action === "leave") operator.socketsLeave(arg);
    else if (action === "disconnect") operator.disconnectSockets(Boolean(arg));
    return "ok";
  });

  handle(socket, "do_server_side_emit", async (event, withAck, _timeout, ...rest) => {
    if (!withAck) {
      io.serverSideEmit(event, ...rest);
      return "ok";
    }
    try {
      const answers = await io.serverSideEmitWithAck(event, ...rest);
      return { timeout: false, answers: sorted(answers) };
    } catch (err) {
      return { timeout: true, answers: sorted(err.responses || []) };
    }
  });

  handle(socket, "do_server_events", async () => serverEvents);

  handle(socket, "do_info", async () => {
    const adapter = io.of("/").adapter;
    let count;
    let rooms;
    try {
      count = await adapter.serverCount();
      rooms = typeof adapter.allRooms === "function" ? sorted(await adapter.allRooms()) : sorted(adapter.rooms.keys());
    } catch (err) {
      count = rooms = errorText(err);
    }
    return { server_count: count, all_rooms: rooms, stats: {} };
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`PORT ${httpServer.address().port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
