// The web chat: a small Engine.IO v4 / Socket.IO v5 client over the browser's WebSocket, and
// the page over it. No library, no build step: this file is served as it is.
"use strict";

// ---------------------------------------------------------------------------------------------
// Socket.IO over one WebSocket, with connection state recovery (pid + offset) and reconnects.

/** A Socket.IO packet of the text a `4` Engine.IO packet carries: type, namespace, ack id, data. */
function parseSocketIOPacket(text) {
  const type = Number(text[0]);
  let index = 1;
  let namespace = "/";
  if (text[index] === "/") {
    const comma = text.indexOf(",", index);
    namespace = comma < 0 ? text.slice(index) : text.slice(index, comma);
    index = comma < 0 ? text.length : comma + 1;
  }
  let ackID = "";
  while (index < text.length && text[index] >= "0" && text[index] <= "9") ackID += text[index++];
  const data = index < text.length ? JSON.parse(text.slice(index)) : undefined;
  return { type, namespace, ackID: ackID === "" ? null : Number(ackID), data };
}

class ChatSocket {
  /**
   * `auth()` gives the CONNECT's auth (the token); `on` has connected(recovered),
   * disconnected(), refused(message), retrying(milliseconds) and event(name, payload).
   */
  constructor(auth, on) {
    this.auth = auth;
    this.on = on;
    this.pid = null;        // the recovery session, from the CONNECT reply
    this.offset = null;     // the last event's place in the stream
    this.ws = null;
    this.connected = false;
    this.stopped = false;
    this.attempt = 0;
    this.nextAckID = 0;
    this.pendingAcks = new Map();
    this.heartbeat = null;
    this.retryTimer = null;
  }

  open() {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(`${scheme}${location.host}/socket.io/?EIO=4&transport=websocket`);
    this.ws = ws;
    ws.onmessage = (event) => this.received(ws, event.data);
    ws.onclose = () => this.lost(ws);
    ws.onerror = () => {};  // a close follows
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.lost(ws);
    if (ws) ws.close();
    this.pid = null;
    this.offset = null;
  }

  received(ws, data) {
    if (ws !== this.ws || typeof data !== "string" || data.length === 0) return;
    switch (data[0]) {
      case "0": {  // open: answer with the CONNECT, resuming the session when there is one
        const handshake = JSON.parse(data.slice(1));
        this.pingWindow = handshake.pingInterval + handshake.pingTimeout;
        this.armHeartbeat(ws);
        const auth = Object.assign({ recover: true }, this.auth());
        if (this.pid) {
          auth.pid = this.pid;
          if (this.offset) auth.offset = this.offset;
        }
        ws.send("40" + JSON.stringify(auth));
        break;
      }
      case "2":  // ping
        this.armHeartbeat(ws);
        ws.send("3");
        break;
      case "1":  // close
        ws.close();
        break;
      case "4":
        try {
          this.packet(parseSocketIOPacket(data.slice(1)));
        } catch (error) {
          console.warn("unreadable packet", data, error);
        }
        break;
    }
  }

  packet(packet) {
    if (packet.namespace !== "/") return;
    switch (packet.type) {
      case 0: {  // CONNECT reply
        const previous = this.pid;
        this.pid = (packet.data && packet.data.pid) || null;
        this.connected = true;
        this.attempt = 0;
        this.on.connected(previous !== null && this.pid === previous);
        break;
      }
      case 4:  // CONNECT_ERROR
        this.stopped = true;
        this.on.refused((packet.data && packet.data.message) || "refused");
        if (this.ws) this.ws.close();
        break;
      case 1:  // DISCONNECT by the server
        if (this.ws) this.ws.close();
        break;
      case 2: {  // EVENT: [name, payload, offset?]
        const args = packet.data;
        if (!Array.isArray(args) || typeof args[0] !== "string") return;
        // A recovering session's events end with their place in the stream, as socket.io's
        // own client reads it.
        if (this.pid && args.length > 2 && typeof args[args.length - 1] === "string") this.offset = args.pop();
        this.on.event(args[0], args[1]);
        break;
      }
      case 3: {  // ACK
        const pending = this.pendingAcks.get(packet.ackID);
        if (!pending) return;
        this.pendingAcks.delete(packet.ackID);
        clearTimeout(pending.timer);
        pending.resolve(Array.isArray(packet.data) ? packet.data[0] : undefined);
        break;
      }
    }
  }

