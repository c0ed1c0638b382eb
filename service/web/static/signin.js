// Signing in: a token from `tapeline token create NAME` (or the admin token), kept in this browser.

import { api, ApiError, session } from "./api.js";
import { fill, h } from "./dom.js";
import { t } from "./i18n.js";
import { errorText } from "./messages.js";

/** Check a token against the API; resolves with whether it is the admin token. */
export async function checkToken(token) {
  await api("/api/runs?limit=1", { token });
  try {
    await api("/api/admin/worker", { token });
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) return false;
    throw err;
  }
}

export function renderSignIn(main, { onSignedIn, notice = "" }) {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const problem = h("p", { class: "problem", role: "alert" }, notice);
  const button = h("button", { type: "submit" }, t("signin.button"));
  const form = h(
    "form",
    { class: "card sign-in", onsubmit: submit },
    h("h1", {}, t("signin.title")),
    h("label", { for: "token" }, t("signin.label")),
    input,
    h(
      "p",
      { id: "token-help", class: "hint" },
      t("signin.help1"),
      h("code", {}, "tapeline token create NAME"),
      t("signin.help2"),
    ),
    button,
    problem,
  );

  async function submit(event) {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    button.disabled = true;
    fill(problem);
    try {
      session.isAdmin = await checkToken(token);
      session.save(token);
      onSignedIn();
    } catch (err) {
      fill(problem, err instanceof ApiError ? errorText(err.error) : String(err));
      input.focus();
    } finally {
      button.disabled = false;
    }
  }

  fill(main, form);
  input.focus();
}
