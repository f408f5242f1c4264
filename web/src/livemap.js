// The live map: MapLibre with the offline basemap and one GeoJSON source per layer family. Changes mark a source
// dirty; one flush per animation frame calls setData once per dirty source, however many deltas arrived.
// Responders are the exception, because thousands move on every stream tick: they are drawn, as markers or as
// clusters when zoomed out, on a canvas over the map (responderlayer.js) whose one typed array is rewritten once
// per flush, so a tick neither re-tiles a GeoJSON source nor repaints the WebGL map.

import maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import { BASE_STYLE, addBasemap } from "./basemap.js";
import {
  mergeResponder,
  normalizeHazard,
  normalizeIncident,
  normalizeGeofence,
  isStale,
  ageSeconds,
  hazardsAt,
  hazardActive,
} from "./model.js";
import { fmtAge, fmtTime, h } from "./ui.js";
import { ResponderOverlay, STATE_CODES, HAZARD_FLAG, latOfMercatorY } from "./responderlayer.js";

/** Up to this zoom, nearby responders are drawn as one numbered cluster. */
export const CLUSTER_MAX_ZOOM = 12;

const EMPTY = () => ({ type: "FeatureCollection", features: [] });
export const STATUS_COLORS = { available: "#1b7f3b", busy: "#c2410c", off_duty: "#475569", stale: "#8a8f98" };
export const SEVERITY_COLORS = {
  extreme: "#7f1d1d",
  severe: "#c81e1e",
  moderate: "#d97706",
  minor: "#ca8a04",
  unknown: "#6b4f3a",
};
export const PRIORITY_COLORS = { 1: "#b91c1c", 2: "#ea580c", 3: "#a16207", 4: "#1d4ed8" };

export class LiveMap {
  constructor(container, { center = [-91.67, 41.98], zoom = 10, onIncidentClick, onResponderClick } = {}) {
    this.responders = new Map();
    this.hazards = new Map();
    this.incidents = new Map();
    this.geofences = new Map();
    this.fenceFlags = new Map(); // responder id -> Set(hazard id), from server fence_events
    this.dirty = new Set();
    this.stats = { setData: {}, flushes: 0, lastFlushAt: 0, deltasApplied: 0 };
    this.listeners = new Set();
    this.clickMode = null; // (lngLat) => void, for create/draw modes
    this.selectedIncident = null;
    this.onIncidentClick = onIncidentClick;
    this.onResponderClick = onResponderClick;
    this._flushScheduled = false;
    this.ready = new Promise((resolve) => (this._resolveReady = resolve));

    this.map = new maplibregl.Map({
      container,
      style: BASE_STYLE,
      center,
      zoom,
      attributionControl: false,
      fadeDuration: 0,
      maxPitch: 0,
      dragRotate: false,
      keyboard: true,
    });
    this.map.touchZoomRotate.disableRotation();
    this.map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
    this.map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
    this.map.addControl(
      new maplibregl.AttributionControl({ compact: true, customAttribution: "© Natural Earth · US Census" }),
      "bottom-right",
    );
    const canvas = this.map.getCanvas();
    canvas.setAttribute("aria-label", "Operations map. Use arrow keys to pan, plus and minus to zoom.");
    canvas.setAttribute("role", "region");
    this.map.on("load", () => this._onLoad());
    // Staleness is a function of time: re-evaluate ages even when nothing moves.
    this._ageTimer = setInterval(() => this.markDirty("responders"), 5000);
  }

