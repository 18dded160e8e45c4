/*
 * Finding a player and their page: search by id or name prefix, the
 * player's account, life, people, pending prompts and latest story, and the
 * operator's actions on them (kick, ban and unban, mute, export, erase),
 * each with its result or error in the note right under it.
 *
 * A viewer sees every action disabled (the server refuses them anyway with
 * 403). The page shown is in the address (#player/<id>) so a reload or the
 * back button keeps it.
 */
import { ApiError, Stale, download, get, isOperator, post, seg } from "./api.js";
import { $, amount, facts, fill, h, money, note, now, unixOf, when, words } from "./dom.js";

const SEARCH_LIMIT = 20;
const FEED_SHOWN = 30;

export const shown = {
  id: null, // the player on the page
  player: null, // GET players/<id>, or null while loading or gone
  busy: new Set(), // buttons whose request is on its way
  erased: false,
};

let changed = () => {}; // main.js: refresh the audit log after an action

export function setAfterAction(fn) {
  changed = fn;
}

// ------------------------------------------------------------------ search

let lastQuery = ""; // the search whose results are shown
let searches = 0;

async function search(event) {
  event.preventDefault();
  const q = $("q").value.trim();
  if (!q) {
    note("search-note", "Type a player id or the start of a name.", "error");
    return;
  }
  await runSearch(q, true);
}

/** The results shown again (after an action changed a player in them). */
export function refreshResults() {
  if (lastQuery) runSearch(lastQuery, false);
}

/** Forget the search (sign-out). */
export function resetSearch() {
  lastQuery = "";
  $("results").replaceChildren();
  $("q").value = "";
  note("search-note", "");
}

async function runSearch(q, loud) {
  const mine = ++searches; // an older search answering late is dropped
  if (loud) {
    note("search-note", "Searching…");
    $("search-btn").disabled = true;
  }
  try {
    const found = await get(`players?q=${encodeURIComponent(q)}&limit=${SEARCH_LIMIT}`);
    if (mine !== searches) return;
    const players = Array.isArray(found.players) ? found.players : [];
    lastQuery = q;
    fill($("results"), players.map(resultItem));
    const more = players.length >= SEARCH_LIMIT ? " (the first ones)" : "";
    note("search-note", players.length ? `${players.length} found${more}.` : `No player matches “${q}”.`);
  } catch (err) {
    if (err instanceof Stale || mine !== searches) return;
    if (loud) fill($("results"), []);
    note("search-note", err.message, "error");
  } finally {
    if (loud) $("search-btn").disabled = false;
  }
}

function resultItem(p) {
  return h("li", { "data-player": String(p.id) },
    h("a", { href: `#player/${encodeURIComponent(String(p.id))}`, class: "result" },
      h("span", { class: "name" }, h("strong", { text: String(p.name ?? "") }), h("small", { class: "id", text: ` #${p.id}` })),
      h("span", { class: "tags" },
        p.online ? h("span", { class: "chip ok", text: p.worker ? `online · ${p.worker}` : "online" }) : h("span", { class: "chip", text: "offline" }),
        p.banned ? h("span", { class: "chip bad", text: "banned" }) : null),
      h("small", { class: "since", text: `since ${when(p.created_at)}` })));
}

// ------------------------------------------------------------------ the page

/** Show player `id` (from the address), loading it fresh. */
export async function openPlayer(id) {
  const fresh = shown.id !== id;
  shown.id = id;
  if (fresh) {
    shown.player = null;
    shown.erased = false;
    for (const n of ["p-note", "kick-note", "ban-note", "mute-note", "export-note", "erase-note"]) note(n, "");
    $("erase-confirm").value = "";
    $("kick-reason").value = "";
    $("ban-reason").value = "";
    $("ban-until").value = "";
    $("p-name").textContent = `Player ${id}`;
    $("p-id").textContent = "";
    fill($("p-chips"), []);
    fill($("p-facts"), []);
    fill($("p-life"), []);
    $("p-ban").hidden = true;
  }
  $("player").hidden = false;
  await loadPlayer();
}

export function closePlayer() {
  shown.id = null;
  shown.player = null;
  $("player").hidden = true;
}

async function loadPlayer() {
  const id = shown.id;
  if (id === null) return;
  note("p-note", "Loading…");
  try {
    const player = await get(`players/${seg(id)}`);
    if (shown.id !== id) return;
    shown.player = player;
    note("p-note", "");
    renderPlayer();
  } catch (err) {
    if (err instanceof Stale || shown.id !== id) return;
    if (err instanceof ApiError && (err.status === 404 || err.status === 409)) {
      shown.player = null;
      renderPlayer();
    }
    note("p-note", err.message, "error");
  }
}

