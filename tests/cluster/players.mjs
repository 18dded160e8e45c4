// Many players through the cluster's edge, for tests/cluster (Node: one
// core drives thousands of WebSockets, where a Python client would take the
// core the workers need). No dependencies.
//
// Each player registers over TLS at wss://HOST:PORT/ws (no player id: any
// worker), then plays: it pings every ~5 s and keeps what the server shows
// it (its life and age_days, with the time it saw each age). When its
// connection ends for any reason it reconnects after a short random backoff
// to /ws?player=ID and logs in with its token, so the edge's hash picks its
// worker, and records: how long it was without a welcome (and of that, the
// connection attempts, each one's TLS with the edge, its TLS and upgrade
// through the edge until its 101, and the login until its welcome), and how many game
// days the welcome took back against the newest age it had seen (and how many
// seconds of play those days were, from the ages it had seen and when).
//
// Usage: node players.mjs HOST PORT CA_FILE PLAYERS RAMP_PER_S
// Commands, one JSON line each on stdin, answered with one JSON line on stdout:
//   {"cmd":"report"}  counts, and the events since the last mark
//   {"cmd":"mark"}    start a new window of events (and of ping round trips)
//   {"cmd":"dump"}    every player: [id, life, newest age seen, worker, online]
//   {"cmd":"reconnect","worker":"w2","count":100}  drop that many of a worker's players
//   {"cmd":"quit"}    log every player out and exit
// The first line on stdout is {"ready": true} once every player has
// registered (or {"ready": false, ...} when some could not within max(120 s, 50 ms per player)).

import tls from "node:tls";
import fs from "node:fs";
import crypto from "node:crypto";
import readline from "node:readline";

const [host, portText, caFile, playersText, rampText] = process.argv.slice(2);
const port = Number(portText), players = Number(playersText), ramp = Number(rampText);
const ca = fs.readFileSync(caFile);
const HISTORY = 120;  // ages remembered per player (about two minutes of play)

const now = () => performance.now();
const count = (map, key) => { map[key] = (map[key] || 0) + 1; };

let window = null;
function newWindow() {
  window = {
    since: now(), closes: {}, byes: {}, errors: {}, connect_failures: {}, downtime_ms: [], lost_days: [],
    lost_seconds: [], lost_unknown: 0, handshake_ms: [], tls_ms: [], tls_resumed: 0, attempts: [], life_changed: 0, reconnects: 0, pings: [], moved: 0, login_ms: [], dropped: [], login_errors: {}, login_timeouts: 0,
    register_errors: {},
  };
}
newWindow();

function frame(obj, opcode = 0x81) {
  const payload = Buffer.from(JSON.stringify(obj));
  const n = payload.length;
  const head = n < 126 ? Buffer.from([opcode, 0x80 | n, 0, 0, 0, 0])
    : Buffer.from([opcode, 0x80 | 126, n >> 8, n & 255, 0, 0, 0, 0]);
  return Buffer.concat([head, payload]);
}

class Player {
  constructor(index) {
    this.index = index; this.id = null; this.token = null; this.worker = null; this.life = null;
    this.ages = []; this.online = false; this.sock = null; this.down = null; this.backoff = 250;
    this.tlsSession = undefined;
    this.ids = 0; this.pings = new Map(); this.stopped = false; this.registered = false;
  }

