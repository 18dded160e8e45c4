/*
 * What the server says: frames in order (a gap means lost frames: log in
 * again), each op applied to the store, answers matched to the message in
 * flight so results and errors show next to the control that sent it.
 */
import { signed, title, words } from "./dom.js";
import { connect, net, retryLater, send, setStatus, settle } from "./net.js";
import { STORY_KEEP, TALK_KEEP, clock, game, keepToken, keepTokenPlayer, mark, note, resetLife, setAge } from "./store.js";

const NAME_RULE = "Names can use letters, numbers and spaces, 1-32 characters.";
const ERROR_TITLES = {
  bad_request: "The server could not read that",
  unknown_type: "The server does not know that message",
  unauthenticated: "Not logged in",
  not_found: "Not found",
  invalid_choice: "Not one of the choices",
  not_allowed: "Not possible now",
  rate_limited: "Slow down",
  busy: "Busy, try again in a moment",
  internal: "Server error",
};

let screens = { start: () => {}, game: () => {}, toast: () => {} };
let byeMessage = ""; // the text of the last bye (an operator's reason)
// An operator ended the session (close 4002 after bye kicked, banned or erased).
const KICKED = 4002;
const ENDED_BY = {
  kicked: "An operator ended this session",
  banned: "An operator banned this player",
  erased: "An operator erased this player",
};

/** The screen switches and the toast, from main.js. */
export function setScreens(s) {
  screens = s;
}

/** The first message on a new connection: register, login or resume. */
export function hello() {
  if (game.pendingName !== null) return ["register", { name: game.pendingName }, { kind: "register" }];
  if (!game.token) return null;
  if (net.resumable) return ["resume", { token: game.token, last_seq: net.lastSeq }, { kind: "login" }];
  return ["login", { token: game.token }, { kind: "login" }];
}

export function onFrame(frame) {
  if (typeof frame.tick === "number") clock.observe(frame.tick);
  const seq = frame.seq;
  if (Number.isInteger(seq) && seq > 0) {
    const newStream = seq === 1 && frame.ops.some((op) => op && op.op === "welcome");
    if (!newStream && net.lastSeq > 0 && seq !== net.lastSeq + 1) {
      console.warn(`BaoLife: frame ${seq} came after ${net.lastSeq}; logging in again`);
      net.resumable = false;
      net.lastSeq = 0;
      connect();
      return;
    }
    net.lastSeq = seq;
    if (!newStream && !net.online && net.resumable && game.view !== null) {
      // `resume` answered by replaying the missed frames instead of a welcome.
      net.online = true;
      net.attempt = 0;
      setStatus("online", "Online");
      mark("all");
    }
  }
  for (const op of frame.ops) if (op && typeof op.op === "string") apply(op);
}

export function onClosed(code, bye, wasOnline) {
  const said = byeMessage;
  byeMessage = "";
  for (const meta of net.pending.values()) if (meta.kind === "say" && meta.line) meta.line.failed = true;
  net.pending.clear();
  if (net.leaving) {
    resetLife();
    setStatus("idle", "Logged out");
    screens.start();
  } else if (net.away) {
    setStatus("paused", "Paused while this page is hidden", "Play now");
  } else if (code === 4000 || bye === "replaced") {
    net.resumable = false;
    game.stopped = "replaced";
    setStatus("offline", "This life was opened in another tab or device.", "Play here");
  } else if (code === KICKED || Object.hasOwn(ENDED_BY, bye || "")) {
    // Not retried by itself: coming straight back would undo a kick, and a
    // ban or an erasure would refuse every attempt.
    net.resumable = false;
    game.stopped = "ended";
    const why = Object.hasOwn(ENDED_BY, bye || "") ? ENDED_BY[bye] : ENDED_BY.kicked;
    setStatus("offline", said ? `${why}: ${said}` : `${why}.`, "Reconnect");
  } else if (code === 4001 || bye === "idle") {
    net.resumable = false;
    game.stopped = "idle";
    setStatus("offline", "Disconnected after being idle.", "Reconnect");
  } else if (game.pendingName !== null) {
    game.pendingName = null;
    setStatus("offline", "Offline");
    note("register", "Could not reach the server to start your life. Try again.", "error", 0);
    screens.start();
  } else if (!game.token) {
    setStatus("idle", "");
  } else {
    const why = bye === "shutdown" ? "The server is restarting." : wasOnline ? "Connection lost." : "Cannot reach the server.";
    retryLater(why);
  }
  mark("all");
}

