// The home page: drop files to transcribe them, and every run of yours, kept live.

import { api, session } from "./api.js";
import { announce, fill, h } from "./dom.js";
import { bytes, dateTime } from "./format.js";
import { followRuns } from "./live.js";
import { ACTIVE, errorText, nextProgress, stageText, statusText } from "./messages.js";
import { uploadAudio } from "./upload.js";

const ENGINES = [
  ["", "Server default"],
  ["local", "Local (offline, English)"],
  ["gemini", "Gemini"],
  ["openai", "OpenAI"],
];
const LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pt", "pl", "ja", "zh"];

export function renderRuns(main) {
  document.title = "Runs · Tapeline";
  const runs = new Map(); // id -> run as shown
  const rows = new Map(); // id -> table row parts
  const names = new Map(); // audioId -> filename
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const tbody = h("tbody");
  const empty = h("p", { class: "hint", id: "no-runs" }, "No runs yet. Drop a recording above to start one.");
  const liveNote = h("p", { class: "live", id: "runs-live", dataset: { mode: "connecting" } }, "Connecting…");
  const more = h("button", { type: "button", class: "quiet", hidden: true, onclick: loadMore }, "Show older runs");
  let cursor = null;

  const fileInput = h("input", {
    id: "file",
    type: "file",
    multiple: true,
    accept: "audio/*,video/*,.wav,.mp3,.m4a,.ogg,.opus,.flac,.webm",
    class: "visually-hidden",
    onchange: () => {
      sendAll(fileInput.files);
      fileInput.value = "";
    },
  });
  const engine = h("select", { id: "engine" }, ENGINES.map(([value, label]) => h("option", { value }, label)));
  const language = h("input", { id: "language", list: "languages", placeholder: "automatic", size: 10, autocomplete: "off" });
  const zone = h(
    "label",
    { class: "dropzone", for: "file", id: "dropzone" },
    h("span", {}, h("strong", {}, "Drop recordings here"), " or ", h("span", { class: "link-like" }, "choose files")),
    h("span", { class: "hint" }, "WAV, MP3, M4A, OGG, Opus, FLAC or WebM; long recordings are fine."),
  );

  const onDragOver = (event) => {
    event.preventDefault();
    const inside = zone.contains(event.target);
    event.dataTransfer.dropEffect = inside ? "copy" : "none";
    zone.classList.toggle("over", inside);
  };
  const onDrop = (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (zone.contains(event.target)) sendAll(event.dataTransfer.files);
  };
  const onDragLeave = (event) => {
    if (!event.relatedTarget || !zone.contains(event.relatedTarget)) zone.classList.remove("over");
  };
  document.addEventListener("dragover", onDragOver);
  document.addEventListener("drop", onDrop);
  zone.addEventListener("dragleave", onDragLeave);

  fill(
    main,
    h("h1", { class: "visually-hidden" }, "Runs"),
    h(
      "section",
      { class: "card", "aria-labelledby": "new-h" },
      h("h2", { id: "new-h" }, "New transcript"),
      fileInput,
      zone,
      h(
        "div",
        { class: "options" },
        h("label", { for: "engine" }, "Engine"),
        engine,
        h("label", { for: "language" }, "Language"),
        language,
        h("datalist", { id: "languages" }, LANGUAGES.map((code) => h("option", { value: code }))),
      ),
      uploads,
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "runs-h" },
      h("div", { class: "card-head" }, h("h2", { id: "runs-h" }, session.isAdmin ? "All runs" : "Your runs"), liveNote),
      h(
        "table",
        { class: "runs", id: "runs" },
        h(
          "thead",
          {},
          h("tr", {}, h("th", { scope: "col" }, "Recording"), h("th", { scope: "col" }, "Status"),
            h("th", { scope: "col" }, "Progress"), h("th", { scope: "col" }, "Created")),
        ),
        tbody,
      ),
      empty,
      more,
    ),
  );

  // --- the list ------------------------------------------------------------------------------

  function upsert(change) {
    const shown = runs.get(change.id) || {};
    const run = { ...shown, ...change, progress: nextProgress(shown, change) };
    if (run.filename) names.set(run.audioId, run.filename);
    run.filename = names.get(run.audioId) || run.filename;
    runs.set(run.id, run);
    let row = rows.get(run.id);
    if (!row) {
      row = newRow(run);
      rows.set(run.id, row);
      placeRow(run, row.tr);
    }
    showRow(run, row);
    empty.hidden = runs.size > 0;
    if (!run.filename && run.audioId) lookUpName(run.audioId);
  }

  function newRow(run) {
    const link = h("a", { href: `#/runs/${run.id}` });
    const status = h("span", { class: "badge" });
    const detail = h("span", { class: "detail" });
    const bar = h("progress", { max: 100, value: 0, "aria-label": "Progress" });
    const percent = h("span", { class: "percent" });
    const created = h("td", {}, dateTime(run.createdAt));
    const tr = h("tr", { dataset: { runId: run.id } },
      h("td", {}, link), h("td", {}, status, detail), h("td", {}, h("div", { class: "progress-cell" }, bar, percent)), created);
    return { tr, link, status, detail, bar, percent };
  }

  function placeRow(run, tr) {
    const later = [...tbody.children].find((other) => (runs.get(other.dataset.runId)?.createdAt || "") < (run.createdAt || ""));
    tbody.insertBefore(tr, later || null);
  }

  function showRow(run, row) {
    fill(row.link, run.filename || "Recording");
    row.tr.dataset.status = run.status;
    row.status.dataset.status = run.status;
    fill(row.status, statusText(run.status));
    // The run page explains a failure; the list only says where each run stands.
    const retrying = ACTIVE.has(run.status) && run.error;
    const detail = retrying ? "Retrying after a problem" : run.status === "processing" ? stageText(run.stage) : "";
    fill(row.detail, detail);
    const progress = run.status === "succeeded" ? 100 : run.progress || 0;
    row.bar.value = progress;
    row.bar.dataset.status = run.status;
    row.bar.setAttribute("aria-label", `Progress of ${run.filename || "the recording"}`);
    fill(row.percent, `${progress}%`);
  }

  const pendingNames = new Set();
  async function lookUpName(audioId) {
    if (pendingNames.has(audioId)) return;
    pendingNames.add(audioId);
    try {
      const audio = await api(`/api/audio/${audioId}`);
      names.set(audioId, audio.filename);
      for (const run of runs.values()) if (run.audioId === audioId) upsert({ id: run.id });
    } catch {
      // the row keeps its generic name
    }
  }

  const refreshing = new Set();
  async function refresh(runId) {
    if (refreshing.has(runId)) return;
    refreshing.add(runId);
    try {
      upsert(await api(`/api/runs/${runId}`));
    } catch {
      // gone or unreachable: the stream or the next poll says more
    } finally {
      refreshing.delete(runId);
    }
  }

  function onMessage(data) {
    if (data.event === "snapshot") {
      const active = new Set(data.runs.map((r) => r.runId));
      for (const r of data.runs) upsert(fromStream(r));
      for (const run of runs.values()) if (ACTIVE.has(run.status) && !active.has(run.id)) refresh(run.id);
    } else if (data.event === "page") {
      for (const run of data.items) upsert(run);
    } else if (data.runId) {
      if (!runs.has(data.runId)) { refresh(data.runId); return; }
      upsert(fromStream(data));
      const name = runs.get(data.runId).filename || "A recording";
      if (data.event === "done") announce(`${name} is transcribed.`);
      if (data.event === "error" && data.error?.code !== "cancelled") announce(`${name} failed.`);
    }
  }

  function fromStream(r) {
    const change = { id: r.runId, audioId: r.audioId, status: r.status, stage: r.stage, progress: r.progress };
    for (const key of ["filename", "createdAt", "engine"]) if (r[key]) change[key] = r[key];
    if ("error" in r) change.error = r.error;
    return change;
  }

  async function loadPage() {
    const query = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const page = await api(`/api/runs?limit=50${query}`);
    for (const run of page.items) upsert(run);
    cursor = page.nextCursor;
    more.hidden = !cursor;
    empty.hidden = runs.size > 0;
  }

  async function loadMore() {
    more.disabled = true;
    try { await loadPage(); } finally { more.disabled = false; }
  }

  // --- uploading -----------------------------------------------------------------------------

  function sendAll(files) {
    for (const file of files) send(file);
  }

  async function send(file) {
    const controller = new AbortController();
    const bar = h("progress", { max: 100, value: 0, "aria-label": `Uploading ${file.name}` });
    const say = h("span", { class: "upload-status" }, "Uploading…");
    const stop = h("button", { type: "button", class: "quiet", onclick: () => controller.abort() }, "Stop");
    const item = h("li", { class: "upload" }, h("span", { class: "name" }, file.name, " ", h("span", { class: "hint" }, bytes(file.size))), bar, say, stop);
    uploads.prepend(item);
    const dismiss = () => {
      stop.replaceWith(h("button", { type: "button", class: "quiet", onclick: () => item.remove() }, "Dismiss"));
    };
    try {
      const upload = await uploadAudio(file, {
        token: session.token,
        signal: controller.signal,
        engine: engine.value,
        language: language.value.trim(),
        onProgress: (sent, total) => {
          const percent = total ? Math.floor((sent / total) * 100) : 0;
          bar.value = percent;
          fill(say, `Uploading… ${percent}%`);
        },
      });
      names.set(upload.audioId, file.name);
      const run = await api(`/api/runs/${upload.runId}`);
      upsert(run);
      item.dataset.state = "done";
      fill(say, "Uploaded · ", h("a", { href: `#/runs/${run.id}` }, "Open its run"));
      announce(`${file.name} is uploaded.`);
    } catch (err) {
      item.dataset.state = "failed";
      const text = err.name === "AbortError" ? "Upload stopped." : errorText(err.error || { code: "network" });
      fill(say, h("span", { class: "problem", role: "alert" }, text));
    }
    dismiss();
  }

  // --- live ----------------------------------------------------------------------------------

  let stopFollowing = () => {};
  let stopped = false;
  (async () => {
    try {
      const [, audio] = await Promise.all([loadPage(), api("/api/audio?limit=200")]);
      for (const a of audio.items) names.set(a.id, a.filename);
      for (const run of runs.values()) upsert({ id: run.id });
    } catch {
      // the stream below fills what it can
    }
    if (stopped) return;
    stopFollowing = followRuns({
      onMessage,
      onMode: (mode) => {
        liveNote.dataset.mode = mode;
        fill(liveNote, mode === "live" ? "Live" : "Live updates unavailable: refreshing every few seconds");
      },
    });
  })();

  return () => {
    stopped = true;
    stopFollowing();
    document.removeEventListener("dragover", onDragOver);
    document.removeEventListener("drop", onDrop);
  };
}