  connect() {
    if (this.stopped) return;
    const path = this.id === null ? "/ws" : `/ws?player=${this.id}`;
    // The TLS session of the last connection, offered again as a browser
    // does (the edge keeps a session cache; a reconnect skips the certificate).
    const sock = tls.connect({ host, port, ca, session: this.tlsSession });
    sock.on("session", (session) => { this.tlsSession = session; });
    this.connectAt = now(); this.attempts = (this.attempts || 0) + 1;
    this.sock = sock; this.buffer = Buffer.alloc(0); this.handshook = false; this.closeCode = null;
    sock.setNoDelay(true);
    sock.on("secureConnect", () => {
      if (this.id !== null) {
        window.tls_ms.push(now() - this.connectAt);
        if (sock.isSessionReused()) window.tls_resumed++;
      }
      const key = crypto.randomBytes(16).toString("base64");
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sock.on("data", (chunk) => this.onData(sock, chunk));
    sock.on("error", (err) => { if (!this.handshook) this.failed(err.code || String(err)); });
    sock.on("close", () => this.onClose(sock));
  }

  failed(reason) {
    count(window.connect_failures, reason);
    this.sock.destroy();
  }

  onData(sock, chunk) {
    if (sock !== this.sock) return;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    if (!this.handshook) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.buffer.subarray(0, end).toString();
      if (!head.startsWith("HTTP/1.1 101")) { this.failed(head.slice(9, 12)); return; }
      const worker = /\r\nx-baolife-worker: *([^\r]*)/i.exec(head);
      const landed = worker ? worker[1] : null;
      if (this.worker !== null && landed !== this.worker) window.moved++;
      this.worker = landed;
      this.handshook = true;
      if (this.id !== null) window.handshake_ms.push(now() - this.connectAt);
      this.buffer = this.buffer.subarray(end + 4);
      if (this.id === null) this.send({ type: "register", id: "register", name: `Cluster ${this.index}` });
      else {
        this.loginAt = now();
        this.send({ type: "login", id: "login", token: this.token });
        // No answer in 10 s: give up this connection and try again, as a client would.
        const sent = sock;
        setTimeout(() => {
          if (this.sock === sent && !this.online) { window.login_timeouts++; sent.destroy(); }
        }, 10000).unref();
      }
    }
    this.parse();
  }

  send(obj) { if (this.sock && this.handshook) this.sock.write(frame(obj)); }

  parse() {
    let buf = this.buffer;
    while (buf.length >= 2) {
      const opcode = buf[0] & 0x0f;
      let n = buf[1] & 0x7f, head = 2;
      if (n === 126) { if (buf.length < 4) break; n = buf.readUInt16BE(2); head = 4; }
      else if (n === 127) { if (buf.length < 10) break; n = Number(buf.readBigUInt64BE(2)); head = 10; }
      if (buf.length < head + n) break;
      const payload = buf.subarray(head, head + n);
      buf = buf.subarray(head + n);
      if (opcode === 1) this.onFrame(payload.toString());
      else if (opcode === 9) this.sock.write(Buffer.concat([Buffer.from([0x8a, 0x80 | payload.length, 0, 0, 0, 0]), payload]));
      else if (opcode === 8) { this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005; this.sock.end(); }
    }
    this.buffer = buf;
  }

  onFrame(text) {
    const t = now();
    if (!text.includes('"ref"') && !text.includes('"op":"welcome"') && !text.includes('"op":"error"')
        && !text.includes('"op":"bye"') && !text.includes('"op":"died"')) {
      const m = /"age_days":(\d+)/.exec(text);
      if (m) this.saw(Number(m[1]), t);
      return;
    }
    for (const op of JSON.parse(text).ops) {
      switch (op.op) {
        case "registered": this.id = op.player; this.token = op.token; break;
        case "welcome": this.welcome(op.snapshot, t); break;
        case "state": if (op.age_days !== undefined) this.saw(op.age_days, t); break;
        case "pong": {
          const at = this.pings.get(op.ref);
          if (at !== undefined) { this.pings.delete(op.ref); window.pings.push(t - at); }
          break;
        }
        case "error":
          if (op.ref === "login") {  // part of reconnecting: try again on a new connection
            count(window.login_errors, op.code);
            this.sock.destroy();
          } else if (op.ref === "register") {  // (busy while the crowd registers) likewise
            count(window.register_errors, op.code);
            this.sock.destroy();
          } else count(window.errors, op.code);
          break;
        case "bye": count(window.byes, op.reason); break;
        case "died": this.send({ type: "new_life" }); break;
      }
    }
  }

  saw(age, t) {
    const last = this.ages[this.ages.length - 1];
    if (last && last[0] === age) return;
    this.ages.push([age, t]);
    if (this.ages.length > HISTORY) this.ages.shift();
  }

  welcome(snapshot, t) {
    const first = !this.registered;
    this.registered = true;
    this.online = true;
    this.backoff = 250;
    const attempts = this.attempts; this.attempts = 0;
    if (!first && this.down !== null) {
      window.reconnects++;
      if (this.loginAt) window.login_ms.push(t - this.loginAt);
      window.downtime_ms.push(t - this.down);
      window.attempts.push(attempts);
      if (snapshot.life !== this.life) window.life_changed++;
      else if (this.ages.length) {
        const [lastAge, lastAt] = this.ages[this.ages.length - 1];
        const lost = Math.max(0, lastAge - snapshot.age_days);
        window.lost_days.push(lost);
        // Seconds of play the lost days were: from when this client first saw
        // the age it got back to when it saw its newest one.
        const back = this.ages.find(([age]) => age >= snapshot.age_days);
        if (lost === 0) window.lost_seconds.push(0);
        else if (back && this.ages[0][0] <= snapshot.age_days) window.lost_seconds.push((lastAt - back[1]) / 1000);
        else window.lost_unknown++;
      }
    }
    this.down = null;
    if (snapshot.life !== this.life) this.ages = [];
    this.life = snapshot.life;
    this.saw(snapshot.age_days, t);
    if (!this.timer) this.schedulePing();
  }

  schedulePing() {
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      if (this.online) {
        const ref = `${this.index}.${++this.ids}`;
        this.pings.set(ref, now());
        if (this.pings.size > 8) this.pings.delete(this.pings.keys().next().value);
        this.send({ type: "ping", id: ref });
      }
      this.schedulePing();
    }, 4000 + Math.random() * 2000);
  }

  onClose(sock) {
    if (sock !== this.sock) return;
    if (this.handshook) count(window.closes, this.closeCode ?? 1006);
    if (this.online) this.down = now();
    this.online = false; this.handshook = false;
    if (this.stopped) return;
    if (!this.registered && this.id === null) {  // register again from scratch
      setTimeout(() => this.connect(), this.backoff);
    } else {
      if (this.down === null) this.down = now();
      setTimeout(() => this.connect(), this.backoff * (0.5 + Math.random()));
    }
    this.backoff = Math.min(4000, this.backoff * 2);
  }

  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.sock) {
      if (this.online) this.send({ type: "logout" });
      this.sock.end();
      setTimeout(() => this.sock.destroy(), 2000).unref();
    }
  }
}

