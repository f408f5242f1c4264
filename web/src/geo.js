// Small geometry helpers for the browser: geodesic circle, point-in-polygon, bbox.

const R = 6371008.8;
const rad = (d) => (d * Math.PI) / 180;
const deg = (r) => (r * 180) / Math.PI;

/** A polygon approximating a geodesic circle of `radius_m` around [lon, lat] (spherical, 64 vertices). */
export function circlePolygon(center, radius_m, steps = 64) {
  const [lon, lat] = center;
  const d = radius_m / R;
  const φ1 = rad(lat);
  const λ1 = rad(lon);
  const ring = [];
  for (let i = 0; i < steps; i++) {
    const θ = (2 * Math.PI * i) / steps;
    const φ2 = Math.asin(Math.sin(φ1) * Math.cos(d) + Math.cos(φ1) * Math.sin(d) * Math.cos(θ));
    const λ2 = λ1 + Math.atan2(Math.sin(θ) * Math.sin(d) * Math.cos(φ1), Math.cos(d) - Math.sin(φ1) * Math.sin(φ2));
    ring.push([deg(λ2), deg(φ2)]);
  }
  ring.reverse(); // counter-clockwise exterior (RFC 7946)
  ring.push(ring[0]);
  return { type: "Polygon", coordinates: [ring] };
}

export function distanceM(a, b) {
  const φ1 = rad(a[1]);
  const φ2 = rad(b[1]);
  const dφ = φ2 - φ1;
  const dλ = rad(b[0] - a[0]);
  const s = Math.sin(dφ / 2) ** 2 + Math.cos(φ1) * Math.cos(φ2) * Math.sin(dλ / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(s)));
}

function inRing(p, ring) {
  let inside = false;
  const [x, y] = p;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function inPolygon(p, rings) {
  if (!rings.length || !inRing(p, rings[0])) return false;
  for (let i = 1; i < rings.length; i++) if (inRing(p, rings[i])) return false;
  return true;
}

export function pointInGeometry(p, g) {
  if (!g) return false;
  if (g.type === "Polygon") return inPolygon(p, g.coordinates);
  if (g.type === "MultiPolygon") return g.coordinates.some((rings) => inPolygon(p, rings));
  if (g.type === "GeometryCollection") return g.geometries.some((x) => pointInGeometry(p, x));
  return false;
}

export function geometryBBox(g) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => {
    if (typeof c[0] === "number") {
      if (c[0] < b[0]) b[0] = c[0];
      if (c[1] < b[1]) b[1] = c[1];
      if (c[0] > b[2]) b[2] = c[0];
      if (c[1] > b[3]) b[3] = c[1];
    } else c.forEach(walk);
  };
  if (g?.type === "GeometryCollection") g.geometries.forEach((x) => walk(x.coordinates));
  else if (g?.coordinates) walk(g.coordinates);
  return b;
}
