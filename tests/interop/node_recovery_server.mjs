// A Node socket.io 4.8 server with connection state recovery on (the in-memory SessionAwareAdapter),
// for tests/test_interop_recovery.py: the trio_rooms Client recovering against Node.
//
// Usage: node node_recovery_server.mjs MAX_DISCONNECTION_SECONDS
// Prints "PORT <n>" once serving on 127.0.0.1 (a free port). The events are those of the trio_rooms
// app of that test: every socket joins room "r" on its first connection; "whoami" acks
// {id, recovered, rooms}; "tick", {room, from, to} broadcasts "tick", n to the room for n in
// [from, to) and acks 0; "gone", sid acks true once that socket is gone from the namespace.
import { createServer } from "node:http";
import { Server } from "socket.io";

const seconds = Number(process.argv[2] ?? 2);
const httpServer = createServer();
const io = new Server(httpServer, {
  connectionStateRecovery: { maxDisconnectionDuration: seconds * 1000, skipMiddlewares: true },
});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

io.on("connection", (socket) => {
  if (!socket.recovered) socket.join("r");
  socket.on("whoami", (ack) => ack({ id: socket.id, recovered: socket.recovered, rooms: [...socket.rooms].sort() }));
  socket.on("tick", (req, ack) => {
    for (let n = req.from; n < req.to; n++) io.to(req.room).emit("tick", n);
    ack(0);
  });
  socket.on("gone", async (sid, ack) => {
    const deadline = Date.now() + 2000;
    while (io.of("/").sockets.has(sid) && Date.now() < deadline) await sleep(10);
    ack(!io.of("/").sockets.has(sid));
  });
});

httpServer.listen(0, "127.0.0.1", () => console.log(`PORT ${httpServer.address().port}`));
process.on("SIGTERM", () => process.exit(0));
