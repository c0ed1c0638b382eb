// The operator's view (admin token): every worker and its heartbeat, the queue, and this
// server's own worker, which can be stopped (gracefully) and started again.

import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { ago } from "./format.js";
import { errorText } from "./messages.js";

const REFRESH_MS = 2000;
const LATE_HEARTBEAT_MS = 60_000;
const QUEUE = [
  ["queued", "Waiting"],
  ["processing", "Transcribing"],
  ["succeeded", "Done"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
];

export function renderAdmin(main) {
  document.title = "Workers · Tapeline";
  const own = h("p", { id: "own-worker" }, "Loading…");
  const startButton = h("button", { type: "button", id: "start-worker", onclick: () => act("POST", startButton) }, "Start worker");
  const stopButton = h("button", { type: "button", id: "stop-worker", onclick: () => act("DELETE", stopButton) }, "Stop worker");
  const problem = h("p", { class: "problem", role: "alert" });
  const queue = h("dl", { class: "queue", id: "queue" });
  const workers = h("tbody", { id: "workers" });
  const streams = h("p", { class: "hint", id: "streams" });
  const updated = h("p", { class: "hint", "aria-live": "off" });
  let busy = false;

  fill(
    main,
    h("h1", {}, "Workers"),
    h(
      "section",
      { class: "card", "aria-labelledby": "own-h" },
      h("h2", { id: "own-h" }, "This server's worker"),
      own,
      h("div", { class: "actions" }, stopButton, startButton),
      h("p", { class: "hint" }, "Stopping is graceful: running jobs finish (or go back to the queue) first."),
      problem,
    ),
    h("section", { class: "card", "aria-labelledby": "queue-h" }, h("h2", { id: "queue-h" }, "Queue"), queue, streams),
    h(
      "section",
      { class: "card", "aria-labelledby": "workers-h" },
      h("h2", { id: "workers-h" }, "All workers"),
      h(
        "table",
        { class: "workers" },
        h("thead", {}, h("tr", {}, ["Worker", "Host", "State", "Jobs", "Last heartbeat"].map((t) => h("th", { scope: "col" }, t)))),
        workers,
      ),
      updated,
    ),
  );

  function show(data) {
    const mine = data.worker;
    own.dataset.state = mine ? mine.state : "stopped";
    own.dataset.workerId = mine ? mine.id : "";
    fill(own, mine
      ? [h("span", { class: "badge", dataset: { status: "processing" } }, "Running"), ` ${mine.id} · ${mine.currentJobs.length} of ${mine.concurrency} job slots busy`]
      : [h("span", { class: "badge", dataset: { status: "cancelled" } }, "Stopped"), " This server is not taking jobs."]);
    stopButton.disabled = busy || !mine;
    startButton.disabled = busy || Boolean(mine);
    fill(queue, QUEUE.map(([status, label]) => h("div", {}, h("dt", {}, label), h("dd", { dataset: { status } }, String(data.queue[status] ?? 0)))));
    fill(streams, `Live streams open on this server: ${data.streams.subscribers}. `,
      data.streams.listening ? "Listening for changes." : "Not listening for changes (reconnecting).");
    const now = Date.now();
    fill(workers, data.workers.map((w) => {
      const late = w.state === "running" && now - Date.parse(w.heartbeatAt) > LATE_HEARTBEAT_MS;
      return h("tr", { dataset: { workerId: w.id, state: w.state }, class: late ? "late" : null },
        h("td", {}, h("code", {}, w.id)),
        h("td", {}, `${w.hostname} (pid ${w.pid})`),
        h("td", {}, w.state, late ? " – no heartbeat lately" : ""),
        h("td", {}, `${w.currentJobs.length} / ${w.concurrency}`),
        h("td", {}, h("time", { datetime: w.heartbeatAt, title: new Date(w.heartbeatAt).toLocaleString() }, ago(w.heartbeatAt, now))));
    }));
    if (!data.workers.length) fill(workers, h("tr", {}, h("td", { colspan: 5 }, "No worker has registered yet.")));
    fill(updated, `Updated ${new Date().toLocaleTimeString()}.`);
  }

  let timer = null;
  let stopped = false;
  async function refresh() {
    clearTimeout(timer);
    try {
      show(await api("/api/admin/worker"));
    } catch (err) {
      fill(problem, errorText(err.error || { code: "network" }));
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  async function act(method, button) {
    busy = true;
    stopButton.disabled = startButton.disabled = true;
    fill(problem);
    fill(button, method === "POST" ? "Starting…" : "Stopping…");
    try {
      show(await api("/api/admin/worker", { method }));
    } catch (err) {
      fill(problem, errorText(err.error || { code: "network" }));
    } finally {
      busy = false;
      fill(button, method === "POST" ? "Start worker" : "Stop worker");
      refresh();
    }
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
