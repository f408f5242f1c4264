// Normalizers from API/stream shapes to the records the map draws, and the GeoJSON built from them.
// The API shapes are read defensively: a position may be flat ({lon, lat}), nested ({position: {...}}) or
// GeoJSON ({geometry: Point}); ids may be `id` or `responder_id`.

import { circlePolygon, pointInGeometry, geometryBBox } from "./geo.js";

export const STALE_AFTER_S = 300;

function num(v) {
  const n = typeof v === "string" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? n : null;
}

function lonLatOf(o) {
  if (!o || typeof o !== "object") return null;
  if (num(o.lon) !== null && num(o.lat) !== null) return [num(o.lon), num(o.lat)];
  if (num(o.longitude) !== null && num(o.latitude) !== null) return [num(o.longitude), num(o.latitude)];
  const g = o.geometry || o.geom || o.location || o.point;
  if (g && g.type === "Point" && Array.isArray(g.coordinates)) return [num(g.coordinates[0]), num(g.coordinates[1])];
  if (g && typeof g === "object" && !g.type) return lonLatOf(g);
  for (const k of ["position", "latest", "latest_position", "last_position"]) {
    if (o[k] && typeof o[k] === "object") {
      const p = lonLatOf(o[k]);
      if (p) return p;
    }
  }
  return null;
}

/** Merge an API or stream responder/position object into `prev` (mutated in place) or a new record. */
export function mergeResponder(prev, raw) {
  const o = raw.properties ? { ...raw.properties, geometry: raw.geometry } : raw;
  const pos = o.position && typeof o.position === "object" ? o.position : o;
  const id = String(o.responder_id || o.id || prev?.id);
  const rec = prev || { id, callsign: id.slice(0, 8), status: "available", fix_ms: null };
  // Fast path (stream deltas): flat numbers.
  const ll = typeof o.lon === "number" && typeof o.lat === "number" ? [o.lon, o.lat] : lonLatOf(o);
  const fixTime = pos.fix_time || o.fix_time;
  const fixMs = typeof o.fix_ms === "number" ? o.fix_ms : fixTime ? Date.parse(fixTime) : null;
  // Only a newer fix moves the marker (a late fix never moves a responder back).
  if (ll && ll[0] !== null && ll[1] !== null) {
    if (rec.fix_ms === null || fixMs === null || fixMs >= rec.fix_ms) {
      rec.lon = ll[0];
      rec.lat = ll[1];
      if (fixMs !== null) {
        rec.fix_time = fixTime || null; // compact stream positions carry only fix_ms
        rec.fix_ms = fixMs;
      }
    }
  }
  if (o.callsign != null) rec.callsign = o.callsign;
  if (o.name != null) rec.name = o.name;
  if (o.status != null) rec.status = o.status;
  if (o.team_id != null) rec.team_id = o.team_id;
  if (o.skills != null) rec.skills = o.skills;
  const batt = num(pos.battery_pct ?? o.battery_pct);
  if (batt !== null) rec.battery_pct = batt;
  if (typeof o.stale === "boolean") rec.server_stale = o.stale;
  return rec;
}

export function ageSeconds(rec, now = Date.now()) {
  if (rec.fix_ms === null || rec.fix_ms === undefined) return null;
  return (now - rec.fix_ms) / 1000;
}

export function isStale(rec, now = Date.now()) {
  const age = ageSeconds(rec, now);
  if (age === null) return !!rec.server_stale;
  // A fresh fix (newer than the server's flag) clears staleness immediately.
  return age > STALE_AFTER_S || (!!rec.server_stale && age > 30);
}

export function normalizeHazard(raw) {
  const o = raw.properties ? { ...raw.properties, geometry: raw.geometry, id: raw.id ?? raw.properties.id } : raw;
  let geometry = o.geometry || o.geom || o.area || null;
  const radius = num(o.radius_m);
  if ((!geometry || geometry.type === "Point") && radius) {
    const c = geometry?.coordinates || lonLatOf(o.center || o.point || o);
    if (c) geometry = circlePolygon(c, radius);
  }
  if (!geometry) return null;
  return {
    id: String(o.id),
    kind: o.kind || "hazard",
    severity: String(o.severity || "unknown").toLowerCase(),
    source: o.source || "manual",
    title: o.title || o.kind || "Hazard",
    status: o.status || "active",
    valid_from: o.valid_from || null,
    valid_until: o.valid_until || null,
    geometry,
    bbox: geometryBBox(geometry),
  };
}

export function hazardActive(hz, now = Date.now()) {
  if (hz.status && !["active", "open", "current"].includes(hz.status)) return false;
  if (hz.valid_until && Date.parse(hz.valid_until) < now) return false;
  return true;
}

export function normalizeGeofence(raw) {
  const o = raw.properties ? { ...raw.properties, geometry: raw.geometry, id: raw.id ?? raw.properties.id } : raw;
  let geometry = o.geometry || o.geom || null;
  const radius = num(o.radius_m);
  if ((!geometry || geometry.type === "Point") && radius) {
    const c = geometry?.coordinates || lonLatOf(o.center || o.point || o);
    if (c) geometry = circlePolygon(c, radius);
  }
  if (!geometry || o.deleted_at) return null;
  return { id: String(o.id), name: o.name || "Geofence", geometry, detect: o.detect || [] };
}

export const INCIDENT_STATUSES = ["reported", "acknowledged", "dispatched", "en_route", "on_scene", "resolved", "closed", "cancelled"];
export const OPEN_INCIDENT = new Set(["reported", "acknowledged", "dispatched", "en_route", "on_scene"]);

export function nextStatuses(status) {
  const i = INCIDENT_STATUSES.indexOf(status);
  if (status === "closed" || status === "cancelled" || i < 0) return [];
  const out = [INCIDENT_STATUSES[i + 1]];
  if (status !== "resolved") out.push("cancelled");
  return out;
}

export function normalizeIncident(raw) {
  const o = raw.properties ? { ...raw.properties, geometry: raw.geometry, id: raw.id ?? raw.properties.id } : raw;
  let priority = o.priority;
  if (typeof priority === "string") priority = Number(priority.replace(/^P/i, ""));
  const geometry = o.location || o.geometry || o.geom || null;
  let ll = lonLatOf(o);
  if (!ll && geometry && geometry.type !== "Point") {
    const b = geometryBBox(geometry);
    ll = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
  }
  return {
    ...o,
    id: String(o.id),
    priority: priority || 3,
    status: o.status || "reported",
    title: o.title || o.type || "Incident",
    lon: ll ? ll[0] : null,
    lat: ll ? ll[1] : null,
  };
}

/** Is a responder inside any active hazard (client-side exact test over hazard polygons)? */
export function hazardsAt(lon, lat, hazards) {
  const hits = [];
  for (const hz of hazards) {
    const b = hz.bbox;
    if (!b || lon < b[0] || lon > b[2] || lat < b[1] || lat > b[3]) continue;
    if (hazardActive(hz) && pointInGeometry([lon, lat], hz.geometry)) hits.push(hz);
  }
  return hits;
}
