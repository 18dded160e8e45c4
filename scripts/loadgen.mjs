// The load generator of scripts/loadtest, in Node (no dependencies).
//
// A Python/trio client pays about what the Python/trio server pays per frame,
// so from one core it cannot push the server to its limit; Node's event loop
// handles many more sockets per core. Same behaviour as the Python generator
// in scripts/loadtest.py: N players register, ping every ~5 s, answer every
// prompt after 1-5 s, act every ~20 s (newborns too: they are refused), talk
// to an NPC every ~2 min. Minimal WebSocket client: one handshake, hand-parsed
// server frames, client frames masked with the all-zero key (RFC 6455 allows
// any key; zero makes masking free).
//
// Measures after every player is welcomed (as the peer's generator does) and
// reports, second by second, the ping p99 and its own loop's stalls.
//
// Usage: node scripts/loadgen.mjs PORT PLAYERS RAMP_PER_S DURATION_S SEED [TOKENS_FILE]
// With TOKENS_FILE (one login token per line, from scripts/seed_lives.py),
// player i logs in with line i instead of registering a newborn.
// Prints one JSON object on stdout when done.

import net from "node:net";
import crypto from "node:crypto";
import fs from "node:fs";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";

const [port, players, ramp, duration, seed] = process.argv.slice(2, 7).map(Number);
const tokens = process.argv[7] ? fs.readFileSync(process.argv[7], "utf8").split("\n").filter(Boolean) : null;
if (tokens && tokens.length < players) throw new Error(`${tokens.length} tokens for ${players} players`);
const ACTIONS = ["study", "play", "exercise", "meditate", "see_doctor", "find_job", "go_out", "work_hard"];
const LINES = ["Hi!", "How are you?", "I got a new job.", "Want to hang out?", "I miss you."];
const INTERESTING = ['"ref"', '"op":"prompt"', '"op":"welcome"', '"op":"error"', '"op":"npc"', '"op":"died"', '"actions"'];

let rngState = seed >>> 0 || 1;
function random() {
  // xorshift32: reproducible per seed
  rngState ^= rngState << 13; rngState >>>= 0;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5; rngState >>>= 0;
  return rngState / 4294967296;
}
const uniform = (a, b) => a + (b - a) * random();
const pick = (xs) => xs[Math.floor(random() * xs.length)];

const stats = {
  connected: 0, failed: 0, failures: {}, welcomed: 0, frames: 0,
  ping: [], pingP99BySecond: [], answer: [], errors: {}, closed: {}, sent: {}, answered: {}, measuring: false,
};

function frame(obj) {
  const payload = Buffer.from(JSON.stringify(obj));
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, 0x80 | n, 0, 0, 0, 0])
    : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 255, 0, 0, 0, 0]);
  return Buffer.concat([head, payload]);
}

class Player {
  constructor(index) {
    this.index = index; this.ids = 0; this.pending = new Map();
    this.npcs = []; this.actions = []; this.buffer = Buffer.alloc(0);
    // Only the timers still to fire: keeping every fired one grew the heap by
    // hundreds of thousands of objects a minute at 19,000 players, for
    // Node's collector to walk (docs/BENCHMARKS.md, issue 8).
    this.open = false; this.alive = true; this.ended = false; this.timers = new Set();
  }

  send(kind, fields, measure) {
    if (!this.open) return;
    const ref = `${this.index}.${++this.ids}`;
    if (measure) this.pending.set(ref, [measure, performance.now()]);
    if (stats.measuring) stats.sent[kind] = (stats.sent[kind] || 0) + 1;
    this.sock.write(frame({ type: kind, id: ref, ...fields }));
  }

