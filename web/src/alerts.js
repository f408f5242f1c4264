// Public alert composer for coordinators: the area from a drawn polygon, a hazard or a buffer around an incident;
// CAP fields; the 90- and 360-character phone texts with live counts; a preview (recipients inside and near the
// edge, per channel, the CAP XML); submit; an approval queue where a second person approves and sends; recent
// alerts with their delivery counts. Exercise/Test alerts carry a banner and a badge everywhere.
// Keyboard: every control is a native input or button; a polygon can be drawn with "Add point at map centre"
// after panning the map with the arrow keys.

import { api, itemsOf, ApiError } from "./api.js";
import { h, clear, notice, label, select, announce, fmtDateTime } from "./ui.js";

const URGENCIES = ["Immediate", "Expected", "Future", "Past", "Unknown"];
const SEVERITIES = ["Extreme", "Severe", "Moderate", "Minor", "Unknown"];
const CERTAINTIES = ["Observed", "Likely", "Possible", "Unlikely", "Unknown"];
const CATEGORIES = ["Met", "Geo", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"];
const RESPONSES = ["", "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"];
const EXERCISE_PREFIX = "[EXERCISE] ";
const SHORT = 90;
const LONG = 360;

const chars = (s) => [...s].length; // code points, as the server counts them
const isExercise = (status) => status === "Exercise" || status === "Test";
const errorText = (e) => (e instanceof ApiError ? e.describe() : e.message);

function localInput(date) {
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function exerciseBadge(on) {
  return on ? h("span", { class: "badge alert-exercise-badge" }, "EXERCISE") : null;
}

export class AlertsPanel {
  constructor(lm, { me }) {
    this.lm = lm;
    this.me = me;
    this.draft = null; // the alert being composed, once saved
    this.points = [];
    this.msg = h("div");

    // ---- area ----
    this.areaFrom = select("area_from", [["polygon", "Drawn polygon"], ["hazard", "A hazard"], ["incident", "Buffer around an incident"]], "polygon");
    this.hazard = h("select", { name: "hazard_id" });
    this.incident = h("select", { name: "incident_id" });
    this.radius = h("input", { type: "number", name: "radius_m", min: 50, max: 100000, step: 50, value: 2000, inputmode: "numeric" });
    this.areaDesc = h("input", { name: "area_description", maxlength: 300, placeholder: "e.g. Low-lying areas along the Cedar River" });
    this.drawStatus = h("p", { class: "small", "aria-live": "polite", id: "alert-draw-status" }, "No area drawn yet.");
    this.drawBtn = h("button", { type: "button", id: "alert-draw-start", onclick: () => this.startDrawing() }, "Start drawing area");
    this.centerBtn = h("button", { type: "button", disabled: true, onclick: () => this.addPoint(this.lm.map.getCenter()) }, "Add point at map centre");
    this.undoBtn = h("button", { type: "button", disabled: true, onclick: () => this.undoPoint() }, "Undo point");
    this.polygonFields = h("div", {}, h("div", { class: "row wrap" }, this.drawBtn, this.centerBtn, this.undoBtn), this.drawStatus);
    this.hazardFields = h("div", { hidden: true }, label("Hazard", this.hazard));
    this.incidentFields = h("div", { hidden: true, class: "row" }, label("Incident", this.incident), label("Buffer radius (m)", this.radius));
    this.areaFrom.addEventListener("change", () => this.syncArea());

    // ---- CAP fields ----
    this.mode = select("status", [["Actual", "Actual (live)"], ["Exercise", "Exercise"], ["Test", "Test"]], "Actual");
    this.event = h("input", { name: "event", required: true, maxlength: 120, placeholder: "e.g. Flash Flood Warning" });
    this.category = select("category", CATEGORIES.map((c) => [c, c]), "Met");
    this.urgency = select("urgency", URGENCIES.map((c) => [c, c]), "Immediate");
    this.severity = select("severity", SEVERITIES.map((c) => [c, c]), "Severe");
    this.certainty = select("certainty", CERTAINTIES.map((c) => [c, c]), "Observed");
    this.response = select("response_type", RESPONSES.map((c) => [c, c || "—"]), "");
    this.expires = h("input", { type: "datetime-local", name: "expires", required: true, value: localInput(new Date(Date.now() + 2 * 3600e3)) });
    this.language = h("input", { name: "language", value: "en-US", maxlength: 35 });
    this.headline = h("input", { name: "headline", required: true, maxlength: 160 });
    this.description = h("textarea", { name: "description", rows: 3, required: true });
    this.instruction = h("textarea", { name: "instruction", rows: 2 });
    this.sms90 = h("textarea", { name: "sms_90", rows: 2, id: "alert-sms-90" });
    this.sms360 = h("textarea", { name: "sms_360", rows: 3, id: "alert-sms-360" });
    this.count90 = h("span", { class: "small char-count", id: "alert-sms-90-count" });
    this.count360 = h("span", { class: "small char-count", id: "alert-sms-360-count" });
    this.sms90.setAttribute("aria-describedby", this.count90.id);
    this.sms360.setAttribute("aria-describedby", this.count360.id);
    for (const el of [this.sms90, this.sms360]) el.addEventListener("input", () => this.updateCounts());
    this.banner = h("p", { class: "alert-exercise-banner", role: "status", hidden: true }, "EXERCISE — this alert reaches only exercise recipients, never the public.");
    this.mode.addEventListener("change", () => this.updateCounts());

    this.saveBtn = h("button", { type: "submit", class: "primary", id: "alert-preview" }, "Save draft and preview");
    this.form = h(
      "form",
      { id: "alert-form", "aria-labelledby": "alert-compose-h", onsubmit: (e) => (e.preventDefault(), this.saveAndPreview()) },
      h("h2", { id: "alert-compose-h" }, "Compose public alert"),
      this.banner,
      this.msg,
      h("fieldset", {}, h("legend", {}, "Area"), label("Area from", this.areaFrom), this.polygonFields, this.hazardFields, this.incidentFields, label("Area description", this.areaDesc)),
      h(
        "fieldset",
        {},
        h("legend", {}, "Alert"),
        h("div", { class: "row wrap" }, label("Mode", this.mode), label("Category", this.category)),
        label("Event", this.event),
        h("div", { class: "row wrap" }, label("Urgency", this.urgency), label("Severity", this.severity), label("Certainty", this.certainty)),
        h("div", { class: "row wrap" }, label("Response", this.response), label("Expires", this.expires)),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Texts"),
        label("Language", this.language),
        label("Headline", this.headline, "At most 160 characters."),
        label("Description", this.description),
        label("Instruction", this.instruction),
        h("div", { class: "field" }, h("label", { for: this.sms90.id }, "Phone text (90 characters)"), this.sms90, this.count90),
        h("div", { class: "field" }, h("label", { for: this.sms360.id }, "Phone text (360 characters)"), this.sms360, this.count360),
      ),
      h("div", { class: "row wrap" }, this.saveBtn),
    );

    this.previewEl = h("section", { id: "alert-preview-box", "aria-label": "Alert preview", "aria-live": "polite" });
    this.queue = h("ul", { class: "cards", id: "alert-queue", "aria-label": "Alerts waiting for approval" });
    this.recent = h("ul", { class: "cards", id: "alert-recent", "aria-label": "Recent alerts" });
    this.queueMsg = h("div", { "aria-live": "polite" });
    /** Per queued alert, the error its last approval got: kept when the list re-renders (a stream delta
     * refreshes it), so the reason does not vanish a moment after it is shown. */
    this.queueErrors = new Map();
    this.el = h(
      "div",
      {},
      this.form,
      this.previewEl,
      h("div", { class: "row spread" }, h("h2", {}, "Waiting for approval"), h("button", { type: "button", class: "small", onclick: () => this.refresh() }, "Refresh")),
      this.queueMsg,
      this.queue,
      h("h2", {}, "Recent alerts"),
      this.recent,
    );
    this.updateCounts();
  }

  // ---- area ----
  syncArea() {
    const from = this.areaFrom.value;
    this.polygonFields.hidden = from !== "polygon";
    this.hazardFields.hidden = from !== "hazard";
    this.incidentFields.hidden = from !== "incident";
    if (from !== "polygon") this.stopDrawing();
    const byTitle = (a, b) => String(a.title || "").localeCompare(String(b.title || ""));
    if (from === "hazard") {
      const list = [...this.lm.hazards.values()].sort(byTitle);
      clear(this.hazard, list.length ? list.map((z) => h("option", { value: z.id }, `${z.title || z.kind} (${z.severity || "?"})`)) : h("option", { value: "" }, "No active hazards"));
    }
    if (from === "incident") {
      const list = [...this.lm.incidents.values()].filter((i) => !["closed", "cancelled"].includes(i.status)).sort(byTitle);
      clear(this.incident, list.length ? list.map((i) => h("option", { value: i.id }, `P${i.priority} ${i.title}`)) : h("option", { value: "" }, "No open incidents"));
    }
  }

  startDrawing() {
    this.points = [];
    this.drawing = true;
    this.lm.clickMode = (ll) => this.addPoint(ll);
    this.lm.map.getCanvas().style.cursor = "crosshair";
    this.centerBtn.disabled = false;
    this.showPoints();
    announce("Click the map to add the area's corners, at least three.");
  }

  stopDrawing() {
    this.drawing = false;
    if (this.lm.clickMode) this.lm.clickMode = null;
    this.lm.map.getCanvas().style.cursor = "";
    this.centerBtn.disabled = true;
  }

  addPoint(ll) {
    if (!this.drawing) return;
    this.points.push([ll.lng, ll.lat]);
    this.showPoints();
  }

  undoPoint() {
    this.points.pop();
    this.showPoints();
  }

  polygon() {
    return this.points.length >= 3 ? { type: "Polygon", coordinates: [[...this.points, this.points[0]]] } : null;
  }

  showPoints() {
    const feats = this.points.map((p) => ({ type: "Feature", geometry: { type: "Point", coordinates: p }, properties: {} }));
    const g = this.polygon();
    if (g) feats.push({ type: "Feature", geometry: g, properties: {} });
    this.lm.setDraft(feats);
    this.undoBtn.disabled = !this.points.length;
    const n = this.points.length;
    this.drawStatus.textContent = `${n} corner${n === 1 ? "" : "s"}${n < 3 ? " (need 3)" : ""}.`;
  }

  area() {
    const description = this.areaDesc.value.trim();
    if (this.areaFrom.value === "hazard") return this.hazard.value ? { hazard_id: this.hazard.value, description } : null;
    if (this.areaFrom.value === "incident") return this.incident.value ? { incident_id: this.incident.value, radius_m: Number(this.radius.value), description } : null;
    const g = this.polygon();
    return g ? { geometry: g, description } : null;
  }

  // ---- texts ----
  updateCounts() {
    const prefix = isExercise(this.mode.value) ? chars(EXERCISE_PREFIX) : 0;
    let ok = true;
    for (const [el, out, limit] of [[this.sms90, this.count90, SHORT], [this.sms360, this.count360, LONG]]) {
      const n = el.value ? chars(el.value) + prefix : 0;
      const over = n > limit;
      ok = ok && !over;
      out.textContent = `${n} / ${limit} characters${prefix && el.value ? " (with the [EXERCISE] prefix)" : ""}${over ? ` — ${n - limit} too many` : ""}`;
      out.classList.toggle("danger", over);
      el.setAttribute("aria-invalid", over ? "true" : "false");
    }
    this.banner.hidden = !isExercise(this.mode.value);
    this.saveBtn.disabled = !ok;
    return ok;
  }

  body() {
    const area = this.area();
    if (!area) throw new Error(this.areaFrom.value === "polygon" ? "Draw the area first (at least 3 corners)." : "Choose the area.");
    const expires = new Date(this.expires.value);
    if (Number.isNaN(expires.getTime())) throw new Error("Set when the alert expires.");
    return {
      status: this.mode.value,
      event: this.event.value.trim(),
      category: [this.category.value],
      urgency: this.urgency.value,
      severity: this.severity.value,
      certainty: this.certainty.value,
      response_type: this.response.value ? [this.response.value] : [],
      expires: expires.toISOString(),
      area,
      texts: [
        {
          language: this.language.value.trim() || "en-US",
          headline: this.headline.value.trim(),
          description: this.description.value.trim(),
          instruction: this.instruction.value.trim(),
          sms_90: this.sms90.value.trim(),
          sms_360: this.sms360.value.trim(),
        },
      ],
    };
  }

  // ---- compose → preview → submit ----
  async saveAndPreview() {
    if (!this.updateCounts()) return;
    let body;
    try {
      body = this.body();
    } catch (e) {
      clear(this.msg, notice(e.message, "error"));
      return;
    }
    this.saveBtn.disabled = true;
    try {
      const editing = this.draft && this.draft.status === "draft";
      this.draft = await api(editing ? `/v1/alerts/${this.draft.id}` : "/v1/alerts", { method: editing ? "PATCH" : "POST", body });
      clear(this.msg, notice(`Draft saved (${this.draft.exercise ? "exercise" : "live"}). Check the preview, then submit it for approval.`));
      this.stopDrawing();
      if (this.draft.area) this.lm.setDraft([{ type: "Feature", geometry: this.draft.area, properties: {} }]);
      await this.showPreview(this.draft, true);
    } catch (e) {
      clear(this.msg, notice(errorText(e), "error"));
    } finally {
      this.saveBtn.disabled = !this.updateCounts();
    }
  }

  async showPreview(alert, composing) {
    clear(this.previewEl, h("p", { class: "muted" }, "Loading preview…"));
    if (!composing && alert.area) this.showArea(alert.area);
    let p;
    try {
      p = await api(`/v1/alerts/${alert.id}/preview`);
    } catch (e) {
      clear(this.previewEl, notice(errorText(e), "error"));
      return;
    }
    const channels = Object.entries(p.inside_by_channel || {}).map(([c, n]) => `${n} by ${c.replace("alert_", "")}`).join(", ") || "no channels";
    const submitBtn = composing
      ? h("button", { type: "button", class: "primary", id: "alert-submit", onclick: () => this.submit(alert) }, "Submit for approval")
      : null;
    const headline = alert.content?.texts?.[0]?.headline || "";
    clear(
      this.previewEl,
      h(
        "div",
        { class: `card${p.exercise ? " alert-exercise-card" : ""}` },
        h("h3", {}, "Preview: ", headline, " ", exerciseBadge(p.exercise)),
        p.exercise ? h("p", { class: "alert-exercise-banner" }, "EXERCISE — only exercise recipients get this.") : null,
        h(
          "dl",
          { class: "alert-preview-counts" },
          h("dt", {}, "Recipients inside the area"),
          h("dd", { id: "alert-inside" }, String(p.inside)),
          h("dt", {}, `Near the edge (within ${Math.round(p.near_edge_m)} m outside)`),
          h("dd", { id: "alert-near-edge" }, String(p.near_edge)),
          h("dt", {}, "By channel"),
          h("dd", {}, channels),
        ),
        p.area_simplified ? notice(`The area was simplified to stay within the vertex budget; it now covers ${Math.round(p.area_extra_m2 / 1e4)} ha more than drawn.`) : null,
        p.cap_problems?.length ? notice(`CAP problems: ${p.cap_problems.join("; ")}`, "error") : h("p", { class: "small" }, "The CAP document is valid."),
        h("details", {}, h("summary", {}, "CAP document (XML)"), h("pre", { class: "alert-cap", id: "alert-cap", tabindex: "0", "aria-label": "CAP XML" }, p.cap)),
        p.messages?.sms ? h("p", { class: "small" }, h("strong", {}, "SMS: "), p.messages.sms.body) : null,
        submitBtn,
      ),
    );
    announce(`Preview: ${p.inside} recipients inside, ${p.near_edge} near the edge.`);
  }

  /** Outline an alert's area on the map and bring it into view. */
  showArea(area) {
    this.lm.setDraft([{ type: "Feature", geometry: area, properties: {} }]);
    const xs = [];
    const ys = [];
    const walk = (c) => (typeof c[0] === "number" ? (xs.push(c[0]), ys.push(c[1])) : c.forEach(walk));
    walk(area.coordinates);
    if (xs.length) this.lm.map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { padding: 40, maxZoom: 15, duration: 0 });
  }

  async submit(alert) {
    try {
      const out = await api(`/v1/alerts/${alert.id}/submit`, { method: "POST" });
      this.draft = out;
      clear(this.msg, notice(`Submitted for approval: "${out.content.texts[0].headline}". Another coordinator must approve it.`));
      clear(this.previewEl);
      this.lm.setDraft([]);
      announce("Alert submitted for approval");
      await this.refresh();
    } catch (e) {
      clear(this.msg, notice(errorText(e), "error"));
    }
  }

  // ---- approval queue and recent alerts ----
  async refresh() {
    try {
      const [queued, recent] = await Promise.all([api("/v1/alerts", { query: { status: "submitted", limit: 50 } }), api("/v1/alerts", { query: { limit: 15 } })]);
      this.renderQueue(itemsOf(queued));
      this.renderRecent(itemsOf(recent).filter((a) => a.status !== "submitted"));
    } catch (e) {
      clear(this.queueMsg, notice(e instanceof ApiError && e.missing ? "Alerts are not available on this server yet." : errorText(e), "error"));
    }
  }

  renderQueue(items) {
    const queued = new Set(items.map((a) => String(a.id)));
    for (const id of this.queueErrors.keys()) if (!queued.has(id)) this.queueErrors.delete(id);
    clear(
      this.queue,
      items.length
        ? items.map((a) => {
            const own = this.me && String(a.created_by) === String(this.me.id);
            const kept = this.queueErrors.get(String(a.id));
            const err = h("div", { "aria-live": "polite" }, kept ? notice(kept, "error") : null);
            const headline = a.content.texts[0].headline;
            return h(
              "li",
              { class: `card${a.exercise ? " alert-exercise-card" : ""}`, dataset: { alert: a.id } },
              h("strong", {}, headline), " ", exerciseBadge(a.exercise),
              h("p", { class: "small muted" }, `${a.msg_type} · ${a.content.event} · ${a.content.severity}/${a.content.urgency} · expires ${fmtDateTime(a.expires)}${own ? " · composed by you" : ""}`),
              h(
                "div",
                { class: "row wrap" },
                h("button", { type: "button", class: "small", "aria-label": `Preview: ${headline}`, onclick: () => this.showPreview(a, false) }, "Preview"),
                h("button", { type: "button", class: "small primary", "aria-label": `Approve and send: ${headline}`, onclick: () => this.approve(a, err) }, "Approve and send"),
              ),
              own ? h("p", { class: "small muted" }, "A second person must approve an alert you composed.") : null,
              err,
            );
          })
        : h("li", { class: "muted" }, "Nothing waiting for approval."),
    );
  }

  async approve(alert, errEl) {
    try {
      const out = await api(`/v1/alerts/${alert.id}/approve`, { method: "POST", body: { send: true } });
      this.queueErrors.delete(String(alert.id));
      const total = Object.values(out.deliveries || {}).reduce((s, n) => s + n, 0);
      clear(this.queueMsg, notice(`Approved and sent "${out.alert.content.texts[0].headline}" (${total} ${total === 1 ? "delivery" : "deliveries"} queued).`));
      announce("Alert approved and sent");
      await this.refresh();
    } catch (e) {
      this.queueErrors.set(String(alert.id), errorText(e));
      clear(errEl, notice(errorText(e), "error"));
    }
  }

  renderRecent(items) {
    clear(
      this.recent,
      items.length
        ? items.map((a) => {
            const status = h("p", { class: "small" });
            const load = async () => {
              try {
                const d = await api(`/v1/alerts/${a.id}/deliveries`, { query: { limit: 1 } });
                status.textContent = Object.entries(d.counts).map(([k, n]) => `${n} ${k}`).join(" · ");
              } catch (e) {
                status.textContent = errorText(e);
              }
            };
            return h(
              "li",
              { class: `card${a.exercise ? " alert-exercise-card" : ""}`, dataset: { alert: a.id } },
              h("strong", {}, a.content.texts[0].headline), " ", exerciseBadge(a.exercise),
              h("p", { class: "small muted" }, `${a.msg_type} · ${a.status}${a.sent_at ? ` ${fmtDateTime(a.sent_at)}` : ""}`),
              a.sent_at ? h("button", { type: "button", class: "small", "aria-label": `Delivery status: ${a.content.texts[0].headline}`, onclick: load }, "Delivery status") : null,
              status,
            );
          })
        : h("li", { class: "muted" }, "No alerts yet."),
    );
  }

  /** Stream deltas on the `alerts` topic: refresh the lists (they are short). */
  applyDelta() {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = setTimeout(() => this.refresh(), 300);
  }
}
