// The kiosk page: one EventSource on /v1/events; the DOM changes only when an event comes.
"use strict";
(() => {
  const cfg = window.KIOSK;
  const $ = (id) => document.getElementById(id);
  const words = cfg.words;
  let voice = "off";      // the voice loop's state
  let turn = null;        // the turn on screen: {turn, door, text, answer}
  let source = null;
  let retry = null;
  const temps = [];       // the chart: the last minutes of temperatures

  const key = () => localStorage.getItem("qwen-assistant-key") || "";
  const headers = () => {
    const h = { "Content-Type": "application/json" };
    if (key()) h.Authorization = "Bearer " + key();
    return h;
  };

  function show(state) {
    const el = $("state");
    el.dataset.state = state;
    el.textContent = words[state] || state;
    $("hint").hidden = !(state === "listening" || state === "ready");
  }

  function refresh() {          // the big state, from the voice loop and the turn on screen
    if (source === null) return show("offline");
    if (voice === "speaking") return show("speaking");
    if (turn && !turn.done) return show(turn.answer ? "answering" : "thinking");
    if (voice === "mic lost") return show("mic lost");
    show(voice === "listening" ? "listening" : "ready");
  }

  function message(text) { $("message").textContent = text || ""; }

  function door(name) {
    const span = document.createElement("span");
    span.className = "door";
    span.textContent = name;
    return span;
  }

  function remember(t) {         // a finished turn joins the history (newest first)
    const li = document.createElement("li");
    li.append(door(t.door), " " + t.text + " → " + (t.answer || "(" + t.state + ")"));
    const list = $("history");
    list.prepend(li);
    while (list.children.length > cfg.history) list.lastChild.remove();
  }

  function current() {
    $("current").hidden = !turn;
    if (!turn) return;
    $("current-door").textContent = turn.door;
    $("current-text").textContent = turn.text;
    $("current-answer").textContent = turn.answer;
  }

  function device(d) {
    const t = d.thermal || {};
    $("temp").textContent = t.celsius == null ? "no sensor" : t.celsius.toFixed(1) + " °C";
    $("fan").textContent = "fan " + Math.round((t.fan_duty || 0) * 100) + "%";
    $("lever").textContent = t.levers || (t.state && t.state !== "ok" ? t.state : "");
    const last = d.last || {};
    $("speed").textContent = last.decode_tok_s ? last.decode_tok_s.toFixed(1) + " tok/s" : "";
    if (t.celsius != null) {
      temps.push(t.celsius);
      if (temps.length > cfg.chart) temps.shift();
      chart();
    }
    // the device's own trouble has its place in the strip, for as long as it lasts: the
    // message line keeps what answered the person (a refusal's "back in 20 s")
    $("problem").textContent = d.problem || "";
  }

  function chart() {
    const c = $("chart"), g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    if (temps.length < 2) return;
    const lo = Math.min(...temps) - 1, hi = Math.max(...temps) + 1;
    g.strokeStyle = getComputedStyle(document.body).color;
    g.lineWidth = 2;
    g.beginPath();
    temps.forEach((v, i) => {
      const x = (i / (cfg.chart - 1)) * c.width;
      const y = c.height - ((v - lo) / (hi - lo)) * c.height;
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }

  // the API's error codes for a question not taken now → the refused event's reasons
  const REFUSALS = { too_hot: "hot", rate_limit_exceeded: "rate", queue_full: "queue", not_ready: "not_ready" };

  function refused(e) {
    const wait = e.retry_after ? Math.ceil(e.retry_after) : 0;
    const why = words["refused_" + e.reason] || words.refused_busy;
    message(why + (wait ? " " + words.back_in.replace("{s}", wait) : ""));
  }

  const handlers = {
    snapshot(e) {
      voice = e.status.voice;
      device(e.status);
      $("history").replaceChildren();
      e.turns.filter((t) => t.state !== "waiting" && t.state !== "answering").forEach(remember);
      const live = e.turns.filter((t) => t.state === "waiting" || t.state === "answering");
      turn = live.length ? live[live.length - 1] : null;
      current();
    },
    voice(e) { voice = e.state; if (e.problem) $("problem").textContent = e.problem; },
    wake() { message(""); },
    turn(e) { turn = { turn: e.turn, door: e.door, text: e.text, answer: "" }; message(""); current(); },
    piece(e) { if (turn && turn.turn === e.turn) { turn.answer += e.text; current(); } },
    outcome(e) {
      if (turn && turn.turn === e.turn) { turn.answer = (turn.answer.trim() + " " + e.said).trim(); current(); }
    },
    done(e) {
      remember({ door: e.door, text: turn && turn.turn === e.turn ? turn.text : "", answer: e.text, state: e.outcome });
      if (turn && turn.turn === e.turn) { turn.done = true; turn.answer = e.text; current(); }
    },
    refused(e) { refused(e); if (turn && turn.turn === e.turn) turn = null; current(); },
    cut(e) { message(words.cut); if (turn && turn.turn === e.turn) turn.done = true; },
    device(e) { device(e); },
  };

  function connect() {
    clearTimeout(retry);
    document.cookie = "qwen_assistant_key=" + encodeURIComponent(key()) + "; path=/v1/events; SameSite=Strict";
    const es = new EventSource("/v1/events");
    es.onopen = () => {
      source = es;
      $("link").textContent = words.online;
      $("link").className = "online";
      $("key-form").hidden = true;
      message("");
      refresh();
    };
    es.onmessage = (m) => {
      const e = JSON.parse(m.data);
      const handle = handlers[e.type];
      if (handle) { handle(e); refresh(); }
    };
    es.onerror = () => {
      es.close();
      source = null;
      $("link").textContent = words.offline;
      $("link").className = "offline";
      refresh();
      fetch("/status", { headers: headers() })
        .then((r) => { if (r.status === 401) { $("key-form").hidden = false; message(words.key); } })
        .catch(() => {})
        .finally(() => { retry = setTimeout(connect, cfg.reconnect_ms); });
    };
  }

  $("ask").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("question").value.trim();
    if (!text) return;
    $("question").value = "";
    const body = { messages: [{ role: "user", content: text }], speak: cfg.speak };
    try {
      const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
      if (!r.ok) {  // a refusal reads as the stream's refused event does; any other error as sent
        const err = (await r.json().catch(() => ({}))).error || {};
        const reason = REFUSALS[err.code];
        if (reason) refused({ reason, retry_after: Number(r.headers.get("Retry-After")) || 0 });
        else message(err.message || r.statusText);
      }
    } catch (e) { message(words.offline); }
  });

  $("ptt").addEventListener("click", async () => {
    try {
      const r = await fetch("/v1/voice/listen", { method: "POST", headers: headers() });
      if (!r.ok) message(((await r.json().catch(() => ({}))).error || {}).message || r.statusText);
    } catch (e) { message(words.offline); }
  });

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem("qwen-assistant-key", $("key").value);
    connect();
  });

  refresh();
  connect();
})();