  start() {
    const sock = net.connect({ port, host: "127.0.0.1" });
    this.sock = sock;
    sock.setNoDelay(true);
    let handshook = false;
    sock.on("connect", () => {
      const key = crypto.randomBytes(16).toString("base64");
      sock.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sock.on("data", (chunk) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      if (!handshook) {
        const end = this.buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const status = this.buffer.subarray(0, 12).toString();
        if (!status.startsWith("HTTP/1.1 101")) { this.fail(status); return; }
        handshook = true; this.open = true; stats.connected++;
        this.buffer = this.buffer.subarray(end + 4);
        // Play (ping, act, say) once welcomed: before login every message but
        // register, login and resume is refused (unauthenticated).
        if (tokens) this.send("login", { token: tokens[this.index] });
        else this.send("register", { name: `Load ${this.index}` });
      }
      this.parse();
    });
    sock.on("error", (err) => { if (!handshook) this.fail(err.code || String(err)); });
    sock.on("close", () => {
      this.ended = true;
      if (this.open && this.alive) stats.closed["1006"] = (stats.closed["1006"] || 0) + 1;
      this.open = false; this.timers.forEach(clearTimeout); this.timers.clear();
    });
  }

  fail(reason) {
    stats.failed++; stats.failures[reason] = (stats.failures[reason] || 0) + 1;
    this.ended = true;
    this.sock.destroy();
  }

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
      if (opcode === 1) { stats.frames++; this.onFrame(payload); }
      else if (opcode === 9) {  // ping: pong with the same payload
        this.sock.write(Buffer.concat([Buffer.from([0x8a, 0x80 | payload.length, 0, 0, 0, 0]), payload]));
      } else if (opcode === 8) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        stats.closed[code] = (stats.closed[code] || 0) + 1;
        this.alive = false; this.sock.end();
      }
    }
    this.buffer = buf;
  }

  onFrame(payload) {
    const now = performance.now();
    const text = payload.toString();
    if (!INTERESTING.some((k) => text.includes(k))) return;  // a day's state change: only counted
    const f = JSON.parse(text);
    for (const op of f.ops) {
      if (op.ref !== undefined) {
        const sent = this.pending.get(op.ref);
        if (sent) {
          this.pending.delete(op.ref);
          if (stats.measuring) {
            const [kind, at] = sent;
            stats.answered[kind] = (stats.answered[kind] || 0) + 1;
            if (kind === "ping" && op.op === "pong") {
              stats.ping.push(now - at);
              secondOfPing(now).push(now - at);
            }
            else if (kind === "answer") stats.answer.push(now - at);
          }
        }
      }
      switch (op.op) {
        case "error": stats.errors[op.code] = (stats.errors[op.code] || 0) + 1; break;
        case "welcome":
          if (!this.welcomed) { this.welcomed = true; stats.welcomed++; this.schedule(); }
          this.npcs = op.snapshot.npcs.filter((x) => x.alive !== false).map((x) => x.id);
          this.actions = op.snapshot.actions || [];
          break;
        case "prompt": {
          const key = pick(op.choices).key;
          this.later(uniform(1000, 5000), () => this.send("answer", { prompt: op.id, choice: key }, "answer"));
          break;
        }
        case "npc": if (op.alive && !this.npcs.includes(op.id)) this.npcs.push(op.id); break;
        case "state": if (op.actions) this.actions = op.actions; break;
        case "died": this.send("new_life", {}); break;
      }
    }
  }

  later(ms, fn) {
    const timer = setTimeout(() => { this.timers.delete(timer); fn(); }, ms);
    this.timers.add(timer);
  }

  schedule() {
    const every = (lo, hi, first, fn) => {
      const run = () => { fn(); this.later(uniform(lo, hi), run); };
      this.later(first, run);
    };
    every(4000, 6000, uniform(0, 5000), () => this.send("ping", {}, "ping"));
    every(15000, 25000, uniform(0, 20000), () => this.send("act", { action: pick(this.actions.length ? this.actions : ACTIONS) }));
    every(100000, 140000, uniform(0, 120000), () => {
      if (this.npcs.length) this.send("say", { npc: pick(this.npcs), text: pick(LINES) });
    });
  }

  stop() { this.timers.forEach(clearTimeout); this.timers.clear(); this.alive = false; if (this.sock) this.sock.destroy(); }
}

function percentiles(values) {
  if (!values.length) return { n: 0, p50: null, p95: null, p99: null, max: null };
  const v = Float64Array.from(values).sort();
  const at = (q) => Math.round(100 * v[Math.min(v.length - 1, Math.floor(v.length * q))]) / 100;
  return { n: v.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: Math.round(100 * v[v.length - 1]) / 100 };
}