  _onLoad() {
    const map = this.map;
    this.basemapLoaded = addBasemap(map).then(() => (this.basemapReady = true));
    map.addSource("hexbins", { type: "geojson", data: EMPTY() });
    map.addSource("geofences", { type: "geojson", data: EMPTY() });
    map.addSource("hazards", { type: "geojson", data: EMPTY() });
    map.addSource("draft", { type: "geojson", data: EMPTY() });
    map.addSource("incidents", { type: "geojson", data: EMPTY(), promoteId: "id" });
    map.addLayer({
      id: "hexbins-fill",
      type: "fill",
      source: "hexbins",
      layout: { visibility: "none" },
      paint: {
        "fill-color": ["interpolate", ["linear"], ["get", "norm"], 0, "#fde68a", 0.5, "#f97316", 1, "#7f1d1d"],
        "fill-opacity": 0.45,
        "fill-outline-color": "#7c2d12",
      },
    });
    map.addLayer({
      id: "geofences-fill",
      type: "fill",
      source: "geofences",
      paint: { "fill-color": "#1d4ed8", "fill-opacity": 0.06 },
    });
    map.addLayer({
      id: "geofences-line",
      type: "line",
      source: "geofences",
      paint: { "line-color": "#1d4ed8", "line-width": 2, "line-dasharray": [3, 2] },
    });
    const sev = ["match", ["get", "severity"]];
    for (const [k, c] of Object.entries(SEVERITY_COLORS)) sev.push(k, c);
    sev.push(SEVERITY_COLORS.unknown);
    map.addLayer({
      id: "hazards-fill",
      type: "fill",
      source: "hazards",
      paint: { "fill-color": sev, "fill-opacity": ["case", ["get", "active"], 0.22, 0.06] },
    });
    map.addLayer({
      id: "hazards-line",
      type: "line",
      source: "hazards",
      paint: { "line-color": sev, "line-width": 2 },
    });
    map.addLayer({ id: "draft-fill", type: "fill", source: "draft", filter: ["==", ["geometry-type"], "Polygon"], paint: { "fill-color": "#7c3aed", "fill-opacity": 0.15 } });
    map.addLayer({ id: "draft-line", type: "line", source: "draft", paint: { "line-color": "#6d28d9", "line-width": 2, "line-dasharray": [2, 1] } });
    map.addLayer({ id: "draft-points", type: "circle", source: "draft", filter: ["==", ["geometry-type"], "Point"], paint: { "circle-radius": 5, "circle-color": "#6d28d9", "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });

    const pr = ["match", ["get", "priority"]];
    for (const [k, c] of Object.entries(PRIORITY_COLORS)) pr.push(Number(k), c);
    pr.push("#334155");
    map.addLayer({
      id: "incidents-points",
      type: "circle",
      source: "incidents",
      paint: {
        "circle-radius": ["case", ["boolean", ["feature-state", "selected"], false], 13, 9],
        "circle-color": pr,
        "circle-stroke-color": "#111827",
        "circle-stroke-width": 3,
      },
    });

    this.markers = new ResponderOverlay({ colors: STATUS_COLORS, clusterMaxZoom: CLUSTER_MAX_ZOOM, clusterRadius: 40 }).addTo(map);
    map.on("click", (e) => this._onClick(e));
    for (const layer of ["incidents-points", "hazards-fill"]) {
      map.on("mouseenter", layer, () => (map.getCanvas().style.cursor = this.clickMode ? "crosshair" : "pointer"));
      map.on("mouseleave", layer, () => (map.getCanvas().style.cursor = this.clickMode ? "crosshair" : ""));
    }
    map.on("mousemove", (e) => this._onHover(e));
    this.loaded = true;
    for (const k of ["responders", "hazards", "incidents", "geofences"]) this.dirty.add(k);
    this.flush();
    this._resolveReady();
  }

  _onClick(e) {
    if (this.clickMode) {
      this.clickMode(e.lngLat);
      return;
    }
    const map = this.map;
    const hit = this.markers.pick(e.point); // drawn above every map layer
    if (hit?.id) {
      this.showResponderPopup(hit.id);
      return;
    }
    if (hit?.cluster) {
      const { lon, lat } = hit.cluster;
      map.easeTo({ center: [lon, lat], zoom: Math.min(CLUSTER_MAX_ZOOM + 1, Math.floor(map.getZoom()) + 2) });
      return;
    }
    const feats = map.queryRenderedFeatures(e.point, { layers: ["incidents-points", "hazards-fill"] });
    if (!feats.length) return;
    const f = feats[0];
    if (f.layer.id === "incidents-points") this.onIncidentClick?.(String(f.properties.id));
    else if (f.layer.id === "hazards-fill") this.showHazardPopup(String(f.properties.id), e.lngLat);
  }

  _onHover(e) {
    if (this.clickMode) return;
    const hit = this.markers.count > 0 && this.markers.pick(e.point);
    if (hit) {
      this._hoverMarker = true;
      this.map.getCanvas().style.cursor = "pointer";
    } else if (this._hoverMarker) {
      this._hoverMarker = false;
      this.map.getCanvas().style.cursor = "";
    }
  }

  /** The responder marker under screen point {x, y} (CSS px from the map's top-left), or null. */
  responderAt(x, y) {
    return this.markers?.hitTest({ x, y }) ?? null;
  }

  /**
   * Where responder `id` is drawn: lon/lat and screen point (CSS px) of its marker as last written to the marker
   * overlay, its drawn state ("available", "busy", "off_duty", "stale"), the hazard flag, and `drawn` (true once
   * the overlay was redrawn with that data, with the point inside the view and not merged into a cluster).
   */
  renderedResponder(id) {
    const g = this.markers?.lookup(String(id));
    if (!g) return null;
    const code = g.code >= HAZARD_FLAG ? g.code - HAZARD_FLAG : g.code;
    const lon = g.x * 360 - 180;
    const lat = latOfMercatorY(g.y);
    return {
      id: String(id),
      lon,
      lat,
      x: g.screen.x,
      y: g.screen.y,
      state: Object.keys(STATE_CODES).find((k) => STATE_CODES[k] === code) || "other",
      stale: code === STATE_CODES.stale,
      in_hazard: g.code >= HAZARD_FLAG,
      clustered: g.clustered,
      drawn: g.drawn,
    };
  }

  showResponderPopup(id) {
    const r = this.responders.get(id);
    if (!r) return;
    const age = ageSeconds(r);
    const hz = this.hazardsFor(r);
    const body = h(
      "div",
      { class: "popup" },
      h("strong", {}, r.callsign || r.id),
      h("div", {}, `Status: ${r.status}${isStale(r) ? " (stale)" : ""}`),
      h("div", {}, `Last fix: ${fmtTime(r.fix_time || r.fix_ms)} (${fmtAge(age)} ago)`),
      r.battery_pct !== undefined ? h("div", {}, `Battery: ${Math.round(r.battery_pct)}%`) : null,
      hz.length ? h("div", { class: "danger" }, `Inside hazard: ${hz.map((x) => x.title).join(", ")}`) : null,
    );
    this.popup?.remove();
    this.popup = new maplibregl.Popup({ closeButton: true, maxWidth: "260px" }).setLngLat([r.lon, r.lat]).setDOMContent(body).addTo(this.map);
    this.onResponderClick?.(id);
  }

  showHazardPopup(id, lngLat) {
    const hz = this.hazards.get(id);
    if (!hz) return;
    const body = h(
      "div",
      { class: "popup" },
      h("strong", {}, hz.title),
      h("div", {}, `${hz.kind} · severity ${hz.severity}`),
      h("div", {}, `Source: ${hz.source}`),
      h("div", {}, `Valid until: ${hz.valid_until ? new Date(hz.valid_until).toLocaleString() : "open-ended"}`),
    );
    this.popup?.remove();
    this.popup = new maplibregl.Popup({ maxWidth: "260px" }).setLngLat(lngLat).setDOMContent(body).addTo(this.map);
  }


  // ---- state changes -------------------------------------------------------------------------------------

  markDirty(name) {
    this.dirty.add(name);
    if (this._flushScheduled || !this.loaded) return;
    this._flushScheduled = true;
    let done = false;
    const run = () => {
      if (done) return;
      done = true;
      this._flushScheduled = false;
      this.flush();
    };
    requestAnimationFrame(run);
    setTimeout(run, 200); // hidden tabs get no animation frames
  }

  upsertResponders(list) {
    for (const raw of list) {
      if (!raw) continue;
      const id = String(raw.responder_id || raw.id || raw.properties?.id || "");
      if (!id) continue;
      const prev = this.responders.get(id);
      const rec = mergeResponder(prev, raw);
      if (!prev) this.responders.set(id, rec);
    }
    this.stats.deltasApplied += list.length;
    this.markDirty("responders");
  }

  removeResponder(id) {
    this.responders.delete(String(id));
    this.markDirty("responders");
  }

  upsertHazards(list) {
    for (const raw of list) {
      const hz = raw && normalizeHazard(raw);
      if (!hz) continue;
      if (["ended", "deleted", "expired", "cancelled"].includes(hz.status)) this.hazards.delete(hz.id);
      else this.hazards.set(hz.id, hz);
    }
    this.markDirty("hazards");
    this.markDirty("responders");
  }

  removeHazard(id) {
    this.hazards.delete(String(id));
    this.markDirty("hazards");
    this.markDirty("responders");
  }

  upsertIncidents(list) {
    for (const raw of list) {
      if (!raw) continue;
      const inc = normalizeIncident(raw);
      this.incidents.set(inc.id, { ...(this.incidents.get(inc.id) || {}), ...inc });
    }
    this.markDirty("incidents");
    this._emit("incidents");
  }

  upsertGeofences(list) {
    for (const raw of list) {
      const gf = raw && normalizeGeofence(raw);
      if (gf) this.geofences.set(gf.id, gf);
      else if (raw?.id && raw.deleted_at) this.geofences.delete(String(raw.id));
    }
    this.markDirty("geofences");
  }

  removeGeofence(id) {
    this.geofences.delete(String(id));
    this.markDirty("geofences");
  }

  /** A fence/hazard event from the server (Tile38-like: detect, id, hazard/fence). */
  applyFenceEvent(ev) {
    if (!ev) return;
    const rid = String(ev.responder_id || ev.id || "");
    const fence = String(ev.hazard_id || ev.hazard?.id || ev.fence_id || ev.fence?.id || ev.hook || "");
    if (!rid || !fence) return;
    const set = this.fenceFlags.get(rid) || new Set();
    if (ev.detect === "enter" || ev.detect === "inside") set.add(fence);
    if (ev.detect === "exit" || ev.detect === "outside") set.delete(fence);
    this.fenceFlags.set(rid, set);
    this.markDirty("responders");
    this._emit("fence_events", ev);
  }

  hazardsFor(r) {
    if (r.lon === undefined) return [];
    const hits = hazardsAt(r.lon, r.lat, this.hazards.values());
    for (const id of this.fenceFlags.get(r.id) || []) {
      const hz = this.hazards.get(id);
      if (hz && !hits.includes(hz)) hits.push(hz);
    }
    return hits;
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  _emit(what, detail) {
    for (const fn of this.listeners) fn(what, detail);
  }

  // ---- flush: one setData per dirty source -----------------------------------------------------------------

  flush() {
    if (!this.loaded) return;
    const dirty = [...this.dirty];
    this.dirty.clear();
    for (const name of dirty) {
      if (name === "responders") {
        this._flushResponders();
        continue;
      }
      const fc = this.build(name);
      if (!fc) continue;
      this.map.getSource(name).setData(fc);
      this.stats.setData[name] = (this.stats.setData[name] || 0) + 1;
      this.lastData = this.lastData || {};
      this.lastData[name] = fc;
    }
    this.stats.flushes++;
    this.stats.lastFlushAt = performance.now();
    if (dirty.includes("responders")) {
      this._emit("responders");
    }
  }

  /** Responders: one pass over the records rewrites the marker overlay's array and recomputes the hazard flags. */
  _flushResponders() {
    const now = Date.now();
    const activeHazards = [...this.hazards.values()].filter((hz) => hazardActive(hz, now));
    const checkHazards = activeHazards.length > 0 || this.fenceFlags.size > 0;
    const flagged = [];
    this.markers.update((write) => {
      for (const r of this.responders.values()) {
        if (r.lon === undefined || r.lon === null) continue;
        const state = isStale(r, now) ? "stale" : r.status;
        let inHazard = false;
        if (checkHazards) {
          inHazard = hazardsAt(r.lon, r.lat, activeHazards).length > 0 || (this.fenceFlags.get(r.id)?.size || 0) > 0;
          if (inHazard) flagged.push(r.id);
        }
        write(r.id, r.lon, r.lat, (STATE_CODES[state] ?? 4) + (inHazard ? HAZARD_FLAG : 0));
      }
    });
    this.flagged = flagged;
    this.stats.setData.responders = (this.stats.setData.responders || 0) + 1; // the one source update per flush
  }

  build(name) {
    const now = Date.now();
    if (name === "hazards") {
      return {
        type: "FeatureCollection",
        features: [...this.hazards.values()].map((hz) => ({
          type: "Feature",
          geometry: hz.geometry,
          properties: { id: hz.id, severity: hz.severity, kind: hz.kind, title: hz.title, active: hazardActive(hz, now) },
        })),
      };
    }
    if (name === "incidents") {
      return {
        type: "FeatureCollection",
        features: [...this.incidents.values()]
          .filter((i) => i.lon !== null && !["closed", "cancelled"].includes(i.status))
          .map((i) => ({
            type: "Feature",
            geometry: { type: "Point", coordinates: [i.lon, i.lat] },
            properties: { id: i.id, priority: i.priority, status: i.status, title: i.title },
          })),
      };
    }
    if (name === "geofences") {
      return {
        type: "FeatureCollection",
        features: [...this.geofences.values()].map((g) => ({ type: "Feature", geometry: g.geometry, properties: { id: g.id, name: g.name } })),
      };
    }
    return null;
  }

  selectIncident(id) {
    if (this.selectedIncident) this.map.setFeatureState({ source: "incidents", id: this.selectedIncident }, { selected: false });
    this.selectedIncident = id;
    if (id && this.incidents.has(id)) {
      this.map.setFeatureState({ source: "incidents", id }, { selected: true });
      const i = this.incidents.get(id);
      if (i.lon !== null) this.map.easeTo({ center: [i.lon, i.lat], duration: 300 });
    }
  }

  setDraft(features) {
    if (!this.loaded) return;
    this.map.getSource("draft").setData({ type: "FeatureCollection", features });
  }

  /** Show or hide a map layer, or the responder marker overlay (its id is `responders-overlay`). */
  setLayerVisible(id, on) {
    if (id === this.markers?.id) this.markers.setVisible(on);
    else this.map.setLayoutProperty(id, "visibility", on ? "visible" : "none");
  }

  setHexbinsVisible(on) {
    this.map.setLayoutProperty("hexbins-fill", "visibility", on ? "visible" : "none");
  }

  setHexbins(fc) {
    this.map.getSource("hexbins").setData(fc);
  }

  fitToResponders() {
    const pts = [...this.responders.values()].filter((r) => r.lon !== undefined);
    if (!pts.length) return;
    const b = new maplibregl.LngLatBounds();
    for (const r of pts) b.extend([r.lon, r.lat]);
    this.map.fitBounds(b, { padding: 40, maxZoom: 13, duration: 0 });
  }
}