function apply(op) {
  switch (op.op) {
    case "registered":
      settle(op.ref);
      keepToken(op.token);
      game.pendingName = null;
      break;
    case "welcome":
      onWelcome(op);
      break;
    case "state":
      onState(op);
      break;
    case "prompt":
      game.prompts.set(op.id, { op, total: Math.max(1, op.expires_tick - (clock.now() ?? op.expires_tick)) });
      mark("prompts", "me");
      break;
    case "prompt_closed":
      onPromptClosed(op);
      break;
    case "feed":
      addStory(op.age_days ?? (game.view ? game.view.age_days : null), String(op.text));
      break;
    case "npc":
      game.npcs.set(op.id, { ...game.npcs.get(op.id), ...op });
      mark("npcs", "talk");
      break;
    case "npc_say":
      settle(op.ref);
      addTalk(op.npc, { who: "npc", text: String(op.text) });
      break;
    case "outcome":
      onOutcome(op);
      break;
    case "warning":
      game.warnings.push({ kind: op.kind, level: op.level, text: String(op.text || "") });
      if (game.warnings.length > 3) game.warnings.shift();
      mark("me");
      break;
    case "story":
      onStory(op);
      break;
    case "talks":
      onTalks(op);
      break;
    case "lives":
      settle(op.ref);
      game.lives = Array.isArray(op.lives) ? op.lives : [];
      mark("end");
      break;
    case "died":
      onDied(op);
      break;
    case "ack":
      onAck(op);
      break;
    case "error":
      onError(op);
      break;
    case "bye":
      net.bye = op.reason;
      byeMessage = typeof op.message === "string" ? op.message : "";
      break;
    case "notice":
      // An operator's announcement; an empty text withdraws it.
      game.notice = op.text ? { text: String(op.text), until: Number(op.until) || 0 } : null;
      mark("notice");
      break;
    default:
      break; // pong, and ops this client does not know
  }
}

function onWelcome(op) {
  settle(op.ref);
  const s = op.snapshot || {};
  const sameLife = game.player === op.player && game.view !== null && game.view.life === s.life;
  if (!sameLife) {
    resetLife();
    game.player = op.player;
  }
  if (game.token) keepTokenPlayer(op.player); // the next connections say whose they are
  game.view = s;
  setAge(s.age_days);
  game.prompts = new Map((s.prompts || []).map((p) => [p.id, { op: p, total: null }]));
  game.npcs = new Map((s.npcs || []).map((n) => [n.id, n]));
  if (Array.isArray(s.story)) {
    game.story = s.story.map(([age, text]) => ({ age, text: String(text) }));
    game.storyTotal = Number(s.story_total) || game.story.length;
    game.storyFirst = game.storyTotal - game.story.length;
  } else {
    game.story = (s.feed || []).map((text) => ({ age: null, text: String(text) }));
    game.storyTotal = game.story.length;
    game.storyFirst = 0;
  }
  if (s.alive !== false) game.summary = null;
  net.online = true;
  net.resumable = true;
  net.attempt = 0;
  setStatus("online", "Online");
  screens.game();
  if (s.alive === false && Number(s.lives_total) > 0) send("lives", {}, { kind: "lives" });
  mark("all");
}

function onState(op) {
  const view = game.view;
  if (!view) return;
  for (const [key, value] of Object.entries(op)) {
    if (key === "op") continue;
    if (key === "stats" && value && typeof value === "object") view.stats = { ...view.stats, ...value };
    else view[key] = value;
  }
  if ("age_days" in op) setAge(op.age_days);
  mark("me");
  if ("actions" in op || "alive" in op || "cooldowns" in op || "action_info" in op || "money" in op) {
    mark("actions", "npcs");
  }
}

