/*
 * BaoLife operators' console: sign-in, the screens, and the refresh loop.
 *
 * Speaks the admin API (/admin/api/, docs/OPERATIONS.md) of the worker that
 * served the page, and nothing else: no other host, no build step, ES
 * modules as they are, under the same Content-Security-Policy as the game.
 *
 * Flow: an operator pastes a token; whoami says their name and role and the
 * console opens (a viewer's actions are disabled). The token stays in this
 * tab's sessionStorage until "Sign out" or the tab closes. The worker panel
 * refreshes every few seconds while the page is visible, the rest slower
 * and after every action.
 */
import { ApiError, Stale, auth, get, isOperator, keepToken } from "./api.js";
import { $, note } from "./dom.js";
import {
  controls as opControls,
  defaultUntil,
  loadAudit,
  loadLlm,
  loadNotice,
  loadWorker,
  resetOps,
  wireOps,
} from "./view-ops.js";
import {
  closePlayer,
  controls as playerControls,
  openPlayer,
  refreshResults,
  resetSearch,
  setAfterAction,
  wirePlayer,
} from "./view-player.js";

const WORKER_MS = 3000; // the live panel
const SLOW_EVERY = 5; // the announcement, NPC bill and audit log: every 5th refresh (15 s)

let timer = null;
let round = 0;

// ------------------------------------------------------------------ screens

function showSignIn(message, kind = "error") {
  stopRefresh();
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  $("sign-in-btn").disabled = false;
  note("sign-in-note", message || "", message ? kind : "");
  $("token").focus();
}

function showConsole() {
  const who = auth.who;
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `${who.name} · ${who.role}`;
  $("viewer-note").hidden = isOperator();
  document.body.classList.toggle("viewer", !isOperator());
  playerControls();
  opControls();
  defaultUntil();
  route();
  refreshAll();
  startRefresh();
}

async function signIn(token) {
  keepToken(token);
  $("sign-in-btn").disabled = true;
  note("sign-in-note", "Signing in…");
  try {
    const who = await get("whoami");
    if (!who || typeof who.name !== "string" || (who.role !== "viewer" && who.role !== "operator")) {
      throw new ApiError(500, "bad_answer", "whoami answered without a name and role");
    }
    auth.who = who;
    $("token").value = "";
    note("sign-in-note", "");
    showConsole();
  } catch (err) {
    if (err instanceof Stale) return;
    // A refused token is forgotten; a server that did not answer may come back.
    if (!(err instanceof ApiError) || err.status === 401 || err.status === 403) keepToken(null);
    showSignIn(err.message);
  }
}

function signOut() {
  keepToken(null);
  closePlayer();
  resetOps();
  resetSearch();
  history.replaceState(null, "", location.pathname);
  document.body.classList.remove("viewer");
  showSignIn("Signed out.", "ok");
}

// ------------------------------------------------------------------ refresh

function refreshAll() {
  loadWorker();
  loadNotice();
  loadLlm();
  loadAudit();
}

function startRefresh() {
  stopRefresh();
  round = 0;
  timer = setInterval(() => {
    if (document.hidden || !auth.who) return;
    round += 1;
    loadWorker();
    if (round % SLOW_EVERY === 0) {
      loadNotice();
      loadLlm();
      loadAudit();
    }
  }, WORKER_MS);
}

function stopRefresh() {
  clearInterval(timer);
  timer = null;
}

// ------------------------------------------------------------------ address

/** #player/<id> opens that player's page; anything else closes it. */
function route() {
  if (!auth.who) return;
  const found = /^#player\/(.+)$/.exec(location.hash);
  if (found) {
    let id;
    try {
      id = decodeURIComponent(found[1]);
    } catch (_e) {
      id = null;
    }
    if (id) {
      openPlayer(id).then(() => $("player").scrollIntoView({ block: "start" }));
      return;
    }
  }
  closePlayer();
}

// ------------------------------------------------------------------ start

function wire() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim() || auth.token || "";
    if (!token) {
      note("sign-in-note", "Paste your admin token.", "error");
      return;
    }
    signIn(token);
  });
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && auth.who) loadWorker();
  });
  const afterAction = () => {
    loadAudit();
    loadWorker();
    refreshResults();
  };
  setAfterAction(afterAction);
  wireOps(afterAction);
  wirePlayer();
}

function main() {
  wire();
  if (auth.token) signIn(auth.token);
  else showSignIn("");
}

main();
