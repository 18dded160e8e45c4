/*
 * BaoLife web client: boot, screens and the render loop.
 *
 * Speaks the wire protocol of docs/PROTOCOL.md (version 1) with the
 * additions of docs/PROTOCOL-NOTES.md over one WebSocket, and nothing else.
 * No build step, no dependencies: ES modules served as they are.
 *
 * Flow: /config.json says where the WebSocket listens. A person registers
 * (the token goes to localStorage) or, on reload, the page logs in with the
 * saved token. A dropped connection is retried with backoff and resumed; a
 * hidden page pauses the life (net.js).
 */
import { loginWith, logOut, nameProblem, register } from "./commands.js";
import { $ } from "./dom.js";
import { connect, discover, net, retryNow, setHooks, showRetry, startPresence } from "./net.js";
import { hello, onClosed, onFrame, setScreens } from "./ops.js";
import { clearNote, expireNotes, game, keepToken, mark, note, noteOf, setRenderer } from "./store.js";
import { renderActions } from "./view-actions.js";
import { renderEnd, wireEnd } from "./view-end.js";
import { renderAge, renderMe, renderSpeed, wireMe } from "./view-me.js";
import { refreshPeople, refreshTalk, renderNpcs, renderTalk, wireTalk } from "./view-people.js";
import { renderCountdowns, renderPromptNote, renderPrompts } from "./view-prompts.js";
import { renderStory, wireStory } from "./view-story.js";

const TOAST_MS = 6000;
const TICK_MS = 250; // countdowns, the age, notes fading

// ------------------------------------------------------------------ screens

function showStart() {
  $("loading").hidden = true;
  $("game").hidden = true;
  $("start").hidden = false;
  $("leave").hidden = true;
  $("who").textContent = "";
  $("me-name").textContent = "";
  const remembered = Boolean(game.token);
  $("continue").hidden = !remembered;
  $("register-hint").hidden = !remembered;
  $("register-btn").disabled = false;
  document.title = "BaoLife";
  document.body.classList.remove("dead", "sheet-open");
  mark("start");
}

function showLoading() {
  $("start").hidden = true;
  $("game").hidden = true;
  $("loading").hidden = false;
}

function showGame() {
  $("start").hidden = true;
  $("loading").hidden = true;
  $("game").hidden = false;
  $("leave").hidden = false;
}

let toastTimer = null;
/** Connection-level problems only: a small toast that shifts nothing. */
function toast(text) {
  $("toast-text").textContent = text;
  $("toast").hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => ($("toast").hidden = true), TOAST_MS);
}

// ------------------------------------------------------------------ rendering

function renderConn() {
  const { state, text, button } = net.status;
  const conn = $("conn");
  conn.dataset.state = state;
  conn.textContent = text;
  $("retry-now").hidden = !button;
  $("retry-now").textContent = button || "Retry now";
  document.body.classList.toggle("stopped", Boolean(game.stopped));
}

function renderStartNote() {
  const n = noteOf("register");
  $("register-note").textContent = n ? n.text : "";
  $("register-note").className = n ? `note ${n.kind}` : "note";
  $("name").setAttribute("aria-invalid", String(Boolean(n && n.kind === "error")));
  const c = noteOf("continue"); // why the remembered life cannot go on (a ban)
  $("continue-note").textContent = c ? c.text : "";
  $("continue-note").className = c ? `note ${c.kind}` : "note";
}

/** An operator's announcement, until its end (then it hides by itself). */
function renderNotice() {
  const n = game.notice;
  const showing = Boolean(n) && n.until * 1000 > Date.now();
  $("notice").hidden = !showing;
  if (showing && $("notice-text").textContent !== n.text) $("notice-text").textContent = n.text;
}

function render(parts) {
  const all = parts.has("all");
  if (all || parts.has("conn")) renderConn();
  if (all || parts.has("notice")) renderNotice();
  renderStartNote();
  if (!game.view) return;
  if (all || parts.has("me")) renderMe();
  if (all || parts.has("prompts")) renderPrompts();
  if (all || parts.has("actions") || parts.has("me") || parts.has("notes")) renderActions();
  if (all || parts.has("npcs")) renderNpcs();
  else refreshPeople();
  if (all || parts.has("talk") || parts.has("npcs")) renderTalk();
  else refreshTalk();
  if (all || parts.has("story")) renderStory();
  if (all || parts.has("end") || parts.has("me") || parts.has("notes")) renderEnd();
  renderPromptNote();
  renderSpeed();
}

// ------------------------------------------------------------------ wiring

function wire() {
  $("register-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const raw = $("name").value;
    const problem = nameProblem(raw);
    if (problem) {
      note("register", problem, "error", 0);
      return;
    }
    $("register-btn").disabled = true; // one life per click, however many clicks
    register(raw.trim());
  });
  $("name").addEventListener("input", () => {
    if (noteOf("register")) clearNote("register");
  });
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (!key) return;
    showLoading();
    loginWith(key);
  });
  $("continue-btn").addEventListener("click", () => {
    showLoading();
    loginWith(game.token);
  });
  const forget = () => {
    if (!confirm("Forget the login key on this device? Without it you cannot come back to this life.")) return;
    logOut();
    keepToken(null);
    showStart();
  };
  $("forget-btn").addEventListener("click", forget);
  $("forget-here").addEventListener("click", forget);
  $("leave").addEventListener("click", () => {
    if (!logOut()) showStart();
  });
  $("retry-now").addEventListener("click", retryNow);
  $("toast-close").addEventListener("click", () => ($("toast").hidden = true));
  wireMe();
  wireTalk();
  wireStory();
  wireEnd();
  setInterval(() => {
    showRetry();
    expireNotes();
    if (game.notice) renderNotice();
    if (game.view) {
      renderCountdowns();
      renderAge();
    }
  }, TICK_MS);
}

async function main() {
  setRenderer(render);
  setScreens({ start: showStart, game: showGame, toast });
  setHooks({ hello, frame: onFrame, closed: onClosed });
  wire();
  if (game.token) showLoading();
  await discover();
  startPresence();
  if (game.token) connect();
  else showStart();
}

main();
