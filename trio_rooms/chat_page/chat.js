// The chat page of `python -m trio_rooms`, on the stock socket.io-client (the global `io`).
// Sends "join", "leave", "say" and "private"; shows "joined", "left", "said", "members" and
// "private" (the events of trio_rooms/__main__.py). Text from the server is only ever set as
// textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const ACK_TIMEOUT = 5000; // ms

let socket = null;
let current = null; // the room shown in the member list and written to
let rooms = []; // the rooms joined, as the server acked them
const members = new Map(); // room -> [{id, name}], as the server last sent them

function showError(text) {
  $("error").textContent = text || "";
}

function log(kind, room, text) {
  const line = document.createElement("li");
  line.className = kind;
  if (room) {
    const tag = document.createElement("span");
    tag.className = "room-tag";
    tag.textContent = `[${room}]`;
    line.append(tag);
  }
  line.append(text);
  $("log").append(line);
  line.scrollIntoView({ block: "nearest" });
}

function showTransport() {
  const engine = socket && socket.connected ? socket.io.engine : null;
  const name = engine ? engine.transport.name : "none";
  $("transport").textContent = name;
  $("transport").className = name;
}

// An event with an acknowledgement; resolves to the server's answer, or {error} on a timeout.
async function request(event, argument) {
  try {
    return await socket.timeout(ACK_TIMEOUT).emitWithAck(event, argument);
  } catch (error) {
    return { error: `no answer to "${event}": ${error.message}` };
  }
}

function showRooms() {
  const list = $("rooms");
  list.replaceChildren();
  for (const room of rooms) {
    const item = document.createElement("li");
    item.dataset.room = room;
    if (room === current) item.className = "current";
    const pick = document.createElement("button");
    pick.className = "room";
    pick.textContent = room;
    pick.addEventListener("click", () => select(room));
    const leave = document.createElement("button");
    leave.className = "leave";
    leave.textContent = "leave";
    leave.addEventListener("click", () => leaveRoom(room));
    item.append(pick, leave);
    list.append(item);
  }
}

function showMembers() {
  $("current-room").textContent = current || "no room";
  const list = $("members");
  const to = $("to");
  const chosen = to.value;
  list.replaceChildren();
  to.replaceChildren(new Option(current ? `everyone in ${current}` : "everyone in the room", ""));
  for (const member of members.get(current) || []) {
    const item = document.createElement("li");
    item.dataset.id = member.id;
    if (member.id === socket.id) {
      item.className = "me";
      item.textContent = `${member.name} (you)`;
    } else {
      item.textContent = member.name;
      item.title = `write to ${member.name} only (${member.id})`;
      item.addEventListener("click", () => {
        $("to").value = member.id;
        $("text").focus();
      });
      to.append(new Option(`${member.name} only`, member.id));
    }
    list.append(item);
  }
  to.value = [...to.options].some((option) => option.value === chosen) ? chosen : "";
}

function select(room) {
  current = room;
  showRooms();
  showMembers();
}

async function joinRoom(room) {
  const answer = await request("join", room);
  if (answer.error) return showError(answer.error);
  showError("");
  rooms = answer.rooms;
  select(room);
}

async function leaveRoom(room) {
  const answer = await request("leave", room);
  if (answer.error) return showError(answer.error);
  rooms = answer.rooms;
  members.delete(room);
  select(rooms.includes(current) ? current : rooms[0] || null);
}

function connect(name) {
  socket = io({ auth: { name } });
  socket.io.on("open", () => socket.io.engine.on("upgrade", showTransport));
  socket.on("connect", () => {
    $("status").textContent = `connected as ${name}`;
    showTransport();
    $("connect-form").hidden = true;
    $("chat").hidden = false;
    $("room").focus();
    // After a reconnection the server has forgotten our rooms: join them again.
    const again = rooms;
    rooms = [];
    for (const room of again) joinRoom(room);
  });
  socket.on("disconnect", (reason) => {
    $("status").textContent = `disconnected (${reason})`;
    showTransport();
  });
  socket.on("connect_error", (error) => {
    $("status").textContent = `cannot connect: ${error.message}`;
  });
  socket.on("joined", ({ room, name }) => log("notice-line", room, `${name} joined`));
  socket.on("left", ({ room, name, reason }) => log("notice-line", room, `${name} left (${reason})`));
  socket.on("said", ({ room, name, text }) => log("said", room, `${name}: ${text}`));
  socket.on("private", ({ name, text }) => log("private", null, `${name} to you (private): ${text}`));
  socket.on("members", ({ room, members: list }) => {
    members.set(room, list);
    if (room === current) showMembers();
  });
}

$("connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  if (name) connect(name);
});

$("join-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const room = $("room").value.trim();
  if (!room) return;
  $("room").value = "";
  await joinRoom(room);
});

$("say-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value;
  const to = $("to").value;
  if (!text) return;
  if (!to && !current) return showError("join a room first");
  const answer = to ? await request("private", { to, text }) : await request("say", { room: current, text });
  if (answer.error) return showError(answer.error);
  showError("");
  $("text").value = "";
  if (to) log("private", null, `you to ${answer.to.name} (private): ${text}`);
});

if (typeof io === "undefined") {
  $("missing").hidden = false;
  $("connect-form").hidden = true;
  $("status").textContent = "no Socket.IO client";
}