function renderPlayer() {
  const p = shown.player;
  $("p-actions").hidden = p === null;
  if (p === null) {
    $("p-id").textContent = "";
    fill($("p-life"), []);
    fill($("p-facts"), []);
    fill($("p-chips"), []);
    $("p-ban").hidden = true;
    controls();
    return;
  }
  $("p-name").textContent = String(p.name ?? "");
  $("p-id").textContent = `#${p.id}`;
  fill($("p-chips"), [
    p.online ? h("li", { class: "chip ok", text: p.worker ? `online on ${p.worker}` : "online" }) : h("li", { class: "chip", text: "offline" }),
    p.banned ? h("li", { class: "chip bad", text: "banned" }) : null,
    p.muted ? h("li", { class: "chip warn", text: "NPC talk muted" }) : null,
  ]);
  const ai = p.ai_today || {};
  fill($("p-facts"), facts([
    ["Created", when(p.created_at)],
    ["Last login", p.last_login ? when(p.last_login) : "never"],
    ["NPC talk today", `${amount(ai.calls)} calls · ${money(ai.cost)}`],
  ]));
  const ban = p.banned;
  $("p-ban").hidden = !ban;
  if (ban) {
    const until = ban.until ? `until ${when(ban.until)}` : "for good";
    const reason = String(ban.reason ?? "");
    fill($("p-ban"), [
      h("strong", { text: "Banned " + until }),
      document.createTextNode(reason ? `: “${reason}”` : ""),
      h("small", { text: ` (by ${ban.by ?? "?"}, ${when(ban.at)})` }),
    ]);
  }
  $("mute-btn").textContent = p.muted ? "Unmute NPC talk" : "Mute NPC talk";
  $("mute-btn").setAttribute("aria-pressed", String(Boolean(p.muted)));
  $("erase-confirm").placeholder = `Type ${p.id} to confirm`;
  fill($("p-life"), lifeBlock(p.life));
  controls();
}

function lifeBlock(life) {
  if (!life) return [h("p", { class: "empty", text: "No life on record." })];
  const stage = life.stage ? ` · ${words(life.stage)}` : "";
  const state = life.alive === false ? " · died" : "";
  const stats = Object.entries(life.stats || {});
  const flags = Array.isArray(life.flags) ? life.flags : [];
  const npcs = Array.isArray(life.npcs) ? life.npcs : [];
  const prompts = Array.isArray(life.prompts) ? life.prompts : [];
  const feed = Array.isArray(life.feed) ? life.feed.slice(-FEED_SHOWN).reverse() : [];
  return [
    h("h3", { text: `Life ${life.number ?? "?"} · age ${life.age_years ?? "?"}${stage}${state}` }),
    h("dl", { class: "facts" }, facts([
      ["Money", amount(life.money)],
      ["Job", life.job ? words(life.job) : "none"],
      ["Education", life.education ? words(life.education) : "none"],
    ])),
    stats.length
      ? h("ul", { class: "stats" }, stats.map(([name, value]) =>
          h("li", { class: "stat" }, h("span", { text: words(name) }), h("strong", { text: String(value) }))))
      : null,
    flags.length ? h("ul", { class: "chips" }, flags.map((f) => h("li", { class: "chip", text: words(f) }))) : null,
    h("details", { class: "part", open: npcs.length > 0 && npcs.length <= 8 },
      h("summary", { text: `People (${npcs.length})` }),
      npcs.length
        ? h("ul", { class: "npcs" }, npcs.map((n) =>
            h("li", { class: n.alive === false ? "gone" : "" },
              h("strong", { text: String(n.name ?? "") }),
              h("span", { class: "muted", text: ` ${words(n.role)} · relationship ${n.relationship ?? "?"}${n.alive === false ? " · dead" : ""}` }))))
        : h("p", { class: "empty", text: "Nobody." })),
    h("details", { class: "part", open: prompts.length > 0 },
      h("summary", { text: `Pending prompts (${prompts.length})` }),
      prompts.length
        ? h("ul", { class: "prompts" }, prompts.map((q) => h("li", { text: String(q.title ?? q.id ?? "") })))
        : h("p", { class: "empty", text: "None waiting." })),
    h("details", { class: "part", open: true },
      h("summary", { text: `Latest story (${feed.length})` }),
      feed.length
        ? h("ol", { class: "feed" }, feed.map((line) =>
            h("li", {}, h("span", { class: "age", text: `${line.age ?? ""}` }), h("span", { text: String(line.text ?? "") }))))
        : h("p", { class: "empty", text: "Nothing yet." })),
  ];
}

