// Live status: the SSE streams, with polling when a stream cannot be kept open.
//
// Every stream message is an unnamed SSE message whose JSON carries `event`. A browser's
// EventSource reconnects by itself (sending Last-Event-ID, so the server replays what was
// missed); polling takes over only when the stream is closed for good (an HTTP error answer)
// or fails again and again without delivering anything.

import { api, streamUrl } from "./api.js";
import { ACTIVE } from "./messages.js";

export const POLL_MS = 2000;
const LIST_POLL_MS = 5000;
const ERRORS_BEFORE_POLLING = 2;

/**
 * Open `path` as an EventSource; call `onMessage(data)` for each message, and `onFail()` once
 * if the stream is closed for good or keeps failing. Returns a function that closes it.
 */
function openStream(path, { onMessage, onOpen, onFail }) {
  const source = new EventSource(streamUrl(path));
  let errors = 0;
  let closed = false;
  const close = () => {
    closed = true;
    source.close();
  };
  source.onopen = () => {
    errors = 0;
    onOpen?.();
  };
  source.onmessage = (message) => {
    errors = 0;
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    onMessage(data, close);
  };
  source.onerror = () => {
    if (closed) return;
    errors += 1;
    if (source.readyState === EventSource.CLOSED || errors >= ERRORS_BEFORE_POLLING) {
      close();
      onFail();
    }
  };
  return close;
}

/** The `/progress` answer in the shape of a per-run stream message. */
function progressMessage(progress) {
  if (progress.status === "succeeded") return { event: "done", ...progress };
  if (!ACTIVE.has(progress.status)) return { event: "error", ...progress };
  return { event: "update", ...progress };
}

/**
 * A stream with a polling fallback: messages from `path` while it works; once it fails,
 * `pollOnce(isStopped)` every `every` ms for as long as it returns true. `onMode("live" |
 * "polling")` says which. Returns a function that stops both.
 */
function streamOrPoll(path, { every, pollOnce, onMessage, onMode }) {
  let stopped = false;
  let timer = null;
  const isStopped = () => stopped;

  const poll = async () => {
    if (stopped) return;
    const again = await pollOnce(isStopped);
    if (again && !stopped) timer = setTimeout(poll, every);
  };

  const closeStream = openStream(path, {
    onOpen: () => onMode("live"),
    onMessage,
    onFail: () => {
      if (stopped) return;
      onMode("polling");
      poll();
    },
  });

  return () => {
    stopped = true;
    closeStream();
    clearTimeout(timer);
  };
}

/**
 * Follow one run: `onMessage` gets init, update and partial... then done or error, from the
 * per-run stream or, when it fails, from `GET /progress` every 2 s (with `{event: "so-far",
 * chunks}` from `GET /transcript?partial=1` while the run is processing). `onMode("live" |
 * "polling")` says which. Returns a function that stops following.
 */
export function followRun(runId, { onMessage, onMode }) {
  return streamOrPoll(`/api/runs/${runId}/events`, {
    every: POLL_MS,
    onMode,
    onMessage: (data, close) => {
      if (data.event === "done" || data.event === "error") close();
      onMessage(data);
    },
    pollOnce: async (isStopped) => {
      try {
        const message = progressMessage(await api(`/api/runs/${runId}/progress`));
        if (isStopped()) return false;
        onMessage(message);
        if (message.status === "processing") {
          const soFar = await api(`/api/runs/${runId}/transcript?partial=1&format=json`);
          if (isStopped()) return false;
          onMessage({ event: "so-far", chunks: [{ chunkIndex: 0, segments: soFar.segments }] });
        }
        return message.event !== "done" && message.event !== "error";
      } catch (err) {
        if (isStopped()) return false;
        onMessage({ event: "trouble", error: err.error || { code: "network" } });
        return true;
      }
    },
  });
}

/**
 * Follow every run of the signed-in user: `onMessage` gets snapshot, then update/done/error,
 * from the global stream; if it fails, `{event: "page", items}` from `GET /api/runs` every 5 s.
 */
export function followRuns({ onMessage, onMode }) {
  return streamOrPoll("/api/runs/events", {
    every: LIST_POLL_MS,
    onMode,
    onMessage: (data) => onMessage(data),
    pollOnce: async (isStopped) => {
      try {
        const page = await api("/api/runs?limit=50");
        if (!isStopped()) onMessage({ event: "page", items: page.items });
      } catch {
        // the next poll tries again; the list keeps what it showed
      }
      return true;
    },
  });
}
