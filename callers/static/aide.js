// The caller's chat page. Everything shown is set with textContent: nothing typed by
// anyone is ever parsed as HTML. The signed token lives in sessionStorage so a reload
// (or a dropped connection) resumes the same conversation and place in the queue.
"use strict";

(function () {
  const TOKEN_KEY = "permanence-chat";
  const main = document.getElementById("contenu");
  const maxChars = parseInt(main.dataset.max, 10) || 2000;
  const $ = (id) => document.getElementById(id);
  let socket = null;
  let ended = false;
  let retries = 0;
  // The last message sent and the page's id for it, until it comes back from the server.
  let lastSent = "";
  let lastMid = "";
  // A message put back in the box after a lost line keeps its id: if it did arrive after
  // all, the server posts it once.
  let retry = null;
  // Enter pressed while the line was down: the text stays in the box and goes once connected.
  let sendWhenConnected = false;
  const PING_MS = 15000;
  let lastHeard = 0;
  const shown = new Set();

  function show(section) {
    for (const id of ["start", "offline", "chat"]) $(id).hidden = id !== section;
  }

  function formData(form) {
    const data = {};
    for (const [key, value] of new FormData(form).entries()) data[key] = String(value);
    return data;
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return { ok: response.ok, data };
  }

  const AUTHORS = { caller: "Vous", volunteer: "Bénévole", system: "" };

  function addMessage(msg) {
    if (shown.has(msg.id)) return;
    shown.add(msg.id);
    const item = document.createElement("li");
    item.className = msg.author;
    if (msg.author !== "system") {
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = msg.author === "volunteer" && msg.name ? msg.name : AUTHORS[msg.author];
      item.appendChild(who);
    }
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = msg.text;
    item.appendChild(text);
    $("messages").appendChild(item);
    item.scrollIntoView({ block: "nearest" });
  }

  function statusText(status) {
    if (status.state === "talking") {
      return (status.volunteer || "Un bénévole") + " vous répond.";
    }
    if (status.state === "ended") return "La discussion est terminée.";
    const position = status.position || 1;
    let text = position === 1
      ? "Vous êtes la prochaine personne à être aidée."
      : "Vous êtes en position " + position + " dans la file d'attente.";
    if (status.wait_minutes) {
      text += " Attente estimée : environ " + status.wait_minutes +
        (status.wait_minutes > 1 ? " minutes." : " minute.");
    }
    return text;
  }

  function setStatus(status) {
    const text = statusText(status);
    // Only a real change is announced (aria-live), not every refresh.
    if ($("status").textContent !== text) $("status").textContent = text;
    if (status.state === "ended") finish();
  }

  function finish() {
    ended = true;
    sessionStorage.removeItem(TOKEN_KEY);
    $("send-form").hidden = true;
    $("ended").hidden = false;
    if (socket) socket.close();
  }

  function connect(token) {
    show("chat");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/aide/ws?token=" + encodeURIComponent(token));
    socket = ws;
    ws.addEventListener("open", () => { retries = 0; lastHeard = Date.now(); });
    ws.addEventListener("message", (event) => {
      if (ws !== socket) return; // a line given up as silent
      lastHeard = Date.now();
      const data = JSON.parse(event.data);
      if (data.type === "hello") {
        for (const msg of data.messages) addMessage(msg);
        setStatus(data.status);
        restoreUnsent(data.messages);
        if (sendWhenConnected) {
          sendWhenConnected = false;
          $("send-error").textContent = "";
          $("send-form").requestSubmit();
        }
      } else if (data.type === "messages") {
        for (const msg of data.messages) {
          if (msg.author === "caller" && msg.mid === lastMid) lastSent = "";
          if (retry && msg.author === "caller" && msg.mid === retry.mid) arrivedAfterAll();
          addMessage(msg);
        }
      } else if (data.type === "status") {
        setStatus(data);
      } else if (data.type === "error") {
        $("send-error").textContent = data.message;
        // The message was refused: give the text back so nothing typed is lost.
        if (lastSent && !$("text").value) { $("text").value = lastSent; updateCount(); }
      } else if (data.type === "ended") {
        setStatus({ state: "ended" });
      }
    });
    ws.addEventListener("close", (event) => {
      if (ended || ws !== socket) return;
      if (event.code === 4403 || event.code === 1008) {
        sessionStorage.removeItem(TOKEN_KEY);
        $("status").textContent = "Cette discussion n'existe plus.";
        return;
      }
      lineLost(token);
    });
  }

  // Dropped: come back with the same token, a little later each time.
  function lineLost(token) {
    retries += 1;
    $("status").textContent = "Connexion perdue. Nouvelle tentative…";
    setTimeout(() => connect(token), Math.min(8000, 500 * 2 ** retries));
  }

  // The server answers each ping: three unanswered and the line is down even if the socket
  // looks open (a network that drops without closing), so the page reconnects.
  setInterval(() => {
    if (ended || !socket || socket.readyState !== WebSocket.OPEN) return;
    if (Date.now() - lastHeard > 3 * PING_MS) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const dead = socket;
      socket = null;
      dead.close();
      if (token) lineLost(token);
      return;
    }
    socket.send(JSON.stringify({ type: "ping" }));
  }, PING_MS);

  // A message sent just before the line dropped may never have reached us: if the
  // conversation coming back does not have it (by its id: the caller may well have said
  // "Oui" twice), it goes back in the box to be sent again.
  function restoreUnsent(messages) {
    if (!lastSent) return;
    const arrived = messages.some((m) => m.author === "caller" && m.mid === lastMid);
    if (!arrived && !$("text").value) {
      retry = { text: lastSent, mid: lastMid };
      $("text").value = lastSent;
      updateCount();
      $("send-error").textContent =
        "Votre dernier message n'est pas parti. Le revoici : appuyez sur Envoyer.";
    }
    lastSent = "";
  }

  // The message put back in the box had reached us after all (it was still on its way when
  // the line came back): nothing to send again.
  function arrivedAfterAll() {
    if ($("text").value === retry.text) {
      $("text").value = "";
      updateCount();
    }
    $("send-error").textContent = "";
    retry = null;
  }

  // crypto.randomUUID needs https; getRandomValues works on a plain-http intranet too.
  function messageId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function updateCount() {
    const length = $("text").value.length;
    $("count").textContent = length + " / " + maxChars + " caractères";
  }

  $("start-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("start-error").textContent = "";
    const { ok, data } = await postJson("/aide/api/start", formData(event.target));
    if (!ok) {
      $("start-error").textContent = data.message || "Une erreur est survenue. Réessayez.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, data.token);
    connect(data.token);
    $("text").focus();
  });

  $("offline-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("offline-error").textContent = "";
    const { ok, data } = await postJson("/aide/api/message", formData(event.target));
    if (!ok) {
      $("offline-error").textContent = data.message || "Une erreur est survenue. Réessayez.";
      return;
    }
    event.target.reset();
    $("offline-done").textContent =
      "Merci, votre message est bien enregistré. Un bénévole vous recontactera.";
  });

  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("send-error").textContent = "";
    const text = $("text").value;
    if (!text.trim()) return;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      sendWhenConnected = true;
      $("send-error").textContent =
        "Connexion en cours : votre message partira dès que la connexion sera rétablie.";
      return;
    }
    const mid = retry && retry.text === text ? retry.mid : messageId();
    retry = null;
    socket.send(JSON.stringify({ type: "send", text, mid }));
    lastSent = text;
    lastMid = mid;
    $("text").value = "";
    updateCount();
  });

  $("text").addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter makes a new line.
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("send-form").requestSubmit();
    }
  });
  $("text").addEventListener("input", updateCount);

  $("end").addEventListener("click", () => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "end" }));
    else finish();
  });

  updateCount();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) connect(token);
})();