  /** Sends an event without waiting for an answer; dropped while disconnected. */
  emit(name, payload) {
    if (this.connected) this.ws.send("42" + JSON.stringify([name, payload]));
  }

  /** Sends an event with an ack; resolves with the answer, rejects when the connection goes. */
  call(name, payload, timeoutMilliseconds = 15000) {
    if (!this.connected) return Promise.reject(new Error("not connected"));
    const ackID = this.nextAckID++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingAcks.delete(ackID);
        reject(new Error("no answer in time"));
      }, timeoutMilliseconds);
      this.pendingAcks.set(ackID, { resolve, reject, timer });
      this.ws.send("42" + ackID + JSON.stringify([name, payload]));
    });
  }

  armHeartbeat(ws) {
    clearTimeout(this.heartbeat);
    // No ping within the server's interval and time-out: the connection is gone.
    this.heartbeat = setTimeout(() => ws.close(), (this.pingWindow || 45000) + 2000);
  }

  lost(ws) {
    if (!ws || ws !== this.ws) return;
    this.ws = null;
    const wasConnected = this.connected;
    this.connected = false;
    clearTimeout(this.heartbeat);
    for (const pending of this.pendingAcks.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error("connection lost"));
    }
    this.pendingAcks.clear();
    if (wasConnected) this.on.disconnected();
    if (this.stopped) return;
    const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 6);
    this.on.retrying(delay);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }
}

// ---------------------------------------------------------------------------------------------
// The page.

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "chat.session";

/** A cursor's place in the stream (`c` + base 36). */
const position = (cursor) => (typeof cursor === "string" && /^c[0-9a-z]+$/.test(cursor) ? parseInt(cursor.slice(1), 36) : 0);

function uuid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const displayName = (user) => (user && (user.username || user.email)) || "someone";