/** Enable what this token and the player's state allow. */
export function controls() {
  const op = isOperator();
  const p = shown.player;
  for (const el of document.querySelectorAll("#player .op")) {
    el.disabled = !op || p === null || shown.busy.has(el.id);
    el.title = op ? "" : "Needs the operator role";
  }
  if (op && p) {
    $("unban-btn").disabled = !p.banned || shown.busy.has("unban-btn");
    $("erase-btn").disabled = $("erase-confirm").value.trim() !== String(p.id) || shown.busy.has("erase-btn");
  }
}

// ------------------------------------------------------------------ actions

async function act(button, where, request, done) {
  const id = shown.id;
  shown.busy.add(button);
  controls();
  note(where, "Working…");
  try {
    const answer = await request(id);
    note(where, typeof done === "function" ? done(answer) : done, "ok");
    changed();
    if (shown.id === id && !shown.erased) await loadPlayer();
  } catch (err) {
    if (err instanceof Stale) return;
    note(where, err.message, "error");
  } finally {
    shown.busy.delete(button);
    controls();
  }
}

function kick(event) {
  event.preventDefault();
  const reason = $("kick-reason").value.trim();
  if (!reason) {
    note("kick-note", "Give a reason: the player sees it.", "error");
    return;
  }
  act("kick-btn", "kick-note", (id) => post(`players/${seg(id)}/kick`, { reason }), () => {
    $("kick-reason").value = "";
    return "Kicked: the session was ended.";
  });
}

function ban(event) {
  event.preventDefault();
  const reason = $("ban-reason").value.trim();
  if (!reason) {
    note("ban-note", "Give a reason: the player sees it at login.", "error");
    return;
  }
  const raw = $("ban-until").value;
  const until = unixOf(raw);
  if (raw && until === null) {
    note("ban-note", "That end time is not a date.", "error");
    return;
  }
  if (until !== null && until <= now()) {
    note("ban-note", "The end time has passed: pick one in the future, or none for good.", "error");
    return;
  }
  act("ban-btn", "ban-note", (id) => post(`players/${seg(id)}/ban`, { reason, until }), () => {
    $("ban-reason").value = "";
    $("ban-until").value = "";
    return until === null ? "Banned for good." : `Banned until ${when(until)}.`;
  });
}

function unban() {
  act("unban-btn", "ban-note", (id) => post(`players/${seg(id)}/unban`, {}), "Unbanned.");
}

function mute() {
  const muted = !(shown.player && shown.player.muted);
  act("mute-btn", "mute-note", (id) => post(`players/${seg(id)}/mute`, { muted }), muted ? "NPC talk muted." : "NPC talk allowed again.");
}

function exportData() {
  act("export-btn", "export-note", async (id) => {
    const blob = await download(`players/${seg(id)}/export`);
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: `baolife-player-${String(id).replace(/[^A-Za-z0-9_-]/g, "_")}.json`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    return blob.size;
  }, (size) => `Downloaded (${amount(size)} bytes).`);
}

function erase(event) {
  event.preventDefault();
  const p = shown.player;
  if (!p || $("erase-confirm").value.trim() !== String(p.id)) {
    note("erase-note", "Type the player's id exactly to confirm.", "error");
    return;
  }
  act("erase-btn", "erase-note", async (id) => {
    await post(`players/${seg(id)}/erase`, { confirm: p.id });
    shown.erased = true;
    shown.player = null;
    $("erase-confirm").value = "";
    renderPlayer();
    $("p-name").textContent = `Player ${id}`;
    // The actions went with the player: the outcome goes in the page's note.
    note("p-note", `Player ${id} was erased: account, lives, usage and conversations.`, "ok");
  }, "");
}

export function wirePlayer() {
  $("search-form").addEventListener("submit", search);
  $("p-refresh").addEventListener("click", () => loadPlayer());
  $("kick-form").addEventListener("submit", kick);
  $("ban-form").addEventListener("submit", ban);
  $("unban-btn").addEventListener("click", unban);
  $("mute-btn").addEventListener("click", mute);
  $("export-btn").addEventListener("click", exportData);
  $("erase-form").addEventListener("submit", erase);
  $("erase-confirm").addEventListener("input", controls);
  // Clearing an end time: the picker has no button for it on every browser.
  $("ban-until").addEventListener("keydown", (e) => {
    if (e.key === "Escape") $("ban-until").value = "";
  });
}