const all = [];
let measureStart = 0;
// The round trips of the window's current second: its p99 is kept when the
// next second begins (the whole list stays in stats.ping).
let pingSecond = -1, pingsOfSecond = [];
function secondOfPing(now) {
  const second = Math.floor((now - measureStart) / 1000);
  if (second !== pingSecond) {
    if (pingSecond >= 0) stats.pingP99BySecond[pingSecond] = percentiles(pingsOfSecond).p99;
    pingSecond = second; pingsOfSecond = [];
  }
  return pingsOfSecond;
}
const started = performance.now();
const cpu0 = process.cpuUsage();
for (let i = 0; i < players; i++) {
  const due = started + (i / ramp) * 1000;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  const p = new Player(i); all.push(p); p.start();
}
const rampSeconds = (performance.now() - started) / 1000;
// Measure the steady state, as the peer's generator does: wait until every
// player is welcomed (or failed, or was closed), at most JOIN_DEADLINE_S,
// then let them settle. A server still logging in the ramp's tail in the
// window would be measured with that work in its figures.
const JOIN_DEADLINE_S = 60;
const joinedBy = performance.now() + JOIN_DEADLINE_S * 1000;
const unsettled = () => all.filter((p) => !p.welcomed && !p.ended).length;
while (unsettled() > 0 && performance.now() < joinedBy) await new Promise((r) => setTimeout(r, 100));
const joinSeconds = (performance.now() - started) / 1000;
const notWelcomed = unsettled();
await new Promise((r) => setTimeout(r, 5000));  // let the last players settle
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
stats.measuring = true;
process.stderr.write("MEASURE_START\n");
const frames0 = stats.frames;
measureStart = performance.now();
// The generator's own stalls, second by second of the window: a stalled
// generator timestamps the frames it reads late, so its stalls show as the
// server's latency. The worst are V8's full collections (kind 4), whose
// pause grows with the 19,000 sockets' handles (hundreds of ms where V8
// reports tens): LOADGEN_NODE_FLAGS in scripts/loadtest.py sizes the heap
// so that a one-minute window has none. Listed here when they happen.
const lagBySecond = [];
const gcs = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if ((e.detail ? e.detail.kind : e.kind) === 4) gcs.push([Math.round((e.startTime - measureStart) / 100) / 10, Math.round(e.duration)]);
  }
}).observe({ entryTypes: ["gc"] });
let tickAt = performance.now();
const lagTimer = setInterval(() => {
  const now = performance.now();
  const slice = Math.floor((now - measureStart) / 1000);
  lagBySecond[slice] = Math.max(lagBySecond[slice] || 0, Math.round(now - tickAt - 20));
  tickAt = now;
}, 20);
await new Promise((r) => setTimeout(r, duration * 1000));
stats.measuring = false;
clearInterval(lagTimer);
secondOfPing(Infinity);
process.stderr.write("MEASURE_END\n");
lag.disable();
const wall = (performance.now() - measureStart) / 1000;
const frames = stats.frames - frames0;
all.forEach((p) => p.stop());
const cpu = process.cpuUsage(cpu0);
const total = (performance.now() - started) / 1000;
process.stdout.write(JSON.stringify({
  generator: "node " + process.version,
  connected: stats.connected, connect_failures: stats.failed, failure_reasons: stats.failures,
  welcomed: stats.welcomed, ramp_seconds: Math.round(rampSeconds * 10) / 10,
  joined_seconds: Math.round(joinSeconds * 10) / 10, not_welcomed_at_start: notWelcomed,
  ping_rtt_ms: percentiles(stats.ping), answer_rtt_ms: percentiles(stats.answer),
  ping_p99_ms_by_second: Array.from(stats.pingP99BySecond, (v) => v ?? null),
  generator_lag_max_ms_by_second: lagBySecond, generator_major_gcs: gcs,
  errors_by_code: stats.errors, closed_by_server: stats.closed,
  sent_while_measuring: stats.sent, answered_while_measuring: stats.answered,
  frames_per_second: Math.round(10 * frames / wall) / 10,
  generator_cpu_percent: Math.round(1000 * (cpu.user + cpu.system) / 1e6 / total) / 10,
  generator_loop_lag_ms: { p50: lag.percentile(50) / 1e6, p99: lag.percentile(99) / 1e6, max: lag.max / 1e6 },
}) + "\n");
process.exit(0);
