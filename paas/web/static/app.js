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

// A deploy started from a form: its output so far is on the page; the rest comes live. When it
// succeeds, back to the app page (its outcome is flashed there); a failure stays, with its output.
const jobBox = document.getElementById("job-lines");
if (jobBox) {
  const job = document.getElementById("job");
  const ended = (state) => ["succeeded", "failed", "interrupted"].includes(state);
  const backIfDone = (state) => {
    if (state === "succeeded" && job.dataset.done) window.location.assign(job.dataset.done);
  };
  if (ended(job.dataset.state)) {
    backIfDone(job.dataset.state);
  } else {
    const state = document.getElementById("job-state");
    const source = new EventSource(new URL(jobBox.dataset.url, window.location.href));
    source.onmessage = (event) => {
      state.textContent = "running";
      jobBox.appendChild(document.createTextNode(event.data + "\n"));
      jobBox.scrollTop = jobBox.scrollHeight;
    };
    source.addEventListener("done", (event) => {
      source.close();
      const finished = JSON.parse(event.data);
      const outcome = document.getElementById("job-outcome");
      state.textContent = finished.state;
      document.getElementById("job-message").textContent = finished.message;
      outcome.className = "job-outcome job-" + (finished.state === "succeeded" ? "ok" : "error");
      outcome.hidden = false;
      backIfDone(finished.state);
    });
    // A stream the browser gave up on (an answer that was no stream: a restart, a cap) or the
    // server ended (signed out): the page itself says how the job stands, so load it again.
    const again = () => { source.close(); setTimeout(() => window.location.reload(), 2000); };
    source.addEventListener("failure", again);
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) again(); };
  }
}
