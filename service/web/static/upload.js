// Sending one file to the server, resumably: a small tus 1.0.0 client (core, creation,
// termination) against /api/uploads/. A dropped connection asks HEAD where the server stands and
// goes on from there; the upload's address is kept in localStorage, so a reload resumes it too.

import { ApiError, errorFromBody } from "./api.js";

const ENDPOINT = "/api/uploads/";
const TUS_VERSION = "1.0.0";
const KEPT = "tapeline.upload:";

/** How the uploads behave; the browser tests shrink `chunkSize` so a small file takes several
 * PATCHes. `retryDelays` are the waits (ms) before each retry after a failure. */
export const settings = {
  chunkSize: 8 * 1024 * 1024,
  retryDelays: [0, 1000, 3000, 10_000, 30_000],
};

/**
 * Upload `file` through tus with `autoTranscribe`, and resolve with the finished upload as
 * `GET /api/uploads/{id}` shows it: `audioId` and `runId` (the run the server queued).
 * `engine` and `language` go with it as metadata. `onProgress(sentBytes, totalBytes)` follows
 * the bytes on the wire; aborting `signal` terminates the upload on the server (tus DELETE) and
 * rejects with an AbortError. Failures reject with an ApiError.
 */
export async function uploadAudio(file, { token, onProgress = () => {}, signal, engine, language } = {}) {
  const metadata = { filename: file.name, filetype: file.type, engine, language, autoTranscribe: "1" };
  const key = fingerprint(file, token, metadata);
  const call = (method, url, options = {}) => request(method, url, { token, signal, ...options });
  let url = localStorage.getItem(key);
  try {
    let offset = url ? await resumeAt(call, url) : null;
    if (offset === null) {
      const created = await call("POST", ENDPOINT, {
        headers: { "Upload-Length": String(file.size), "Upload-Metadata": encodeMetadata(metadata) },
      });
      url = new URL(created.getResponseHeader("Location"), location.href).pathname;
      localStorage.setItem(key, url);
      offset = Number(created.getResponseHeader("Upload-Offset") || 0);
    }
    onProgress(offset, file.size);
    let failures = 0;
    let known = true; // false after a failure: the server's offset must be asked first
    for (;;) {
      try {
        if (!known) offset = await serverOffset(call, url);
        known = true;
        if (offset >= file.size) break;
        offset = await sendChunk(call, url, file, offset, onProgress);
        failures = 0;
      } catch (err) {
        if (!retryable(err) || failures >= settings.retryDelays.length) throw err;
        await pause(settings.retryDelays[failures++], signal);
        known = false;
      }
    }
    const upload = JSON.parse((await call("GET", url)).responseText);
    localStorage.removeItem(key);
    if (upload.status === "failed") throw new ApiError(upload.error.code, upload.error.message, 422);
    onProgress(file.size, file.size);
    return upload;
  } catch (err) {
    if (signal?.aborted) {
      if (url) terminate(url, token);
      localStorage.removeItem(key);
      throw stopped();
    }
    if (!retryable(err)) localStorage.removeItem(key);
    throw err;
  }
}

/** PATCH one chunk at `offset`; resolves with the server's new offset. */
async function sendChunk(call, url, file, offset, onProgress) {
  const end = Math.min(offset + settings.chunkSize, file.size);
  const answer = await call("PATCH", url, {
    headers: { "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
    body: file.slice(offset, end),
    onSent: (sent) => onProgress(offset + sent, file.size),
  });
  return Number(answer.getResponseHeader("Upload-Offset"));
}

/** The server's offset for a kept upload, or null when it is gone (expired, terminated, never
 * ours) and a new one must start. Network failures propagate, so they can be retried. */
async function resumeAt(call, url) {
  try {
    return await serverOffset(call, url);
  } catch (err) {
    if (err.code === "upload_expired") return null;
    throw err;
  }
}

/** tus HEAD: where the upload stands. A HEAD answer has no body, so a vanished upload gets its
 * meaning here. */
async function serverOffset(call, url) {
  try {
    return Number((await call("HEAD", url)).getResponseHeader("Upload-Offset"));
  } catch (err) {
    if (err instanceof ApiError && [403, 404, 410].includes(err.status)) {
      throw new ApiError("upload_expired", "The unfinished upload is no longer on the server.", err.status);
    }
    throw err;
  }
}

/** Worth another try after a HEAD: the network, the server's own trouble, a PATCH still holding
 * the upload (423), or an offset the server disagrees with (409). */
function retryable(err) {
  return err instanceof ApiError && (err.status === 0 || err.status >= 500 || [409, 423].includes(err.status));
}

function terminate(url, token) {
  fetch(url, {
    method: "DELETE",
    headers: { Authorization: `Bearer ${token}`, "Tus-Resumable": TUS_VERSION },
    keepalive: true,
  }).catch(() => {});
}

function request(method, url, { token, signal, headers = {}, body = null, onSent } = {}) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(stopped());
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Tus-Resumable", TUS_VERSION);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    if (onSent) xhr.upload.onprogress = (event) => onSent(event.loaded);
    const abort = () => xhr.abort();
    signal?.addEventListener("abort", abort, { once: true });
    const settle = (outcome) => {
      signal?.removeEventListener("abort", abort);
      outcome();
    };
    xhr.onload = () =>
      settle(() => (xhr.status < 300 ? resolve(xhr) : reject(errorFromBody(xhr.status, xhr.responseText || ""))));
    xhr.onerror = () => settle(() => reject(new ApiError("network", "The upload was interrupted.")));
    xhr.onabort = () => settle(() => reject(stopped()));
    xhr.send(body);
  });
}

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(stopped());
      return;
    }
    const abort = () => {
      clearTimeout(timer);
      reject(stopped());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

function stopped() {
  return new DOMException("The upload was stopped.", "AbortError");
}

/** `Upload-Metadata`: `key base64(utf-8 value)` pairs; empty values are left out. */
function encodeMetadata(metadata) {
  return Object.entries(metadata)
    .filter(([, value]) => value)
    .map(([name, value]) => `${name} ${btoa(String.fromCharCode(...new TextEncoder().encode(value)))}`)
    .join(",");
}

/** Where a file's upload is kept: the same file with the same options under the same token
 * resumes. The token is hashed (FNV-1a), never stored twice; a collision only costs a 404. */
function fingerprint(file, token, metadata) {
  let hash = 0x811c9dc5;
  for (const char of token || "") hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  const options = [metadata.engine || "", metadata.language || ""].join("/");
  return `${KEPT}${hash.toString(16)}:${file.size}:${file.lastModified}:${options}:${file.name}`;
}
