// Admin view: users, teams, devices (token shown once), feeds health, webhooks and their deliveries.

import { api, listAll, itemsOf, ApiError } from "./api.js";
import { h, clear, notice, label, select, fmtDateTime, announce } from "./ui.js";
import { FeedsPanel } from "./feeds.js";

function table(caption, cols, rows, id) {
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h("table", { id }, h("caption", {}, caption), h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)),
  );
}

function errText(e) {
  return e instanceof ApiError ? (e.missing ? "Not available on this server yet." : e.describe()) : e.message;
}

function section(id, title, ...children) {
  return h("section", { class: "admin-section card", "aria-labelledby": `${id}-h`, id }, h("h2", { id: `${id}-h` }, title), ...children);
}

export function mount(main, { badge }) {
  main.classList.add("admin-view");
  badge.hidden = true; // no live stream on this page
  const teams = new Map();
  const users = h("div");
  const teamsBox = h("div");
  const devices = h("div");
  const webhooks = h("div");
  const feeds = new FeedsPanel();
  const tokenBox = h("div", { "aria-live": "assertive" });

  const teamName = (id) => (id ? teams.get(String(id))?.name || String(id).slice(0, 8) : "—");

  async function loadTeams() {
    try {
      const list = await listAll("/v1/teams", { limit: 500 });
      teams.clear();
      for (const t of list) teams.set(String(t.id), t);
      clear(teamsBox, table("Teams", ["Name", "Parent", "Description"], list.map((t) => h("tr", {}, h("td", {}, t.name), h("td", {}, teamName(t.parent_id)), h("td", {}, t.description || ""))), "teams-table"), teamForm());
    } catch (e) {
      clear(teamsBox, notice(errText(e), "error"));
    }
  }

  function teamForm() {
    const name = h("input", { name: "name", required: true });
    const parent = select("parent_id", [["", "— none —"], ...[...teams.values()].map((t) => [t.id, t.name])], "");
    const out = h("div");
    return h(
      "form",
      {
        class: "inline-form",
        "aria-label": "Create team",
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            await api("/v1/teams", { method: "POST", body: { name: name.value.trim(), parent_id: parent.value || null } });
            announce("Team created");
            loadTeams();
          } catch (ex) {
            clear(out, notice(errText(ex), "error"));
          }
        },
      },
      h("h3", {}, "New team"),
      h("div", { class: "row wrap" }, label("Team name", name), label("Parent team", parent)),
      out,
      h("button", { type: "submit" }, "Create team"),
    );
  }

  async function loadUsers() {
    try {
      const list = await listAll("/v1/users", { limit: 500 });
      clear(
        users,
        table(
          "Users",
          ["Username", "Name", "Role", "Team", "Active"],
          list.map((u) => h("tr", {}, h("td", {}, u.username), h("td", {}, u.display_name), h("td", {}, u.role), h("td", {}, teamName(u.team_id)), h("td", {}, u.is_active ? "yes" : "no"))),
          "users-table",
        ),
        userForm(),
      );
    } catch (e) {
      clear(users, notice(errText(e), "error"));
    }
  }

  function userForm() {
    const username = h("input", { name: "username", required: true, autocomplete: "off" });
    const password = h("input", { name: "password", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
    const role = select("role", [["viewer", "viewer"], ["responder", "responder"], ["coordinator", "coordinator"], ["admin", "admin"]], "viewer");
    const team = select("team_id", [["", "— none —"], ...[...teams.values()].map((t) => [t.id, t.name])], "");
    const out = h("div");
    return h(
      "form",
      {
        class: "inline-form",
        "aria-label": "Create user",
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            await api("/v1/users", { method: "POST", body: { username: username.value.trim(), password: password.value, role: role.value, team_id: team.value || null } });
            announce("User created");
            loadUsers();
          } catch (ex) {
            clear(out, notice(errText(ex), "error"));
          }
        },
      },
      h("h3", {}, "New user"),
      h("div", { class: "row wrap" }, label("Username", username), label("Password", password, "at least 8 characters"), label("Role", role), label("Team", team)),
      out,
      h("button", { type: "submit" }, "Create user"),
    );
  }

  async function loadDevices() {
    let responders = [];
    try {
      responders = await listAll("/v1/responders", { limit: 1000 }, 5000);
    } catch {
      /* positions area missing: fall back to typing the responder id */
    }
    const callsign = new Map(responders.map((r) => [String(r.id), r.callsign]));
    try {
      const list = itemsOf(await api("/v1/devices", { query: { limit: 200 } }));
      clear(
        devices,
        tokenBox,
        deviceForm(responders),
        table(
          "Devices (first 200)",
          ["Unique id", "Name", "Responder", "Last seen", "Revoked"],
          list.map((d) => h("tr", {}, h("td", {}, d.unique_id), h("td", {}, d.name), h("td", {}, callsign.get(String(d.responder_id)) || String(d.responder_id).slice(0, 8)), h("td", {}, fmtDateTime(d.last_seen_at)), h("td", {}, d.revoked_at ? fmtDateTime(d.revoked_at) : "—"))),
          "devices-table",
        ),
      );
    } catch (e) {
      clear(devices, notice(errText(e), "error"));
    }
  }

  function deviceForm(responders) {
    const resp = responders.length
      ? select("responder_id", responders.map((r) => [r.id, `${r.callsign}${r.name ? ` — ${r.name}` : ""}`]), responders[0]?.id)
      : h("input", { name: "responder_id", required: true, placeholder: "responder UUID" });
    const name = h("input", { name: "name", placeholder: "e.g. Engine 3 phone" });
    const uid = h("input", { name: "unique_id", placeholder: "leave empty to generate" });
    const out = h("div");
    return h(
      "form",
      {
        class: "inline-form",
        id: "device-form",
        "aria-label": "Register device",
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            const d = await api("/v1/devices", { method: "POST", body: { responder_id: resp.value, name: name.value, unique_id: uid.value.trim() || null } });
            const tok = h("code", { id: "device-token", class: "token" }, d.token);
            clear(
              tokenBox,
              h(
                "div",
                { class: "token-box", role: "alert" },
                h("strong", {}, `Device ${d.unique_id} registered. Its token is shown only once — copy it now:`),
                h("div", { class: "row" }, tok, h("button", { type: "button", onclick: () => navigator.clipboard?.writeText(d.token).then(() => announce("Token copied")) }, "Copy")),
                h("button", { type: "button", class: "ghost small", onclick: () => clear(tokenBox) }, "I have saved it — hide"),
              ),
            );
            clear(out);
          } catch (ex) {
            clear(out, notice(errText(ex), "error"));
          }
        },
      },
      h("h3", {}, "Register a device"),
      h("div", { class: "row wrap" }, label("Responder", resp), label("Device name", name), label("Unique id (IMEI or app id)", uid)),
      out,
      h("button", { type: "submit", class: "primary" }, "Register device"),
    );
  }

  async function loadWebhooks() {
    try {
      const list = itemsOf(await api("/v1/webhooks"));
      const deliveries = h("div", { "aria-live": "polite" });
      clear(
        webhooks,
        table(
          "Webhooks",
          ["URL", "Active", "Filter", ""],
          list.map((w) =>
            h(
              "tr",
              {},
              h("td", { class: "wrap-anywhere" }, w.url),
              h("td", {}, w.active === false ? "no" : "yes"),
              h("td", { class: "small" }, JSON.stringify(w.filter || {})),
              h("td", {}, h("button", { type: "button", class: "small", onclick: () => showDeliveries(w, deliveries) }, "Deliveries")),
            ),
          ),
          "webhooks-table",
        ),
        deliveries,
        webhookForm(),
      );
    } catch (e) {
      clear(webhooks, notice(errText(e), e.missing ? "missing" : "error"), e.missing ? null : webhookForm());
    }
  }

  async function showDeliveries(w, box) {
    try {
      const list = itemsOf(await api(`/v1/webhooks/${w.id}/deliveries`, { query: { limit: 50 } }));
      clear(
        box,
        table(
          `Deliveries to ${w.url}`,
          ["Created", "Status", "Attempts", "Next try", "Last error"],
          list.map((d) => h("tr", {}, h("td", {}, fmtDateTime(d.created_at)), h("td", {}, d.status), h("td", {}, d.attempts ?? "—"), h("td", {}, fmtDateTime(d.next_try_at)), h("td", { class: "small" }, d.last_error || "—"))),
        ),
      );
    } catch (e) {
      clear(box, notice(errText(e), "error"));
    }
  }

  function webhookForm() {
    const url = h("input", { name: "url", type: "url", required: true, placeholder: "https://example.org/hook" });
    const secret = h("input", { name: "secret", required: true, minlength: 16, autocomplete: "off" });
    const out = h("div");
    return h(
      "form",
      {
        class: "inline-form",
        "aria-label": "Register webhook",
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            await api("/v1/webhooks", { method: "POST", body: { url: url.value, secret: secret.value } });
            announce("Webhook registered");
            loadWebhooks();
          } catch (ex) {
            clear(out, notice(errText(ex), "error"));
          }
        },
      },
      h("h3", {}, "New webhook"),
      h("div", { class: "row wrap" }, label("URL", url), label("Signing secret", secret)),
      out,
      h("button", { type: "submit" }, "Register webhook"),
    );
  }

  clear(
    main,
    h(
      "div",
      { class: "admin-grid" },
      section("admin-devices", "Devices", devices),
      section("admin-users", "Users", users),
      section("admin-teams", "Teams", teamsBox),
      section("admin-feeds", "Feeds", feeds.el),
      section("admin-webhooks", "Webhooks", webhooks),
    ),
  );
  loadTeams().then(loadUsers);
  loadDevices();
  loadWebhooks();
  feeds.refresh();
  return { unmount() {} };
}
