// One run: where it stands (live), the text transcribed so far while it runs, then its
// transcript and downloads; cancel and retry.

import { api, ApiError, downloadTranscript } from "./api.js";
import { announce, fill, h } from "./dom.js";
import { bytes, dateTime, duration, timestamp } from "./format.js";
import { followRun } from "./live.js";
import { ACTIVE, errorText, nextProgress, stageText, statusText } from "./messages.js";

const FORMATS = ["txt", "srt", "vtt"];
const POLLING_NOTE = "Live updates unavailable: checking every 2 seconds";

export function renderRun(main, runId) {
  document.title = "Run · Tapeline";
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

  const title = h("h1", { id: "run-title" }, "Recording");
  const meta = h("p", { class: "meta" });
  const badge = h("span", { class: "badge", id: "run-status" });
  const stage = h("span", { id: "run-stage", class: "detail" });
  const bar = h("progress", { id: "run-progress", max: 100, value: 0, "aria-label": "Transcription progress" });
  const percent = h("span", { class: "percent", id: "run-percent" }, "0%");
  const elapsed = h("dd", { id: "run-elapsed" }, "–");
  const remaining = h("dd", { id: "run-remaining" }, "–");
  const liveNote = h("p", { class: "live", id: "run-live", dataset: { mode: "connecting" } }, "Connecting…");
  const problem = h("div", { id: "run-problem", class: "problem-box", role: "alert", hidden: true });
  const cancelButton = h("button", { type: "button", id: "cancel", hidden: true, onclick: cancel }, "Cancel");
  const retryButton = h("button", { type: "button", id: "retry", hidden: true, onclick: retry }, "Retry");
  const actionProblem = h("p", { class: "problem", role: "alert" });
  const segments = h("ol", { class: "segments", id: "segments" });
  const transcriptHeading = h("h2", { id: "transcript-h" }, "Transcript");
  const soFar = h("p", { class: "hint", id: "transcript-so-far", hidden: true });
  const downloads = h("div", { class: "downloads", role: "group", "aria-label": "Download the transcript" },
    h("span", { class: "hint" }, "Download"),
    FORMATS.map((format) => h("button", {
      type: "button", class: "quiet", dataset: { format }, "aria-label": `Download as ${format.toUpperCase()}`,
      onclick: () => download(format),
    }, format.toUpperCase())));
  const transcriptSection = h(
    "section",
    { class: "card", id: "transcript", "aria-labelledby": "transcript-h", hidden: true },
    h("div", { class: "card-head" }, transcriptHeading, downloads),
    soFar,
    segments,
  );

  fill(
    main,
    h("p", {}, h("a", { href: "#/" }, "← All runs")),
    title,
    meta,
    h(
      "section",
      { class: "card", "aria-labelledby": "status-h" },
      h("div", { class: "card-head" }, h("h2", { id: "status-h" }, "Status"), liveNote),
      h("p", { class: "status-line" }, badge, " ", stage),
      h("div", { class: "bar" }, bar, percent),
      h("dl", { class: "times" }, h("dt", {}, "Elapsed"), elapsed, h("dt", {}, "Time left"), remaining),
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
    if (state.status === "queued") return "Waiting for a worker";
    if (!ACTIVE.has(state.status)) return "–";
    const spent = elapsedMs() - (state.startOffsetMs ?? NaN);
    if (state.progress > 0 && Number.isFinite(spent) && spent > 0) {
      return `about ${duration((spent * (100 - state.progress)) / state.progress)}`;
    }
    if (state.estimate) {
      const left = state.estimate.seconds * 1000 - (performance.now() - state.estimate.at);
      return `about ${duration(Math.max(0, left))}`;
    }
    return "Working it out…";
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
        h("p", {}, retrying ? `Attempt ${state.attempts} did not work. Trying again. ` : "", errorText(state.error)),
        state.error.message && state.error.code !== "cancelled" && state.error.message !== errorText(state.error)
          ? h("p", { class: "hint" }, `Details: ${state.error.message} (${state.error.code})`)
          : null,
      );
    }
    cancelButton.hidden = !ACTIVE.has(state.status);
    retryButton.hidden = !["failed", "cancelled"].includes(state.status);
  }

  function showRun(run) {
    const audioLength = state.durationMs ? duration(state.durationMs) : null;
    fill(meta, [run.engine && `Engine: ${run.engine}`, run.language && `Language: ${run.language}`,
      audioLength && `Length: ${audioLength}`, state.sizeBytes && bytes(state.sizeBytes),
      `Created ${dateTime(run.createdAt)}`].filter(Boolean).join(" · "));
    const created = Date.parse(run.createdAt);
    state.startOffsetMs = run.startedAt ? Date.parse(run.startedAt) - created : null;
    if (run.finishedAt) state.elapsed = { ms: Date.parse(run.finishedAt) - created, at: performance.now() };
    if (run.transcript && run.status === "succeeded") showTranscript(run.transcript);
  }

  function segmentItems(parts) {
    return parts.map((segment) => h("li", {},
      h("span", { class: "ts" }, timestamp(segment.start_ms)), " ",
      h("span", { class: "text" }, segment.text || "…")));
  }

  function showTranscript(transcript) {
    state.partials.clear();
    const parts = transcript.segments?.length ? transcript.segments : [{ start_ms: 0, text: transcript.text }];
    fill(segments, segmentItems(parts));
    if (!transcript.text) fill(segments, h("li", { class: "hint" }, "No speech was recognised in this recording."));
    segments.dataset.partial = "false";
    fill(transcriptHeading, "Transcript");
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
    fill(transcriptHeading, "Transcript so far");
    fill(soFar, "Still transcribing: more text appears here as each part of the recording is done.");
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
      fill(title, data.audio.filename || "Recording");
      document.title = `${data.audio.filename || "Run"} · Tapeline`;
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
      fill(liveNote, "Lost contact with the server; still trying…");
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
      announce("The transcript is ready.");
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
        fill(liveNote, mode === "live" ? "Live" : POLLING_NOTE);
      },
    });
  }

  function notFound() {
    stopFollowing();
    clearInterval(ticker);
    fill(main, h("h1", {}, "Run not found"), h("p", {}, errorText({ code: "not_found" })), h("p", {}, h("a", { href: "#/" }, "← All runs")));
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
      announce("Trying again.");
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

  return () => {
    stopFollowing();
    clearInterval(ticker);
  };
}
