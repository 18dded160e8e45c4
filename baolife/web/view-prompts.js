/*
 * The pending decisions. While one waits the card is pinned under the top
 * bar (sticky) with a pulsing border and a bar that counts down, so on a
 * phone it is in view without a sound. The line under it says what the last
 * choice or event did.
 */
import { answer } from "./commands.js";
import { $, h, plural } from "./dom.js";
import { busyWith, net } from "./net.js";
import { clock, game, noteOf } from "./store.js";
import { canPlay } from "./view-me.js";

export function renderPrompts() {
  const list = $("prompts");
  const shown = new Map([...list.children].map((li) => [li.promptId, li]));
  for (const [id, li] of shown) if (!game.prompts.has(id)) li.remove();
  for (const [id, entry] of game.prompts) {
    if (shown.has(id)) continue;
    const p = entry.op;
    const choices = (p.choices || []).map((c) =>
      h("button", { type: "button", text: c.label, "data-choice": c.key, onclick: () => answer(p.id, c.key) }),
    );
    const li = h("li", { class: "prompt", "data-prompt": String(id) },
      h("h3", { text: p.title }),
      h("p", { text: p.text }),
      h("div", { class: "choices" }, choices),
      h("div", { class: "countdown" }, h("span", { class: "timeleft" }), h("progress", { max: 1, value: 1 })),
    );
    li.promptId = id;
    list.append(li);
  }
  const waiting = game.prompts.size > 0 && canPlay();
  $("prompts-empty").hidden = game.prompts.size > 0;
  $("prompts-empty").textContent = game.view && game.view.alive === false ? "No more decisions in this life." : "Nothing to decide right now.";
  $("decisions").classList.toggle("waiting", waiting);
  $("prompts-h").textContent = game.prompts.size > 1 ? `Decisions (${game.prompts.size})` : "Decisions";
  renderPromptNote();
  renderCountdowns();
  enablePrompts();
}

export function renderPromptNote() {
  const n = noteOf("prompt");
  const result = $("prompt-result");
  result.textContent = n ? n.text : "";
  result.classList.toggle("error", Boolean(n && n.kind === "error"));
}

/** The time left on each prompt, from the server's clock counted on. */
export function renderCountdowns() {
  const now = clock.now();
  const dayTicks = (game.view && game.view.day_ticks) || 1;
  for (const li of $("prompts").children) {
    const entry = game.prompts.get(li.promptId);
    if (!entry) continue;
    const span = li.querySelector(".timeleft");
    const bar = li.querySelector("progress");
    if (!net.online || now === null) {
      span.textContent = "Paused while offline";
      continue;
    }
    const left = Math.max(0, entry.op.expires_tick - now);
    if (entry.total === null) entry.total = Math.max(1, left);
    const days = Math.ceil(left / dayTicks);
    const secs = clock.hz ? left / clock.hz : null;
    const timeText = secs === null ? "" : ` · ${secs < 10 ? secs.toFixed(1) : Math.round(secs)} s`;
    span.textContent = `${plural(days, "day")} left${timeText}`;
    bar.max = entry.total;
    bar.value = Math.min(entry.total, left);
    li.classList.toggle("urgent", secs !== null && secs < 5);
  }
}

function enablePrompts() {
  const ok = canPlay();
  for (const li of $("prompts").children) {
    const busy = busyWith("answer", "prompt", li.promptId);
    for (const button of li.querySelectorAll("button")) button.disabled = !ok || busy;
  }
}
