/*
 * BaoLife web client.
 *
 * Speaks the wire protocol of PROTOCOL.md (version 1) with the additions of
 * docs/PROTOCOL-NOTES.md over one WebSocket, and nothing else. No build step,
 * no dependencies: served as is by the server's HTTP listener.
 *
 * Safety rule: every string that comes from the server reaches the page
 * through textContent (or a Text node), never through HTML parsing.
 *
 * Flow: /config.json says where the WebSocket listens. A person registers
 * (the token goes to localStorage) or, on reload, the page logs in with the
 * saved token. A connection that drops is retried with exponential backoff
 * (with jitter) and resumed with `resume`; the state of the connection is
 * always shown in the top bar.
 */
"use strict";

(function () {
  const TOKEN_KEY = "baolife.token";
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 15000;
  const FEED_KEEP = 200;
  const TALK_KEEP = 50;
  const NOTICE_MS = 12000;
  const STAT_NAMES = ["health", "happiness", "smarts", "looks"];
  const ERROR_TITLES = {
    bad_request: "The server could not read that",
    unknown_type: "The server does not know that message",
    unauthenticated: "Not logged in",
    invalid_token: "Unknown login key",
    not_found: "Not found",
    invalid_choice: "Not one of the choices",
    not_allowed: "Not possible now",
    rate_limited: "Slow down",
    busy: "Busy",
    internal: "Server error",
  };

  // ------------------------------------------------------------------ helpers

  const $ = (id) => document.getElementById(id);

  /** A new element; string children become Text nodes (never parsed as HTML). */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key === "onclick") node.addEventListener("click", value);
      else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const words = (id) => String(id || "").replace(/_/g, " ");
  const plural = (n, one) => `${n} ${one}${n === 1 ? "" : "s"}`;

  const saved = {
    get() {
      try { return localStorage.getItem(TOKEN_KEY); } catch (_e) { return null; }
    },
    set(token) {
      try { localStorage.setItem(TOKEN_KEY, token); } catch (_e) { /* storage off: this tab only */ }
    },
    clear() {
      try { localStorage.removeItem(TOKEN_KEY); } catch (_e) { /* nothing saved */ }
    },
  };

  // ------------------------------------------------------------------ state

  const game = {
    token: saved.get(),
    player: null,
    view: null, // welcome.snapshot, kept current by state ops
    prompts: new Map(), // id -> {op, total}
    npcs: new Map(), // id -> npc view
    feed: [],
    talk: new Map(), // npc id -> [{who, text, failed}]
    talkingTo: null,
    pendingName: null, // a register in flight
    lastActions: "",
  };

  const net = {
    url: null,
    ws: null,
    online: false, // logged in on the current connection
    nextId: 1,
    pending: new Map(), // message id -> what it was for
    lastSeq: 0,
    resumable: false, // a stream was running: reconnect with resume
    attempt: 0,
    retryAt: 0,
    retryTimer: null,
    retryWhy: "",
    bye: null,
    leaving: false,
  };

  // The server's tick, extrapolated between frames to count prompts down.
  const clock = {
    tick: null,
    at: 0,
    hz: null, // from /config.json, else measured
    configured: false,
    first: null,
    observe(tick) {
      const now = performance.now();
      if (this.first === null) this.first = { tick, at: now };
      this.tick = tick;
      this.at = now;
      if (!this.configured && now - this.first.at > 2000) {
        this.hz = ((tick - this.first.tick) * 1000) / (now - this.first.at);
      }
    },
    now() {
      if (this.tick === null) return null;
      return this.tick + (this.hz ? ((performance.now() - this.at) * this.hz) / 1000 : 0);
    },
  };

  const dirty = new Set();
  const mark = (...parts) => parts.forEach((p) => dirty.add(p));

  // ------------------------------------------------------------------ connection

  /** Where the WebSocket is: /config.json names its port when the page came
   * straight from the HTTP listener; behind a proxy (another port) it is
   * /ws on the page's own origin. */
  async function discover() {
    const secure = location.protocol === "https:";
    let url = `${secure ? "wss" : "ws"}://${location.host}/ws`;
    try {
      const response = await fetch("config.json", { cache: "no-store" });
      if (response.ok) {
        const cfg = await response.json();
        const direct = !cfg.http_port || String(cfg.http_port) === (location.port || (secure ? "443" : "80"));
        if (direct && Number.isInteger(cfg.ws_port)) {
          const scheme = cfg.ws_tls ? "wss" : "ws";
          url = `${scheme}://${location.hostname}:${cfg.ws_port}${cfg.ws_path || "/ws"}`;
        }
        if (typeof cfg.tick_hz === "number" && cfg.tick_hz > 0) {
          clock.hz = cfg.tick_hz;
          clock.configured = true;
        }
      }
    } catch (_e) {
      /* no config: same origin */
    }
    return url;
  }

  /** The first message on a new connection: register, login or resume. */
  function hello() {
    if (game.pendingName !== null) return ["register", { name: game.pendingName }, { kind: "register" }];
    if (!game.token) return null;
    if (net.resumable) return ["resume", { token: game.token, last_seq: net.lastSeq }, { kind: "login" }];
    return ["login", { token: game.token }, { kind: "login" }];
  }

  function connect() {
    clearTimeout(net.retryTimer);
    net.retryTimer = null;
    net.bye = null;
    net.leaving = false;
    if (net.ws) {
      const old = net.ws;
      net.ws = null;
      old.close(1000);
    }
    setConn("connecting", "Connecting…");
    let ws;
    try {
      ws = new WebSocket(net.url);
    } catch (e) {
      setConn("offline", "Cannot connect");
      notify(`Cannot open the connection to ${net.url}: ${e.message}`);
      return;
    }
    net.ws = ws;
    ws.onopen = () => {
      if (net.ws !== ws) return;
      const first = hello();
      if (first === null) {
        ws.close(1000);
        return;
      }
      send(...first);
    };
    ws.onmessage = (event) => {
      if (net.ws === ws) onMessage(event.data);
    };
    ws.onclose = (event) => {
      if (net.ws !== ws) return;
      net.ws = null;
      onClose(event.code);
    };
  }

  /** Send one message; returns its id, or null when not connected. */
  function send(type, fields, meta) {
    const ws = net.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      notify("You are offline; wait for the connection to come back.");
      return null;
    }
    const id = net.nextId++;
    ws.send(JSON.stringify({ type, id, ...fields }));
    if (meta) net.pending.set(id, meta);
    return id;
  }

  function onClose(code) {
    const wasOnline = net.online;
    net.online = false;
    const bye = net.bye;
    net.bye = null;
    failPending();
    if (net.leaving) {
      setConn("idle", "Logged out");
      showStart();
    } else if (code === 4000 || bye === "replaced") {
      stopped("This life was opened in another tab or device.", "Play here");
    } else if (code === 4001 || bye === "idle") {
      stopped("Disconnected after being idle.", "Reconnect");
    } else if (game.pendingName !== null) {
      game.pendingName = null;
      setConn("offline", "Offline");
      notify("Could not reach the server to start your life. Try again.");
      showStart();
    } else if (!game.token) {
      setConn("idle", "");
    } else {
      retryLater(bye === "shutdown" ? "The server is restarting." : wasOnline ? "Connection lost." : "Cannot reach the server.");
    }
    mark("all");
    render();
  }

  function retryLater(why) {
    const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** net.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    net.attempt += 1;
    net.retryWhy = why;
    net.retryAt = performance.now() + delay;
    net.retryTimer = setTimeout(connect, delay);
    showRetry();
  }

  function showRetry() {
    const left = Math.max(0, Math.ceil((net.retryAt - performance.now()) / 1000));
    setConn("retrying", `${net.retryWhy} Reconnecting in ${left} s (attempt ${net.attempt})`);
    $("retry-now").hidden = false;
    $("retry-now").textContent = "Retry now";
  }

  /** The connection ended for a reason where retrying by itself is wrong. */
  function stopped(why, button) {
    net.resumable = false;
    setConn("offline", why);
    $("retry-now").hidden = false;
    $("retry-now").textContent = button;
  }

  /** End the session: `logout` when logged in (the page returns to the start
   * screen when the server closes), else just close. True if a logout is on
   * its way. */
  function hangUp() {
    clearTimeout(net.retryTimer);
    net.retryTimer = null;
    const ws = net.ws;
    if (ws && net.online && ws.readyState === WebSocket.OPEN) {
      net.leaving = true;
      send("logout", {});
      return true;
    }
    net.ws = null;
    net.online = false;
    if (ws) ws.close(1000);
    return false;
  }

  function setConn(state, text) {
    const conn = $("conn");
    conn.dataset.state = state;
    conn.textContent = text;
    if (state !== "retrying" && state !== "offline") $("retry-now").hidden = true;
  }

  /** Messages in flight when the connection ended were not answered. */
  function failPending() {
    for (const meta of net.pending.values()) {
      if (meta.kind === "say") markSayFailed(meta);
    }
    net.pending.clear();
    $("action-result").textContent = "";
  }

  // ------------------------------------------------------------------ frames and ops

  function onMessage(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (_e) {
      return;
    }
    if (!frame || frame.type !== "frame" || !Array.isArray(frame.ops)) return;
    if (typeof frame.tick === "number") clock.observe(frame.tick);
    const seq = frame.seq;
    if (Number.isInteger(seq) && seq > 0) {
      const newStream = seq === 1 && frame.ops.some((op) => op && op.op === "welcome");
      if (!newStream && net.lastSeq > 0 && seq !== net.lastSeq + 1) {
        resync(`frame ${seq} came after ${net.lastSeq}`);
        return;
      }
      net.lastSeq = seq;
      if (!newStream && !net.online && net.resumable && game.view !== null) resumed();
    }
    for (const op of frame.ops) {
      if (op && typeof op.op === "string") apply(op);
    }
    render();
  }

  /** `resume` answered by replaying the missed frames instead of a welcome. */
  function resumed() {
    net.online = true;
    net.attempt = 0;
    setConn("online", "Online");
    mark("all");
  }

  /** Frames were lost: log in again for a fresh, whole view. */
  function resync(why) {
    console.warn(`BaoLife: lost frames (${why}); logging in again`);
    net.resumable = false;
    net.lastSeq = 0;
    connect();
  }

  function apply(op) {
    switch (op.op) {
      case "registered":
        onRegistered(op);
        break;
      case "welcome":
        onWelcome(op);
        break;
      case "state":
        onState(op);
        break;
      case "prompt":
        game.prompts.set(op.id, { op, total: Math.max(1, op.expires_tick - (clock.now() ?? op.expires_tick)) });
        mark("prompts");
        break;
      case "prompt_closed":
        onPromptClosed(op);
        break;
      case "feed":
        addFeed(op.text);
        break;
      case "npc":
        game.npcs.set(op.id, op);
        mark("npcs", "talk");
        break;
      case "npc_say":
        onNpcSay(op);
        break;
      case "died":
        if (game.view) {
          game.view.alive = false;
          game.view.cause_of_death = op.cause;
          game.view.age_days = op.age_days;
        }
        game.prompts.clear();
        mark("all");
        break;
      case "ack":
        onAck(op);
        break;
      case "error":
        onError(op);
        break;
      case "bye":
        net.bye = op.reason;
        break;
      default:
        break; // pong, and ops this client does not know
    }
  }

  function onRegistered(op) {
    game.token = op.token;
    saved.set(op.token);
    game.pendingName = null;
    net.pending.delete(op.ref);
  }

  function onWelcome(op) {
    const s = op.snapshot || {};
    const sameLife = game.player === op.player && game.view !== null && game.view.life === s.life;
    if (!sameLife) {
      game.talk = new Map();
      game.talkingTo = null;
      $("prompt-result").textContent = "";
      $("action-result").textContent = "";
    }
    game.player = op.player;
    game.view = s;
    game.prompts = new Map((s.prompts || []).map((p) => [p.id, { op: p, total: null }]));
    game.npcs = new Map((s.npcs || []).map((n) => [n.id, n]));
    game.feed = (s.feed || []).slice(-FEED_KEEP);
    game.lastActions = "";
    net.pending.delete(op.ref);
    net.online = true;
    net.resumable = true;
    net.attempt = 0;
    setConn("online", "Online");
    showGame();
    mark("all");
  }

  function onState(op) {
    const view = game.view;
    if (!view) return;
    for (const [key, value] of Object.entries(op)) {
      if (key === "op") continue;
      if (key === "stats" && value && typeof value === "object") view.stats = { ...view.stats, ...value };
      else view[key] = value;
    }
    mark("me");
    if ("actions" in op || "alive" in op) mark("actions", "play");
  }

  function onPromptClosed(op) {
    const entry = game.prompts.get(op.id);
    game.prompts.delete(op.id);
    mark("prompts");
    if (!entry) return;
    const choice = (entry.op.choices || []).find((c) => c.key === op.choice);
    const label = choice ? choice.label : op.choice;
    const result = $("prompt-result");
    result.classList.remove("error");
    result.textContent =
      op.by === "player" ? `You chose: ${label}` : `Time ran out on “${entry.op.title}”: ${label}`;
  }

  function onNpcSay(op) {
    net.pending.delete(op.ref);
    addTalk(op.npc, { who: "npc", text: String(op.text) });
  }

  function onAck(op) {
    const meta = net.pending.get(op.ref);
    if (!meta) return;
    if (meta.kind === "act") {
      net.pending.delete(op.ref);
      const result = $("action-result");
      result.classList.remove("error");
      result.textContent = `Done: ${meta.label}`;
      mark("play");
    } else if (meta.kind === "answer") {
      net.pending.delete(op.ref);
    } else if (meta.kind === "say") {
      meta.acked = true; // the reply comes later as npc_say with the same ref
    } else if (meta.kind === "new_life") {
      net.pending.delete(op.ref);
    }
  }

  function onError(op) {
    const meta = op.ref !== undefined ? net.pending.get(op.ref) : undefined;
    if (meta) net.pending.delete(op.ref);
    const message = String(op.message || op.code || "error");
    const title = ERROR_TITLES[op.code] || "Error";
    if (op.code === "invalid_token") {
      game.token = null;
      saved.clear();
      net.resumable = false;
      const ws = net.ws;
      net.ws = null;
      if (ws) ws.close(1000);
      setConn("idle", "");
      notify("This login key does not match any life on this server. Start a new life, or log in with another key.");
      showStart();
      return;
    }
    if (meta && meta.kind === "register") {
      game.pendingName = null;
      const ws = net.ws;
      net.ws = null;
      if (ws) ws.close(1000);
      setConn("idle", "");
      showStart();
    }
    if (meta && meta.kind === "act") {
      const result = $("action-result");
      result.classList.add("error");
      result.textContent = `${meta.label}: ${message}`;
      mark("play");
    } else if (meta && meta.kind === "answer") {
      mark("play");
    } else if (meta && meta.kind === "say") {
      markSayFailed(meta);
    }
    notify(`${title}: ${message}`);
  }

  // ------------------------------------------------------------------ player commands

  function register(name) {
    game.pendingName = name;
    game.player = null;
    game.view = null;
    net.resumable = false;
    net.lastSeq = 0;
    connect();
  }

  function loginWith(token) {
    game.token = token;
    saved.set(token);
    game.player = null;
    game.view = null;
    net.resumable = false;
    net.lastSeq = 0;
    showLoading();
    connect();
  }

  function act(id, label) {
    const ref = send("act", { action: id }, { kind: "act", action: id, label });
    if (ref !== null) {
      $("action-result").classList.remove("error");
      $("action-result").textContent = `${label}…`;
    }
    mark("play");
    render();
  }

  function answer(promptId, key) {
    send("answer", { prompt: promptId, choice: key }, { kind: "answer", prompt: promptId });
    mark("play");
    render();
  }

  function say(npcId, text) {
    const line = { who: "me", text, failed: false };
    const ref = send("say", { npc: npcId, text }, { kind: "say", npc: npcId, line });
    if (ref === null) return false;
    addTalk(npcId, line);
    return true;
  }

  function markSayFailed(meta) {
    if (meta.line) meta.line.failed = true;
    mark("talk");
  }

  function saying(npcId) {
    for (const meta of net.pending.values()) if (meta.kind === "say" && (npcId === undefined || meta.npc === npcId)) return true;
    return false;
  }

  function busyWith(kind, key, value) {
    for (const meta of net.pending.values()) if (meta.kind === kind && (key === undefined || meta[key] === value)) return true;
    return false;
  }

  function addFeed(text) {
    game.feed.push(String(text));
    if (game.feed.length > FEED_KEEP) game.feed.splice(0, game.feed.length - FEED_KEEP);
    mark("feed");
  }

  function addTalk(npcId, line) {
    let log = game.talk.get(npcId);
    if (!log) game.talk.set(npcId, (log = []));
    log.push(line);
    if (log.length > TALK_KEEP) log.splice(0, log.length - TALK_KEEP);
    mark("talk");
  }

  // ------------------------------------------------------------------ screens

  function showStart() {
    $("loading").hidden = true;
    $("game").hidden = true;
    $("start").hidden = false;
    $("leave").hidden = true;
    $("who").textContent = "";
    const remembered = Boolean(game.token);
    $("continue").hidden = !remembered;
    $("register-hint").hidden = !remembered;
    document.title = "BaoLife";
  }

  function showLoading() {
    $("start").hidden = true;
    $("game").hidden = true;
    $("loading").hidden = false;
  }

  function showGame() {
    $("start").hidden = true;
    $("loading").hidden = true;
    $("game").hidden = false;
    $("leave").hidden = false;
  }

  let noticeTimer = null;
  function notify(text) {
    $("notice-text").textContent = text;
    $("notice").hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => ($("notice").hidden = true), NOTICE_MS);
  }

  // ------------------------------------------------------------------ rendering

  const canPlay = () => net.online && game.view !== null && game.view.alive !== false;

  function render() {
    if (!game.view || dirty.size === 0) return;
    const all = dirty.has("all");
    if (all || dirty.has("me")) renderMe();
    if (all || dirty.has("prompts")) renderPrompts();
    if (all || dirty.has("actions")) renderActions();
    if (all || dirty.has("npcs")) renderNpcs();
    if (all || dirty.has("talk")) renderTalk();
    if (all || dirty.has("feed")) renderFeed();
    renderPlayable();
    dirty.clear();
  }

  function age(days) {
    const perYear = game.view.year_days || 365;
    const years = Math.floor(days / perYear);
    const rest = days % perYear;
    return `${plural(years, "year")}, ${plural(rest, "day")}`;
  }

  function renderMe() {
    const v = game.view;
    $("who").textContent = v.name;
    document.title = `${v.name} · BaoLife`;
    $("me-name").textContent = v.name;
    $("me-life").textContent = `Life ${v.life ?? 1}`;
    $("me-age").textContent = v.alive === false ? `Lived ${age(v.age_days || 0)}` : `${age(v.age_days || 0)} old`;
    $("player-id").textContent = String(game.player);
    $("token-view").textContent = game.token || "";
    const stats = $("stats");
    if (stats.childElementCount === 0) {
      for (const name of STAT_NAMES) {
        stats.append(
          h("dt", { text: name }),
          h("dd", {},
            h("meter", { id: `stat-${name}`, min: 0, max: 100, low: 25, high: 75, optimum: 100 }),
            h("span", { id: `stat-${name}-num`, class: "num" })),
        );
      }
    }
    for (const name of STAT_NAMES) {
      const value = Number((v.stats || {})[name] ?? 0);
      $(`stat-${name}`).value = value;
      $(`stat-${name}-num`).textContent = String(value);
    }
    $("me-money").textContent = Number(v.money || 0).toLocaleString();
    $("me-job").textContent = v.job ? `${v.job.title} (${Number(v.job.salary).toLocaleString()} a year)` : "No job";
    $("me-education").textContent = words(v.education) || "None";
    const dead = v.alive === false;
    $("death").hidden = !dead;
    if (dead) {
      const cause = v.cause_of_death ? `: ${v.cause_of_death}` : "";
      $("death-text").textContent = `${v.name} died at ${Math.floor((v.age_days || 0) / (v.year_days || 365))}${cause}.`;
    }
  }

  function renderPrompts() {
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
        h("div", { class: "choices" }, ...choices),
        h("div", { class: "countdown" }, h("span", { class: "timeleft" }), h("progress", { max: 1, value: 1 })),
      );
      li.promptId = id;
      list.append(li);
    }
    $("prompts-empty").hidden = game.prompts.size > 0;
    renderCountdowns();
  }

  function renderCountdowns() {
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
    }
  }

  function renderActions() {
    const v = game.view;
    const ids = Array.isArray(v.actions) ? v.actions : [];
    $("actions-empty").hidden = ids.length > 0;
    $("actions-empty").textContent = v.alive === false ? "Your life has ended." : "Nothing you can do yet.";
    const key = ids.join("\n");
    if (key === game.lastActions && $("actions").childElementCount === ids.length) return;
    game.lastActions = key;
    const labels = v.action_labels || {};
    $("actions").replaceChildren(
      ...ids.map((id) => {
        const label = labels[id] || words(id);
        return h("button", { type: "button", text: label, "data-action": id, onclick: () => act(id, label) });
      }),
    );
  }

  function renderNpcs() {
    const items = [...game.npcs.values()].map((n) =>
      h("li", { class: n.alive === false ? "npc gone" : "npc", "data-npc": String(n.id) },
        h("span", {}, h("strong", { text: n.name }), " ", h("span", { class: "role", text: words(n.role) + (n.alive === false ? " (gone)" : "") })),
        h("button", {
          type: "button",
          class: "talk-btn",
          text: "Talk",
          disabled: n.alive === false,
          onclick: () => openTalk(n.id),
        }),
        h("meter", { min: 0, max: 100, value: Number(n.closeness) || 0, title: `closeness ${n.closeness}` }),
      ),
    );
    $("npcs").replaceChildren(...items);
    $("npcs-empty").hidden = items.length > 0;
  }

  function openTalk(npcId) {
    game.talkingTo = npcId;
    mark("talk");
    render();
    $("talk-text").focus();
  }

  function renderTalk() {
    const card = $("talk-card");
    const npc = game.talkingTo === null ? undefined : game.npcs.get(game.talkingTo);
    card.hidden = !npc;
    if (!npc) return;
    $("talk-name").textContent = npc.name;
    const lines = (game.talk.get(npc.id) || []).map((line) =>
      h("li", { class: line.who === "me" ? `from-me${line.failed ? " failed" : ""}` : "from-npc" },
        h("span", { class: "speaker", text: line.who === "me" ? "You" : npc.name }),
        line.text),
    );
    if (saying(npc.id)) lines.push(h("li", { class: "typing", text: `${npc.name} is thinking…` }));
    const log = $("talk-log");
    log.replaceChildren(...lines);
    log.scrollTop = log.scrollHeight;
  }

  function renderFeed() {
    $("feed").replaceChildren(...game.feed.slice().reverse().map((text) => h("li", { text })));
  }

  /** Enable what the player may use now: logged in, alive, nothing in flight. */
  function renderPlayable() {
    const ok = canPlay();
    for (const button of $("actions").children) button.disabled = !ok || busyWith("act");
    for (const li of $("prompts").children) {
      const busy = busyWith("answer", "prompt", li.promptId);
      for (const button of li.querySelectorAll("button")) button.disabled = !ok || busy;
    }
    const npc = game.talkingTo === null ? undefined : game.npcs.get(game.talkingTo);
    $("talk-send").disabled = !ok || saying() || !npc || npc.alive === false;
    $("new-life").disabled = !net.online || busyWith("new_life");
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    $("register-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const name = $("name").value.trim();
      if (!name) return;
      register(name);
      $("register-btn").disabled = true;
      setTimeout(() => ($("register-btn").disabled = false), 1000);
    });
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (key) loginWith(key);
    });
    $("continue-btn").addEventListener("click", () => loginWith(game.token));
    const forget = () => {
      if (!confirm("Forget the login key on this device? Without it you cannot come back to this life.")) return;
      hangUp();
      game.token = null;
      saved.clear();
      showStart();
    };
    $("forget-btn").addEventListener("click", forget);
    $("forget-here").addEventListener("click", forget);
    $("leave").addEventListener("click", () => {
      if (!hangUp()) {
        setConn("idle", "Logged out");
        showStart();
      }
    });
    $("retry-now").addEventListener("click", () => {
      net.attempt = 0;
      connect();
    });
    $("notice-close").addEventListener("click", () => ($("notice").hidden = true));
    $("new-life").addEventListener("click", () => {
      send("new_life", {}, { kind: "new_life" });
      mark("play");
      render();
    });
    $("talk-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("talk-text");
      const text = input.value.trim();
      if (!text || game.talkingTo === null) return;
      if (say(game.talkingTo, text)) input.value = "";
      render();
    });
    window.addEventListener("online", () => {
      if (net.retryTimer !== null) connect();
    });
    setInterval(() => {
      if (net.retryTimer !== null) showRetry();
      if (game.view) renderCountdowns();
    }, 250);
  }

  async function main() {
    wire();
    if (game.token) showLoading();
    net.url = await discover();
    if (game.token) connect();
    else showStart();
  }

  main();
})();
