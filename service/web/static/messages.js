// What the server's codes mean to a person. Codes not listed here (engine_not_configured,
// conflict, invalid_request, ...) keep the server's own message, which names the specifics.

const ERRORS = {
  audio_unreadable:
    "This file could not be read as audio. It may be empty, cut short, or not a sound file. " +
    "Try a complete WAV, MP3, M4A, OGG, Opus, FLAC or WebM recording.",
  audio_missing: "The recording is no longer stored on the server. Upload it again.",
  upload_too_large: "This file is larger than the server accepts. Try a shorter or compressed recording.",
  unsupported_media_type: "The file could not be sent as an upload. Try choosing it again.",
  upstream_timeout:
    "The transcription service took too long to answer. Tapeline retries this by itself; " +
    "if it keeps happening, try again later.",
  upstream_unavailable:
    "The transcription service is unavailable right now. Tapeline retries this by itself; " +
    "if it keeps happening, try again later.",
  job_timeout:
    "Transcribing took longer than this server allows, so it was stopped. " +
    "Try a shorter recording, or ask the administrator to raise the time limit.",
  worker_lost:
    "The machine transcribing this recording stopped responding. " +
    "The run was handed to another worker; if it failed, press Retry.",
  engine_refused:
    "The transcription engine refused this recording. Check that it is speech in the chosen " +
    "language, or try another engine.",
  cancelled: "You cancelled this run. Press Retry to transcribe it again.",
  unauthorized: "Your token is not valid (unknown or revoked). Sign in again.",
  forbidden: "This needs the administrator's token.",
  not_found: "This run does not exist, or it belongs to someone else.",
  network: "The server could not be reached. Check your connection; the page keeps trying.",
  internal_error: "Something went wrong on the server. Try again; if it keeps happening, tell the administrator.",
  upload_expired: "The unfinished upload is no longer on the server. Drop the file again to start over.",
};

/** A sentence for `{code, message}`; the server's own message for codes this page does not know. */
export function errorText(error) {
  if (!error) return "";
  return ERRORS[error.code] || error.message || "Something went wrong.";
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
  uploading: "Preparing the audio",
  preparing: "Getting the speech model",
  analyzing: "Recognising speech",
  finalizing: "Putting the transcript together",
  done: "Finished",
};

export function statusText(status) {
  return STATUS[status] || status;
}

export function stageText(stage) {
  return STAGE[stage] || stage || "";
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
