// The operator's view (admin token): every worker and its heartbeat, the queue, and this
// server's own worker, which can be stopped (gracefully) and started again.

import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { ago, dateTime } from "./format.js";
import { language, t } from "./i18n.js";
import { errorText, statusText } from "./messages.js";

const REFRESH_MS = 2000;
const LATE_HEARTBEAT_MS = 60_000;
const QUEUE = ["queued", "processing", "succeeded", "failed", "cancelled"];

export function renderAdmin(main) {
  document.title = `${t("nav.workers")} · Tapeline`;
  const own = h("p", { id: "own-worker" }, t("loading"));
  const startButton = h("button", { type: "button", id: "start-worker", onclick: () => act("POST", startButton) }, t("admin.start"));
  const stopButton = h("button", { type: "button", id: "stop-worker", onclick: () => act("DELETE", stopButton) }, t("admin.stop"));
  const problem = h("p", { class: "problem", role: "alert" });
  const queue = h("dl", { class: "queue", id: "queue" });
  const workers = h("tbody", { id: "workers" });
  const streams = h("p", { class: "hint", id: "streams" });
  const updated = h("p", { class: "hint", "aria-live": "off" });
  let busy = false;

  fill(
    main,
    h("h1", {}, t("nav.workers")),
    h(
      "section",
      { class: "card", "aria-labelledby": "own-h" },
      h("h2", { id: "own-h" }, t("admin.own")),
      own,
      h("div", { class: "actions" }, stopButton, startButton),
      h("p", { class: "hint" }, t("admin.graceful")),
      problem,
    ),
    h("section", { class: "card", "aria-labelledby": "queue-h" }, h("h2", { id: "queue-h" }, t("admin.queue")), queue, streams),
    h(
      "section",
      { class: "card", "aria-labelledby": "workers-h" },
      h("h2", { id: "workers-h" }, t("admin.all")),
      h(
        "table",
        { class: "workers" },
        h("thead", {}, h("tr", {}, ["admin.worker", "admin.host", "admin.state", "admin.jobs", "admin.heartbeat"].map((key) => h("th", { scope: "col" }, t(key))))),
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
      ? [h("span", { class: "badge", dataset: { status: "processing" } }, t("admin.running")), ` ${mine.id} · `, t("admin.slots", { busy: mine.currentJobs.length, of: mine.concurrency })]
      : [h("span", { class: "badge", dataset: { status: "cancelled" } }, t("admin.stopped")), " ", t("admin.notTaking")]);
    stopButton.disabled = busy || !mine;
    startButton.disabled = busy || Boolean(mine);
    fill(queue, QUEUE.map((status) => h("div", {}, h("dt", {}, statusText(status)), h("dd", { dataset: { status } }, String(data.queue[status] ?? 0)))));
    fill(streams, t("admin.streams", { count: data.streams.subscribers }), " ",
      t(data.streams.listening ? "admin.listening" : "admin.notListening"));
    const now = Date.now();
    fill(workers, data.workers.map((w) => {
      const late = w.state === "running" && now - Date.parse(w.heartbeatAt) > LATE_HEARTBEAT_MS;
      return h("tr", { dataset: { workerId: w.id, state: w.state }, class: late ? "late" : null },
        h("td", {}, h("code", {}, w.id)),
        h("td", {}, `${w.hostname} (pid ${w.pid})`),
        h("td", {}, t(`admin.state.${w.state}`), late ? ` – ${t("admin.late")}` : ""),
        h("td", {}, `${w.currentJobs.length} / ${w.concurrency}`),
        h("td", {}, h("time", { datetime: w.heartbeatAt, title: dateTime(w.heartbeatAt) }, ago(w.heartbeatAt, now))));
    }));
    if (!data.workers.length) fill(workers, h("tr", {}, h("td", { colspan: 5 }, t("admin.none"))));
    fill(updated, t("admin.updated", { time: new Date().toLocaleTimeString(language) }));
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
    fill(button, t(method === "POST" ? "admin.starting" : "admin.stopping"));
    try {
      show(await api("/api/admin/worker", { method }));
    } catch (err) {
      fill(problem, errorText(err.error || { code: "network" }));
    } finally {
      busy = false;
      fill(button, t(method === "POST" ? "admin.start" : "admin.stop"));
      refresh();
    }
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
