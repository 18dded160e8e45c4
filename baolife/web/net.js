/*
 * The connection: where the WebSocket is, sending with ids, the messages in
 * flight, reconnecting with backoff and `resume`, and presence.
 *
 * Presence: while the page is visible the client pings well inside the
 * server's idle timeout, so a player who only watches is never cut off. When
 * the page has been hidden for HIDDEN_MS the client closes the connection:
 * the player's clock runs only while connected, so the life pauses and an
 * abandoned tab costs the server nothing. Visible again, it reconnects and
 * resumes. The server's idle rule stays for connections that say nothing.
 */
import { clock, game, mark } from "./store.js";

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15000;
const PING_MAX_MS = 60000; // without an idle_timeout in /config.json
const HIDDEN_MS = 30000; // hidden this long: close, the life pauses

export const net = {
  url: null,
  ws: null,
  online: false, // logged in on the current connection
  nextId: 1,
  pending: new Map(), // message id -> what it was for
  lastSeq: 0,
  resumable: false, // a stream was running: reconnect with resume
  attempt: 0,
  retryAt: 0,
  retryTimer: null,
  retryWhy: "",
  bye: null,
  leaving: false, // a logout is on its way
  away: false, // closed because the page was hidden
  pingMs: PING_MAX_MS,
  lastSent: 0,
  status: { state: "idle", text: "", button: "" }, // the top bar's connection line
};

let hooks = { hello: () => null, frame: () => {}, closed: () => {} };

/** hello() -> [type, fields, meta] or null; frame(frame); closed(code, bye, wasOnline). */
export function setHooks(h) {
  hooks = h;
}

export function setStatus(state, text, button = "") {
  net.status = { state, text, button };
  mark("conn");
}

/** Where the WebSocket is: /config.json names its port when the page came
 * straight from the HTTP listener; behind a proxy (another port) it is /ws
 * on the page's own origin. */
export async function discover() {
  const secure = location.protocol === "https:";
  let url = `${secure ? "wss" : "ws"}://${location.host}/ws`;
  try {
    const response = await fetch("/config.json", { cache: "no-store" });
    if (response.ok) {
      const cfg = await response.json();
      const direct = !cfg.http_port || String(cfg.http_port) === (location.port || (secure ? "443" : "80"));
      if (direct && Number.isInteger(cfg.ws_port)) {
        const scheme = cfg.ws_tls ? "wss" : "ws";
        url = `${scheme}://${location.hostname}:${cfg.ws_port}${cfg.ws_path || "/ws"}`;
      }
      if (typeof cfg.tick_hz === "number" && cfg.tick_hz > 0) {
        clock.hz = cfg.tick_hz;
        clock.configured = true;
      }
      if (typeof cfg.idle_timeout === "number" && cfg.idle_timeout > 0) {
        // A third of the idle timeout: two pings may be late before it bites.
        net.pingMs = Math.max(500, Math.min(PING_MAX_MS, (cfg.idle_timeout * 1000) / 3));
      }
    }
  } catch (_e) {
    /* no config: same origin */
  }
  net.url = url;
}

/** The WebSocket's URL for this connection: a returning player's names its
 * player id (`?player=ID`, learnt at its last welcome), so a proxy that hashes
 * on it sends the player back to the worker that holds it
 * (deploy/haproxy/haproxy.cfg); a new player's names none. */
function socketUrl() {
  const id = game.pendingName === null && game.token ? game.tokenPlayer : null;
  if (id === null) return net.url;
  return `${net.url}${net.url.includes("?") ? "&" : "?"}player=${id}`;
}

