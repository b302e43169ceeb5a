// An Admin UI stand-in for the benchmarks (server_trio.py --admin-watch): one socket.io-client on the
// server's /admin namespace over WebSocket, taking every event the UI would (server_stats, the live
// events, event_sent for each delivery in development mode) and counting them; it prints the count on
// SIGTERM. It ends with the server: when the connection is lost (no reconnection) or when its parent
// process is gone (run.py kills the server with SIGKILL, which the server cannot pass on).
// Usage: node admin_watch.mjs --port PORT
import { io } from "socket.io-client";

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
if (!(port > 0 && port < 65536)) throw new Error("--port is required");
const socket = io(`http://127.0.0.1:${port}/admin`, { transports: ["websocket"], reconnection: false });
let events = 0;
socket.onAny(() => {
  events += 1;
});
socket.on("connect_error", (err) => {
  console.error(`admin_watch: ${err.message}`);
  process.exit(1);
});
socket.on("disconnect", () => process.exit(0));
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0); // the server is gone: this process was re-parented
}, 1000).unref();
process.on("SIGTERM", () => {
  console.error(`admin_watch: ${events} events`);
  process.exit(0);
});