function onPromptClosed(op) {
  const entry = game.prompts.get(op.id);
  game.prompts.delete(op.id);
  mark("prompts", "me");
  if (!entry) return;
  const choice = (entry.op.choices || []).find((c) => c.key === op.choice);
  const label = choice ? choice.label : op.choice;
  const chose = op.by === "player" ? `You chose: ${label}` : `Time ran out on “${entry.op.title}”: ${label}`;
  promptLine(op.id, { chose });
}

// What the line under the decisions says about a prompt: the choice and what
// it changed, whichever of prompt_closed and outcome comes first.
const promptLines = new Map();
function promptLine(id, part) {
  const line = { ...promptLines.get(id), ...part };
  promptLines.set(id, line);
  if (promptLines.size > 10) promptLines.delete(promptLines.keys().next().value);
  note("prompt", [line.chose || line.title, line.what].filter(Boolean).join(" · "), "ok");
}

function flagLabel(id) {
  const flag = ((game.view && game.view.flags) || []).find((f) => f.id === id);
  return flag ? flag.label : title(words(id));
}

/** "+2 Health, -100 money, paid by your parents, Mum +5 closeness". */
export function describe(changes) {
  const c = changes || {};
  const parts = [];
  for (const [stat, delta] of Object.entries(c.stats || {})) if (delta) parts.push(`${signed(delta)} ${title(stat)}`);
  if (c.money) parts.push(`${signed(c.money)} money`);
  if (c.paid_by) parts.push(`paid by your ${words(c.paid_by)}`);
  for (const n of c.npcs || []) if (n.closeness) parts.push(`${n.name} ${signed(n.closeness)} closeness`);
  for (const id of c.gained || []) parts.push(`now: ${flagLabel(id)}`);
  for (const id of c.lost || []) parts.push(`no longer: ${flagLabel(id)}`);
  if ("job" in c) parts.push(c.job ? `new job: ${c.job}` : "no job now");
  if (c.education) parts.push(`education: ${words(c.education)}`);
  return parts.join(", ");
}

function onOutcome(op) {
  const what = describe(op.changes);
  const meta = op.ref === undefined ? undefined : net.pending.get(op.ref) || answered.get(op.ref);
  if (op.source === "action") {
    const where = meta && meta.where ? meta.where : `act:${op.id}`;
    note(where, what ? `${op.title}: ${what}` : `Done: ${op.title}`, "ok");
  } else if (op.source === "prompt") {
    promptLine(op.id, { title: op.title, what });
  } else {
    note("prompt", what ? `${op.title} · ${what}` : String(op.title), "ok");
  }
}

function onStory(op) {
  settle(op.ref);
  const lines = (op.lines || []).map(([age, text]) => ({ age, text: String(text) }));
  const first = Number(op.first) || 0;
  game.storyTotal = Number(op.total) || game.storyTotal;
  // Older lines go before the ones shown; anything overlapping is dropped.
  const keep = game.story.filter((_line, i) => game.storyFirst + i >= first + lines.length);
  game.story = [...lines, ...keep].slice(0, STORY_KEEP);
  game.storyFirst = first;
  mark("story");
}

function onTalks(op) {
  settle(op.ref);
  const turns = (op.turns || []).map((t) => ({ who: t.who === "player" ? "me" : "npc", text: String(t.text) }));
  const sinceAsked = (game.talk.get(op.npc) || []).filter((line) => line.local);
  game.talk.set(op.npc, [...turns, ...sinceAsked].slice(-TALK_KEEP));
  game.talkLoaded.add(op.npc);
  mark("talk");
}

function onDied(op) {
  if (game.view) {
    game.view.alive = false;
    game.view.cause_of_death = op.cause;
    game.view.age_days = op.age_days;
    setAge(op.age_days);
  }
  game.summary = op.summary || null;
  game.prompts.clear();
  game.talkingTo = null;
  if (game.lives === null) send("lives", {}, { kind: "lives" });
  mark("all");
}

// Messages answered by ack: their outcome comes after the ack.
const answered = new Map();
function remember(ref, meta) {
  answered.set(ref, meta);
  if (answered.size > 20) answered.delete(answered.keys().next().value);
}

