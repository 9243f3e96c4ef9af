// The coordinator's live dashboard: a websocket pushes the whole state, then deltas (what
// changed, web/coordination/delta.py); this script applies them, draws the state in place
// (keeping keyboard focus) and ticks the elapsed times.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  let state = null;
  let offsetMs = 0; // server clock minus browser clock
  let retry = 1000;
  let lastAnnounce = "";
  let knownAlerts = new Set();

  // Formatting ------------------------------------------------------------------------
  const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)} %`);
  const secs = (x) => (x === null || x === undefined ? "–" : duration(x * 1000));
  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) return `${h} h ${String(m).padStart(2, "0")}`;
    if (m) return `${m} min ${String(r).padStart(2, "0")} s`;
    return `${r} s`;
  }
  const now = () => Date.now() + offsetMs;
  const clock = (ms) =>
    new Date(ms).toLocaleTimeString("fr-FR", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit" });
  function text(id, value) {
    const el = $(id);
    if (el && el.textContent !== String(value)) el.textContent = value;
  }
  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  // Rows kept by id, so controls inside them keep focus across updates.
  function syncRows(tbody, items, key, create, update) {
    const existing = new Map([...tbody.rows].map((r) => [r.dataset.key, r]));
    const wanted = items.map((item) => {
      let row = existing.get(key(item));
      if (!row) {
        row = create(item);
        row.dataset.key = key(item);
      }
      existing.delete(key(item));
      update(row, item);
      return row;
    });
    for (const row of existing.values()) row.remove();
    wanted.forEach((row, i) => {
      if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] || null);
    });
  }

  // Drawing ---------------------------------------------------------------------------
  function draw(s) {
    state = s;
    offsetMs = s.now_ms - Date.now();
    const w = s.waiting;
    text("attente-total", w.total);
    text("attente-voice", w.voice);
    text("attente-chat", w.chat);
    text("attente-callback", w.callback);
    $("attente-max").dataset.since = w.oldest_since_ms ?? "";
    const t = s.today;
    text("jour", `(${s.day.split("-").reverse().join("/")})`);
    text("sl-seuil", `(réponse en moins de ${Math.round(s.service_level_s)} s)`);
    text("m-sl", pct(t.service_level));
    text("m-asa", secs(t.asa_s));
    text("m-abandon", pct(t.abandonment_rate));
    text("m-repondus", t.answered);
    text("m-recus", t.offered);
    text("m-occupation", pct(t.occupancy));
    text("m-dep", pct(t.match_departement));
    text("m-groupe", pct(t.match_group));
    text("m-region", pct(t.match_region));
    text("m-national", pct(t.match_national));
    drawLine(s);
    drawAlerts(s.alerts);
    drawQueue(s.queue);
    drawVolunteers(s);
    drawMap();
    drawSlots(s.slots);
    announce(s);
    tick();
  }

  function drawLine(s) {
    const line = s.line;
    if (line) {
      let label = line.open ? "Ligne : ouverte" : `Ligne : fermée (${line.reason})`;
      if (!line.open && line.next_open) label += `, réouverture le ${line.next_open}`;
      text("ligne", label);
      $("ligne").className = "pill " + (line.open ? "ok" : "closed");
    }
    if (s.registration_open !== null && s.registration_open !== undefined) {
      const open = s.registration_open;
      text("inscriptions", `Inscriptions : ${open ? "ouvertes" : "fermées"}`);
      text("inscriptions-etat", open ? "Les inscriptions sont ouvertes." : "Les inscriptions sont fermées.");
    }
  }

  function drawAlerts(alerts) {
    const list = $("alertes");
    const keys = new Set(alerts.map((a) => a.text));
    const same = keys.size === knownAlerts.size && [...keys].every((k) => knownAlerts.has(k));
    if (same) return;
    knownAlerts = keys;
    list.replaceChildren(
      ...(alerts.length
        ? alerts.map((a) => el("li", { class: `alert ${a.level}`, text: a.text }))
        : [el("li", { class: "none", text: "Aucune alerte." })])
    );
  }

  function drawQueue(queue) {
    const tbody = $("file").tBodies[0];
    $("file-vide").hidden = queue.length > 0;
    $("file").hidden = queue.length === 0;
    syncRows(tbody, queue, (q) => q.id, (q) => {
      const row = el("tr");
      for (let i = 0; i < 6; i++) row.append(el("td"));
      const form = el("form", { method: "post", action: `/coordination/contacts/${encodeURIComponent(q.id)}/priorite`, class: "js-action inline" });
      const select = el("select", { name: "priorite", id: `prio-${q.id}`, "aria-label": `Priorité du contact (${q.channel_name}, ${q.departement_name})` });
      for (let p = 0; p <= 9; p++) select.append(el("option", { value: String(p), text: p === 0 ? "0 (normale)" : p === 9 ? "9 (urgente)" : String(p) }));
      form.append(el("input", { type: "hidden", name: "csrf_token", value: csrf }), select, el("button", { type: "submit", text: "Changer" }));
      row.append(el("td", {}, [form]));
      bindForm(form);
      return row;
    }, (row, q) => {
      const cells = row.cells;
      setCell(cells[0], q.channel_name);
      setCell(cells[1], q.topic);
      setCell(cells[2], `${q.departement} ${q.departement_name}`);
      cells[3].dataset.since = q.since_ms;
      cells[3].classList.add("elapsed");
      setCell(cells[4], q.level_name);
      setCell(cells[5], q.ringing ? `Sonne chez ${q.ringing}` : "En attente");
      const select = row.querySelector("select");
      if (document.activeElement !== select) select.value = String(q.priority);
    });
  }

  function setCell(cell, value) {
    if (cell.textContent !== String(value)) cell.textContent = value;
  }

  const STATE_LABELS = {
    available: "Disponibles", reserved: "Sonnerie", call: "En appel", chats: "En chat",
    wrapup: "Compte rendu", paused: "En pause", logged_out: "Déconnectés",
  };

  function drawVolunteers(s) {
    $("etats").replaceChildren(
      ...Object.entries(s.volunteers_by_state).map(([k, n]) =>
        el("li", { class: `state ${k}` }, [el("span", { class: "n", text: String(n) }), " " + STATE_LABELS[k]]))
    );
    const vols = s.volunteers;
    $("benevoles-vide").hidden = vols.length > 0;
    $("benevoles").hidden = vols.length === 0;
    syncRows($("benevoles").tBodies[0], vols, (v) => v.id, (v) => {
      const row = el("tr");
      row.append(el("th", { scope: "row" }), el("td"), el("td", { class: "elapsed" }), el("td"));
      const actions = el("td", { class: "row-actions" });
      for (const [action, label] of [["pause", "Mettre en pause"], ["deconnexion", "Déconnecter"]]) {
        const form = el("form", { method: "post", action: `/coordination/presence/${encodeURIComponent(v.id)}/${action}`, class: "js-action inline" });
        form.append(el("input", { type: "hidden", name: "csrf_token", value: csrf }),
          el("button", { type: "submit", text: label, "aria-label": `${label} ${v.name}` }));
        bindForm(form);
        actions.append(form);
      }
      row.append(actions);
      return row;
    }, (row, v) => {
      setCell(row.cells[0], v.name);
      setCell(row.cells[1], v.label);
      row.cells[1].className = `state-cell ${v.state}`;
      row.cells[2].dataset.since = v.since_ms;
      setCell(row.cells[3], v.departement);
      const pause = row.cells[4].querySelector("form button");
      pause.disabled = v.presence === "paused";
    });
  }

  function level(n) {
    if (!n) return "n0";
    if (n === 1) return "n1";
    if (n <= 3) return "n2";
    if (n <= 6) return "n3";
    return "n4";
  }

  function drawMap() {
    if (!state) return;
    const mode = document.querySelector('input[name="carte-mode"]:checked').value;
    const values = state.map[mode] || {};
    const fig = document.querySelector("figure.map");
    fig.dataset.mode = mode;
    text("carte-titre", mode === "waiting" ? "Contacts en attente par département" : "Bénévoles en service par département");
    for (const path of document.querySelectorAll("#carte-svg path")) {
      path.setAttribute("class", level(values[path.id] || 0));
    }
    const codes = new Set([...Object.keys(state.map.waiting), ...Object.keys(state.map.on_duty)]);
    const rows = [...codes].sort().map((c) => ({ c, w: state.map.waiting[c] || 0, d: state.map.on_duty[c] || 0 }));
    syncRows($("carte-table").tBodies[0], rows, (r) => r.c,
      () => el("tr", {}, [el("th", { scope: "row" }), el("td"), el("td")]),
      (row, r) => { setCell(row.cells[0], r.c); setCell(row.cells[1], r.w); setCell(row.cells[2], r.d); });
    const overseas = [...codes].filter((c) => c.length === 3).map((c) => `${c} : ${state.map.waiting[c] || 0} en attente, ${state.map.on_duty[c] || 0} en service`);
    text("outre-mer", overseas.length ? `Outre-mer (hors carte) — ${overseas.join(" ; ")}` : "");
  }

  function drawSlots(slots) {
    if (!slots) {
      text("creneau-actuel", "Les créneaux ne sont pas disponibles.");
      $("absents-bloc").hidden = true;
      return;
    }
    if (slots.current_start_ms) {
      const source = slots.target_source_label ? ` (${slots.target_source_label})` : "";
      text("creneau-actuel", `Créneau en cours (${clock(slots.current_start_ms)}–${clock(slots.current_end_ms)}) : ${slots.booked} inscrits pour un objectif de ${slots.target}${source}.`);
    } else {
      text("creneau-actuel", slots.current_end_ms ? `Pas de créneau en cours ; prochain à ${clock(slots.current_end_ms)}.` : "Pas de créneau en cours.");
    }
    $("absents-bloc").hidden = slots.missing.length === 0;
    $("absents").replaceChildren(...slots.missing.map((m) => el("li", { text: m.name })));
    syncRows($("creneaux").tBodies[0], slots.day, (d) => String(d.start_ms),
      () => el("tr", {}, [el("th", { scope: "row" }), el("td"), el("td"), el("td")]),
      (row, d) => {
        setCell(row.cells[0], `${clock(d.start_ms)}–${clock(d.end_ms)}`);
        setCell(row.cells[1], d.booked);
        setCell(row.cells[2], d.target);
        const forecast = d.target_source === "coordinator" && d.forecast !== null ? ` (prévision : ${d.forecast})` : "";
        setCell(row.cells[3], d.closed ? "Créneau fermé (réservations gardées)" : (d.target_source_label || "") + forecast);
        row.className = d.closed ? "closed" : d.booked < d.target ? "short" : "";
      });
  }

  // Screen readers hear the waiting count and new alerts, not every tick.
  function announce(s) {
    const parts = [`${s.waiting.total} contact${s.waiting.total > 1 ? "s" : ""} en attente`];
    if (s.alerts.length) parts.push(`${s.alerts.length} alerte${s.alerts.length > 1 ? "s" : ""}`);
    const message = parts.join(", ") + ".";
    if (message !== lastAnnounce) {
      lastAnnounce = message;
      $("annonces").textContent = message;
    }
  }

  function tick() {
    const t = now();
    const since = $("attente-max").dataset.since;
    text("attente-max", since ? duration(t - Number(since)) : "–");
    for (const cell of document.querySelectorAll(".elapsed[data-since]")) {
      setCell(cell, duration(t - Number(cell.dataset.since)));
    }
  }
  setInterval(tick, 1000);

  // Actions ---------------------------------------------------------------------------
  function bindForm(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      if (event.submitter && event.submitter.name) data.set(event.submitter.name, event.submitter.value);
      const out = $("resultat");
      try {
        const reply = await fetch(form.action, {
          method: "POST", body: new URLSearchParams(data), credentials: "same-origin",
          headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
        });
        const body = await reply.json().catch(() => ({ message: "Action refusée." }));
        out.textContent = body.message || (reply.ok ? "Fait." : "Action refusée.");
        out.className = "notice " + (reply.ok ? "ok" : "error");
        if (reply.ok && form.querySelector("textarea[name=texte]")) form.reset();
      } catch (e) {
        out.textContent = "Le serveur ne répond pas. Réessayez.";
        out.className = "notice error";
      }
      out.hidden = false;
    });
  }
  document.querySelectorAll("form.js-action").forEach(bindForm);
  document.querySelectorAll('input[name="carte-mode"]').forEach((r) => r.addEventListener("change", drawMap));

  // Deltas ----------------------------------------------------------------------------
  // Rows come back in the server's order (web/coordination/live.py, LIST_ORDERS). Python's
  // lower() and toLowerCase() agree on names in Latin scripts; where they do not (a Greek
  // final sigma), only the order of those rows can differ, never their content.
  const STATE_RANK = ["available", "reserved", "call", "chats", "wrapup", "paused", "logged_out"];
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const LIST_ORDERS = {
    queue: (a, b) => cmp(b.priority, a.priority) || cmp(a.place_ms, b.place_ms) || cmp(a.id, b.id),
    volunteers: (a, b) => cmp(STATE_RANK.indexOf(a.state), STATE_RANK.indexOf(b.state))
      || cmp(a.name.toLowerCase(), b.name.toLowerCase()) || cmp(a.id, b.id),
  };

  // The state after one delta, or null when it does not follow the state held.
  function applyDelta(s, d) {
    if (!s || d.base !== s.version) return null;
    const next = Object.assign({}, s, d.set);
    for (const k of d.unset || []) delete next[k];
    for (const [key, rows] of Object.entries(d.lists || {})) {
      const byId = new Map((s[key] || []).map((row) => [row.id, row]));
      for (const id of rows.drop) byId.delete(id);
      for (const row of rows.put) byId.set(row.id, row);
      next[key] = [...byId.values()].sort(LIST_ORDERS[key]);
    }
    next.version = d.version;
    return next;
  }

  // The socket ------------------------------------------------------------------------
  // The server sends a new version at least every 5 s (its clock is part of the state). This
  // long without one, the line is down even if the socket looks open (a network that drops
  // without closing): say so rather than show old figures as current, and reconnect.
  const SILENT_MS = 20000;
  let socket = null;
  let lastHeard = 0;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/coordination/ws`);
    socket = ws;
    ws.onopen = () => { retry = 1000; lastHeard = Date.now(); };
    ws.onmessage = (msg) => {
      lastHeard = Date.now();
      const message = JSON.parse(msg.data);
      let next = message.full || state;
      for (const d of message.full ? [] : message.deltas) next = applyDelta(next, d);
      if (!next) { ws.close(); return; } // out of step: reconnecting brings the whole state
      draw(next);
      text("connexion", `À jour (${new Date(now()).toLocaleTimeString("fr-FR", { timeZone: "Europe/Paris" })})`);
      $("connexion").className = "pill ok";
      document.body.dataset.version = state.version;
    };
    ws.onclose = (event) => {
      if (event.code === 4403) { // the session ended (role taken away, account disabled)
        socket = null;
        text("connexion", "Votre session a pris fin. Rechargez la page pour vous reconnecter.");
        $("connexion").className = "pill closed";
        return;
      }
      text("connexion", "Connexion perdue, nouvelle tentative…");
      $("connexion").className = "pill closed";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }

  setInterval(() => {
    const silent = Date.now() - lastHeard;
    if (!socket || socket.readyState !== WebSocket.OPEN || silent < SILENT_MS) return;
    text("connexion", `Pas de nouvelles depuis ${Math.round(silent / 1000)} s : reconnexion…`);
    $("connexion").className = "pill closed";
    const dead = socket;
    dead.onclose = null;
    dead.onmessage = null;
    dead.close();
    connect();
  }, 1000);
  connect();
})();
