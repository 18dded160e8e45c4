/*
 * DOM and text helpers of the operators' console.
 *
 * Safety rule, as in the game client: every string from the server (player
 * names, feed lines, reasons, audit details) reaches the page through
 * textContent or a Text node, never through HTML parsing. h() is the only
 * way the views build elements.
 */

// The game client's own helpers (served here as game-dom.js): one h(),
// so one escaping rule for both pages.
import { $, amount, h, words } from "./game-dom.js";

export { $, amount, h, words };

/** Put `children` in place of what `parent` holds. */
export const fill = (parent, children) => parent.replaceChildren(...children.filter(Boolean));

/** A definition list's rows from [term, value] pairs (values as text or nodes),
 * each pair in a div (allowed in a dl) so a narrow screen can lay them out as tiles. */
export const facts = (pairs) =>
  pairs.filter(Boolean).map(([term, value]) =>
    h("div", { class: "fact" }, h("dt", { text: term }), h("dd", {}, value === null || value === undefined ? "—" : value)));

/** Money of the NPC bill: two decimals. */
export const money = (n) => (Number(n) || 0).toFixed(2);

/** A share as a percentage: 0.423 -> "42%". */
export const percent = (x) => (typeof x === "number" && Number.isFinite(x) ? `${Math.round(x * 100)}%` : "—");

const pad = (n) => String(n).padStart(2, "0");

/** Unix seconds as the reader's local date and time, "2026-12-03 14:05". */
export function when(unix) {
  if (typeof unix !== "number" || !Number.isFinite(unix)) return "—";
  const d = new Date(unix * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Unix seconds as the value of an <input type="datetime-local">. */
export const localInput = (unix) => when(unix).replace(" ", "T");

/** An <input type="datetime-local">'s value as unix seconds, null when empty or not a date. */
export function unixOf(value) {
  if (!value) return null;
  const ms = new Date(value).getTime(); // a local time: the reader's zone
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}

/** The time now in unix seconds. */
export const now = () => Math.floor(Date.now() / 1000);

/** A short note next to a control: kind "ok", "error" or "" (plain). */
export function note(id, text, kind = "") {
  const el = $(id);
  if (!el) return;
  el.textContent = text || "";
  el.className = kind ? `note ${kind}` : "note";
}

/** sessionStorage that never throws (storage off: the tab forgets on reload). */
export const session = {
  get(key) {
    try {
      return sessionStorage.getItem(key);
    } catch (_e) {
      return null;
    }
  },
  set(key, value) {
    try {
      sessionStorage.setItem(key, value);
    } catch (_e) {
      /* storage off */
    }
  },
  remove(key) {
    try {
      sessionStorage.removeItem(key);
    } catch (_e) {
      /* nothing kept */
    }
  },
};
