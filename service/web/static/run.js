// One run: where it stands (live), the text transcribed so far while it runs, then its
// transcript and downloads; cancel and retry.

import { api, ApiError, downloadTranscript } from "./api.js";
import { announce, fill, h } from "./dom.js";
import { bytes, dateTime, duration } from "./format.js";
import { t } from "./i18n.js";
import { followRun } from "./live.js";
import { ACTIVE, errorText, nextProgress, stageText, statusText } from "./messages.js";
import { makePlayer } from "./player.js";

const FORMATS = ["txt", "srt", "vtt"];

/** One run's page; `atMs` (from a search result) is the moment to open the recording at. */
export function renderRun(main, runId, { atMs = null } = {}) {
  const POLLING_NOTE = t("live.runPolling");
  document.title = `${t("run.title")} · Tapeline`;
  const state = {
    status: null,
    stage: null,
    progress: 0,
    error: null,
    attempts: 0,
    elapsed: null, // {ms, at}: server-measured elapsed time and when we learnt it
    startOffsetMs: null, // from the run's creation to the start of its current attempt
    estimate: null, // {seconds, at}: the server's own estimate, when it gave one
    partials: new Map(), // chunkIndex → finished chunk of the current attempt, until done
  };

  const title = h("h1", { id: "run-title" }, t("runs.recording"));
  const meta = h("p", { class: "meta" });
  const badge = h("span", { class: "badge", id: "run-status" });
  const stage = h("span", { id: "run-stage", class: "detail" });
  const bar = h("progress", { id: "run-progress", max: 100, value: 0, "aria-label": t("run.progressLabel") });
  const percent = h("span", { class: "percent", id: "run-percent" }, "0%");
  const elapsed = h("dd", { id: "run-elapsed" }, "–");
  const remaining = h("dd", { id: "run-remaining" }, "–");
  const liveNote = h("p", { class: "live", id: "run-live", dataset: { mode: "connecting" } }, t("live.connecting"));
  const problem = h("div", { id: "run-problem", class: "problem-box", role: "alert", hidden: true });
  const cancelButton = h("button", { type: "button", id: "cancel", hidden: true, onclick: cancel }, t("run.cancel"));
  const retryButton = h("button", { type: "button", id: "retry", hidden: true, onclick: retry }, t("run.retry"));
  const actionProblem = h("p", { class: "problem", role: "alert" });
  const segments = h("ol", { class: "segments", id: "segments" });
  const transcriptHeading = h("h2", { id: "transcript-h" }, t("run.transcript"));
  const player = makePlayer(segments);
  const housekeeping = makeHousekeeping();
  const soFar = h("p", { class: "hint", id: "transcript-so-far", hidden: true });
  const downloads = h("div", { class: "downloads", role: "group", "aria-label": t("run.downloadGroup") },
    h("span", { class: "hint" }, t("run.download")),
    FORMATS.map((format) => h("button", {
      type: "button", class: "quiet", dataset: { format }, "aria-label": t("run.downloadAs", { format: format.toUpperCase() }),
      onclick: () => download(format),
    }, format.toUpperCase())));
  const transcriptSection = h(
    "section",
    { class: "card", id: "transcript", "aria-labelledby": "transcript-h", hidden: true },
    h("div", { class: "card-head" }, transcriptHeading, downloads),
    player.element,
    soFar,
    segments,
  );

  fill(
    main,
    h("p", {}, h("a", { href: "#/" }, t("run.back"))),
    title,
    housekeeping.element,
    meta,
    h(
      "section",
      { class: "card", "aria-labelledby": "status-h" },
      h("div", { class: "card-head" }, h("h2", { id: "status-h" }, t("run.status")), liveNote),
      h("p", { class: "status-line" }, badge, " ", stage),
      h("div", { class: "bar" }, bar, percent),
      h("dl", { class: "times" }, h("dt", {}, t("run.elapsed")), elapsed, h("dt", {}, t("run.left")), remaining),
      problem,
      h("div", { class: "actions" }, cancelButton, retryButton),
      actionProblem,
    ),
    transcriptSection,
  );

  // --- showing the state ---------------------------------------------------------------------

  function elapsedMs() {
    if (!state.elapsed) return null;
    const running = ACTIVE.has(state.status);
    return state.elapsed.ms + (running ? performance.now() - state.elapsed.at : 0);
  }

  function remainingText() {
    if (state.status === "queued") return t("run.waiting");
    if (!ACTIVE.has(state.status)) return "–";
    const spent = elapsedMs() - (state.startOffsetMs ?? NaN);
    if (state.progress > 0 && Number.isFinite(spent) && spent > 0) {
      return t("run.about", { time: duration((spent * (100 - state.progress)) / state.progress) });
    }
    if (state.estimate) {
      const left = state.estimate.seconds * 1000 - (performance.now() - state.estimate.at);
      return t("run.about", { time: duration(Math.max(0, left)) });
    }
    return t("run.workingOut");
  }

  function showTimes() {
    const ms = elapsedMs();
    fill(elapsed, ms === null ? "–" : duration(ms));
    fill(remaining, remainingText());
  }

  function show() {
    badge.dataset.status = state.status;
    fill(badge, statusText(state.status));
    fill(stage, ACTIVE.has(state.status) ? state.detail || stageText(state.stage) : "");
    const progress = state.status === "succeeded" ? 100 : Math.max(0, Math.min(100, state.progress || 0));
    bar.value = progress;
    bar.dataset.status = state.status;
    fill(percent, `${progress}%`);
    showTimes();
    problem.hidden = !state.error;
    if (state.error) {
      const retrying = ACTIVE.has(state.status);
      fill(
        problem,
        h("p", {}, retrying ? t("run.attemptFailed", { n: state.attempts }) : "", errorText(state.error)),
        state.error.message && state.error.code !== "cancelled" && state.error.message !== errorText(state.error)
          ? h("p", { class: "hint" }, t("run.details", { message: state.error.message, code: state.error.code }))
          : null,
      );
    }
    cancelButton.hidden = !ACTIVE.has(state.status);
    retryButton.hidden = !["failed", "cancelled"].includes(state.status);
  }

  function showRun(run) {
    const audioLength = state.durationMs ? duration(state.durationMs) : null;
    fill(meta, [run.engine && t("run.engine", { engine: run.engine }),
      run.language && t("run.languageIs", { language: run.language }),
      audioLength && t("run.length", { length: audioLength }), state.sizeBytes && bytes(state.sizeBytes),
      t("run.createdAt", { when: dateTime(run.createdAt) })].filter(Boolean).join(" · "));
    housekeeping.setAudio(run.audioId);
    player.setAudio(run.audioId);
    const created = Date.parse(run.createdAt);
    state.startOffsetMs = run.startedAt ? Date.parse(run.startedAt) - created : null;
    if (run.finishedAt) state.elapsed = { ms: Date.parse(run.finishedAt) - created, at: performance.now() };
    if (run.transcript && run.status === "succeeded") showTranscript(run.transcript);
  }

  function segmentItems(parts) {
    return parts.map((segment) => player.item(segment));
  }

  function showTranscript(transcript) {
    state.partials.clear();
    const parts = transcript.segments?.length ? transcript.segments : [{ start_ms: 0, text: transcript.text }];
    fill(segments, segmentItems(parts));
    if (!transcript.text) fill(segments, h("li", { class: "hint" }, t("run.noSpeech")));
    segments.dataset.partial = "false";
    fill(transcriptHeading, t("run.transcript"));
    player.refresh();
    if (atMs !== null) {
      player.openAt(atMs);
      atMs = null;
    }
    soFar.hidden = true;
    downloads.hidden = false;
    transcriptSection.hidden = false;
  }

  /** The finished chunks, in the recording's order, while the rest is still being transcribed. */
  function showPartials() {
    if (!ACTIVE.has(state.status) && state.status !== null) return;
    const parts = [...state.partials.values()].flatMap((chunk) => chunk.segments);
    if (!parts.length) return;
    fill(segments, segmentItems(parts.sort((a, b) => a.start_ms - b.start_ms)));
    segments.dataset.partial = "true";
    fill(transcriptHeading, t("run.soFar"));
    fill(soFar, t("run.stillGoing"));
    player.refresh();
    soFar.hidden = false;
    downloads.hidden = true;
    transcriptSection.hidden = false;
  }

  function takePartial(data) {
    state.partials.set(data.chunkIndex, data);
    showPartials();
  }

  // --- following it --------------------------------------------------------------------------

  function take(data) {
    if (data.audioId) {
      player.setAudio(data.audioId);
      housekeeping.setAudio(data.audioId);
    }
    const progress = nextProgress(state, data);
    for (const key of ["status", "stage", "attempts"]) if (data[key] !== undefined) state[key] = data[key];
    // A download's size, or the worker a queued run waits for; gone with the next stage.
    if (data.stage !== undefined || data.status !== undefined) state.detail = data.detail || data.waiting || null;
    state.progress = progress;
    if ("error" in data) state.error = data.error;
    if (state.status === "cancelled" && !state.error) state.error = { code: "cancelled", message: "" };
    if (data.timeElapsed !== undefined) state.elapsed = { ms: data.timeElapsed, at: performance.now() };
    if (data.estimatedTimeRemaining !== undefined && data.estimatedTimeRemaining !== null) {
      state.estimate = { seconds: data.estimatedTimeRemaining, at: performance.now() };
    }
    if (data.audio) {
      fill(title, data.audio.filename || t("runs.recording"));
      housekeeping.setName(data.audio.filename);
      document.title = `${data.audio.filename || t("run.title")} · Tapeline`;
      state.durationMs = data.audio.durationMs;
      state.sizeBytes = data.audio.sizeBytes;
    }
  }

  async function reload() {
    try {
      showRun(await api(`/api/runs/${runId}`));
      show();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) notFound();
    }
  }

  function onMessage(data) {
    if (data.event === "trouble") {
      fill(liveNote, t("live.trouble"));
      return;
    }
    if (liveNote.dataset.mode === "polling") fill(liveNote, POLLING_NOTE);
    if (data.event === "partial") {
      takePartial(data);
      return;
    }
    if (data.event === "so-far") {
      state.partials = new Map(data.chunks.map((chunk) => [chunk.chunkIndex, chunk]));
      showPartials();
      return;
    }
    if (data.transition === "started") {
      state.partials.clear(); // a new attempt transcribes from the start again
      if (segments.dataset.partial === "true") transcriptSection.hidden = true;
    }
    const before = state.status;
    const ms = elapsedMs();
    take(data);
    if (ACTIVE.has(before) && !ACTIVE.has(state.status) && data.timeElapsed === undefined && ms !== null) {
      state.elapsed = { ms, at: performance.now() };
    }
    if (data.event === "done") {
      state.progress = 100;
      announce(t("run.ready"));
    } else if (data.event === "error" && before !== state.status) {
      announce(errorText(state.error));
    }
    show();
    // A persisted transition (not a progress tick) may have started or finished an attempt.
    if (data.event !== "update" || (data.transition && data.transition !== "progress")) reload();
  }

  let stopFollowing = () => {};
  function follow() {
    stopFollowing();
    stopFollowing = followRun(runId, {
      onMessage,
      onMode: (mode) => {
        liveNote.dataset.mode = mode;
        fill(liveNote, mode === "live" ? t("live.live") : POLLING_NOTE);
      },
    });
  }

  function notFound() {
    stopFollowing();
    clearInterval(ticker);
    player.stop();
    fill(main, h("h1", {}, t("run.notFound")), h("p", {}, errorText({ code: "not_found" })), h("p", {}, h("a", { href: "#/" }, t("run.back"))));
  }

  // --- actions -------------------------------------------------------------------------------

  async function act(button, path) {
    button.disabled = true;
    fill(actionProblem);
    try {
      const run = await api(`/api/runs/${runId}/${path}`, { method: "POST" });
      take(run);
      showRun(run);
      show();
      return true;
    } catch (err) {
      fill(actionProblem, errorText(err.error || { code: "network" }));
      return false;
    } finally {
      button.disabled = false;
    }
  }

  async function cancel() {
    await act(cancelButton, "cancel");
  }

  async function retry() {
    if (await act(retryButton, "retry")) {
      transcriptSection.hidden = true;
      state.estimate = null;
      announce(t("run.tryingAgain"));
      follow();
    }
  }

  async function download(format) {
    fill(actionProblem);
    try {
      await downloadTranscript(runId, format);
    } catch (err) {
      fill(actionProblem, errorText(err.error || { code: "network" }));
    }
  }

  const ticker = setInterval(showTimes, 1000);
  follow();
  reload();

  // --- the recording's name, and deleting it --------------------------------------------------

  function makeHousekeeping() {
    let audioId = null;
    let name = "";
    const problem = h("span", { class: "problem", role: "alert" });
    const input = h("input", { id: "rename-input", "aria-label": t("run.renameLabel"), maxlength: 255, size: 40 });
    const form = h("form", { class: "rename", hidden: true, onsubmit: save },
      input, h("button", { type: "submit" }, t("run.save")),
      h("button", { type: "button", class: "quiet", onclick: close }, t("run.cancelEdit")));
    const renameButton = h("button", { type: "button", class: "quiet", id: "rename", disabled: true, onclick: open }, t("run.rename"));
    const deleteButton = h("button", { type: "button", class: "quiet danger", id: "delete-audio", disabled: true, onclick: remove }, t("run.delete"));
    const element = h("div", { class: "housekeeping" }, renameButton, deleteButton, form, problem);

    function open() {
      input.value = name;
      form.hidden = false;
      renameButton.hidden = true;
      input.focus();
      input.select();
    }
    function close() {
      form.hidden = true;
      renameButton.hidden = false;
    }
    async function save(event) {
      event.preventDefault();
      const wanted = input.value.trim();
      if (!wanted || !audioId) return;
      fill(problem);
      try {
        const audio = await api(`/api/audio/${audioId}`, { method: "PATCH", body: { filename: wanted } });
        name = audio.filename;
        fill(title, name);
        document.title = `${name} · Tapeline`;
        announce(t("run.renamed", { name }));
        close();
      } catch (err) {
        fill(problem, errorText(err.error || { code: "network" }));
      }
    }
    async function remove() {
      if (!audioId || !window.confirm(t("run.confirmDelete", { name: name || t("runs.aRecording") }))) return;
      fill(problem);
      deleteButton.disabled = true;
      try {
        await api(`/api/audio/${audioId}`, { method: "DELETE" });
        announce(t("run.deleted", { name }));
        location.hash = "#/";
      } catch (err) {
        fill(problem, errorText(err.error || { code: "network" }));
        deleteButton.disabled = false;
      }
    }
    return {
      element,
      setAudio(id) {
        audioId = id;
        renameButton.disabled = deleteButton.disabled = !id;
      },
      setName(filename) {
        if (filename) name = filename;
      },
    };
  }

  return () => {
    stopFollowing();
    clearInterval(ticker);
    player.stop();
  };
}
