// Talking to the Tapeline API with the signed-in token.

const TOKEN_KEY = "tapeline.token";

/** An API failure: the server's stable `code` and message, or `network` when it did not answer. */
export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }

  get error() {
    return { code: this.code, message: this.message };
  }
}

export const session = {
  get token() { return localStorage.getItem(TOKEN_KEY); },
  save(token) { localStorage.setItem(TOKEN_KEY, token); },
  clear() { localStorage.removeItem(TOKEN_KEY); },
  isAdmin: false,
};

/** The server's `{"error": {code, message}}` body as an ApiError (any other body too). */
export function errorFromBody(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.code) {
      return new ApiError(body.error.code, body.error.message || "", status);
    }
  } catch {
    // not JSON: a proxy's page, an empty body
  }
  // Not Tapeline's words (a proxy's HTML page, say): nothing in it is worth showing a person.
  return new ApiError(status ? `http_${status}` : "network", "", status);
}

function unauthorized(error) {
  if (error.status === 401) window.dispatchEvent(new CustomEvent("tapeline:unauthorized"));
  return error;
}

async function send(path, { method = "GET", body, token = session.token, signal } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("network", "The server could not be reached.");
  }
  if (!response.ok) throw unauthorized(errorFromBody(response.status, await response.text()));
  return response;
}

/** A JSON API call (null for a 204 answer); throws ApiError. */
export async function api(path, options) {
  const response = await send(path, options);
  return response.status === 204 ? null : response.json();
}

/** Save a transcript as a file: fetched with the Authorization header, never a token in a URL. */
export async function downloadTranscript(runId, format) {
  const response = await send(`/api/runs/${runId}/transcript?format=${format}`);
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `transcript-${runId}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/** A stream's URL: EventSource cannot send headers, so the token rides as `access_token`. */
export function streamUrl(path) {
  return `${path}?access_token=${encodeURIComponent(session.token)}`;
}
