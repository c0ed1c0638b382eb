// The home page: drop files to transcribe them, and every run of yours, kept live.

import { api, session } from "./api.js";
import { announce, fill, h } from "./dom.js";
import { bytes, dateTime, timestamp } from "./format.js";
import { t } from "./i18n.js";
import { followRuns } from "./live.js";
import { ACTIVE, errorText, nextProgress, stageText, statusText } from "./messages.js";
import { uploadAudio } from "./upload.js";

const ENGINES = [
  ["", "runs.serverDefault"],
  ["local", "runs.localEngine"],
  ["gemini", "Gemini"],
  ["openai", "OpenAI"],
];
const LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pt", "pl", "ja", "zh"];

export function renderRuns(main) {
  document.title = `${t("runs.title")} · Tapeline`;
  const runs = new Map(); // id -> run as shown
  const rows = new Map(); // id -> table row parts
  const names = new Map(); // audioId -> filename
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const tbody = h("tbody");
  const empty = h("p", { class: "hint", id: "no-runs" }, t("runs.none"));
  const liveNote = h("p", { class: "live", id: "runs-live", dataset: { mode: "connecting" } }, t("live.connecting"));
  const more = h("button", { type: "button", class: "quiet", hidden: true, onclick: loadMore }, t("runs.older"));
  const search = makeSearch();
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
  const engine = h("select", { id: "engine" }, ENGINES.map(([value, label]) => h("option", { value }, t(label))));
  const language = h("input", { id: "language", list: "languages", placeholder: t("runs.automatic"), size: 10, autocomplete: "off" });
  const zone = h(
    "label",
    { class: "dropzone", for: "file", id: "dropzone" },
    h("span", {}, h("strong", {}, t("runs.drop")), t("runs.or"), h("span", { class: "link-like" }, t("runs.choose"))),
    h("span", { class: "hint" }, t("runs.formats")),
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
    h("h1", { class: "visually-hidden" }, t("runs.title")),
    h(
      "section",
      { class: "card", "aria-labelledby": "new-h" },
      h("h2", { id: "new-h" }, t("runs.new")),
      fileInput,
      zone,
      h(
        "div",
        { class: "options" },
        h("label", { for: "engine" }, t("runs.engine")),
        engine,
        h("label", { for: "language" }, t("runs.language")),
        language,
        h("datalist", { id: "languages" }, LANGUAGES.map((code) => h("option", { value: code }))),
      ),
      uploads,
    ),
    search.element,
    h(
      "section",
      { class: "card", "aria-labelledby": "runs-h" },
      h("div", { class: "card-head" }, h("h2", { id: "runs-h" }, t(session.isAdmin ? "runs.all" : "runs.yours")), liveNote),
      h(
        "table",
        { class: "runs", id: "runs" },
        h(
          "thead",
          {},
          h("tr", {}, h("th", { scope: "col" }, t("runs.recording")), h("th", { scope: "col" }, t("runs.status")),
            h("th", { scope: "col" }, t("runs.progress")), h("th", { scope: "col" }, t("runs.created"))),
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
    const bar = h("progress", { max: 100, value: 0, "aria-label": t("runs.progress") });
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
    fill(row.link, run.filename || t("runs.recording"));
    row.tr.dataset.status = run.status;
    row.status.dataset.status = run.status;
    fill(row.status, statusText(run.status));
    // The run page explains a failure; the list only says where each run stands.
    const retrying = ACTIVE.has(run.status) && run.error;
    const detail = retrying ? t("runs.retrying") : run.status === "processing" ? stageText(run.stage) : "";
    fill(row.detail, detail);
    const progress = run.status === "succeeded" ? 100 : run.progress || 0;
    row.bar.value = progress;
    row.bar.dataset.status = run.status;
    row.bar.setAttribute("aria-label", t("runs.progressOf", { name: run.filename || t("runs.aRecording") }));
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
      const name = runs.get(data.runId).filename || t("runs.aRecording");
      if (data.event === "done") announce(t("runs.transcribed", { name }));
      if (data.event === "error" && data.error?.code !== "cancelled") announce(t("runs.failed", { name }));
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
    const bar = h("progress", { max: 100, value: 0, "aria-label": t("upload.of", { name: file.name }) });
    const say = h("span", { class: "upload-status" }, t("upload.uploading"));
    const stop = h("button", { type: "button", class: "quiet", onclick: () => controller.abort() }, t("upload.stop"));
    const item = h("li", { class: "upload" }, h("span", { class: "name" }, file.name, " ", h("span", { class: "hint" }, bytes(file.size))), bar, say, stop);
    uploads.prepend(item);
    const dismiss = () => {
      stop.replaceWith(h("button", { type: "button", class: "quiet", onclick: () => item.remove() }, t("upload.dismiss")));
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
          fill(say, t("upload.percent", { percent }));
        },
      });
      names.set(upload.audioId, file.name);
      const run = await api(`/api/runs/${upload.runId}`);
      upsert(run);
      item.dataset.state = "done";
      fill(say, t("upload.done"), h("a", { href: `#/runs/${run.id}` }, t("upload.open")));
      announce(t("upload.announce", { name: file.name }));
    } catch (err) {
      item.dataset.state = "failed";
      const text = err.name === "AbortError" ? t("upload.stopped") : errorText(err.error || { code: "network" });
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
        fill(liveNote, mode === "live" ? t("live.live") : t("live.listPolling"));
      },
    });
  })();

  // --- searching -----------------------------------------------------------------------------

  function makeSearch() {
    const input = h("input", { id: "search", type: "search", name: "q", placeholder: t("search.placeholder"), autocomplete: "off", maxlength: 200 });
    const clear = h("button", { type: "button", class: "quiet", hidden: true, onclick: reset }, t("search.clear"));
    const summary = h("p", { class: "hint", id: "search-summary", role: "status" });
    const results = h("ul", { class: "results", id: "search-results" });
    const element = h("section", { class: "card", "aria-labelledby": "search-h" },
      h("h2", { id: "search-h" }, h("label", { for: "search" }, t("search.label"))),
      h("form", { class: "search", role: "search", onsubmit: submit },
        input, h("button", { type: "submit" }, t("search.button")), clear),
      summary, results);

    function reset() {
      input.value = "";
      fill(summary);
      fill(results);
      clear.hidden = true;
      input.focus();
    }

    async function submit(event) {
      event.preventDefault();
      const words = input.value.trim();
      if (!words) { reset(); return; }
      clear.hidden = false;
      try {
        const found = await api(`/api/runs?q=${encodeURIComponent(words)}&limit=20`);
        fill(summary, found.items.length ? t("search.found", { count: found.items.length, words }) : t("search.none", { words }));
        fill(results, found.items.map(result));
      } catch (err) {
        fill(summary, errorText(err.error || { code: "network" }));
        fill(results);
      }
    }

    function result(run) {
      return h("li", { dataset: { runId: run.id } },
        h("a", { href: `#/runs/${run.id}` }, run.filename || t("runs.recording")),
        h("ul", { class: "moments" }, run.matches.map((match) => h("li", {},
          h("a", { href: `#/runs/${run.id}?t=${match.startMs}`, class: "moment",
            "aria-label": t("search.at", { time: timestamp(match.startMs) }) }, timestamp(match.startMs)),
          highlighted(match.snippet, match.highlights)))));
    }

    return { element };
  }

  return () => {
    stopped = true;
    stopFollowing();
    document.removeEventListener("dragover", onDragOver);
    document.removeEventListener("drop", onDrop);
  };
}

/** `snippet` with the matched ranges in <mark>, built as nodes: the text is never parsed as HTML. */
function highlighted(snippet, ranges) {
  const parts = [];
  let at = 0;
  for (const [start, end] of ranges) {
    parts.push(snippet.slice(at, start), h("mark", {}, snippet.slice(start, end)));
    at = end;
  }
  parts.push(snippet.slice(at));
  return h("span", { class: "snippet" }, parts);
}
