// One Node socket.io member of the cluster: the same room chat as examples/cluster/member.py
// (join / leave / say; joined / left / said to the room), with @socket.io/redis-adapter's classic
// createAdapter on the same Redis and key, so that its rooms and trio_rooms' are one.
//
// Usage (after `npm ci --prefix examples/cluster`):
//   node examples/cluster/member.mjs [--name node-1] [--port 3003] [--redis redis://127.0.0.1:6379] [--key socket.io]
// Prints one line with its URL once listening; Ctrl-C (or SIGTERM) stops it.
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const args = process.argv.slice(2);
const option = (flag, fallback) => {
  const index = args.indexOf(flag);
  return index >= 0 ? args[index + 1] : fallback;
};
const name = option("--name", "node-1");
const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "3003"));
const redisUrl = option("--redis", "redis://127.0.0.1:6379");
const key = option("--key", "socket.io");

const MAX_ROOM_NAME = 64;
const MAX_NAME = 32;
const MAX_TEXT = 2000;

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
for (const client of [pub, sub]) {
  client.on("error", (err) => console.error(`redis: ${err.message}`));
}
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, { adapter: createAdapter(pub, sub, { key }) });

const roomsOf = (socket) => [...socket.rooms].filter((room) => room !== socket.id).sort();

io.on("connection", (socket) => {
  const given = socket.handshake.auth && socket.handshake.auth.name;
  socket.data.name = typeof given === "string" && given ? given.slice(0, MAX_NAME) : socket.id.slice(0, 8);
  socket.data.server = name;
  socket.emit("welcome", { server: name });

  socket.on("join", (room, ack = () => {}) => {
    if (typeof room !== "string" || room.length === 0 || room.length > MAX_ROOM_NAME) {
      return ack({ error: `a room is a string of 1 to ${MAX_ROOM_NAME} characters` });
    }
    if (io.of("/").sockets.has(room)) return ack({ error: "a socket id is not a chat room" });
    socket.join(room);
    io.to(room).emit("joined", { room, name: socket.data.name });
    ack({ rooms: roomsOf(socket) });
  });

  socket.on("leave", (room, ack = () => {}) => {
    if (typeof room === "string" && room !== socket.id && socket.rooms.has(room)) {
      io.to(room).emit("left", { room, name: socket.data.name, reason: "leave" });
      socket.leave(room);
    }
    ack({ rooms: roomsOf(socket) });
  });

  socket.on("say", (message, ack = () => {}) => {
    const room = message && message.room;
    const text = message && message.text;
    if (typeof text !== "string" || text.length > MAX_TEXT) {
      return ack({ error: `text is a string of at most ${MAX_TEXT} characters` });
    }
    if (typeof room !== "string" || room === socket.id || !socket.rooms.has(room)) {
      return ack({ error: "join the room first" });
    }
    io.to(room).emit("said", { room, name: socket.data.name, text });
    ack({ ok: true });
  });

  socket.on("disconnecting", (reason) => {
    for (const room of roomsOf(socket)) {
      socket.to(room).emit("left", { room, name: socket.data.name, reason });
    }
  });
});

httpServer.listen(port, host, () => {
  const bound = httpServer.address().port;
  console.log(`cluster member ${name} listening on http://${host}:${bound} (path /socket.io/); Ctrl-C to stop`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
  });
}
