/*
 * The admin API of docs/OPERATIONS.md as the console speaks it: same-origin
 * fetches to /admin/api/ with the token as a Bearer header (never in a URL,
 * never a cookie), JSON in and out, and every failure as an ApiError that
 * says in a sentence what happened, for the note next to the control.
 *
 * The token lives in sessionStorage: it survives a reload of this tab and is
 * gone when the tab closes; another tab signs in on its own.
 */
import { session } from "./dom.js";

const TOKEN_KEY = "baolife.admin.token";
const BASE = "/admin/api/";

export const auth = {
  token: session.get(TOKEN_KEY),
  who: null, // {name, role} once whoami answered
  epoch: 0, // bumped at sign-out: answers of an older epoch are dropped
};

/** May this token act (ban, announce...)? A viewer only looks. */
export const isOperator = () => auth.who !== null && auth.who.role === "operator";

export function keepToken(token) {
  auth.token = token;
  auth.who = null;
  auth.epoch += 1;
  if (token) session.set(TOKEN_KEY, token);
  else session.remove(TOKEN_KEY);
}

/** A refused or failed request: `status` 0 when the server did not answer. */
export class ApiError extends Error {
  constructor(status, code, detail, retryAfter) {
    super(explain(status, code, detail, retryAfter));
    this.status = status;
    this.code = code || "";
  }
}

/** A request the page has moved past (signed out meanwhile). */
export class Stale extends Error {}

function explain(status, code, detail, retryAfter) {
  const said = detail ? `: ${detail}` : "";
  switch (status) {
    case 0:
      return "The server did not answer (network error). Try again.";
    case 400:
      return `Refused (400)${said || ": bad request"}`;
    case 401:
      return "The token was not accepted (401). Sign out and sign in again.";
    case 403:
      return `Not allowed (403)${said || ": needs the operator role"}`;
    case 404:
      return `Not found (404)${said}`;
    case 405:
      return "Not allowed (405): this method is not one the API takes here.";
    case 409:
      return `Conflict (409)${said || ": the player changed meanwhile"}`;
    case 413:
      return "Too large (413): the request body is over the server's limit.";
    case 429: {
      const wait = Number(retryAfter);
      return `Too many requests (429)${wait > 0 ? `: try again in ${Math.ceil(wait)} s` : ": wait a moment"}.`;
    }
    default:
      return `The server failed (${status})${said || (code ? `: ${code}` : "")}`;
  }
}

async function send(method, path, body) {
  const epoch = auth.epoch;
  const headers = { authorization: `Bearer ${auth.token || ""}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (_e) {
    if (epoch !== auth.epoch) throw new Stale();
    throw new ApiError(0, "network");
  }
  if (epoch !== auth.epoch) throw new Stale();
  return response;
}

async function failure(response) {
  let data = null;
  try {
    data = await response.json();
  } catch (_e) {
    /* not JSON: the status says enough */
  }
  const detail = data && typeof data.message === "string" ? data.message : "";
  const code = data && typeof data.error === "string" ? data.error : "";
  return new ApiError(response.status, code, detail, response.headers.get("retry-after"));
}

/** The JSON answer of `method path` (body sent as JSON when given). */
export async function call(method, path, body) {
  const response = await send(method, path, body);
  if (!response.ok) throw await failure(response);
  try {
    return await response.json();
  } catch (_e) {
    throw new ApiError(response.status, "not_json", "the answer was not JSON");
  }
}

export const get = (path) => call("GET", path);
export const post = (path, body = {}) => call("POST", path, body);

/** The answer of GET `path` as a Blob (an export to save). */
export async function download(path) {
  const response = await send("GET", path);
  if (!response.ok) throw await failure(response);
  return response.blob();
}

/** A path segment from a player id (whatever the server sent). */
export const seg = (id) => encodeURIComponent(String(id));
