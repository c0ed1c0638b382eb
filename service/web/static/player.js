// Listening while reading: the recording in an <audio> element, and the transcript's lines (and
// words, when the engine timed them) as places to play from. While it plays, the line being
// spoken is marked and kept in view; space plays and pauses, the arrow keys step through lines.

import { streamUrl } from "./api.js";
import { h } from "./dom.js";
import { timestamp } from "./format.js";
import { t } from "./i18n.js";

const TYPING = new Set(["INPUT", "TEXTAREA", "SELECT", "BUTTON", "A", "AUDIO"]);

/** A player for the transcript list `list`; its lines are made with `item(segment)`. */
export function makePlayer(list) {
  const audio = h("audio", { id: "player", controls: true, preload: "metadata" });
  const gone = h("p", { class: "hint", id: "player-gone", hidden: true }, t("run.audioGone"));
  const element = h("div", { class: "player", role: "group", "aria-label": t("run.player") },
    audio, h("p", { class: "hint" }, t("run.playerHelp")), gone);
  let audioId = null;
  let lines = []; // [{start, end, node}] in time order
  let current = null;
  let pendingSeek = null;

  audio.addEventListener("error", () => {
    audio.hidden = true;
    gone.hidden = false;
  });
  audio.addEventListener("loadedmetadata", () => {
    if (pendingSeek !== null) seek(pendingSeek);
    pendingSeek = null;
  });
  audio.addEventListener("timeupdate", () => mark(lineAt(audio.currentTime * 1000), true));
  audio.addEventListener("seeked", () => mark(lineAt(audio.currentTime * 1000), true));

  function seek(ms) {
    if (audio.readyState < 1) {
      pendingSeek = ms;
      return;
    }
    audio.currentTime = ms / 1000;
  }

  function playFrom(ms) {
    seek(ms);
    mark(lineAt(ms), true);
    audio.play().catch(() => {}); // a browser may refuse to play before a gesture: it stays ready
  }

  /** The line being spoken at `ms`: the last one that started by then. */
  function lineAt(ms) {
    let found = null;
    for (const line of lines) {
      if (line.start > ms) break;
      found = line;
    }
    return found;
  }

  function mark(line, scroll) {
    if (line === current) return;
    current?.node.classList.remove("current");
    current?.node.removeAttribute("aria-current");
    current = line;
    if (!line) return;
    line.node.classList.add("current");
    line.node.setAttribute("aria-current", "true");
    if (scroll) line.node.scrollIntoView({ block: "nearest" });
  }

  function step(by) {
    if (!lines.length) return;
    const index = current ? lines.indexOf(current) : -1;
    const next = lines[Math.max(0, Math.min(lines.length - 1, index + by))];
    const playing = !audio.paused;
    seek(next.start);
    mark(next, true);
    if (playing) audio.play().catch(() => {});
  }

  function onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey || !audioId) return;
    if (TYPING.has(event.target.tagName) || event.target.isContentEditable) return;
    if (event.key === " ") {
      event.preventDefault();
      if (audio.paused) audio.play().catch(() => {});
      else audio.pause();
    } else if (event.key === "ArrowDown" || event.key === "ArrowRight") {
      event.preventDefault();
      step(1);
    } else if (event.key === "ArrowUp" || event.key === "ArrowLeft") {
      event.preventDefault();
      step(-1);
    }
  }
  document.addEventListener("keydown", onKey);

  /** One transcript line: its time is a button, its text (or each timed word) plays from there. */
  function item(segment) {
    const start = segment.start_ms ?? 0;
    const words = Array.isArray(segment.words) && segment.words.length
      ? segment.words.map((word, i) => [i ? " " : "", h("span", {
        class: "word", dataset: { start: word.start_ms },
        onclick: (event) => { event.stopPropagation(); playFrom(word.start_ms); },
      }, String(word.text).trim())])
      : segment.text || "…";
    return h("li", { dataset: { start, end: segment.end_ms ?? "" }, onclick: () => playFrom(start) },
      h("button", { type: "button", class: "ts", "aria-label": t("run.playFrom", { time: timestamp(start) }),
        onclick: (event) => { event.stopPropagation(); playFrom(start); } }, timestamp(start)),
      " ",
      h("span", { class: "text" }, words));
  }

  return {
    element,
    item,
    setAudio(id) {
      if (!id || id === audioId) return;
      audioId = id;
      audio.src = streamUrl(`/api/audio/${id}/content`);
    },
    /** Read the lines again after the list changed (a partial arrived, the transcript is done). */
    refresh() {
      lines = [...list.querySelectorAll("li[data-start]")].map((node) => ({
        start: Number(node.dataset.start),
        end: node.dataset.end === "" ? null : Number(node.dataset.end),
        node,
      }));
      current = null;
      if (audio.currentTime > 0) mark(lineAt(audio.currentTime * 1000), false);
    },
    /** Open at a moment (a search result): there, marked and in view, ready to play. */
    openAt(ms) {
      seek(ms);
      mark(lineAt(ms), true);
    },
    stop() {
      document.removeEventListener("keydown", onKey);
      audio.pause();
      audio.removeAttribute("src");
    },
  };
}