function onAck(op) {
  const meta = net.pending.get(op.ref);
  if (!meta) return;
  if (meta.kind === "say") {
    meta.acked = true; // the reply comes later as npc_say with the same ref
    return;
  }
  net.pending.delete(op.ref);
  remember(op.ref, meta);
  const shown = game.notes.get(meta.where);
  if (meta.kind === "act" && (!shown || shown.kind === "busy")) note(meta.where, `Done: ${meta.label}`, "ok");
  mark("actions", "npcs", "prompts", "me");
}

/** Errors go next to the control that sent the message; only the ones with
 * no control (or a lost login) reach the toast. */
// Answers to a login or resume that a later attempt may not get.
const RETRY_LOGIN = new Set(["busy", "rate_limited", "internal"]);

function onError(op) {
  const meta = settle(op.ref);
  const message = String(op.message || op.code || "error");
  if (op.code === "invalid_token") {
    keepToken(null);
    net.resumable = false;
    const ws = net.ws;
    net.ws = null;
    if (ws) ws.close(1000);
    setStatus("idle", "");
    resetLife();
    note("register", "This login key does not match any life on this server. Start a new life, or log in with another key.", "error", 0);
    screens.start();
    return;
  }
  if (op.code === "banned") {
    // The key stays (a ban can end); the page stops trying until asked.
    net.resumable = false;
    const ws = net.ws;
    net.ws = null;
    if (ws) ws.close(1000);
    setStatus("idle", "");
    resetLife();
    const until = Number(op.until) > 0 ? ` until ${new Date(op.until * 1000).toLocaleString()}` : "";
    const reason = op.reason ? `: ${op.reason}` : "";
    note("continue", `This player is banned${until}${reason}`, "error", 0);
    screens.start();
    mark("all");
    return;
  }
  const kind = meta ? meta.kind : "";
  if (kind === "login" && RETRY_LOGIN.has(op.code)) {
    // Not logged in, and this socket never will be: close it and come back
    // after the backoff, rather than sit on it until the server hangs up
    // (a restarted worker's crowd would wait 10 s each, then retry anyway).
    const ws = net.ws;
    net.ws = null;
    if (ws) ws.close(1000);
    retryLater(op.code === "busy" ? "The server is busy." : `${message}.`);
    mark("all");
    return;
  }
  if (kind === "register") {
    game.pendingName = null;
    const ws = net.ws;
    net.ws = null;
    if (ws) ws.close(1000);
    setStatus("idle", "");
    note("register", op.code === "bad_request" ? NAME_RULE : message, "error", 0);
    screens.start();
  } else if (kind === "new_life") {
    note("new-life", op.code === "bad_request" ? NAME_RULE : message, "error", 0);
  } else if (kind === "act") {
    note(meta.where, `${meta.label}: ${message}`, "error");
  } else if (kind === "answer") {
    note("prompt", message, "error");
  } else if (kind === "say") {
    if (meta.line) meta.line.failed = true;
    note("talk", op.code === "busy" ? `${ERROR_TITLES.busy}.` : message, "error");
  } else if (kind === "speed") {
    note("speed", message, "error");
  } else if (kind === "story" || kind === "talks" || kind === "lives" || kind === "ping") {
    // Older servers: the page goes on without that memory.
    if (kind === "story") game.storyTotal = game.storyFirst;
  } else {
    screens.toast(`${ERROR_TITLES[op.code] || "Error"}: ${message}`);
  }
  mark("all");
}

function addStory(age, text) {
  game.story.push({ age, text });
  game.storyTotal += 1;
  if (game.story.length > STORY_KEEP) {
    const cut = game.story.length - STORY_KEEP;
    game.story.splice(0, cut);
    game.storyFirst += cut;
  }
  mark("story");
}

export function addTalk(npcId, line) {
  let log = game.talk.get(npcId);
  if (!log) game.talk.set(npcId, (log = []));
  log.push(line);
  if (log.length > TALK_KEEP) log.splice(0, log.length - TALK_KEEP);
  mark("talk");
}
