// The volunteer console: speaks protocol v1 (volunteers/PROTOCOL.md) over a websocket.
// No build step; everything shown to people is set with textContent (never innerHTML).
(function () {
  "use strict";

  const root = document.getElementById("console");
  if (!root) return;
  const VERSION = 1;
  const $ = (id) => document.getElementById(id);
  const state = {
    ws: null, ref: 0, pending: {}, offer: null, countdown: null, ring: null,
    tasks: {}, heartbeat: null, retry: 0, device: null, heartbeatS: 10, lastHeard: 0,
  };

  function say(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = "flash flash-" + (kind || "info");
    box.hidden = !text;
  }

  function announce(text) { $("announce").textContent = text; }

  // Connection -------------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + root.dataset.ws + "?v=" + VERSION);
    state.ws = ws;
    $("connection").textContent = "Connexion en cours…";
    ws.onopen = () => {
      state.retry = 0;
      $("connection").textContent = "Connecté";
      root.dataset.connected = "1";
    };
    ws.onmessage = (event) => {
      state.lastHeard = Date.now();
      handle(JSON.parse(event.data));
    };
    ws.onclose = lineLost;
  }

  function lineLost() {
    root.dataset.connected = "0";
    enablePresence(false);
    clearInterval(state.heartbeat);
    // Requests whose answer was lost with the line: say so, rather than wait forever.
    for (const resolve of Object.values(state.pending)) resolve({ ok: false, error: LOST });
    state.pending = {};
    const wait = Math.min(30, 2 ** state.retry++);
    $("connection").textContent = "Connexion perdue : nouvelle tentative dans " + wait + " s…";
    setTimeout(connect, wait * 1000);
  }

  // Every ping gets a pong: three heartbeats without a word from the server and the line is
  // down even if the socket looks open (a network that drops without closing). The server
  // logs the volunteer out about then; reconnecting gives their state back.
  function heartbeat() {
    const ws = state.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - state.lastHeard > 3 * state.heartbeatS * 1000) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.close();
      lineLost();
      return;
    }
    ws.send(JSON.stringify({ type: "ping" }));
  }

  const LOST = {
    code: "connection_lost",
    message: "La connexion a été coupée avant la réponse. Réessayez une fois la console reconnectée.",
  };

  // crypto.randomUUID needs https; getRandomValues works on a plain-http intranet too.
  function messageId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function send(message) {
    return new Promise((resolve) => {
      if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
        resolve({ ok: false, error: { message: "La console n'est pas connectée. Patientez." } });
        return;
      }
      const ref = String(++state.ref);
      state.pending[ref] = resolve;
      state.ws.send(JSON.stringify({ ...message, ref }));
    });
  }

  // Messages from the server -----------------------------------------------------------

  function handle(msg) {
    switch (msg.type) {
      case "welcome": return welcome(msg);
      case "state": return showState(msg);
      case "offer": return showOffer(msg);
      case "offer_previous": return offerPrevious(msg);
      case "offer_gone": return offerGone(msg);
      case "task": return taskUpdate(msg);
      case "chat": return chatMessages(msg);
      case "broadcast": return say("Message des coordinateurs : " + msg.text, "info");
      case "result": {
        const resolve = state.pending[msg.ref];
        delete state.pending[msg.ref];
        if (resolve) resolve(msg);
        return;
      }
      case "error": return say(msg.error.message, "error");
      default: return;
    }
  }

  function welcome(msg) {
    state.heartbeatS = msg.heartbeat_s || 10;
    clearInterval(state.heartbeat);
    state.heartbeat = setInterval(heartbeat, state.heartbeatS * 1000);
    showState(msg);
    $("why").hidden = msg.can_work;
    $("why").textContent = msg.why || "";
    $("presence-actions").hidden = !msg.can_work;
    enablePresence(true);
    if (msg.restored) say("Connexion rétablie : votre état a été restauré.", "info");
    // Cards of tasks still held stay as they are (a wrap-up being typed survives a dropped
    // line), and so does a wrap-up form not yet saved; their chat history comes again.
    const held = new Set(msg.tasks.map((task) => task.task));
    for (const [id, card] of Object.entries(state.tasks)) {
      if (held.has(id)) card.querySelector(".chat-log").textContent = "";
      else if (!wrapupPending(card)) removeTask(id);
    }
    for (const task of msg.tasks) taskUpdate(task);
    // Chat messages typed while the line was down go now (their ids keep them single).
    for (const id of held) {
      const form = state.tasks[id] && state.tasks[id].querySelector(".chat-form");
      if (form && form.querySelector(".chat-input").dataset.whenConnected) form.requestSubmit();
    }
    clearOffer();
    if (msg.offer) showOffer(msg.offer);
    if (msg.volunteer.softphone && root.dataset.softphone === "1") startSoftphone();
    root.dataset.ready = "1";
  }

  function showState(msg) {
    $("presence").textContent = msg.label;
    $("presence-reason").textContent = msg.reason ? "(" + msg.reason + ")" : "";
    root.dataset.presence = msg.presence;
    if (msg.presence !== "available") clearOffer();
  }

  // Offers -----------------------------------------------------------------------------

  function showOffer(offer) {
    clearOffer();
    state.offer = offer;
    const wait = Math.round(offer.waited_s / 60);
    $("offer-title").textContent = offer.channel_label + " : nouvelle demande";
    $("offer-summary").textContent = offer.departement_name + " (" + offer.departement + ") — " +
      offer.topic + " — attend depuis " + (wait >= 1 ? wait + " min" : offer.waited_s + " s");
    showPrevious(offer.previous);
    $("offer").hidden = false;
    root.dataset.offer = offer.task;
    const deadline = Date.now() + offer.remaining_ms;
    const tick = () => {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      $("offer-countdown").textContent = String(left);
      if (left <= 0) clearOffer();
    };
    tick();
    state.countdown = setInterval(tick, 250);
    startRing();
    announce("Nouvelle demande : " + $("offer-summary").textContent);
    $("offer-accept").focus();
  }

  function showPrevious(previous) {
    const list = $("offer-previous-list");
    list.textContent = "";
    for (const note of previous || []) {
      const li = document.createElement("li");
      li.textContent = note.topic + " — " + note.outcome + (note.referral ? " (" + note.referral + ")" : "") +
        (note.notes ? " : " + note.notes : "");
      list.appendChild(li);
    }
    $("offer-previous").hidden = !(previous || []).length;
  }

  // A returning caller's notes arrive just after their offer (read from the database).
  function offerPrevious(msg) {
    if (!state.offer || state.offer.task !== msg.task || !(msg.previous || []).length) return;
    state.offer.previous = msg.previous;
    state.offer.returning = true;
    showPrevious(msg.previous);
    // Repeats the offer: a screen reader may not have read it out yet.
    announce("Nouvelle demande : " + $("offer-summary").textContent +
      ". Cette personne a déjà été aidée : ses notes précédentes sont affichées.");
  }

  function clearOffer() {
    state.offer = null;
    clearInterval(state.countdown);
    stopRing();
    $("offer").hidden = true;
    delete root.dataset.offer;
  }

  function offerGone(msg) {
    if (state.offer && state.offer.task === msg.task) {
      clearOffer();
      say(msg.reason === "timeout" ? "Sans réponse : la demande est passée à un autre bénévole." :
        "Demande refusée : elle est proposée à un autre bénévole.", "info");
    }
  }

  function startRing() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      const ctx = new Ctx();
      const beep = () => {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.value = 0.15;
        osc.connect(gain).connect(ctx.destination);
        osc.start();
        osc.stop(ctx.currentTime + 0.4);
      };
      beep();
      state.ring = { ctx, timer: setInterval(beep, 1500) };
    } catch (e) { state.ring = null; }
  }

  function stopRing() {
    if (!state.ring) return;
    clearInterval(state.ring.timer);
    state.ring.ctx.close();
    state.ring = null;
  }

  $("offer-accept").addEventListener("click", async () => {
    if (!state.offer) return;
    const task = state.offer.task;
    const result = await send({ type: "accept", task });
    clearOffer();
    if (result.ok) {
      say("Demande acceptée.", "info");
      taskUpdate({ ...result, status: "assigned" });
    } else {
      say(result.error.message, "error");
    }
  });

  $("offer-decline").addEventListener("click", async () => {
    if (!state.offer) return;
    const result = await send({ type: "decline", task: state.offer.task });
    clearOffer();
    if (!result.ok) say(result.error.message, "error");
  });

  // Presence ---------------------------------------------------------------------------

  // A click before the server has said hello would be lost on a slow line: the buttons
  // wait for the welcome, and wait again while the console reconnects.
  function enablePresence(enabled) {
    for (const button of $("presence-actions").querySelectorAll("button")) button.disabled = !enabled;
  }

  async function setPresence(stateName, reason) {
    const result = await send({ type: "presence", state: stateName, reason: reason || "" });
    if (result.ok) { showState(result); say("", "info"); } else say(result.error.message, "error");
  }
  $("go-available").addEventListener("click", () => setPresence("available"));
  $("go-pause").addEventListener("click", () => setPresence("paused", $("pause-reason").value));
  $("go-out").addEventListener("click", () => setPresence("logged_out"));

  // Tasks ------------------------------------------------------------------------------

  function wrapupPending(card) {
    return !card.dataset.wrapped && card.dataset.status === "wrapup";
  }

  function taskUpdate(msg) {
    if (msg.status === "ended" || msg.status === "transferred") {
      const card = state.tasks[msg.task];
      if (card && msg.status === "ended" && wrapupPending(card)) {
        return; // the wrap-up form stays until it is submitted
      }
      if (msg.status === "transferred") {
        say(msg.back
          ? "La communication a été coupée : la personne a été remise en attente, à sa place."
          : "Demande transférée.", "info");
      }
      return removeTask(msg.task);
    }
    let card = state.tasks[msg.task];
    if (!card) card = addTask(msg);
    if (msg.channel) fillDetails(card, msg);
    const was = card.dataset.status;
    card.dataset.status = msg.status;
    const wrap = msg.status === "wrapup";
    card.querySelector(".wrapup").hidden = !wrap;
    card.querySelector(".task-actions").hidden = wrap;
    if (wrap && was !== "wrapup") { // not again on a reconnection: focus stays where one types
      card.querySelector(".chat-form").hidden = true;
      announce("Conversation terminée : remplissez la fiche.");
      card.querySelector(".w-topic").focus();
    }
    $("no-task").hidden = Object.keys(state.tasks).length > 0;
  }

  function fillDetails(card, msg) {
    card.dataset.channel = msg.channel;
    card.querySelector(".task-title").textContent = msg.channel_label + " — " + msg.topic;
    card.querySelector(".task-details").textContent =
      msg.departement_name + " (" + msg.departement + ")";
    card.querySelector(".chat").hidden = msg.channel !== "chat";
    if (msg.skill) card.querySelector(".w-topic").value = msg.skill;
  }

  function addTask(msg) {
    const card = $("task-template").content.firstElementChild.cloneNode(true);
    const id = "t-" + msg.task.replace(/[^A-Za-z0-9_-]/g, "");
    card.id = id;
    card.dataset.task = msg.task;
    // Unique ids so every label names its field.
    const pair = (labelSel, fieldSel, suffix) => {
      const field = card.querySelector(fieldSel);
      field.id = id + "-" + suffix;
      card.querySelector(labelSel).htmlFor = field.id;
    };
    pair(".chat-label", ".chat-input", "chat");
    pair(".transfer-label", ".transfer-target", "transfer");
    pair(".l-topic", ".w-topic", "topic");
    pair(".l-referral", ".w-referral", "referral");
    pair(".l-consent", ".w-consent", "consent");
    pair(".l-demarche", ".w-demarche", "demarche");
    pair(".l-notes", ".w-notes", "notes");
    card.querySelectorAll(".w-outcome").forEach((input) => {
      input.id = id + "-outcome-" + input.dataset.code;
      input.name = id + "-outcome";
      card.querySelector('.l-outcome[data-code="' + input.dataset.code + '"]').htmlFor = input.id;
    });
    card.querySelector(".task-complete").addEventListener("click", async () => {
      const result = await send({ type: "complete", task: msg.task });
      if (!result.ok) say(result.error.message, "error");
    });
    card.querySelector(".task-transfer").addEventListener("click", async () => {
      const value = card.querySelector(".transfer-target").value;
      if (!value) return say("Choisissez à qui transférer.", "error");
      const [kind, target] = value.split(":");
      const body = kind === "skill" ? { skill: target } : { to: target };
      const result = await send({ type: "transfer", task: msg.task, ...body });
      if (!result.ok) say(result.error.message, "error");
    });
    card.querySelector(".chat-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = card.querySelector(".chat-input");
      const text = input.value.trim();
      if (!text) return;
      // One id per message while it is unsent: sent again after its answer was lost with the
      // line, the server knows it and posts it once.
      if (input.dataset.midText !== text) {
        input.dataset.mid = messageId();
        input.dataset.midText = text;
      }
      // The line is down: the text stays and goes by itself once the console is back.
      if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
        input.dataset.whenConnected = "1";
        return say("Connexion en cours : votre message partira dès que la console sera reconnectée.", "info");
      }
      delete input.dataset.whenConnected;
      const result = await send({ type: "chat_send", task: msg.task, text, mid: input.dataset.mid });
      if (!result.ok) return say(result.error.message, "error");
      input.value = "";
      delete input.dataset.mid;
      delete input.dataset.midText;
    });
    card.querySelector(".wrapup").addEventListener("submit", (event) => submitWrapup(event, card));
    fillTransferTargets(card);
    $("tasks").appendChild(card);
    state.tasks[msg.task] = card;
    return card;
  }

  async function fillTransferTargets(card) {
    const select = card.querySelector(".transfer-target");
    select.textContent = "";
    const add = (value, label) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      select.appendChild(option);
    };
    add("", "— Choisir —");
    for (const opt of document.querySelectorAll(".w-topic option")) {
      if (opt.value && opt.value !== "autre") add("skill:" + opt.value, "Compétence : " + opt.textContent);
    }
    const result = await send({ type: "colleagues" });
    for (const c of (result.colleagues || [])) add("to:" + c.id, "Collègue : " + c.name + " (" + c.departement + ")");
  }

  async function submitWrapup(event, card) {
    event.preventDefault();
    const form = card.querySelector(".wrapup");
    const checked = form.querySelector(".w-outcome:checked");
    const result = await send({
      type: "wrapup",
      task: card.dataset.task,
      topic: form.querySelector(".w-topic").value,
      outcome: checked ? checked.value : "",
      referral: form.querySelector(".w-referral").value,
      consent: form.querySelector(".w-consent").checked,
      consent_demarche: form.querySelector(".w-demarche").value,
      notes: form.querySelector(".w-notes").value,
    });
    const error = form.querySelector(".w-error");
    // Sent again after a lost answer: the first one was saved.
    const saved = result.ok || result.error.code === "wrapup_exists";
    if (!saved) {
      error.textContent = result.error.message;
      error.hidden = false;
      return;
    }
    card.dataset.wrapped = "1";
    removeTask(card.dataset.task);
    say(result.message || "Fiche enregistrée. Merci !", "info");
  }

  function removeTask(taskId) {
    const card = state.tasks[taskId];
    if (card) card.remove();
    delete state.tasks[taskId];
    $("no-task").hidden = Object.keys(state.tasks).length > 0;
  }

  function chatMessages(msg) {
    const card = state.tasks[msg.task];
    if (!card) return;
    const log = card.querySelector(".chat-log");
    for (const m of msg.messages) {
      const li = document.createElement("li");
      li.className = "chat-" + m.author;
      const who = m.author === "volunteer" ? "Vous" : (m.author === "caller" ? (m.name || "La personne") : "Info");
      li.textContent = who + " : " + m.text;
      log.appendChild(li);
    }
  }

  // Softphone (Twilio Voice JS SDK) ----------------------------------------------------

  async function startSoftphone() {
    if (state.device || !window.Twilio || !window.Twilio.Device) return;
    const status = $("softphone-status");
    try {
      const response = await fetch(root.dataset.tokenUrl, { credentials: "same-origin" });
      const body = await response.json();
      if (!response.ok) { status.textContent = body.detail || "Téléphone du navigateur indisponible."; return; }
      const device = new window.Twilio.Device(body.token, { closeProtection: true });
      device.on("registered", () => { status.textContent = "Téléphone du navigateur prêt."; });
      device.on("error", () => { status.textContent = "Problème avec le téléphone du navigateur."; });
      device.on("tokenWillExpire", async () => {
        const again = await (await fetch(root.dataset.tokenUrl, { credentials: "same-origin" })).json();
        device.updateToken(again.token);
      });
      device.on("incoming", (call) => {
        // The volunteer accepted the task in the console: the call is theirs.
        call.accept();
        announce("Appel en ligne.");
      });
      await device.register();
      state.device = device;
    } catch (e) {
      status.textContent = "Téléphone du navigateur indisponible.";
    }
  }

  connect();
})();
