// Progressive enhancement only: every page works without this file.
"use strict";

// Forms that deploy take seconds: say so, and do not let a second click send them twice.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const button = form.querySelector("button:not([type=button])");
  if (!button || !form.dataset.busy) return;
  setTimeout(() => { button.disabled = true; button.textContent = form.dataset.busy; }, 0);
});

// "Type the app's name to confirm": the button wakes up when the name matches.
for (const input of document.querySelectorAll("input[data-confirm]")) {
  const button = input.form.querySelector("button.danger");
  const sync = () => { button.disabled = input.value !== input.dataset.confirm; };
  input.addEventListener("input", sync);
  sync();
}

// Live logs over Server-Sent Events, with a process-type filter.
const logBox = document.getElementById("log-lines");
if (logBox) {
  const state = document.getElementById("log-state");
  const filter = document.querySelector("#log-filter select");
  const MAX_LINES = 1000;
  let source = null;

  const setState = (text, cls) => { state.textContent = text; state.className = "muted " + cls; };
  const append = (text) => {
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 24;
    logBox.appendChild(document.createTextNode(text + "\n"));
    while (logBox.childNodes.length > MAX_LINES) logBox.removeChild(logBox.firstChild);
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  };
  const connect = () => {
    if (source) source.close();
    logBox.textContent = "";
    const url = new URL(logBox.dataset.url, window.location.href);
    if (filter.value) url.searchParams.set("type", filter.value);
    source = new EventSource(url);
    source.onopen = () => setState("live", "live");
    source.onmessage = (event) => append(event.data);
    source.addEventListener("failure", (event) => { append("error: " + event.data); source.close(); setState("stopped", "down"); });
    source.onerror = () => setState("reconnecting…", "down");
  };
  filter.addEventListener("change", connect);
  document.getElementById("log-clear").addEventListener("click", () => { logBox.textContent = ""; });
  connect();
}

// CPU and memory: the server samples docker stats when asked and renders the chart.
const metrics = document.getElementById("metrics-body");
if (metrics) {
  const refresh = async () => {
    try {
      const response = await fetch(metrics.dataset.url, { credentials: "same-origin" });
      if (response.ok) metrics.innerHTML = await response.text();  // server-rendered, autoescaped
    } catch (error) { /* the next tick tries again */ }
  };
  refresh();
  setInterval(refresh, 5000);
}