export function connect() {
  clearTimeout(net.retryTimer);
  net.retryTimer = null;
  net.bye = null;
  net.leaving = false;
  net.away = false;
  game.stopped = "";
  if (net.ws) {
    const old = net.ws;
    net.ws = null;
    old.close(1000);
  }
  setStatus("connecting", "Connecting…");
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (e) {
    setStatus("offline", `Cannot connect: ${e.message}`, "Retry now");
    return;
  }
  net.ws = ws;
  ws.onopen = () => {
    if (net.ws !== ws) return;
    const first = hooks.hello();
    if (first === null) ws.close(1000);
    else send(...first);
  };
  ws.onmessage = (event) => {
    if (net.ws !== ws) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (_e) {
      return;
    }
    if (frame && frame.type === "frame" && Array.isArray(frame.ops)) hooks.frame(frame);
  };
  ws.onclose = (event) => {
    if (net.ws !== ws) return;
    net.ws = null;
    const wasOnline = net.online;
    net.online = false;
    const bye = net.bye;
    net.bye = null;
    hooks.closed(event.code, bye, wasOnline);
  };
}

/** Send one message; returns its id, or null when not connected. */
export function send(type, fields, meta) {
  const ws = net.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return null;
  const id = net.nextId++;
  ws.send(JSON.stringify({ type, id, ...fields }));
  net.lastSent = performance.now();
  if (meta) net.pending.set(id, meta);
  return id;
}

/** The meta of message `ref`, removed from the messages in flight. */
export function settle(ref) {
  const meta = ref === undefined ? undefined : net.pending.get(ref);
  if (meta) net.pending.delete(ref);
  return meta;
}

/** Is a message of this kind (and meta[key] === value) in flight? */
export function busyWith(kind, key, value) {
  for (const meta of net.pending.values()) {
    if (meta.kind === kind && (key === undefined || meta[key] === value)) return true;
  }
  return false;
}

export function retryLater(why) {
  const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** net.attempt);
  const delay = base * (0.75 + Math.random() * 0.5);
  net.attempt += 1;
  net.retryWhy = why;
  net.retryAt = performance.now() + delay;
  net.retryTimer = setTimeout(connect, delay);
  showRetry();
}

/** The countdown to the next attempt, in the top bar. */
export function showRetry() {
  if (net.retryTimer === null) return;
  const left = Math.max(0, Math.ceil((net.retryAt - performance.now()) / 1000));
  setStatus("retrying", `${net.retryWhy} Reconnecting in ${left} s (attempt ${net.attempt})`, "Retry now");
}

export function retryNow() {
  net.attempt = 0;
  connect();
}

/** End the session: `logout` when logged in, else just close. True if a
 * logout is on its way (the close that follows ends the session). */
export function hangUp() {
  clearTimeout(net.retryTimer);
  net.retryTimer = null;
  net.resumable = false;
  const ws = net.ws;
  if (ws && net.online && ws.readyState === WebSocket.OPEN) {
    net.leaving = true;
    send("logout", {});
    return true;
  }
  net.ws = null;
  net.online = false;
  if (ws) ws.close(1000);
  return false;
}

// ------------------------------------------------------------------ presence

let hiddenTimer = null;

function onVisibility() {
  if (document.visibilityState === "hidden") {
    clearTimeout(hiddenTimer);
    hiddenTimer = setTimeout(goAway, HIDDEN_MS);
    return;
  }
  clearTimeout(hiddenTimer);
  hiddenTimer = null;
  if (net.away) {
    net.away = false;
    net.attempt = 0;
    connect();
  }
}

/** Hidden long enough: close (not logout), so the server can replay on resume. */
function goAway() {
  hiddenTimer = null;
  if (!net.ws || !net.online) return;
  net.away = true;
  clearTimeout(net.retryTimer);
  net.retryTimer = null;
  const ws = net.ws;
  ws.close(1000, "hidden");
}

function keepAlive() {
  if (!net.online || document.visibilityState === "hidden") return;
  if (performance.now() - net.lastSent >= net.pingMs * 0.9) send("ping", {});
}

/** Start pinging while visible and pausing while hidden. */
export function startPresence() {
  document.addEventListener("visibilitychange", onVisibility);
  setInterval(keepAlive, Math.min(1000, net.pingMs / 2));
  window.addEventListener("online", () => {
    if (net.retryTimer !== null) connect();
  });
}
