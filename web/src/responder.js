// Responder page (phone-sized): my assignments with accept/decline and progress buttons, and "share my location"
// from the browser's geolocation through the offline queue.

import { api, ApiError } from "./api.js";
import { h, clear, notice, fmtTime, announce, uuid } from "./ui.js";
import { PositionQueue } from "./queue.js";

const ACTIONS = {
  pending: [["accept", "Accept", "primary"], ["decline", "Decline", "danger"]],
  accepted: [["en-route", "En route", "primary"], ["arrive", "Arrived on scene", ""]],
  en_route: [["arrive", "Arrived on scene", "primary"]],
  on_scene: [],
};

export function mount(main, { me, badge }) {
  const sitrep = window.sitrep;
  main.classList.add("responder-view");
  const queueInfo = h("p", { id: "queue-info", "aria-live": "polite" });
  const netInfo = h("span", { class: "badge", id: "net-badge" });
  const shareBtn = h("button", { type: "button", class: "primary big", id: "share-location", "aria-pressed": "false" }, "Share my location");
  const lastFix = h("p", { class: "small muted", id: "last-fix" }, "Location sharing is off.");
  const assignBox = h("div", { id: "my-assignments" });
  const notesBox = h("div", { id: "my-notifications" });
  const msg = h("div");

  const queue = new PositionQueue(() => renderQueue());
  sitrep.queue = queue;

  function renderQueue() {
    const n = queue.size;
    queueInfo.textContent = `${n} position${n === 1 ? "" : "s"} waiting to send · ${queue.sent} sent${queue.lastSentAt ? ` (last ${fmtTime(queue.lastSentAt)})` : ""}${queue.lastError && n ? ` · ${queue.lastError}` : ""}`;
  }
  function renderNet() {
    const online = navigator.onLine !== false;
    netInfo.textContent = online ? "Online" : "Offline — positions are kept on this phone";
    netInfo.className = `badge ${online ? "badge-live" : "badge-stale"}`;
    badge.textContent = online ? "● Online" : "Offline";
    badge.className = `badge ${online ? "badge-live" : "badge-stale"}`;
  }
  const onNet = () => {
    renderNet();
    if (navigator.onLine) queue.flush();
  };
  window.addEventListener("online", onNet);
  window.addEventListener("offline", onNet);

  let watchId = null;
  function record(pos) {
    const c = pos.coords;
    const fix = {
      responder_id: me.responder_id,
      fix_time: new Date(pos.timestamp || Date.now()).toISOString(),
      lon: c.longitude,
      lat: c.latitude,
      accuracy_m: Number.isFinite(c.accuracy) ? c.accuracy : null,
      speed_mps: Number.isFinite(c.speed) ? c.speed : null,
      heading_deg: Number.isFinite(c.heading) ? c.heading : null,
      altitude_m: Number.isFinite(c.altitude) ? c.altitude : null,
      source: "web",
      client_id: uuid(),
    };
    queue.push(fix);
    lastFix.textContent = `Last fix ${fmtTime(fix.fix_time)}: ${fix.lat.toFixed(5)}, ${fix.lon.toFixed(5)} (±${Math.round(fix.accuracy_m ?? 0)} m)`;
  }
  sitrep.recordFix = record; // tests and simulators can inject fixes exactly as the geolocation callback would
  function toggleShare() {
    if (watchId !== null) {
      navigator.geolocation.clearWatch(watchId);
      watchId = null;
      shareBtn.textContent = "Share my location";
      shareBtn.setAttribute("aria-pressed", "false");
      lastFix.textContent = "Location sharing is off.";
      announce("Location sharing stopped");
      return;
    }
    if (!navigator.geolocation) {
      lastFix.textContent = "This browser has no geolocation.";
      return;
    }
    watchId = navigator.geolocation.watchPosition(
      record,
      (err) => (lastFix.textContent = `Location unavailable: ${err.message}`),
      { enableHighAccuracy: true, maximumAge: 0, timeout: 30000 },
    );
    shareBtn.textContent = "Stop sharing";
    shareBtn.setAttribute("aria-pressed", "true");
    lastFix.textContent = "Waiting for the first fix…";
    announce("Location sharing started");
  }
  shareBtn.addEventListener("click", toggleShare);

  // ---- assignments ----
  // Offline-safe sync: GET /v1/sync?since=<cursor> returns what changed in my scope; pages are merged in order.
  const known = { assignments: new Map(), incidents: new Map(), cursor: null };
  let syncing = null;
  let again = false;
  function loadAssignments() {
    if (syncing) {
      again = true; // a change may have happened after the running request was sent
      return syncing;
    }
    syncing = (async () => {
      try {
        do {
          again = false;
          for (let page = 0; page < 50; page++) {
          const data = await api("/v1/sync", { query: { since: known.cursor } });
          for (const i of data.incidents || []) known.incidents.set(String(i.id), i);
          for (const a of data.assignments || []) known.assignments.set(String(a.id), a);
          known.cursor = data.cursor || known.cursor;
          if (!data.has_more) break;
          }
        } while (again);
        const mine = [...known.assignments.values()].filter(
          (a) => String(a.responder_id) === String(me.responder_id) && !["declined", "released"].includes(a.status),
        );
        renderAssignments(mine, known.incidents);
      } catch (e) {
        clear(assignBox, notice(e instanceof ApiError && e.missing ? "Assignments are not available on this server yet." : `Assignments: ${e.message}`, e.missing ? "missing" : "error"));
      }
    })().finally(() => (syncing = null));
    return syncing;
  }
  function renderAssignments(list, incidents) {
    if (!list.length) return clear(assignBox, h("p", { class: "muted" }, "No assignments right now."));
    clear(
      assignBox,
      h(
        "ul",
        { class: "cards" },
        list.map((a) => {
          const inc = incidents.get(String(a.incident_id)) || {};
          return h(
            "li",
            { class: "card", dataset: { assignment: a.id } },
            h("h3", {}, inc.priority ? h("span", { class: `prio prio-${inc.priority}` }, `P${inc.priority}`) : null, " ", inc.title || "Incident"),
            h("p", { class: "small" }, [inc.type, inc.address].filter(Boolean).join(" · ")),
            inc.description ? h("p", {}, inc.description) : null,
            h("p", {}, "Assignment: ", h("strong", {}, a.status.replace("_", " "))),
            inc.lat ? h("p", { class: "small" }, h("a", { href: `geo:${inc.lat},${inc.lon}` }, "Open location in maps app")) : null,
            h(
              "div",
              { class: "row wrap" },
              (ACTIONS[a.status] || []).map(([action, text, cls]) =>
                h("button", { type: "button", class: `${cls} big`, dataset: { action }, onclick: () => act(a, action) }, text),
              ),
            ),
          );
        }),
      ),
    );
  }
  async function act(a, action) {
    try {
      await api(`/v1/assignments/${a.id}/${action}`, { method: "POST", body: {} });
      announce(`Assignment ${action}`);
    } catch (e) {
      clear(msg, notice(e instanceof ApiError ? e.describe() : e.message, "error"));
    }
    loadAssignments();
  }

  // ---- notifications: hazards I entered or left, new assignments (GET /v1/me/notifications) ----
  async function loadNotifications() {
    if (!me.responder_id) return;
    try {
      const data = await api("/v1/me/notifications", { query: { limit: 10 } });
      const items = data.items || [];
      if (!items.length) return clear(notesBox, h("p", { class: "muted" }, "No notifications."));
      clear(
        notesBox,
        h(
          "ul",
          { class: "cards" },
          items.map((n) =>
            h(
              "li",
              { class: `card${n.read_at ? " muted" : ""}`, dataset: { notification: n.id, kind: n.kind } },
              h("h3", {}, n.read_at ? "" : "● ", n.title),
              n.body ? h("p", { class: "small" }, n.body) : null,
              h("p", { class: "small muted" }, fmtTime(n.created_at)),
              n.read_at ? null : h("button", { type: "button", dataset: { action: "mark-read" }, onclick: () => markRead(n) }, "Mark read"),
            ),
          ),
        ),
      );
    } catch (e) {
      clear(notesBox, notice(e instanceof ApiError && e.missing ? "Notifications are not available on this server yet." : `Notifications: ${e.message}`, e.missing ? "missing" : "error"));
    }
  }
  async function markRead(n) {
    try {
      await api(`/v1/me/notifications/${n.id}/read`, { method: "POST", body: {} });
    } catch (e) {
      clear(msg, notice(e instanceof ApiError ? e.describe() : e.message, "error"));
    }
    loadNotifications();
  }

  clear(
    main,
    h(
      "div",
      { class: "phone" },
      h("h1", {}, me.display_name || me.username),
      me.responder_id ? null : notice("Your account is not linked to a responder; positions cannot be shared.", "error"),
      msg,
      h("section", { "aria-labelledby": "loc-h", class: "card" }, h("h2", { id: "loc-h" }, "My location"), h("div", { class: "row spread" }, shareBtn, netInfo), lastFix, queueInfo),
      me.responder_id
        ? h("section", { "aria-labelledby": "notes-h" }, h("div", { class: "row spread" }, h("h2", { id: "notes-h" }, "Notifications"), h("button", { type: "button", onclick: loadNotifications }, "Reload")), notesBox)
        : null,
      h("section", { "aria-labelledby": "asg-h" }, h("div", { class: "row spread" }, h("h2", { id: "asg-h" }, "My assignments"), h("button", { type: "button", onclick: loadAssignments }, "Refresh")), assignBox),
    ),
  );
  renderNet();
  renderQueue();
  loadAssignments();
  queue.flush();
  const timer = setInterval(loadAssignments, 15000);
  loadNotifications();
  const notesTimer = setInterval(loadNotifications, 30000);
  return {
    unmount() {
      clearInterval(timer);
      clearInterval(notesTimer);
      queue.stop();
      if (watchId !== null) navigator.geolocation.clearWatch(watchId);
      window.removeEventListener("online", onNet);
      window.removeEventListener("offline", onNet);
    },
  };
}
