// Incident queue and detail: create by clicking the map, move through statuses, timeline and messages,
// recommendations with reasons and one-click assignment.

import { api, listAll, itemsOf, ApiError } from "./api.js";
import { h, clear, notice, label, select, fmtTime, fmtDistance, fmtAge, announce, uuid } from "./ui.js";
import { nextStatuses, OPEN_INCIDENT } from "./model.js";

const TYPES = ["fire", "medical", "flood", "rescue", "hazmat", "traffic", "other"];
const STATUS_LABEL = {
  reported: "Reported",
  acknowledged: "Acknowledge",
  dispatched: "Dispatched",
  en_route: "En route",
  on_scene: "On scene",
  resolved: "Resolve",
  closed: "Close",
  cancelled: "Cancel",
};

export class IncidentsPanel {
  constructor(lm, { canWrite }) {
    this.lm = lm;
    this.canWrite = canWrite;
    this.selected = null;
    this.msg = h("div");
    this.list = h("ul", { class: "incident-list", "aria-label": "Open incidents by priority" });
    this.detail = h("section", { class: "incident-detail", "aria-label": "Selected incident", "aria-live": "polite" });
    this.createBox = h("div");
    const createBtn = canWrite
      ? h("button", { type: "button", class: "primary", id: "new-incident", onclick: () => this.startCreate() }, "New incident")
      : null;
    this.el = h("div", {}, h("div", { class: "row spread" }, h("h2", {}, "Incidents"), createBtn), this.msg, this.createBox, this.list, this.detail);
    lm.onChange((what) => {
      if (what === "incidents") this.renderList();
    });
  }

  async load() {
    try {
      const items = await listAll("/v1/incidents", { limit: 500 }, 2000);
      this.available = true;
      this.lm.upsertIncidents(items);
      this.renderList();
    } catch (e) {
      this.available = false;
      clear(this.msg, notice(e instanceof ApiError && e.missing ? "Incidents are not available on this server yet." : `Incidents: ${e.message}`, e.missing ? "missing" : "error"));
    }
  }

  renderList() {
    // Called on every incidents change from the stream: rows whose content did not change keep their
    // element (a coordinator's click or keyboard focus is never lost to a re-render), and the detail
    // is rebuilt only when the selected incident itself changed.
    const open = [...this.lm.incidents.values()]
      .filter((i) => OPEN_INCIDENT.has(i.status))
      .sort((a, b) => a.priority - b.priority || String(a.created_at).localeCompare(String(b.created_at)));
    const rows = new Map();
    const items = open.map((i) => {
      const sig = [i.priority, i.title, i.type, i.status, this.selected === i.id].join("\u0001");
      const old = this._rows?.get(i.id);
      const li = old && old.sig === sig ? old.li : this._row(i);
      rows.set(i.id, { sig, li });
      return li;
    });
    this._rows = rows;
    if (!items.length) items.push(h("li", { class: "muted" }, this.available === false ? "" : "No open incidents."));
    const current = this.list.children;
    if (items.length !== current.length || items.some((li, k) => current[k] !== li)) clear(this.list, items);
    const selected = this.selected ? this.lm.incidents.get(this.selected) : null;
    const detailSig = selected ? JSON.stringify(selected) : null;
    if (this.selected && detailSig !== this._detailSig) {
      this._detailSig = detailSig;
      this.renderDetail();
    }
  }

