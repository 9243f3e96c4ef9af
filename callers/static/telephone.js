// The demo telephone: keys typed are sent to the line like Twilio would send them.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let call = null;
  let timer = null;

  async function api(action, body) {
    const response = await fetch("/fake-twilio/telephone/api/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.message || "Erreur");
    return data;
  }

  function render(view) {
    call = view.call;
    $("line").hidden = false;
    $("heard").textContent = "";
    for (const text of view.said) {
      const li = document.createElement("li");
      li.className = "system";
      li.textContent = text;
      $("heard").appendChild(li);
    }
    $("state").textContent = view.ended ? "Appel terminé."
      : view.connected ? "En relation avec un bénévole."
      : view.waiting ? "En attente dans la file."
      : view.keys ? "La ligne attend des touches." : "";
    clearTimeout(timer);
    if (!view.ended && (view.waiting || view.connected)) {
      timer = setTimeout(() => act("wait"), 5000);
    }
  }

  async function act(action, extra) {
    try { render(await api(action, Object.assign({ call }, extra || {}))); }
    catch (error) { $("state").textContent = error.message; }
  }

  $("dial").addEventListener("submit", async (event) => {
    event.preventDefault();
    try { render(await api("call", { from: $("from").value })); }
    catch (error) { $("state").textContent = error.message; }
  });
  for (const button of document.querySelectorAll("#keypad button")) {
    button.addEventListener("click", () => { $("typed").value += button.dataset.key; });
  }
  $("send").addEventListener("click", () => {
    const digits = $("typed").value;
    $("typed").value = "";
    act("press", { digits });
  });
  $("silence").addEventListener("click", () => act("silence"));
  $("hangup").addEventListener("click", () => act("hangup"));
})();
