// The page's entry point: who is signed in, and which view the address (#/...) asks for.

import { renderAdmin } from "./admin.js";
import { ApiError, session } from "./api.js";
import { fill, h } from "./dom.js";
import { language, t } from "./i18n.js";
import { renderRun } from "./run.js";
import { renderRuns } from "./runs.js";
import { checkToken, renderSignIn } from "./signin.js";

document.documentElement.lang = language;
for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let leaveView = () => {};

function route({ notice = "", focus = false } = {}) {
  leaveView();
  leaveView = () => {};
  if (!session.token) {
    nav.hidden = true;
    document.title = `${t("signin.title")} · Tapeline`;
    renderSignIn(main, { notice, onSignedIn: () => { history.replaceState(null, "", "#/"); route(); } });
    return;
  }
  nav.hidden = false;
  document.getElementById("nav-admin").hidden = !session.isAdmin;
  fill(who, t(session.isAdmin ? "nav.signedInAdmin" : "nav.signedIn"));
  const hash = location.hash;
  const run = hash.match(/^#\/runs\/([0-9a-fA-F-]{36})(?:\?t=(\d+))?$/);
  for (const link of nav.querySelectorAll("a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === (run ? "#/" : hash || "#/"));
  }
  if (run) leaveView = renderRun(main, run[1], { atMs: run[2] === undefined ? null : Number(run[2]) });
  else if (hash === "#/admin" && session.isAdmin) leaveView = renderAdmin(main);
  else leaveView = renderRuns(main);
  if (focus) main.focus();
}

function signOut(notice = "") {
  session.clear();
  session.isAdmin = false;
  history.replaceState(null, "", "#/");
  route({ notice });
}

document.getElementById("sign-out").addEventListener("click", () => signOut());
document.querySelector("[data-skip]").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", () => {
  if (takeTokenFromAddress()) start();
  else route({ focus: true });
});
window.addEventListener("tapeline:unauthorized", () => {
  if (session.token) signOut(t("signin.invalid"));
});

async function start() {
  if (session.token) {
    fill(main, h("p", { class: "hint" }, t("loading")));
    try {
      session.isAdmin = await checkToken(session.token);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        signOut(t("signin.invalid"));
        return;
      }
    }
  }
  route();
}

/**
 * A sign-in link (`/#token=…`, printed by `tapeline serve` on a fresh install): keep the token
 * and take it out of the address bar and history at once. A fragment never reaches a server.
 */
function takeTokenFromAddress() {
  const match = location.hash.match(/^#token=([^&]+)$/);
  if (!match) return false;
  session.save(decodeURIComponent(match[1]));
  history.replaceState(null, "", `${location.pathname}${location.search}#/`);
  return true;
}

takeTokenFromAddress();
start();
