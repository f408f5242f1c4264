// Entry: login, then a role-aware view chosen by the URL hash (#/map, #/responder, #/admin).

import "./style.css";
import { api, loadAuth, login, logout, setLoggedOutHandler, ApiError } from "./api.js";
import { h, clear, label, announce } from "./ui.js";

const app = document.getElementById("app");
const sitrep = (window.sitrep = window.sitrep || {});
let current = null; // the mounted view, with .unmount()
let me = null;

setLoggedOutHandler(() => showLogin("Your session ended; please log in again."));

function defaultRoute(role) {
  return role === "admin" ? "#/admin" : role === "responder" ? "#/responder" : "#/map";
}

function routesFor(role) {
  const r = [["#/map", "Map"]];
  if (role === "responder") return [["#/responder", "My assignments"], ["#/map", "Map"]];
  if (role === "admin") r.push(["#/admin", "Admin"]);
  return r;
}

function showLogin(message) {
  current?.unmount?.();
  current = null;
  me = null;
  sitrep.view = "login";
  const user = h("input", { name: "username", autocomplete: "username", required: true, autofocus: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const err = h("p", { class: "notice notice-error", role: "alert", hidden: !message }, message || "");
  const btn = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    {
      class: "login-card",
      "aria-labelledby": "login-title",
      onsubmit: async (e) => {
        e.preventDefault();
        btn.disabled = true;
        err.hidden = true;
        try {
          await login(user.value.trim(), pass.value);
          location.hash = "";
          await boot();
        } catch (ex) {
          err.textContent =
            ex instanceof ApiError && ex.status === 401
              ? "Wrong username or password."
              : ex instanceof ApiError && ex.status === 429
                ? "Too many attempts; wait a minute and try again."
                : `Could not log in: ${ex.message}`;
          err.hidden = false;
        } finally {
          btn.disabled = false;
        }
      },
    },
    h("h1", { id: "login-title" }, "sitrep"),
    h("p", { class: "muted" }, "Operations command center. Log in to continue."),
    label("Username", user),
    label("Password", pass),
    err,
    btn,
  );
  clear(app, h("main", { id: "main", class: "login-page" }, form));
  // The basemap (1.5 MB of TopoJSON) downloads while the user types, not after the login.
  import("./basemap.js").then((m) => m.prefetchBasemap()).catch(() => {});
}

function header(route) {
  const badge = h("span", { id: "live-badge", class: "badge badge-connecting", role: "status", "aria-live": "polite" }, "Connecting…");
  const nav = h(
    "nav",
    { "aria-label": "Views" },
    routesFor(me.role).map(([href, text]) => h("a", { href, class: "navlink", "aria-current": href === route ? "page" : null }, text)),
  );
  return h(
    "header",
    { class: "topbar" },
    h("span", { class: "brand" }, "sitrep"),
    nav,
    badge,
    h("span", { class: "whoami" }, `${me.display_name || me.username} · ${me.role}`),
    h(
      "button",
      {
        type: "button",
        class: "ghost",
        onclick: () => {
          logout();
          location.hash = "";
          showLogin();
        },
      },
      "Log out",
    ),
  );
}

async function route() {
  if (!loadAuth()) return showLogin();
  const allowed = routesFor(me.role).map(([r]) => r);
  let hash = location.hash || defaultRoute(me.role);
  if (!allowed.includes(hash)) hash = defaultRoute(me.role);
  current?.unmount?.();
  const main = h("main", { id: "main", class: "view", tabindex: "-1" });
  clear(app, header(hash), main);
  sitrep.view = hash.slice(2);
  let mod;
  if (hash === "#/responder") mod = await import("./responder.js");
  else if (hash === "#/admin") mod = await import("./admin.js");
  else mod = await import("./coordinator.js");
  current = mod.mount(main, { me, badge: document.getElementById("live-badge") });
  document.title = `sitrep · ${sitrep.view}`;
  announce(`${sitrep.view} view`);
}

async function boot() {
  if (!loadAuth()) return showLogin();
  try {
    me = await api("/v1/me");
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 404)) return showLogin();
    clear(app, h("main", { id: "main" }, h("p", { class: "notice notice-error", role: "alert" }, `Server unreachable: ${e.message}`)));
    setTimeout(boot, 3000);
    return;
  }
  sitrep.me = me;
  await route();
}

window.addEventListener("hashchange", () => me && route());
sitrep.bootedAt = performance.now();
boot();
