/*
 * DOM and text helpers of the BaoLife web client.
 *
 * Safety rule of the whole client: every string that comes from the server
 * reaches the page through textContent (or a Text node), never through HTML
 * parsing. h() is the only way views build elements.
 */

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/**
 * A new element. props: `class`, `text` (textContent), `data-*` and `aria-*`
 * (attributes), `on<event>` functions (listeners), anything else as a DOM
 * property. String children become Text nodes, never parsed as HTML.
 */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** `some_id` as words: "some id". */
export const words = (id) => String(id || "").replace(/_/g, " ");

/** "1 day", "3 days". */
export const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`;

/** A capitalised first letter. */
export const title = (text) => {
  const s = String(text || "");
  return s.charAt(0).toUpperCase() + s.slice(1);
};

/** A whole number with the reader's thousands separators. */
export const amount = (n) => Math.round(Number(n) || 0).toLocaleString();

/** A signed whole number: "+2", "-100". */
export const signed = (n) => (n > 0 ? `+${amount(n)}` : amount(n));

/** Whole game years in `days`. */
export const yearsOf = (days, yearDays) => Math.floor((Number(days) || 0) / (yearDays || 365));

/** "3 years, 20 days". */
export function ageText(days, yearDays) {
  const per = yearDays || 365;
  const d = Math.max(0, Math.floor(Number(days) || 0));
  return `${plural(Math.floor(d / per), "year")}, ${plural(d % per, "day")}`;
}

/** localStorage that never throws (private mode, storage off). */
export const stored = {
  get(key) {
    try {
      return localStorage.getItem(key);
    } catch (_e) {
      return null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch (_e) {
      /* storage off: this tab only */
    }
  },
  remove(key) {
    try {
      localStorage.removeItem(key);
    } catch (_e) {
      /* nothing kept */
    }
  },
};

/** Replace a list's children only when their keys changed (keeps focus). */
export function sameKeys(parent, keys) {
  const now = [...parent.children].map((el) => el.dataset.key || "").join("\n");
  return now === keys.join("\n");
}