  _row(i) {
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: `incident-item${this.selected === i.id ? " selected" : ""}`,
          "aria-current": this.selected === i.id ? "true" : null,
          dataset: { incident: i.id },
          onclick: () => this.select(i.id, true),
        },
        h("span", { class: `prio prio-${i.priority}` }, `P${i.priority}`),
        h("span", { class: "title" }, i.title),
        h("span", { class: "muted small" }, `${i.type || ""} · ${String(i.status).replace("_", " ")}`),
      ),
    );
  }

  // ---- create ----
  startCreate(lngLat) {
    const form = this._createForm();
    clear(this.createBox, form.el);
    if (lngLat) form.setPoint(lngLat);
    else {
      this.lm.map.getCanvas().style.cursor = "crosshair";
      this.lm.clickMode = (ll) => form.setPoint(ll);
    }
    form.focus();
  }

  stopCreate() {
    this.lm.clickMode = null;
    this.lm.map.getCanvas().style.cursor = "";
    this.lm.setDraft([]);
    clear(this.createBox);
  }

  _createForm() {
    const lon = h("input", { name: "lon", inputmode: "decimal", required: true });
    const lat = h("input", { name: "lat", inputmode: "decimal", required: true });
    const type = select("type", TYPES.map((t) => [t, t]), "fire");
    const prio = select("priority", [[1, "P1 — critical"], [2, "P2 — urgent"], [3, "P3 — normal"], [4, "P4 — low"]], 2);
    const title = h("input", { name: "title", required: true, maxlength: 200 });
    const desc = h("textarea", { name: "description", rows: 2 });
    const address = h("input", { name: "address" });
    const err = h("div");
    const setPoint = (ll) => {
      lon.value = ll.lng.toFixed(6);
      lat.value = ll.lat.toFixed(6);
      this.lm.setDraft([{ type: "Feature", geometry: { type: "Point", coordinates: [ll.lng, ll.lat] }, properties: {} }]);
      title.focus();
    };
    const el = h(
      "form",
      {
        class: "card",
        id: "incident-form",
        "aria-label": "New incident",
        onsubmit: async (e) => {
          e.preventDefault();
          const body = {
            id: uuid(),
            type: type.value,
            priority: Number(prio.value),
            title: title.value.trim(),
            description: desc.value,
            address: address.value,
            location: { type: "Point", coordinates: [Number(lon.value), Number(lat.value)] },
          };
          try {
            const inc = await api("/v1/incidents", { method: "POST", body });
            this.lm.upsertIncidents([inc]);
            this.stopCreate();
            announce(`Incident ${inc.title} created`);
            this.select(String(inc.id), false);
          } catch (ex) {
            clear(err, notice(ex instanceof ApiError ? ex.describe() : ex.message, "error"));
          }
        },
      },
      h("h3", {}, "New incident"),
      h("p", { class: "muted small" }, "Click the map to place it, or type coordinates."),
      h("div", { class: "row" }, label("Longitude", lon), label("Latitude", lat)),
      h(
        "button",
        { type: "button", class: "ghost small", onclick: () => setPoint(this.lm.map.getCenter()) },
        "Use map centre",
      ),
      h("div", { class: "row" }, label("Type", type), label("Priority", prio)),
      label("Title", title),
      label("Address", address),
      label("Description", desc),
      err,
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Create incident"), h("button", { type: "button", onclick: () => this.stopCreate() }, "Cancel")),
    );
    el.addEventListener("keydown", (e) => e.key === "Escape" && this.stopCreate());
    return { el, setPoint, focus: () => lon.focus() };
  }

  // ---- detail ----
  select(id, fromMap) {
    this.selected = id;
    this.lm.selectIncident(id);
    this.renderList();
    this.renderDetail(true);
    if (fromMap) window.sitrep.selectTab?.("incidents");
  }

  async renderDetail(refetch) {
    const inc = this.lm.incidents.get(this.selected);
    if (!inc) return clear(this.detail);
    if (!this._sections || this._sections.id !== inc.id) {
      this._sections = {
        id: inc.id,
        head: h("div"),
        actions: h("div", { class: "row wrap", role: "group", "aria-label": "Change status" }),
        recs: h("div"),
        assigns: h("div"),
        timeline: h("div"),
        messages: h("div"),
      };
      const s = this._sections;
      clear(this.detail, s.head, s.actions, s.assigns, s.recs, s.messages, s.timeline);
    }
    const s = this._sections;
    clear(
      s.head,
      h("h3", { id: "incident-title" }, h("span", { class: `prio prio-${inc.priority}` }, `P${inc.priority}`), " ", inc.title),
      h("p", { class: "small" }, `${inc.type} · status `, h("strong", { id: "incident-status" }, String(inc.status).replace("_", " ")), inc.address ? ` · ${inc.address}` : ""),
      inc.description ? h("p", {}, inc.description) : null,
    );
    clear(
      s.actions,
      this.canWrite || true
        ? nextStatuses(inc.status).map((st) =>
            h("button", { type: "button", class: st === "cancelled" ? "danger" : "", dataset: { status: st }, onclick: () => this.setStatus(inc.id, st) }, STATUS_LABEL[st] || st),
          )
        : null,
    );
    if (refetch) {
      this.loadRecommendations(inc);
      this.loadAssignments(inc);
      this.loadTimeline(inc);
      this.loadMessages(inc);
    }
  }

  async setStatus(id, status) {
    try {
      const inc = await api(`/v1/incidents/${id}`, { method: "PATCH", body: { status } });
      this.lm.upsertIncidents([inc]);
      announce(`Incident now ${status.replace("_", " ")}`);
      this.renderDetail(true);
    } catch (e) {
      clear(this._sections.actions, ...this._sections.actions.childNodes, notice(e instanceof ApiError ? e.describe() : e.message, "error"));
    }
  }

  async loadRecommendations(inc) {
    const box = this._sections.recs;
    if (!this.canWrite || !OPEN_INCIDENT.has(inc.status)) return clear(box);
    clear(box, h("h4", {}, "Recommended responders"), h("p", { class: "muted" }, "Ranking…"));
    try {
      const data = await api(`/v1/incidents/${inc.id}/recommendations`, { query: { limit: 5 } });
      const items = itemsOf(data);
      clear(
        box,
        h("h4", {}, "Recommended responders"),
        items.length
          ? h(
              "ol",
              { class: "recs", id: "recommendations" },
              items.map((r) =>
                h(
                  "li",
                  { class: r.inside_hazard ? "rec flagged-rec" : "rec" },
                  h(
                    "div",
                    { class: "row spread" },
                    h("strong", {}, r.name || r.callsign || r.id),
                    h("span", { class: "small" }, `${fmtDistance(r.distance_m)}${r.eta_s ? ` · ETA ${fmtAge(r.eta_s)}` : ""}`),
                  ),
                  r.inside_hazard ? h("p", { class: "danger small" }, `⚠ inside hazard`) : null,
                  h("ul", { class: "reasons small" }, (r.reasons || []).map((t) => h("li", {}, t))),
                  h(
                    "button",
                    {
                      type: "button",
                      class: "primary small",
                      dataset: { assign: r.id },
                      "aria-label": `Assign ${r.name || r.id} to ${inc.title}`,
                      onclick: (e) => this.assign(inc, r, e.currentTarget),
                    },
                    "Assign",
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No available responders found nearby."),
        data?.excluded && Object.keys(data.excluded).length
          ? h("details", {}, h("summary", {}, `${Object.keys(data.excluded).length} excluded`), h("ul", { class: "small" }, Object.entries(data.excluded).slice(0, 20).map(([k, v]) => h("li", {}, `${this.lm.responders.get(k)?.callsign || k.slice(0, 8)}: ${v}`))))
          : null,
      );
    } catch (e) {
      clear(box, h("h4", {}, "Recommended responders"), notice(e instanceof ApiError && e.missing ? "Recommendations are not available on this server yet." : e.message, e.missing ? "missing" : "error"));
    }
  }

  async assign(inc, rec, btn) {
    btn.disabled = true;
    try {
      const body = rec.kind === "resource" ? { resource_id: rec.id } : { responder_id: rec.id };
      await api(`/v1/incidents/${inc.id}/assignments`, { method: "POST", body: { id: uuid(), ...body } });
      btn.textContent = "Assigned";
      announce(`${rec.name || rec.id} assigned`);
      const fresh = await api(`/v1/incidents/${inc.id}`).catch(() => null);
      if (fresh) this.lm.upsertIncidents([fresh]);
      this.renderDetail(true);
    } catch (e) {
      btn.disabled = false;
      btn.after(notice(e instanceof ApiError ? e.describe() : e.message, "error"));
    }
  }

  async loadAssignments(inc) {
    const box = this._sections.assigns;
    try {
      const data = await api(`/v1/incidents/${inc.id}/assignments`);
      const items = itemsOf(data);
      clear(
        box,
        items.length ? h("h4", {}, "Assigned") : null,
        items.length
          ? h(
              "ul",
              { class: "assignments", id: "assignments" },
              items.map((a) => {
                const r = this.lm.responders.get(String(a.responder_id));
                return h("li", { dataset: { responder: a.responder_id || a.resource_id } }, `${r?.callsign || a.responder_id || a.resource_id} — ${a.status}`);
              }),
            )
          : null,
      );
    } catch {
      clear(box);
    }
  }

  async loadTimeline(inc) {
    const box = this._sections.timeline;
    try {
      const items = itemsOf(await api(`/v1/incidents/${inc.id}/timeline`, { query: { limit: 100 } }));
      clear(
        box,
        h("h4", {}, "Timeline"),
        h(
          "ol",
          { class: "timeline small" },
          items.map((t) => h("li", {}, h("time", { datetime: t.created_at }, fmtTime(t.created_at)), ` ${t.kind.replace("_", " ")}`, t.body?.to ? ` → ${t.body.to}` : "", t.actor ? ` (${t.actor})` : "", t.body?.note ? `: ${t.body.note}` : "")),
        ),
      );
    } catch (e) {
      clear(box, h("h4", {}, "Timeline"), notice(e.missing ? "Timeline not available." : e.message, "missing"));
    }
  }

  async loadMessages(inc) {
    const box = this._sections.messages;
    const input = h("input", { name: "message", maxlength: 2000, autocomplete: "off" });
    const form = h(
      "form",
      {
        class: "row",
        onsubmit: async (e) => {
          e.preventDefault();
          if (!input.value.trim()) return;
          try {
            await api(`/v1/incidents/${inc.id}/messages`, { method: "POST", body: { id: uuid(), text: input.value.trim() } });
            this.loadMessages(inc);
            this.loadTimeline(inc);
          } catch (ex) {
            form.after(notice(ex.message, "error"));
          }
        },
      },
      label("Message", input),
      h("button", { type: "submit" }, "Send"),
    );
    try {
      const items = itemsOf(await api(`/v1/incidents/${inc.id}/messages`, { query: { limit: 100 } }));
      clear(
        box,
        h("h4", {}, "Messages"),
        h("ul", { class: "messages small" }, items.map((m) => h("li", {}, h("strong", {}, m.author || "—"), ` ${fmtTime(m.created_at)}: ${m.text}`))),
        form,
      );
    } catch (e) {
      clear(box, h("h4", {}, "Messages"), notice(e.missing ? "Messages not available." : e.message, "missing"));
    }
  }
}
