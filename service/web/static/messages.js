import { t } from "./i18n.js";

// What the server's codes mean to a person. Codes not listed here (engine_not_configured,
// conflict, invalid_request, ...) keep the server's own message, which names the specifics.

/** The codes this page explains in its own words (`error.<code>` in i18n.js). */
const ERRORS = new Set([
  "audio_unreadable", "audio_missing", "upload_too_large", "unsupported_media_type",
  "upstream_timeout", "upstream_unavailable", "job_timeout", "worker_lost", "engine_refused",
  "cancelled", "unauthorized", "forbidden", "not_found", "network", "internal_error",
  "upload_expired", "deleted",
]);

/** A sentence for `{code, message}`; the server's own message for codes this page does not know,
 * and for an answer that was not the server's (`http_502` from a proxy) one naming its status. */
export function errorText(error) {
  if (!error) return "";
  if (ERRORS.has(error.code)) return t(`error.${error.code}`);
  const page = /^http_(\d+)$/.exec(error.code || "");
  if (page) return t("error.http", { status: page[1] });
  return error.message || t("error.generic");
}

export const STATUS = {
  queued: "Waiting",
  processing: "Transcribing",
  succeeded: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const STAGE = {
  queued: "Waiting for a worker",
  fetching: "Fetching the audio from its URL",
  uploading: "Preparing the audio",
  preparing: "Getting the speech model",
  analyzing: "Recognising speech",
  finalizing: "Putting the transcript together",
  done: "Finished",
};

export function statusText(status) {
  return STATUS[status] ? t(`status.${status}`) : status;
}

export function stageText(stage) {
  return STAGE[stage] ? t(`stage.${stage}`) : stage || "";
}

export const ACTIVE = new Set(["queued", "processing"]);

/**
 * The progress to show after `change`: within one attempt of a processing run it never goes
 * back (a live tick can overtake the stage change it belongs to); a new attempt starts over.
 */
export function nextProgress(shown, change) {
  if (change.progress === undefined || change.progress === null) return shown.progress;
  const sameAttempt = shown.status === "processing" && change.status === "processing"
    && (change.attempts === undefined || change.attempts === shown.attempts);
  return sameAttempt ? Math.max(shown.progress || 0, change.progress) : change.progress;
}
