// Hazard and geofence drawing for coordinators: polygon by clicks, circle by centre + radius (a second click or a
// typed radius). Keyboard: "Add point at map centre" after panning with the arrow keys; Enter finishes, Esc cancels.

import { api, ApiError } from "./api.js";
import { h, clear, notice, label, select, announce, fmtDistance } from "./ui.js";
import { circlePolygon, distanceM } from "./geo.js";

const SEVERITIES = ["extreme", "severe", "moderate", "minor", "unknown"];
const KINDS = ["flood", "fire", "chemical", "storm", "structural", "other"];
const DETECTS = ["enter", "exit", "inside", "outside", "dwell"];

export class DrawPanel {
  constructor(lm) {
    this.lm = lm;
    this.points = [];
    this.center = null;
    this.msg = h("div");
    this.status = h("p", { class: "small", "aria-live": "polite", id: "draw-status" });
    this.what = select("what", [["hazard", "Hazard"], ["geofence", "Geofence"]], "hazard");
    this.shape = select("shape", [["polygon", "Polygon (click vertices)"], ["circle", "Circle (centre + radius)"]], "polygon");
    this.name = h("input", { name: "title", placeholder: "e.g. River flooding", maxlength: 200 });
    this.kind = select("kind", KINDS.map((k) => [k, k]), "flood");
    this.severity = select("severity", SEVERITIES.map((k) => [k, k]), "severe");
    this.validUntil = h("input", { type: "datetime-local", name: "valid_until" });
    this.radius = h("input", { type: "number", name: "radius_m", min: 10, step: 10, value: 500, inputmode: "numeric" });
    this.detects = DETECTS.map((d) => h("input", { type: "checkbox", name: "detect", value: d, checked: d === "enter" || d === "exit", id: `detect-${d}` }));
    this.hazardFields = h("div", {}, h("div", { class: "row" }, label("Kind", this.kind), label("Severity", this.severity)), label("Valid until (optional)", this.validUntil));
    this.fenceFields = h(
      "fieldset",
      { hidden: true },
      h("legend", {}, "Detect"),
      h("div", { class: "row wrap" }, this.detects.map((c) => h("span", { class: "check" }, c, h("label", { for: c.id }, c.value)))),
    );
    this.radiusField = label("Radius (m)", this.radius);
    this.radiusField.hidden = true;
    this.what.addEventListener("change", () => this._syncFields());
    this.shape.addEventListener("change", () => {
      this._syncFields();
      this.reset();
    });
    this.radius.addEventListener("input", () => this._preview());

    this.startBtn = h("button", { type: "button", class: "primary", id: "draw-start", onclick: () => this.start() }, "Start drawing");
    this.addCenterBtn = h("button", { type: "button", onclick: () => this._add(this.lm.map.getCenter()), disabled: true }, "Add point at map centre");
    this.undoBtn = h("button", { type: "button", onclick: () => this.undo(), disabled: true }, "Undo point");
    this.saveBtn = h("button", { type: "button", class: "primary", id: "draw-save", onclick: () => this.save(), disabled: true }, "Save");
    this.cancelBtn = h("button", { type: "button", onclick: () => this.reset(true), disabled: true }, "Cancel");
    this.el = h(
      "form",
      { onsubmit: (e) => (e.preventDefault(), this.save()), "aria-labelledby": "draw-h" },
      h("h2", { id: "draw-h" }, "Draw hazard or geofence"),
      this.msg,
      h("div", { class: "row" }, label("Draw a", this.what), label("Shape", this.shape)),
      label("Name", this.name),
      this.hazardFields,
      this.fenceFields,
      this.radiusField,
      h("div", { class: "row wrap" }, this.startBtn, this.addCenterBtn, this.undoBtn),
      this.status,
      h("div", { class: "row wrap" }, this.saveBtn, this.cancelBtn),
    );
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.active) this.reset(true);
    });
    this._syncFields();
  }

  setMessage(t) {
    clear(this.msg, notice(t, "missing"));
  }

  _syncFields() {
    const fence = this.what.value === "geofence";
    this.hazardFields.hidden = fence;
    this.fenceFields.hidden = !fence;
    this.radiusField.hidden = this.shape.value !== "circle";
  }

  start() {
    this.reset();
    this.active = true;
    this.lm.clickMode = (ll) => this._add(ll);
    this.lm.map.getCanvas().style.cursor = "crosshair";
    this.addCenterBtn.disabled = false;
    this.cancelBtn.disabled = false;
    this.status.textContent =
      this.shape.value === "polygon" ? "Click the map to add vertices (at least 3), then Save." : "Click the map to place the centre, then click again or type the radius.";
    announce(this.status.textContent);
  }

  _add(ll) {
    if (!this.active) return;
    if (this.shape.value === "circle") {
      if (!this.center) this.center = [ll.lng, ll.lat];
      else this.radius.value = Math.max(10, Math.round(distanceM(this.center, [ll.lng, ll.lat])));
    } else this.points.push([ll.lng, ll.lat]);
    this._preview();
  }

  undo() {
    if (this.shape.value === "circle") this.center = null;
    else this.points.pop();
    this._preview();
  }

  geometry() {
    if (this.shape.value === "circle") {
      const r = Number(this.radius.value);
      return this.center && r > 0 ? circlePolygon(this.center, r) : null;
    }
    if (this.points.length < 3) return null;
    return { type: "Polygon", coordinates: [[...this.points, this.points[0]]] };
  }

  _preview() {
    const feats = [];
    const pts = this.shape.value === "circle" ? (this.center ? [this.center] : []) : this.points;
    for (const p of pts) feats.push({ type: "Feature", geometry: { type: "Point", coordinates: p }, properties: {} });
    const g = this.geometry();
    if (g) feats.push({ type: "Feature", geometry: g, properties: {} });
    else if (this.points.length === 2) feats.push({ type: "Feature", geometry: { type: "LineString", coordinates: this.points }, properties: {} });
    this.lm.setDraft(feats);
    this.undoBtn.disabled = !pts.length;
    this.saveBtn.disabled = !g;
    if (this.shape.value === "circle") this.status.textContent = this.center ? `Centre set; radius ${fmtDistance(Number(this.radius.value))}.` : "Click the map to place the centre.";
    else this.status.textContent = `${this.points.length} vertices${this.points.length < 3 ? " (need 3)" : ""}.`;
  }

  reset(cancelled) {
    this.active = false;
    this.points = [];
    this.center = null;
    this.lm.clickMode = null;
    this.lm.map.getCanvas().style.cursor = "";
    this.lm.setDraft([]);
    this.addCenterBtn.disabled = true;
    this.undoBtn.disabled = true;
    this.saveBtn.disabled = true;
    this.cancelBtn.disabled = true;
    if (cancelled) this.status.textContent = "Drawing cancelled.";
  }

  body() {
    const circle = this.shape.value === "circle";
    const geometry = circle ? { type: "Point", coordinates: this.center } : this.geometry();
    const extra = circle ? { radius_m: Number(this.radius.value) } : {};
    if (this.what.value === "geofence") {
      return {
        name: this.name.value.trim() || "Geofence",
        geometry,
        ...extra,
        detect: this.detects.filter((c) => c.checked).map((c) => c.value),
      };
    }
    const b = { kind: this.kind.value, severity: this.severity.value, title: this.name.value.trim() || `${this.kind.value} hazard`, geometry, ...extra };
    if (this.validUntil.value) b.valid_until = new Date(this.validUntil.value).toISOString();
    return b;
  }

  async save() {
    if (!this.geometry()) return;
    const path = this.what.value === "geofence" ? "/v1/geofences" : "/v1/hazards";
    this.saveBtn.disabled = true;
    try {
      const created = await api(path, { method: "POST", body: this.body() });
      if (this.what.value === "geofence") this.lm.upsertGeofences([created]);
      else this.lm.upsertHazards([created.hazard || created]);
      announce(`${this.what.value} saved`);
      clear(this.msg, notice(`${this.what.value === "geofence" ? "Geofence" : "Hazard"} saved.`));
      this.reset();
    } catch (e) {
      this.saveBtn.disabled = false;
      clear(this.msg, notice(e instanceof ApiError ? (e.missing ? `${path} is not available on this server yet.` : e.describe()) : e.message, "error"));
    }
  }
}
