/*
 * The end of a life: how it ended (cause, age, education, career, money,
 * family, key moments, achievements), a name for the next life and the list
 * of past lives.
 */
import { nameProblem, newLife } from "./commands.js";
import { $, amount, h, title, words, yearsOf } from "./dom.js";
import { busyWith, net } from "./net.js";
import { game, note, noteOf } from "./store.js";

function fact(dt, dd) {
  return [h("dt", { text: dt }), h("dd", { text: dd })];
}

function years(days) {
  return yearsOf(days, game.view ? game.view.year_days : 365);
}

function familyLine(family) {
  return (family || []).map((f) => `${f.name} (${words(f.role)}${f.alive === false ? ", died" : ""})`).join(", ");
}

export function renderEnd() {
  const v = game.view;
  const dead = Boolean(v) && v.alive === false;
  $("death").hidden = !dead;
  document.body.classList.toggle("dead", dead);
  if (!dead) {
    $("new-name").value = "";
    return;
  }
  const s = game.summary;
  const cause = (s && s.cause) || v.cause_of_death;
  const age = years(s ? s.age_days : v.age_days);
  $("death-text").textContent = `${(s && s.name) || v.name} died at ${age}${cause ? `: ${cause}` : ""}.`;
  const facts = [];
  if (s) {
    facts.push(...fact("Education", s.education && s.education !== "none" ? title(words(s.education)) : "No schooling"));
    const career = s.best_job && s.best_job !== s.job ? `${s.job || "No job"} (best: ${s.best_job})` : s.job || "Never worked";
    facts.push(...fact("Career", career));
    const money = fact("Money", Number(s.money) < 0 ? `${amount(s.money)} (in debt)` : amount(s.money));
    money[1].classList.toggle("debt", Number(s.money) < 0);
    facts.push(...money);
    if ((s.family || []).length) facts.push(...fact("Family", familyLine(s.family)));
  }
  $("death-facts").replaceChildren(...facts);
  const more = [];
  if (s && (s.moments || []).length) {
    more.push(h("h3", { text: "Key moments" }),
      h("ol", { class: "moments" }, s.moments.map(([days, text]) => h("li", {}, h("span", { class: "when", text: `Age ${years(days)}: ` }), String(text)))));
  }
  if (s && (s.achievements || []).length) {
    more.push(h("h3", { text: "Achievements" }),
      h("ul", { class: "flags" }, s.achievements.map((a) => h("li", { class: "flag flag-asset", text: String(a.label || words(a.id)) }))));
  }
  $("death-more").replaceChildren(...more);
  const input = $("new-name");
  input.placeholder = String(v.name || "").split(" ")[0] || "Your name";
  const n = noteOf("new-life");
  $("new-life-note").textContent = n ? n.text : "";
  $("new-life-note").className = n ? `note ${n.kind}` : "note";
  $("new-life").disabled = !net.online || busyWith("new_life");
  renderLives();
}

function renderLives() {
  const lives = game.lives || [];
  $("lives-box").hidden = lives.length === 0;
  $("lives").replaceChildren(
    ...lives.map((l) =>
      h("li", {},
        h("strong", { text: String(l.name) }),
        ` · life ${l.life} · died at ${years(l.age_days)}${l.cause ? ` (${l.cause})` : ""}`,
        l.best_job || l.job ? ` · ${l.best_job || l.job}` : "",
        ` · money ${amount(l.money)}`)),
  );
}

export function wireEnd() {
  $("new-life-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("new-name");
    const raw = input.value;
    const name = raw.trim();
    // Empty: the previous life's first name. Spaces only: say so.
    if (raw.length > 0 && !name) {
      note("new-life", nameProblem(raw), "error", 0);
      return;
    }
    const problem = name ? nameProblem(name) : "";
    if (problem) {
      note("new-life", problem, "error", 0);
      return;
    }
    newLife(name);
  });
}
