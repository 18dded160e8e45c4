/*
 * What the player asks for. Each command sends one message with a meta that
 * says where its answer belongs, and disables its control until then (one
 * request per double-click).
 */
import { addTalk } from "./ops.js";
import { busyWith, connect, hangUp, net, send, setStatus } from "./net.js";
import { clearNote, game, keepToken, mark, note, resetLife } from "./store.js";

const NAME_CHARS = 32;
const NAME_RULE = "Names can use letters, numbers and spaces, 1-32 characters.";

/** Why `name` cannot be a name, or "" when it may be sent. */
export function nameProblem(name) {
  if (!name.trim()) return "Please type a name: letters, numbers and spaces.";
  if ([...name].length > NAME_CHARS) return NAME_RULE;
  return "";
}

export function register(name) {
  clearNote("register");
  game.pendingName = name;
  resetLife();
  net.resumable = false;
  net.lastSeq = 0;
  connect();
}

export function loginWith(token) {
  clearNote("register");
  keepToken(token);
  resetLife();
  net.resumable = false;
  net.lastSeq = 0;
  connect();
}

/** Log out: the page goes back to the start screen with no old name. */
export function logOut() {
  if (!hangUp()) {
    resetLife();
    setStatus("idle", "Logged out");
    return false;
  }
  return true;
}

/** Do action `id` (for an NPC when `npc` is given). */
export function act(id, label, npc) {
  if (busyWith("act")) return;
  const where = npc === undefined ? `act:${id}` : `npc:${npc}`;
  const fields = npc === undefined ? { action: id } : { action: id, npc };
  const ref = send("act", fields, { kind: "act", action: id, label, where });
  if (ref === null) note(where, "You are offline; wait for the connection to come back.", "error");
  else note(where, `${label}…`, "busy");
  mark("actions", "npcs");
}

export function answer(promptId, key) {
  if (busyWith("answer", "prompt", promptId)) return;
  const ref = send("answer", { prompt: promptId, choice: key }, { kind: "answer", prompt: promptId });
  if (ref === null) note("prompt", "You are offline; your answer was not sent.", "error");
  mark("prompts");
}

export function say(npcId, text) {
  const line = { who: "me", text, failed: false, local: true };
  const ref = send("say", { npc: npcId, text }, { kind: "say", npc: npcId, line });
  if (ref === null) {
    note("talk", "You are offline; wait for the connection to come back.", "error");
    return false;
  }
  clearNote("talk");
  addTalk(npcId, line);
  return true;
}

export function setSpeed(x) {
  if (busyWith("speed")) return;
  const ref = send("speed", { x }, { kind: "speed", x });
  if (ref !== null) clearNote("speed");
  mark("me");
}

/** Ask for the story lines before the oldest one shown. */
export function earlierStory() {
  if (busyWith("story")) return;
  send("story", { before: game.storyFirst }, { kind: "story" });
  mark("story");
}

/** Open the Talk panel for an NPC; its remembered conversation is asked for once. */
export function openTalk(npcId) {
  game.talkingTo = npcId;
  clearNote("talk");
  if (!game.talkLoaded.has(npcId) && !busyWith("talks", "npc", npcId)) {
    send("talks", { npc: npcId }, { kind: "talks", npc: npcId });
  }
  mark("talk");
}

export function closeTalk() {
  game.talkingTo = null;
  mark("talk");
}

export function newLife(name) {
  if (busyWith("new_life")) return;
  const fields = name ? { name } : {};
  if (send("new_life", fields, { kind: "new_life" }) !== null) clearNote("new-life");
  mark("end");
}