function pct(values) {
  if (!values.length) return { n: 0, p50: null, p95: null, p99: null, max: null };
  const v = Float64Array.from(values).sort();
  const at = (q) => Math.round(1000 * v[Math.min(v.length - 1, Math.floor(v.length * q))]) / 1000;
  return { n: v.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1) };
}

const all = [];
function report() {
  const workers = {};
  let online = 0, waiting = 0;
  for (const p of all) {
    if (p.online) { online++; count(workers, p.worker); } else if (p.handshook) waiting++;
  }
  const w = window;
  return {
    players: all.length, registered: all.filter((p) => p.registered).length, online, waiting, workers,
    login_timeouts: w.login_timeouts,
    window_s: Math.round((now() - w.since)) / 1000, reconnects: w.reconnects, moved: w.moved,
    closes: w.closes, byes: w.byes, errors: w.errors, login_errors: w.login_errors, connect_failures: w.connect_failures,
    register_errors: w.register_errors,
    downtime_ms: pct(w.downtime_ms), lost_days: pct(w.lost_days), lost_seconds: pct(w.lost_seconds),
    lost_unknown: w.lost_unknown, life_changed: w.life_changed, ping_ms: pct(w.pings), login_ms: pct(w.login_ms),
    handshake_ms: pct(w.handshake_ms), tls_ms: pct(w.tls_ms), tls_resumed: w.tls_resumed, attempts: pct(w.attempts),
    dropped: w.dropped,
  };
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const started = now();
for (let i = 0; i < players; i++) {
  const wait = started + (i / ramp) * 1000 - now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  const p = new Player(i); all.push(p); p.connect();
}
const deadline = now() + Math.max(120000, players * 50);  // 20 registrations a second at least
while (all.some((p) => !p.registered) && now() < deadline) await new Promise((r) => setTimeout(r, 100));
out({ ready: all.every((p) => p.registered), seconds: Math.round(now() - started) / 1000, ...report() });
newWindow();

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let cmd;
  try { cmd = JSON.parse(line).cmd; } catch { out({ error: "not JSON" }); return; }
  if (cmd === "report") out(report());
  else if (cmd === "mark") { newWindow(); out({ ok: true }); }
  else if (cmd === "dump") out({ players: all.map((p) => [p.id, p.life, p.ages.length ? p.ages[p.ages.length - 1][0] : null, p.worker, p.online]) });
  else if (cmd === "reconnect") {
    // Drop the connections of up to `count` online players on `worker`: they reconnect through the edge.
    const { worker, count: n } = JSON.parse(line);
    const chosen = all.filter((p) => p.online && p.worker === worker).slice(0, n);
    for (const p of chosen) { window.dropped.push(p.id); p.sock.destroy(); }
    out({ dropped: chosen.map((p) => p.id) });
  } else if (cmd === "quit") {
    all.forEach((p) => p.stop());
    out({ ok: true });
    setTimeout(() => process.exit(0), 500);
  } else out({ error: `unknown command ${cmd}` });
}).on("close", () => {  // the test that drives us is gone: stop, never linger
  all.forEach((p) => p.stop());
  setTimeout(() => process.exit(0), 500);
});
