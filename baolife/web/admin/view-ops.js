/*
 * The whole game at a glance: the live panel of the worker that served this
 * page (read from its own metrics, refreshed every few seconds), drain and
 * undrain, the announcement to every player, today's NPC talk bill with its
 * budget, and the audit log of what operators did.
 */
import { Stale, call, get, isOperator, post } from "./api.js";
import { $, amount, facts, fill, h, localInput, money, note, now, percent, unixOf, when, words } from "./dom.js";

const NOTICE_MAX = 280;
const NOTICE_DEFAULT_S = 3600; // an announcement lasts an hour unless told
const AUDIT_LIMIT = 50;

export const ops = {
  worker: null,
  workerAt: 0, // Date.now() of the last good answer
  notice: undefined, // undefined: not read yet; null: none
  llm: null,
  busy: new Set(),
};

// ------------------------------------------------------------------ worker

const ms = (x) => (typeof x === "number" && Number.isFinite(x) ? `${x.toFixed(1)} ms` : "—");

export async function loadWorker() {
  try {
    ops.worker = await get("worker");
    ops.workerAt = Date.now();
    note("w-note", "");
  } catch (err) {
    if (err instanceof Stale) return;
    note("w-note", err.message, "error");
  }
  renderWorker();
}

function figure(value, bad = false) {
  return h("span", { class: bad ? "num bad" : "num", text: value });
}

export function renderWorker() {
  const w = ops.worker;
  const live = $("live");
  if (!w) {
    fill($("w-figures"), []);
    live.hidden = true;
    return;
  }
  const state = w.draining ? "draining" : w.ready ? "ready" : "not ready";
  $("w-name").textContent = String(w.worker ?? "");
  fill($("w-figures"), facts([
    ["State", figure(state, !w.ready || w.draining)],
    ["Players online", figure(amount(w.players_online))],
    ["Connections", figure(amount(w.connections))],
    ["Lives loaded", figure(amount(w.loaded))],
    ["Tick p50 / p99", figure(`${ms(w.tick_ms_p50)} / ${ms(w.tick_ms_p99)}`)],
    ["Saves", figure(`${(Number(w.saves_per_s) || 0).toFixed(1)} /s`)],
    ["Save errors", figure(amount(w.save_errors), w.save_errors > 0)],
    ["Errors", figure(amount(w.errors), w.errors > 0)],
  ]));
  const stale = Date.now() - ops.workerAt > 15000;
  live.hidden = false;
  live.textContent = `${amount(w.players_online)} online${stale ? " · stale" : ""}`;
  live.dataset.state = stale || !w.ready || w.draining ? "warn" : "ok";
  $("w-updated").textContent = ops.workerAt ? `updated ${new Date(ops.workerAt).toLocaleTimeString()}` : "";
  controls();
}

async function drain(undo) {
  const button = undo ? "undrain-btn" : "drain-btn";
  await act(button, "drain-note", () => post(undo ? "undrain" : "drain", {}), undo ? "Taking players again." : "Draining: ready is false, players move to other workers.");
  await loadWorker();
}

// ------------------------------------------------------------------ notice

export async function loadNotice() {
  try {
    const answer = await get("notice");
    ops.notice = answer.notice || null;
  } catch (err) {
    if (err instanceof Stale) return;
    note("notice-note", err.message, "error");
  }
  renderNotice();
}

function renderNotice() {
  const n = ops.notice;
  const box = $("notice-now");
  if (n === undefined) {
    box.textContent = "";
  } else if (n === null) {
    fill(box, [h("span", { class: "empty", text: "No announcement now." })]);
  } else {
    fill(box, [
      h("span", { class: "label", text: "Now showing: " }),
      h("q", { text: String(n.text ?? "") }),
      h("small", { text: ` until ${when(n.until)}${n.by ? ` · by ${n.by}` : ""}` }),
    ]);
  }
  defaultUntil();
  countNotice();
  controls();
}

/** An hour ahead in the announcement's end, unless one is chosen (ready at
 * sign-in, before the current notice is read). */
export function defaultUntil() {
  if (!$("notice-until").value) $("notice-until").value = localInput(now() + NOTICE_DEFAULT_S);
}

function countNotice() {
  const length = $("notice-text").value.trim().length;
  $("notice-count").textContent = `${length}/${NOTICE_MAX}`;
  $("notice-count").classList.toggle("bad", length > NOTICE_MAX);
}

function announce(event) {
  event.preventDefault();
  const text = $("notice-text").value.trim();
  if (!text) {
    note("notice-note", "Write the message first.", "error");
    return;
  }
  if (text.length > NOTICE_MAX) {
    note("notice-note", `At most ${NOTICE_MAX} characters.`, "error");
    return;
  }
  const until = unixOf($("notice-until").value);
  if (until === null || until <= now()) {
    note("notice-note", "Pick an end time in the future.", "error");
    return;
  }
  act("notice-btn", "notice-note", () => post("notice", { text, until }), () => {
    $("notice-text").value = "";
    return `Announced to every player until ${when(until)}.`;
  }).then(loadNotice);
}