function clock(timestamp) {
  const date = new Date(timestamp);
  if (isNaN(date)) return "";
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
               : date.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function lastSeenText(presence) {
  if (!presence) return "";
  if (presence.online) return "online";
  if (!presence.last_seen) return "offline";
  return "last seen " + clock(presence.last_seen);
}

const app = {
  session: null,          // {token, user}
  socket: null,
  conversations: new Map(),  // peer id → {peer, last, lastPos, unread, readUpTo, peerReadUpTo}
  threads: new Map(),     // peer id → {messages: [...], ids: Set, loaded, complete}
  presence: new Map(),    // user id → {online, last_seen}
  typing: new Map(),      // peer id → timer hiding their "typing…"
  current: null,          // the open conversation's peer id
  everConnected: false,   // this session's socket has connected once (later connects are reconnects)
  outbox: [],             // messages sent and not yet acknowledged, in order
  bannerTimer: null,
  readTimer: null,
  typingSentAt: 0,
  typingIdle: null,
  refreshTimer: null,
  tokenTimer: null,        // renews the token before it expires
  blocked: new Set(),      // ids of the people this user blocks
};

// --- REST -------------------------------------------------------------------------------------

class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (app.session) headers.Authorization = `Bearer ${app.session.token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new APIError(0, "The server cannot be reached. Check your connection and try again.");
  }
  let json = null;
  try { json = await response.json(); } catch (error) { /* no JSON body */ }
  if (!response.ok) {
    const message = (json && (json.error || json.message)) || `The server answered ${response.status}.`;
    if ((response.status === 401 || response.status === 403) && app.session && path !== "/api/auth/login") {
      logOut("Your session has ended. Please log in again.");
    }
    throw new APIError(response.status, message);
  }
  return json;
}

// --- banner -----------------------------------------------------------------------------------

function banner(text, kind = "info", hideAfter = 0) {
  const element = $("banner");
  clearTimeout(app.bannerTimer);
  if (!text) {
    element.hidden = true;
    return;
  }
  element.textContent = text;
  element.className = "banner" + (kind === "error" ? " error" : "");
  element.hidden = false;
  if (hideAfter) app.bannerTimer = setTimeout(() => { element.hidden = true; }, hideAfter);
}

// --- logging in ---------------------------------------------------------------------------------

let registering = false;

function showLogin(message) {
  $("chat-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  document.title = "Chat";
  $("login-email").focus();
}

function setRegistering(on) {
  registering = on;
  $("username-row").hidden = !on;
  $("login-mode-text").textContent = on ? "Create an account" : "Log in to your account";
  $("login-submit").textContent = on ? "Create account" : "Log in";
  $("login-toggle").textContent = on ? "Have an account? Log in" : "New here? Create an account";
  $("login-password").autocomplete = on ? "new-password" : "current-password";
  $("login-error").hidden = true;
}

async function submitLogin(event) {
  event.preventDefault();
  const email = $("login-email").value.trim();
  const password = $("login-password").value;
  const username = $("login-username").value.trim();
  const error = $("login-error");
  error.hidden = true;
  if (!email || !password || (registering && !username)) {
    error.textContent = registering ? "Name, email and password are all needed." : "Email and password are both needed.";
    error.hidden = false;
    return;
  }
  $("login-submit").disabled = true;
  try {
    if (registering) await api("POST", "/api/auth/register", { username, email, password });
    const session = await api("POST", "/api/auth/login", { email, password });
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    $("login-password").value = "";
    start(session);
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    $("login-submit").disabled = false;
  }
}

function logOut(message) {
  clearTimeout(app.tokenTimer);
  if (app.socket) app.socket.stop();
  app.socket = null;
  app.session = null;
  localStorage.removeItem(SESSION_KEY);
  app.conversations.clear();
  app.threads.clear();
  app.presence.clear();
  app.blocked.clear();
  app.outbox = [];
  app.current = null;
  banner("");
  showLogin(message);
}

// --- starting ---------------------------------------------------------------------------------

function start(session) {
  app.session = session;
  app.everConnected = false;
  $("login-view").hidden = true;
  $("chat-view").hidden = false;
  $("me-name").textContent = displayName(session.user);
  $("me-name").title = session.user.email;
  renderConversation();
  loadConversations();
  loadBlocks();
  scheduleRefresh();
  app.socket = new ChatSocket(() => ({ token: app.session.token }), {
    connected: (recovered) => connected(recovered),
    disconnected: () => banner("Connection lost. Reconnecting…"),
    retrying: (delay) => banner(`Connection lost. Reconnecting in ${Math.ceil(delay / 1000)} s…`),
    refused: (message) => logOut(message === "Invalid token" ? "Your session has ended. Please log in again." : `The server refused the connection: ${message}`),
    event: (name, payload) => streamEvent(name, payload),
  });
  banner("Connecting…");
  app.socket.open();
}

/** The people this user blocks (`GET /api/blocks`), for the Block/Unblock button. */
async function loadBlocks() {
  try {
    const answer = await api("GET", "/api/blocks");
    app.blocked = new Set(answer.blocked.map((entry) => entry.user.id));
    renderConversation();
  } catch (failure) {
    if (app.session) banner(failure.message, "error", 5000);
  }
}

async function toggleBlock() {
  const peer = app.current;
  if (!peer) return;
  const blocking = !app.blocked.has(peer);
  try {
    await api(blocking ? "POST" : "DELETE", `/api/users/${encodeURIComponent(peer)}/block`);
    if (blocking) app.blocked.add(peer); else app.blocked.delete(peer);
    // Across a block neither sees the other online: what was shown is forgotten (and asked
    // again after unblocking).
    app.presence.delete(peer);
    if (!blocking) loadPresence(peer);
    renderConversations();
    renderConversation();
  } catch (failure) {
    banner(failure.message, "error", 5000);
  }
}

/** A fresh token five minutes before this one expires (`POST /api/auth/refresh`), so an open
 *  page stays logged in without the password; a session too old to refresh logs out. */
function scheduleRefresh() {
  clearTimeout(app.tokenTimer);
  let expires = 0;
  try {
    const payload = app.session.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    expires = JSON.parse(atob(payload)).exp * 1000;
  } catch (error) { return; }
  const delay = Math.max(0, expires - Date.now() - 5 * 60 * 1000);
  app.tokenTimer = setTimeout(async () => {
    try {
      const fresh = await api("POST", "/api/auth/refresh");
      if (!app.session) return;
      app.session.token = fresh.token;
      localStorage.setItem(SESSION_KEY, JSON.stringify(app.session));
      scheduleRefresh();
    } catch (failure) {
      // Refused: api() has logged out. Unreachable: try again in a minute.
      if (app.session && failure.status === 0) app.tokenTimer = setTimeout(scheduleRefresh, 60 * 1000);
    }
  }, Math.min(delay, 2 ** 31 - 1));
}

async function connected(recovered) {
  banner("");
  const first = !app.everConnected;
  app.everConnected = true;
  // What was sent and not acknowledged goes again, with the same client_id: stored once.
  for (const pending of app.outbox) sendPending(pending);
  // The list asked for at start may predate the socket joining its room: what came between
  // is in neither, so the first connect asks again.
  if (first) return loadConversations();
  if (recovered) return;  // a recovered session replays what was missed by itself
  await catchUp();
}

/** After a reconnect the server could not resume: pages the stream from the last event taken,
 *  or, without one (or too far behind), loads the lists again. */
async function catchUp() {
  let after = app.socket.offset;
  try {
    for (let page = 0; after && page < 20; page++) {
      const answer = await api("GET", `/api/sync?after=${encodeURIComponent(after)}&limit=1000`);
      for (const event of answer.events) {
        if (event.type === "message") addMessage(event);
        else if (event.type === "read") applyReceipt(event);
      }
      after = answer.next;
      app.socket.offset = after;
      if (!answer.more) return;
    }
  } catch (error) {
    /* refresh below */
  }
  await loadConversations();
  if (app.current) await loadThread(app.current, true);
}

// --- conversations --------------------------------------------------------------------------

function conversationFor(peer) {
  let conversation = app.conversations.get(peer.id);
  if (!conversation) {
    conversation = { peer, last: null, lastPos: 0, unread: 0, readUpTo: 0, peerReadUpTo: 0 };
    app.conversations.set(peer.id, conversation);
  } else if (peer.username || peer.email) {
    conversation.peer = Object.assign({}, conversation.peer, peer);
  }
  return conversation;
}

async function loadConversations() {
  try {
    const seen = new Set();
    let after = null;
    for (let page = 0; page < 5; page++) {  // the newest 500
      const answer = await api("GET", "/api/conversations?limit=100" + (after ? `&after=${encodeURIComponent(after)}` : ""));
      for (const entry of answer.conversations) {
        const conversation = conversationFor(entry.peer);
        seen.add(entry.peer.id);
        // A live message newer than this answer wins: the answer would undo it.
        const listed = entry.last_message ? position(entry.last_message.cursor) : 0;
        if (listed >= conversation.lastPos) {
          conversation.last = entry.last_message;
          conversation.lastPos = listed;
          conversation.unread = entry.unread;
        }
        conversation.readUpTo = Math.max(conversation.readUpTo, position(entry.read_up_to));
        conversation.peerReadUpTo = Math.max(conversation.peerReadUpTo, position(entry.peer_read_up_to));
      }
      after = answer.next;
      if (!after) break;
    }
    renderConversations();
    renderConversation();
    scheduleRead();
  } catch (error) {
    if (app.session) banner(`Conversations could not be loaded: ${error.message}`, "error", 6000);
  }
}

/** A peer we know nothing of wrote: their name comes with the list. */
function refreshConversationsSoon() {
  clearTimeout(app.refreshTimer);
  app.refreshTimer = setTimeout(loadConversations, 300);
}

function renderConversations() {
  const list = $("conversation-list");
  const sorted = [...app.conversations.values()].filter((c) => c.last || c.peer.id === app.current)
    .sort((a, b) => b.lastPos - a.lastPos);
  list.replaceChildren(...sorted.map((conversation) => {
    const item = document.createElement("li");
    item.dataset.peer = conversation.peer.id;
    if (conversation.peer.id === app.current) item.className = "current";
    const dot = document.createElement("span");
    const presence = app.presence.get(conversation.peer.id);
    dot.className = "dot" + (presence && presence.online ? " online" : "");
    dot.title = lastSeenText(presence);
    const who = document.createElement("div");
    who.className = "who";
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = displayName(conversation.peer);
    const last = document.createElement("div");
    last.className = "last";
    if (app.typing.has(conversation.peer.id)) {
      last.textContent = "typing…";
    } else if (conversation.last) {
      last.textContent = (conversation.last.from === app.session.user.id ? "You: " : "") + conversation.last.message;
    }
    who.append(name, last);
    item.append(dot, who);
    if (conversation.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = conversation.unread >= 999 ? "999+" : String(conversation.unread);
      item.append(badge);
    }
    item.addEventListener("click", () => openConversation(conversation.peer));
    return item;
  }));
  $("no-conversations").hidden = sorted.length > 0;
  const unread = [...app.conversations.values()].reduce((sum, c) => sum + c.unread, 0);
  document.title = unread > 0 ? `(${unread}) Chat` : "Chat";
}

// --- one conversation -------------------------------------------------------------------------

function threadFor(peerID) {
  let thread = app.threads.get(peerID);
  if (!thread) {
    thread = { messages: [], ids: new Set(), loaded: false, complete: false };
    app.threads.set(peerID, thread);
  }
  return thread;
}

async function openConversation(peer) {
  conversationFor(peer);
  app.current = peer.id;
  $("chat-view").classList.add("in-conversation");
  $("search").value = "";
  $("search-results").hidden = true;
  renderConversations();
  renderConversation();
  $("message-input").focus();
  loadPresence(peer.id);
  if (!threadFor(peer.id).loaded) await loadThread(peer.id, false);
  scheduleRead();
}

async function loadThread(peerID, again) {
  const thread = threadFor(peerID);
  try {
    const rows = await api("GET", `/api/messages/${encodeURIComponent(peerID)}?order=desc&limit=50`);
    if (again) {
      thread.messages = thread.messages.filter((m) => m.pending);
      thread.ids = new Set(thread.messages.map((m) => m.id).filter(Boolean));
    }
    for (const row of rows) {
      insertIntoThread(thread, fromHistoryRow(row));
    }
    thread.loaded = true;
    thread.complete = rows.length < 50;
    if (peerID === app.current) renderMessages(true);
  } catch (error) {
    if (app.session) banner(`Messages could not be loaded: ${error.message}`, "error", 6000);
  }
}

async function loadEarlier() {
  const peerID = app.current;
  const thread = threadFor(peerID);
  const oldest = thread.messages.find((m) => m.cursor);
  if (!oldest) return;
  try {
    const rows = await api("GET", `/api/messages/${encodeURIComponent(peerID)}?order=desc&limit=50&before=${encodeURIComponent(oldest.cursor)}`);
    for (const row of rows) {
      insertIntoThread(thread, fromHistoryRow(row));
    }
    thread.complete = rows.length < 50;
    if (peerID === app.current) renderMessages(false);
  } catch (error) {
    banner(`Earlier messages could not be loaded: ${error.message}`, "error", 6000);
  }
}

/** A row of `GET /api/messages/:id` as the page keeps a message. */
function fromHistoryRow(row) {
  return { id: row.id, from: row.sender_id, to: row.receiver_id, message: row.content, timestamp: row.created_at, cursor: row.cursor };
}

/** Into the thread in stream order, once per id; pending messages (no place yet) stay last. */
function insertIntoThread(thread, message) {
  if (message.id && thread.ids.has(message.id)) return false;
  if (message.client_id) {
    const pending = thread.messages.find((m) => m.pending && m.client_id === message.client_id);
    if (pending) {
      Object.assign(pending, message, { pending: false, failed: null });
      thread.ids.add(message.id);
      thread.messages.sort(streamOrder);
      return true;
    }
  }
  if (message.id) thread.ids.add(message.id);
  thread.messages.push(message);
  thread.messages.sort(streamOrder);
  return true;
}

function streamOrder(a, b) {
  const pa = a.cursor ? position(a.cursor) : Infinity, pb = b.cursor ? position(b.cursor) : Infinity;
  return pa === pb ? 0 : pa < pb ? -1 : 1;
}

async function loadPresence(userID) {
  try {
    const presence = await api("GET", `/api/users/${encodeURIComponent(userID)}/presence`);
    app.presence.set(userID, presence);
    renderConversations();
    renderConversation();
  } catch (error) { /* shown as unknown */ }
}

function renderConversation() {
  const conversation = app.current && app.conversations.get(app.current);
  $("pick-hint").hidden = !!conversation;
  $("composer").hidden = !conversation;
  $("messages").hidden = !conversation;
  $("block").hidden = !conversation;
  if (!conversation) {
    $("peer-name").textContent = "";
    $("peer-status").textContent = "";
    $("typing").hidden = true;
    return;
  }
  const blocked = app.blocked.has(conversation.peer.id);
  $("block").textContent = blocked ? "Unblock" : "Block";
  $("block").title = blocked ? "Let this person message you again" : "Refuse this person's messages; neither of you sees the other typing or online";
  $("peer-name").textContent = displayName(conversation.peer);
  $("peer-status").textContent = lastSeenText(app.presence.get(conversation.peer.id));
  const typing = app.typing.has(conversation.peer.id);
  $("typing").hidden = !typing;
  $("typing").textContent = typing ? `${displayName(conversation.peer)} is typing…` : "";
  renderMessages(false);
}

function renderMessages(scrollToEnd) {
  const list = $("messages");
  const peerID = app.current;
  if (!peerID) return;
  const conversation = app.conversations.get(peerID);
  const thread = threadFor(peerID);
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const items = [];
  if (thread.loaded && !thread.complete) {
    const more = document.createElement("li");
    more.className = "earlier";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = "Load earlier messages";
    button.addEventListener("click", loadEarlier);
    more.append(button);
    items.push(more);
  }
  for (const message of thread.messages) {
    const mine = message.from === app.session.user.id;
    const item = document.createElement("li");
    item.className = (mine ? "mine" : "theirs") + (message.failed ? " failed" : "");
    if (message.id) item.dataset.id = message.id;
    item.textContent = message.message;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = clock(message.timestamp);
    if (mine) {
      const ticks = document.createElement("span");
      const read = !message.pending && !message.failed && position(message.cursor) <= conversation.peerReadUpTo;
      ticks.className = "ticks" + (read ? " read" : "");
      ticks.textContent = message.failed ? " ⚠ " + message.failed : message.pending ? " …" : read ? " ✓✓" : " ✓";
      ticks.title = message.failed ? "not sent" : message.pending ? "sending" : read ? "read" : "stored";
      meta.append(ticks);
    }
    item.append(meta);
    items.push(item);
  }
  list.replaceChildren(...items);
  if (scrollToEnd || atEnd) list.scrollTop = list.scrollHeight;
}

// --- the stream -------------------------------------------------------------------------------

function streamEvent(name, payload) {
  if (!payload || typeof payload !== "object") return;
  const me = app.session.user.id;
  switch (name) {
    case "receive_message":
      addMessage({ id: payload.id, from: payload.from, to: me, message: payload.message, timestamp: payload.timestamp, cursor: payload.cursor });
      stopTyping(payload.from);
      break;
    case "own_message":
    case "message_sent":
      addMessage({ id: payload.id, from: me, to: payload.to, message: payload.message, timestamp: payload.timestamp,
                   cursor: payload.cursor, client_id: payload.client_id });
      break;
    case "messages_read":
      applyReceipt(payload);
      break;
    case "typing":
      peerTyping(payload.from, payload.typing === true);
      break;
    case "presence":
      app.presence.set(payload.user, { online: payload.online, last_seen: payload.last_seen });
      renderConversations();
      if (payload.user === app.current) renderConversation();
      break;
    case "session_closed":  // the server is about to disconnect this socket, and says why
      if (["logged out", "password changed", "token revoked"].includes(payload.reason)) {
        logOut(payload.reason === "password changed" ? "Your password was changed. Please log in again."
                                                     : "You were logged out. Please log in again.");
      } else {
        app.socket.stop();
        banner(`Disconnected by the server: ${payload.reason}. Reload the page to reconnect.`, "error");
      }
      break;
  }
}

function addMessage(message) {
  const me = app.session.user.id;
  const peerID = message.from === me ? message.to : message.from;
  if (!peerID) return;
  const known = app.conversations.has(peerID);
  const conversation = conversationFor({ id: peerID });
  const thread = threadFor(peerID);
  const isNew = insertIntoThread(thread, message) || !thread.loaded;
  const pos = position(message.cursor);
  if (pos > conversation.lastPos) {
    conversation.lastPos = pos;
    conversation.last = { id: message.id, from: message.from, to: message.to, message: message.message, timestamp: message.timestamp, cursor: message.cursor };
    if (isNew && message.from !== me && pos > conversation.readUpTo) conversation.unread += 1;
  }
  if (!known || !conversation.peer.username) refreshConversationsSoon();
  renderConversations();
  if (peerID === app.current) {
    renderMessages(false);
    scheduleRead();
  }
}

/** `reader` read `peer`'s messages up to `up_to`: ours (✓✓), or ours of theirs (unread clears). */
function applyReceipt(receipt) {
  const me = app.session.user.id;
  const upTo = position(receipt.up_to);
  if (receipt.peer === me && receipt.reader !== me) {
    const conversation = conversationFor({ id: receipt.reader });
    conversation.peerReadUpTo = Math.max(conversation.peerReadUpTo, upTo);
    if (receipt.reader === app.current) renderMessages(false);
  }
  if (receipt.reader === me) {
    const conversation = conversationFor({ id: receipt.peer });
    if (upTo > conversation.readUpTo) {
      conversation.readUpTo = upTo;
      const thread = app.threads.get(receipt.peer);
      if (upTo >= conversation.lastPos) {
        conversation.unread = 0;
      } else if (thread && thread.loaded && thread.complete) {
        conversation.unread = thread.messages.filter((m) => m.from === receipt.peer && position(m.cursor) > upTo).length;
      } else {
        refreshConversationsSoon();  // the count lies in messages not loaded here
      }
      renderConversations();
    }
  }
}

/** The open conversation is read up to its newest message from the peer, once the page is seen. */
function scheduleRead() {
  clearTimeout(app.readTimer);
  app.readTimer = setTimeout(markRead, 300);
}

async function markRead() {
  const peerID = app.current;
  if (!peerID || document.visibilityState !== "visible" || !app.socket || !app.socket.connected) return;
  const conversation = app.conversations.get(peerID);
  const thread = app.threads.get(peerID);
  if (!conversation || !thread) return;
  const newest = [...thread.messages].reverse().find((m) => m.from === peerID && m.cursor);
  if (!newest || position(newest.cursor) <= conversation.readUpTo) return;
  try {
    const answer = await app.socket.call("mark_read", { with: peerID, up_to: newest.cursor });
    if (answer && answer.ok) {
      conversation.readUpTo = Math.max(conversation.readUpTo, position(answer.read_up_to));
      conversation.unread = answer.unread;
      renderConversations();
    }
  } catch (error) { /* the next view tries again */ }
}

// --- sending ----------------------------------------------------------------------------------

function sendMessage(event) {
  event.preventDefault();
  const input = $("message-input");
  const text = input.value;
  if (!text.trim() || !app.current) return;
  input.value = "";
  autoSize();
  stopOwnTyping();
  const pending = { client_id: uuid(), from: app.session.user.id, to: app.current, message: text, timestamp: new Date().toISOString(), pending: true };
  insertIntoThread(threadFor(app.current), pending);
  app.outbox.push(pending);
  renderMessages(true);
  sendPending(pending);
}

async function sendPending(pending) {
  if (!app.socket || !app.socket.connected || pending.sending) return;
  pending.sending = true;
  let answer;
  try {
    answer = await app.socket.call("send_message", { to: pending.to, message: pending.message, client_id: pending.client_id });
  } catch (error) {
    pending.sending = false;
    // Sent again with the same client_id (stored once): when the connection is back, or, if
    // it stayed up and only the answer is late, in a moment.
    if (app.socket && app.socket.connected) setTimeout(() => sendPending(pending), 2000);
    return;
  }
  pending.sending = false;
  app.outbox = app.outbox.filter((p) => p !== pending);
  const thread = threadFor(pending.to);
  if (answer && answer.ok) {
    addMessage({ id: answer.id, from: pending.from, to: pending.to, message: pending.message, timestamp: answer.timestamp,
                 cursor: answer.cursor, client_id: pending.client_id });
  } else {
    pending.failed = (answer && answer.error) || "not sent";
    if (/try again/.test(pending.failed)) {
      pending.failed = null;
      app.outbox.push(pending);
      setTimeout(() => sendPending(pending), 2000);
    } else {
      banner(`Not sent: ${pending.failed}`, "error", 6000);
    }
    if (pending.to === app.current) renderMessages(false);
  }
  if (thread && pending.to === app.current) renderMessages(false);
}

// --- typing -----------------------------------------------------------------------------------

function ownTyping() {
  if (!app.current || !app.socket) return;
  const text = $("message-input").value;
  clearTimeout(app.typingIdle);
  if (!text) return stopOwnTyping();
  const now = Date.now();
  // The server lets a `true` lapse after 6 s: repeated every 3 s while typing goes on.
  if (now - app.typingSentAt > 3000) {
    app.typingSentAt = now;
    app.typingTo = app.current;
    app.socket.emit("typing", { to: app.current, typing: true });
  }
  app.typingIdle = setTimeout(stopOwnTyping, 4000);
}

function stopOwnTyping() {
  clearTimeout(app.typingIdle);
  if (app.typingSentAt && app.typingTo && app.socket) app.socket.emit("typing", { to: app.typingTo, typing: false });
  app.typingSentAt = 0;
  app.typingTo = null;
}

function peerTyping(from, typing) {
  if (!from) return;
  clearTimeout(app.typing.get(from));
  if (typing) {
    // Hidden by itself should the `false` never come.
    app.typing.set(from, setTimeout(() => stopTyping(from), 7000));
  } else {
    app.typing.delete(from);
  }
  renderConversations();
  if (from === app.current) renderConversation();
}

function stopTyping(from) {
  if (app.typing.has(from)) peerTyping(from, false);
}

// --- finding people ---------------------------------------------------------------------------

let searchTimer = null;
let searchGeneration = 0;

function searchChanged() {
  clearTimeout(searchTimer);
  const query = $("search").value.trim();
  if (!query) {
    $("search-results").hidden = true;
    return;
  }
  searchTimer = setTimeout(() => search(query), 250);
}

async function search(query) {
  const generation = ++searchGeneration;
  const results = $("search-results");
  try {
    const answer = await api("GET", `/api/users?q=${encodeURIComponent(query)}&limit=10`);
    if (generation !== searchGeneration) return;
    const people = answer.users.filter((user) => user.id !== app.session.user.id);
    results.replaceChildren(...(people.length ? people.map((user) => {
      const item = document.createElement("li");
      item.dataset.user = user.id;
      const who = document.createElement("div");
      who.className = "who";
      const name = document.createElement("div");
      name.className = "name";
      name.textContent = displayName(user);
      const email = document.createElement("div");
      email.className = "last";
      email.textContent = user.email;
      who.append(name, email);
      item.append(who);
      item.addEventListener("click", () => openConversation(user));
      return item;
    }) : [Object.assign(document.createElement("li"), { className: "muted", textContent: "Nobody found" })]));
    results.hidden = false;
  } catch (error) {
    if (generation !== searchGeneration) return;
    results.replaceChildren(Object.assign(document.createElement("li"), { className: "error", textContent: error.message }));
    results.hidden = false;
  }
}

// --- wiring -----------------------------------------------------------------------------------

function autoSize() {
  const input = $("message-input");
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, 160) + "px";
  input.style.overflowY = input.scrollHeight > 160 ? "auto" : "hidden";
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", submitLogin);
  $("login-toggle").addEventListener("click", () => setRegistering(!registering));
  $("logout").addEventListener("click", async () => {
    stopOwnTyping();
    // Revokes the session's tokens on every device; logged out here whatever the answer.
    if (app.session) await api("POST", "/api/auth/logout").catch(() => {});
    logOut("");
  });
  $("back").addEventListener("click", () => {
    stopOwnTyping();
    app.current = null;
    $("chat-view").classList.remove("in-conversation");
    renderConversations();
    renderConversation();
  });
  $("search").addEventListener("input", searchChanged);
  $("block").addEventListener("click", toggleBlock);
  $("composer").addEventListener("submit", sendMessage);
  $("message-input").addEventListener("input", () => {
    autoSize();
    ownTyping();
  });
  $("message-input").addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) sendMessage(event);
  });
  $("message-input").addEventListener("blur", stopOwnTyping);
  document.addEventListener("visibilitychange", scheduleRead);
  window.addEventListener("focus", scheduleRead);

  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(SESSION_KEY)); } catch (error) { /* none */ }
  if (saved && saved.token && saved.user && saved.user.id) start(saved);
  else showLogin("");
});
