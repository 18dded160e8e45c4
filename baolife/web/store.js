/*
 * The player's view as this page knows it: the welcome snapshot kept current
 * by state and other ops, plus what the page adds (notes next to controls,
 * the story it paged in, conversations). No DOM here.
 *
 * Views say what changed with mark("part"); one render runs per task after
 * any number of marks (the renderer is registered by main.js).
 */
import { stored } from "./dom.js";

export const TOKEN_KEY = "baolife.token";
export const PLAYER_KEY = "baolife.player"; // the player id of the stored token, once a welcome said it
export const STORY_KEEP = 600; // lines kept in the page; the server keeps the whole story
export const TALK_KEEP = 80;
export const NOTE_MS = 8000; // how long a result or error stays next to its control

export const game = {
  token: stored.get(TOKEN_KEY),
  tokenPlayer: stored.get(TOKEN_KEY) ? playerId(stored.get(PLAYER_KEY)) : null, // whose the token is
  player: null,
  view: null, // welcome.snapshot, kept current by state ops
  prompts: new Map(), // id -> {op, total}
  npcs: new Map(), // id -> npc op
  story: [], // {age, text} oldest first; age null for lines of an old server
  storyFirst: 0, // line number of story[0] on the server
  storyTotal: 0,
  talk: new Map(), // npc id -> [{who, text, failed}]
  talkLoaded: new Set(), // npc ids whose conversation came from the server
  talkingTo: null,
  summary: null, // died.summary of the life that ended
  lives: null, // past lives, when asked for
  warnings: [], // {kind, level, text}, newest last
  notes: new Map(), // where -> {text, kind, until}
  pendingName: null, // a register in flight
  stopped: "", // why this page stopped playing: "replaced", "idle", "ended" (by an operator), "" while it may play
  notice: null, // an operator's announcement {text, until (unix s)}, shown as a banner until then
};

/** Forget everything about the life shown (a new player or logging out). */
export function resetLife() {
  game.player = null;
  game.view = null;
  game.prompts = new Map();
  game.npcs = new Map();
  game.story = [];
  game.storyFirst = 0;
  game.storyTotal = 0;
  game.talk = new Map();
  game.talkLoaded = new Set();
  game.talkingTo = null;
  game.summary = null;
  game.lives = null;
  game.warnings = [];
  game.notes = new Map();
  game.notice = null;
}

export function keepToken(token) {
  if (token !== game.token) keepTokenPlayer(null); // another key: its welcome says whose it is
  game.token = token;
  if (token) stored.set(TOKEN_KEY, token);
  else stored.remove(TOKEN_KEY);
}

/** Remember whose the stored token is (the welcome's player id), so that a
 * returning player's connection names it (net.js, `?player=ID`). */
export function keepTokenPlayer(id) {
  game.tokenPlayer = playerId(id);
  if (game.tokenPlayer === null) stored.remove(PLAYER_KEY);
  else stored.set(PLAYER_KEY, String(game.tokenPlayer));
}

function playerId(value) {
  const id = Number(value);
  return value !== null && Number.isSafeInteger(id) && id > 0 ? id : null;
}

// ------------------------------------------------------------------ notes

/**
 * A short line next to a control: where is the control's key ("act:play",
 * "prompt", "talk", "register", "new-life", "speed", "npc:7"), kind is
 * "ok", "error" or "busy". Errors and results fade after NOTE_MS.
 */
export function note(where, text, kind = "ok", ms = NOTE_MS) {
  game.notes.set(where, { text, kind, until: ms ? performance.now() + ms : Infinity });
  mark("notes");
}

export function clearNote(where) {
  if (game.notes.delete(where)) mark("notes");
}

/** The note for where, if it is still fresh. */
export function noteOf(where) {
  const n = game.notes.get(where);
  return n && n.until > performance.now() ? n : null;
}

/** Drop notes past their time; true if any went. */
export function expireNotes() {
  const now = performance.now();
  let gone = false;
  for (const [where, n] of game.notes) {
    if (n.until <= now) {
      game.notes.delete(where);
      gone = true;
    }
  }
  if (gone) mark("notes");
  return gone;
}

// ------------------------------------------------------------------ the server's clock

/** The server's tick, extrapolated between frames (countdowns, the age). */
export const clock = {
  tick: null,
  at: 0,
  hz: null, // from /config.json, else measured
  configured: false,
  first: null,
  observe(tick) {
    const now = performance.now();
    if (this.first === null) this.first = { tick, at: now };
    this.tick = tick;
    this.at = now;
    if (!this.configured && now - this.first.at > 2000) {
      this.hz = ((tick - this.first.tick) * 1000) / (now - this.first.at);
    }
  },
  now() {
    if (this.tick === null) return null;
    return this.tick + (this.hz ? ((performance.now() - this.at) * this.hz) / 1000 : 0);
  },
};

/** Where the age last came from: the client counts days between frames. */
export const ageClock = { days: 0, tick: null };

export function setAge(days) {
  ageClock.days = Number(days) || 0;
  ageClock.tick = clock.tick;
}

/**
 * The age in days now: the last age the server sent plus the days its clock
 * has run since (pace days per day_ticks ticks), never more than a few
 * seconds ahead of the server.
 */
export function ageNow(running) {
  const v = game.view;
  if (!v) return 0;
  const base = ageClock.days;
  const now = clock.now();
  if (!running || now === null || ageClock.tick === null || !v.day_ticks) return base;
  const pace = Number(v.pace) || 1;
  const ahead = ((now - ageClock.tick) / v.day_ticks) * pace;
  const cap = clock.hz ? ((clock.hz * 3) / v.day_ticks) * pace : 0;
  return base + Math.floor(Math.max(0, Math.min(ahead, cap)));
}

// ------------------------------------------------------------------ marks and render

const dirty = new Set();
let renderer = null;
let scheduled = false;

/** Say which parts of the page changed; they are drawn again soon. */
export function mark(...parts) {
  for (const p of parts) dirty.add(p);
  if (!scheduled && renderer) {
    scheduled = true;
    queueMicrotask(flush);
  }
}

function flush() {
  scheduled = false;
  if (!renderer || dirty.size === 0) return;
  const parts = new Set(dirty);
  dirty.clear();
  renderer(parts);
}

export function setRenderer(fn) {
  renderer = fn;
}
