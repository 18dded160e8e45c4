/*
 * Things to do, grouped (daily life, health, money, relationships, career)
 * in sections that open and close (remembered on this device). Each button
 * shows its price and, while it cools down, when it is ready again. Actions
 * aimed at a person are on that person's card instead (view-people.js).
 */
import { act } from "./commands.js";
import { $, amount, h, plural, stored, title, words } from "./dom.js";
import { busyWith } from "./net.js";
import { ageNow, game, noteOf } from "./store.js";
import { canPlay } from "./view-me.js";

const GROUPS = [
  ["daily", "Daily life"],
  ["health", "Health"],
  ["money", "Money"],
  ["relationships", "Relationships"],
  ["career", "Career"],
];
const OPEN_KEY = "baolife.groups";
const PHONE = "(max-width: 700px)";

const info = (id) => ((game.view && game.view.action_info) || {})[id] || {};

export function actionLabel(id) {
  const labels = (game.view && game.view.action_labels) || {};
  return info(id).label || labels[id] || title(words(id));
}

/** The actions usable now that are aimed at a person of `npc`'s role. */
export function actionsFor(npc) {
  const ids = (game.view && game.view.actions) || [];
  return ids.filter((id) => {
    const i = info(id);
    return i.target === "npc" && (!Array.isArray(i.roles) || i.roles.includes(npc.role));
  });
}

/** Days until `id` may be used again (0: ready). */
export function coolingDays(id) {
  const until = Number(((game.view && game.view.cooldowns) || {})[id]);
  if (!until) return 0;
  return Math.max(0, Math.ceil(until - ageNow(canPlay())));
}

/** "1,200 · ready in 12 days"; "" for a free action that is ready. */
export function actionMeta(id) {
  const cost = Number(info(id).cost) || 0;
  const days = coolingDays(id);
  const parts = [];
  if (cost > 0) parts.push(amount(cost));
  if (days > 0) parts.push(`ready in ${plural(days, "day")}`);
  return parts.join(" · ");
}

// A child's costs are paid by its parents: a price is out of reach only for
// a grown-up without the money.
const PAID_BY_PARENTS = new Set(["baby", "child", "teen"]);

/** A button for action `id`; `npc` for one aimed at that person. */
export function actionButton(id, npc) {
  const label = actionLabel(id);
  return h("button", {
    type: "button",
    class: "act",
    "data-action": id,
    "data-key": id,
    onclick: () => act(id, label, npc),
  },
  h("span", { class: "label", text: label }),
  h("span", { class: "meta" }));
}

/** Price, cooldown and whether it may be pressed now. */
export function refreshButton(button) {
  const id = button.dataset.action;
  const days = coolingDays(id);
  const cost = Number(info(id).cost) || 0;
  button.querySelector(".meta").textContent = actionMeta(id);
  const own = !PAID_BY_PARENTS.has(game.view.stage);
  button.classList.toggle("pricey", own && cost > Number(game.view.money || 0));
  button.disabled = !canPlay() || busyWith("act") || days > 0;
}

function openState() {
  try {
    return JSON.parse(stored.get(OPEN_KEY) || "{}") || {};
  } catch (_e) {
    return {};
  }
}

function remember(group, open) {
  const state = openState();
  state[group] = open;
  stored.set(OPEN_KEY, JSON.stringify(state));
}

export function renderActions() {
  const v = game.view;
  const ids = (Array.isArray(v.actions) ? v.actions : []).filter((id) => info(id).target !== "npc");
  const box = $("actions");
  $("actions-empty").hidden = ids.length > 0;
  $("actions-empty").textContent = v.alive === false ? "Your life has ended." : "Nothing you can do yet.";
  const byGroup = new Map(GROUPS.map(([g]) => [g, []]));
  for (const id of ids) (byGroup.get(info(id).group) || byGroup.get("daily")).push(id);
  const wanted = GROUPS.filter(([g]) => byGroup.get(g).length > 0);
  const open = openState();
  const phone = window.matchMedia(PHONE).matches;
  const sections = new Map([...box.children].map((el) => [el.dataset.group, el]));
  for (const [g, el] of sections) if (!byGroup.get(g) || byGroup.get(g).length === 0) el.remove();
  wanted.forEach(([g, name], index) => {
    let section = sections.get(g);
    if (!section) {
      const isOpen = g in open ? open[g] : !phone || index === 0;
      section = h("details", { class: "group", "data-group": g, open: isOpen },
        h("summary", {}, h("span", { text: name }), " ", h("small", { class: "count" })),
        h("div", { class: "group-actions" }),
        h("p", { class: "note", "aria-live": "polite" }));
      section.addEventListener("toggle", () => remember(g, section.open));
    }
    box.append(section); // keeps the order of GROUPS
    const list = section.querySelector(".group-actions");
    const keys = byGroup.get(g);
    if ([...list.children].map((b) => b.dataset.key).join("\n") !== keys.join("\n")) {
      // Buttons that stay are moved, not made again: no flicker, focus kept.
      const have = new Map([...list.children].map((b) => [b.dataset.key, b]));
      list.replaceChildren(...keys.map((id) => have.get(id) || actionButton(id)));
    }
    section.querySelector(".count").textContent = String(keys.length);
    for (const button of list.children) refreshButton(button);
    renderGroupNote(section, g);
  });
}

/** The newest result or error of an action of this group, under it (also
 * of an action that left the list by being done). */
function renderGroupNote(section, group) {
  let shown = null;
  for (const where of game.notes.keys()) {
    if (!where.startsWith("act:") || (info(where.slice(4)).group || "daily") !== group) continue;
    const n = noteOf(where);
    if (n && (!shown || n.until > shown.until)) shown = n;
  }
  const p = section.querySelector(".note");
  p.textContent = shown ? shown.text : "";
  p.className = shown ? `note ${shown.kind}` : "note";
  for (const button of section.querySelectorAll("button.act")) {
    const n = noteOf(`act:${button.dataset.action}`);
    button.classList.toggle("failed", Boolean(n && n.kind === "error"));
  }
}