function withdraw() {
  act("notice-clear", "notice-note", () => call("DELETE", "notice"), "Withdrawn: players who log in from now see nothing.").then(loadNotice);
}

// ------------------------------------------------------------------ llm

export async function loadLlm() {
  try {
    ops.llm = await get("llm");
  } catch (err) {
    if (err instanceof Stale) return;
    note("llm-note", err.message, "error");
  }
  renderLlm();
}

function renderLlm() {
  const l = ops.llm;
  if (!l) {
    fill($("llm-figures"), []);
    $("llm-day").textContent = "";
    return;
  }
  $("llm-day").textContent = String(l.day ?? "");
  const left = Number(l.budget_left);
  fill($("llm-figures"), facts([
    ["Calls", figure(amount(l.calls))],
    ["Spent", figure(money(l.cost))],
    ["Cache hits", figure(percent(l.cache_hit_rate))],
    ["Budget", figure(money(l.budget))],
    ["Left", figure(money(left), left <= 0)],
    l.provider ? ["Provider", figure(String(l.provider))] : null,
  ]));
  const input = $("budget");
  if (document.activeElement !== input && !input.dataset.dirty) input.value = String(l.budget ?? "");
  controls();
}

function setBudget(event) {
  event.preventDefault();
  const raw = $("budget").value.trim();
  const budget = Number(raw);
  if (!raw || !Number.isFinite(budget) || budget < 0) {
    note("llm-note", "The budget is a number, 0 or more.", "error");
    return;
  }
  act("budget-btn", "llm-note", () => post("llm/budget", { budget }), () => {
    delete $("budget").dataset.dirty;
    return `Today's budget is now ${money(budget)}.`;
  }).then(loadLlm);
}

// ------------------------------------------------------------------ audit

export async function loadAudit() {
  try {
    const answer = await get(`audit?limit=${AUDIT_LIMIT}`);
    const entries = Array.isArray(answer.entries) ? answer.entries : [];
    fill($("audit-rows"), entries.length ? entries.map(auditRow) : [h("tr", {}, h("td", { colSpan: 6, class: "empty", text: "Nothing yet." }))]);
    note("audit-note", "");
  } catch (err) {
    if (err instanceof Stale) return;
    note("audit-note", err.message, "error");
  }
}

function detailText(detail) {
  if (detail === null || detail === undefined || detail === "") return "";
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

function auditRow(e) {
  const cell = (label, text, cls) => h("td", { "data-label": label, class: cls, text });
  return h("tr", {},
    cell("When", when(e.at), "when"),
    cell("Who", `${e.who ?? ""}${e.role ? ` (${e.role})` : ""}`),
    cell("Action", words(e.action), "action"),
    cell("Player", e.player === null || e.player === undefined ? "" : String(e.player)),
    cell("Detail", detailText(e.detail), "detail"),
    cell("From", String(e.from ?? ""), "from"));
}

// ------------------------------------------------------------------ shared

let changed = () => {};

async function act(button, where, request, done) {
  ops.busy.add(button);
  controls();
  note(where, "Working…");
  try {
    const answer = await request();
    note(where, typeof done === "function" ? done(answer) : done, "ok");
    changed();
  } catch (err) {
    if (err instanceof Stale) return;
    note(where, err.message, "error");
  } finally {
    ops.busy.delete(button);
    controls();
  }
}

/** Enable what this token allows in the side panels. */
export function controls() {
  const op = isOperator();
  for (const el of document.querySelectorAll("#worker-card .op, #notice-card .op, #llm-card .op")) {
    el.disabled = !op || ops.busy.has(el.id);
    el.title = op ? "" : "Needs the operator role";
  }
  if (op) {
    const w = ops.worker;
    if (w) {
      $("drain-btn").disabled = Boolean(w.draining) || ops.busy.has("drain-btn");
      $("undrain-btn").disabled = !w.draining || ops.busy.has("undrain-btn");
    }
    $("notice-clear").disabled = !ops.notice || ops.busy.has("notice-clear");
  }
}

/** Forget what was shown (sign-out). */
export function resetOps() {
  ops.worker = null;
  ops.workerAt = 0;
  ops.notice = undefined;
  ops.llm = null;
  renderWorker();
  renderNotice();
  renderLlm();
  fill($("audit-rows"), []);
  $("notice-text").value = "";
  $("notice-until").value = "";
  $("budget").value = "";
  delete $("budget").dataset.dirty;
  for (const n of ["w-note", "drain-note", "notice-note", "llm-note", "audit-note"]) note(n, "");
}

export function wireOps(afterAction) {
  changed = afterAction;
  $("drain-btn").addEventListener("click", () => drain(false));
  $("undrain-btn").addEventListener("click", () => drain(true));
  $("notice-form").addEventListener("submit", announce);
  $("notice-clear").addEventListener("click", withdraw);
  $("notice-text").addEventListener("input", countNotice);
  $("budget-form").addEventListener("submit", setBudget);
  $("budget").addEventListener("input", () => ($("budget").dataset.dirty = "1"));
  $("audit-refresh").addEventListener("click", loadAudit);
}
