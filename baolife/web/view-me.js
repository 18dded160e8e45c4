/*
 * The player: name, life and stage, the age (counted on between frames),
 * the speed toggle, stats as one compact row, warnings, money (red "in
 * debt" below zero), job, education and flags (what the player owns and is).
 */
import { setSpeed } from "./commands.js";
import { $, ageText, amount, h, title, words } from "./dom.js";
import { busyWith, net } from "./net.js";
import { ageNow, game, noteOf } from "./store.js";

const STAT_NAMES = ["health", "happiness", "smarts", "looks"];
const SPEEDS = [1, 2, 5];
const FLAG_ORDER = ["life", "asset", "illness", "trait", "habit"];

/** May the player act now: logged in, alive, this tab the one playing. */
export const canPlay = () => net.online && game.view !== null && game.view.alive !== false;

export function renderMe() {
  const v = game.view;
  $("who").textContent = v.name;
  document.title = `${v.name} · BaoLife`;
  $("me-name").textContent = v.name;
  const stage = v.stage ? ` · ${title(words(v.stage))}` : "";
  $("me-life").textContent = `Life ${v.life ?? 1}${stage}`;
  renderAge();
  $("player-id").textContent = String(game.player);
  $("token-view").textContent = game.token || "";
  renderStats(v.stats || {});
  renderWarnings();
  const money = Number(v.money || 0);
  const moneyEl = $("me-money");
  moneyEl.textContent = money < 0 ? `${amount(money)} (in debt)` : amount(money);
  moneyEl.classList.toggle("debt", money < 0);
  $("me-job").textContent = v.job ? `${v.job.title} (${amount(v.job.salary)} a year)` : "No job";
  $("me-education").textContent = v.education && v.education !== "none" ? title(words(v.education)) : "No schooling yet";
  renderFlags(Array.isArray(v.flags) ? v.flags : []);
  renderSpeed();
}

/** The age, counted on between frames while the clock runs. */
export function renderAge() {
  const v = game.view;
  if (!v) return;
  const days = ageNow(canPlay());
  $("me-age").textContent = v.alive === false ? `Lived ${ageText(v.age_days, v.year_days)}` : `${ageText(days, v.year_days)} old`;
}

function renderStats(stats) {
  const box = $("stats");
  if (box.childElementCount === 0) {
    for (const name of STAT_NAMES) {
      box.append(
        h("div", { class: "stat", "data-stat": name },
          h("span", { class: "stat-name", text: title(name) }),
          h("span", { id: `stat-${name}-num`, class: "num" }),
          h("meter", { id: `stat-${name}`, min: 0, max: 100, low: 25, high: 75, optimum: 100 })),
      );
    }
  }
  for (const name of STAT_NAMES) {
    const value = Number(stats[name] ?? 0);
    $(`stat-${name}`).value = value;
    $(`stat-${name}-num`).textContent = String(value);
    box.querySelector(`[data-stat="${name}"]`).classList.toggle("low", value < 25);
  }
}

function renderWarnings() {
  const v = game.view;
  // A warning stays while its stat is still low (or money below zero).
  game.warnings = game.warnings.filter((w) => {
    if (v.alive === false) return false;
    if (w.kind === "money") return Number(v.money) < 0;
    const value = Number((v.stats || {})[w.kind]);
    return Number.isNaN(value) || value < 50;
  });
  $("warnings").replaceChildren(
    ...game.warnings.map((w) => h("li", { class: `warning ${w.level === "critical" ? "critical" : ""}`, text: w.text })),
  );
}

function renderFlags(flags) {
  const sorted = flags.slice().sort((a, b) => FLAG_ORDER.indexOf(a.kind) - FLAG_ORDER.indexOf(b.kind));
  $("flags").replaceChildren(
    ...sorted.map((f) => h("li", { class: `flag flag-${f.kind || "life"}`, title: words(f.kind), text: String(f.label || words(f.id)) })),
  );
}

/** x1 / x2 / x5, shown when the server knows speeds; off while a prompt waits. */
export function renderSpeed() {
  const v = game.view;
  const box = $("speed");
  box.hidden = !v || v.speed === undefined;
  if (box.hidden) return;
  const waiting = game.prompts.size > 0;
  const off = !canPlay() || waiting || busyWith("speed");
  for (const button of box.querySelectorAll("button")) {
    const x = Number(button.dataset.x);
    button.setAttribute("aria-pressed", String(x === Number(v.speed)));
    button.disabled = off;
    button.title = waiting ? "Answer the decision first" : `Play at ${x} times the speed`;
  }
  const n = noteOf("speed");
  $("speed-note").textContent = n ? n.text : "";
  $("speed-note").className = n ? `note ${n.kind}` : "note";
}

export function wireMe() {
  for (const x of SPEEDS) {
    $("speed").querySelector(`[data-x="${x}"]`).addEventListener("click", () => setSpeed(x));
  }
}
