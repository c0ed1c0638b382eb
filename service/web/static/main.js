// The page's entry point: who is signed in, and which view the address (#/...) asks for.

import { renderAdmin } from "./admin.js";
import { ApiError, session } from "./api.js";
import { fill, h } from "./dom.js";
import { renderRun } from "./run.js";
import { renderRuns } from "./runs.js";
import { checkToken, renderSignIn } from "./signin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let leaveView = () => {};

function route({ notice = "", focus = false } = {}) {
  leaveView();
  leaveView = () => {};
  if (!session.token) {
    nav.hidden = true;
    document.title = "Sign in · Tapeline";
    renderSignIn(main, { notice, onSignedIn: () => { history.replaceState(null, "", "#/"); route(); } });
    return;
  }
  nav.hidden = false;
  document.getElementById("nav-admin").hidden = !session.isAdmin;
  fill(who, session.isAdmin ? "Signed in as administrator" : "Signed in");
  const hash = location.hash;
  const run = hash.match(/^#\/runs\/([0-9a-fA-F-]{36})$/);
  for (const link of nav.querySelectorAll("a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === (run ? "#/" : hash || "#/"));
  }
  if (run) leaveView = renderRun(main, run[1]);
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
window.addEventListener("hashchange", () => route({ focus: true }));
window.addEventListener("tapeline:unauthorized", () => {
  if (session.token) signOut("Your token is no longer valid (revoked or unknown). Sign in again.");
});

async function start() {
  if (session.token) {
    fill(main, h("p", { class: "hint" }, "Loading…"));
    try {
      session.isAdmin = await checkToken(session.token);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        signOut("Your token is no longer valid (revoked or unknown). Sign in again.");
        return;
      }
    }
  }
  route();
}

start();
