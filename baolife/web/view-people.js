/*
 * The people in the player's life: a card each with closeness, a Talk
 * button and the actions aimed at that person (compliment, argue, ask for
 * money). The Talk panel shows the conversation the server remembers; on a
 * phone it is a bottom sheet whose input stays in view.
 */
import { closeTalk, openTalk, say } from "./commands.js";
import { $, h, title, words } from "./dom.js";
import { busyWith } from "./net.js";
import { game, noteOf } from "./store.js";
import { actionButton, actionsFor, refreshButton } from "./view-actions.js";
import { canPlay } from "./view-me.js";

const ROLE_ORDER = ["mother", "father", "partner", "spouse", "child", "sibling", "grandparent", "friend"];

function rank(npc) {
  const i = ROLE_ORDER.indexOf(npc.role);
  return (npc.alive === false ? 100 : 0) + (i < 0 ? ROLE_ORDER.length : i);
}

function card(n) {
  const gone = n.alive === false;
  const role = title(words(n.role)) + (Number.isInteger(n.age) ? `, ${n.age}` : "") + (gone ? " (gone)" : "");
  const targeted = gone ? [] : actionsFor(n);
  return h("li", { class: gone ? "npc gone" : "npc", "data-npc": String(n.id), "data-key": `${n.id}` },
    h("div", { class: "npc-head" },
      h("span", { class: "npc-name" }, h("strong", { text: n.name }), " ", h("span", { class: "role", text: role })),
      h("button", { type: "button", class: "talk-btn", text: "Talk", onclick: () => showTalk(n.id) })),
    h("meter", { min: 0, max: 100, value: Number(n.closeness) || 0, title: `closeness ${n.closeness}` }),
    targeted.length ? h("div", { class: "npc-actions" }, targeted.map((id) => actionButton(id, n.id))) : null,
    h("p", { class: "note", "aria-live": "polite" }));
}

export function renderNpcs() {
  const npcs = [...game.npcs.values()].sort((a, b) => rank(a) - rank(b));
  $("npcs").replaceChildren(...npcs.map(card));
  $("npcs-empty").hidden = npcs.length > 0;
  refreshPeople();
}

/** Enable what may be used now and show each card's note. */
export function refreshPeople() {
  const ok = canPlay();
  for (const li of $("npcs").children) {
    const npc = game.npcs.get(Number(li.dataset.npc));
    li.querySelector(".talk-btn").disabled = !ok || !npc || npc.alive === false;
    for (const button of li.querySelectorAll("button.act")) refreshButton(button);
    const n = noteOf(`npc:${li.dataset.npc}`);
    const p = li.querySelector(".note");
    p.textContent = n ? n.text : "";
    p.className = n ? `note ${n.kind}` : "note";
  }
}

function showTalk(npcId) {
  openTalk(npcId);
  // The panel is drawn in this task's render; focus the input after it.
  queueMicrotask(() => {
    const input = $("talk-text");
    input.focus({ preventScroll: true });
    input.scrollIntoView({ block: "nearest" });
  });
}

export function renderTalk() {
  const panel = $("talk-card");
  const npc = game.talkingTo === null ? undefined : game.npcs.get(game.talkingTo);
  panel.hidden = !npc;
  document.body.classList.toggle("sheet-open", Boolean(npc));
  if (!npc) return;
  $("talk-name").textContent = npc.name;
  const lines = (game.talk.get(npc.id) || []).map((line) =>
    h("li", { class: line.who === "me" ? `from-me${line.failed ? " failed" : ""}` : "from-npc" },
      h("span", { class: "speaker", text: line.who === "me" ? "You" : npc.name }),
      line.text),
  );
  if (busyWith("talks", "npc", npc.id)) lines.unshift(h("li", { class: "typing", text: "Remembering…" }));
  if (busyWith("say", "npc", npc.id)) lines.push(h("li", { class: "typing", text: `${npc.name} is thinking…` }));
  const log = $("talk-log");
  const key = `${npc.id}|${lines.length}|${lines.map((li) => li.className).join()}|${lines.length ? lines[lines.length - 1].textContent : ""}`;
  if (log.dataset.key === key) return refreshTalk();
  log.dataset.key = key;
  log.replaceChildren(...lines);
  log.scrollTop = log.scrollHeight; // the newest line, only when there is one
  refreshTalk();
}

export function refreshTalk() {
  const npc = game.talkingTo === null ? undefined : game.npcs.get(game.talkingTo);
  const off = !canPlay() || !npc || npc.alive === false;
  $("talk-send").disabled = off || busyWith("say");
  $("talk-text").disabled = off;
  const n = noteOf("talk");
  $("talk-note").textContent = n ? n.text : "";
  $("talk-note").className = n ? `note ${n.kind}` : "note";
}

export function wireTalk() {
  $("talk-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("talk-text");
    const text = input.value.trim();
    if (!text || game.talkingTo === null) return;
    if (say(game.talkingTo, text)) input.value = "";
  });
  $("talk-close").addEventListener("click", closeTalk);
  // A phone's keyboard covers the lower half: keep the input above it.
  $("talk-text").addEventListener("focus", () => {
    setTimeout(() => $("talk-text").scrollIntoView({ block: "nearest" }), 300);
  });
}
