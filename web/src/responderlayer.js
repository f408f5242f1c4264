// Responder markers at street zooms, drawn on a 2D canvas stacked over the map canvas. One typed array holds
// every responder (Mercator x, y relative to a float64 origin, plus a state code); a stream tick rewrites it in
// place and redraws this canvas only.
//
// Why not a GeoJSON source or a MapLibre custom WebGL layer: both make MapLibre repaint the whole map on every
// tick. A GeoJSON setData also re-tiles every point (worker geojson-vt + tile upload); with a custom layer the
// data costs nothing, but the full-map WebGL repaint stays. In headless Chromium's software WebGL (SwiftShader)
// that repaint alone held the page to ~7 frames/s at 10 ticks/s, while redrawing a 2D canvas of the same markers
// kept ~49 frames/s (bench/web.py). The map canvas is repainted only when the camera moves; this canvas follows
// it from the map's `render` event, so markers stay glued to the map while panning and zooming.
//
// Markers: a status-coloured dot with a white outline (stale ones grey and translucent), a red ring around
// responders inside a hazard. Below `clusterMaxZoom + 1`, responders closer than `clusterRadius` px are drawn as
// one numbered cluster (greedy grid clustering at the integer zoom, as supercluster does, recomputed per tick or
// zoom level). Hit-testing is arithmetic on the same positions (the map never rotates or pitches).

export const STATE_CODES = { available: 0, busy: 1, off_duty: 2, stale: 3 };
export const HAZARD_FLAG = 8;
const OTHER = 4;
const FLOATS = 3; // x, y, code
const TILE_SIZE = 512; // MapLibre's world size at zoom 0, in CSS pixels
const RING_RADIUS = 11;
const RING_WIDTH = 3;

export function mercatorX(lon) {
  return (180 + lon) / 360;
}

export function mercatorY(lat) {
  return (180 - (180 / Math.PI) * Math.log(Math.tan(Math.PI / 4 + (lat * Math.PI) / 360))) / 360;
}

export function latOfMercatorY(y) {
  return (360 / Math.PI) * Math.atan(Math.exp(((180 - y * 360) * Math.PI) / 180)) - 90;
}

/** A cluster circle's radius in CSS px, by member count (13, 17, 22, 28). */
export function clusterRadiusPx(count) {
  return count < 10 ? 13 : count < 50 ? 17 : count < 200 ? 22 : 28;
}

function abbreviate(count) {
  return count >= 10000 ? `${Math.round(count / 1000)}k` : count >= 1000 ? `${(count / 1000).toFixed(1)}k` : String(count);
}

/** The dot radius in CSS px at `zoom` (the circle layer's 4 px at zoom 8 to 7 px at zoom 14). */
export function dotRadius(zoom) {
  return Math.max(4, Math.min(7, 4 + ((zoom - 8) * 3) / 6));
}

export class ResponderOverlay {
  /** @param {{id?: string, colors: Record<string,string>, clusterMaxZoom?: number, clusterRadius?: number}} o */
  constructor({ id = "responders-overlay", colors, clusterMaxZoom = 12, clusterRadius = 40 }) {
    this.id = id;
    this.clusterMaxZoom = clusterMaxZoom;
    this.clusterRadius = clusterRadius;
    this._clusters = null; // {version, zoom, list: [{x, y, count, index}]}
    this.colors = [colors.available, colors.busy, colors.off_duty, colors.stale, "#334155"];
    this.count = 0;
    this.data = new Float32Array(3072);
    this.ids = [];
    this.origin = null; // [x, y] in Mercator units, float64
    this.version = 0; // bumped per update
    this.drawnVersion = -1; // the update the last drawn frame showed
    this.hidden = false;
    this.stats = { updates: 0, draws: 0, lastDrawAt: 0, drawnMarkers: 0 };
    this._sprites = new Map();
  }

  /** Put the canvas over `map`'s canvas and follow the map's frames. */
  addTo(map) {
    this.map = map;
    const canvas = document.createElement("canvas");
    canvas.className = "responder-overlay";
    canvas.setAttribute("aria-hidden", "true");
    canvas.style.cssText = "position:absolute;left:0;top:0;pointer-events:none;";
    map.getCanvasContainer().appendChild(canvas);
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this._resize();
    map.on("resize", () => {
      this._resize();
      this.draw();
    });
    map.on("render", () => this.draw());
    return this;
  }

  _resize() {
    const mc = this.map.getCanvas();
    this.canvas.width = mc.width;
    this.canvas.height = mc.height;
    this.canvas.style.width = mc.style.width || `${mc.clientWidth}px`;
    this.canvas.style.height = mc.style.height || `${mc.clientHeight}px`;
  }

  setVisible(on) {
    this.hidden = !on;
    this.draw();
  }

  visible() {
    return !!this.map && !this.hidden;
  }

  /** Clusters at the current integer zoom: [{x, y (Mercator, relative to the origin), count, index}]. */
  clusters() {
    const z = Math.floor(this.map.getZoom());
    if (z > this.clusterMaxZoom) return null;
    const c = this._clusters;
    if (c && c.version === this.version && c.zoom === z) return c.list;
    const cell = this.clusterRadius / (TILE_SIZE * 2 ** z); // Mercator units
    const d = this.data;
    const n = this.count;
    const grid = new Map();
    const key = (gx, gy) => gx * 1048576 + gy;
    for (let i = 0, o = 0; i < n; i++, o += FLOATS) {
      const k = key(Math.floor(d[o] / cell), Math.floor(d[o + 1] / cell));
      const b = grid.get(k);
      if (b) b.push(i);
      else grid.set(k, [i]);
    }
    const taken = new Uint8Array(n);
    const list = [];
    const r2 = cell * cell;
    for (let i = 0, o = 0; i < n; i++, o += FLOATS) {
      if (taken[i]) continue;
      taken[i] = 1;
      const x0 = d[o];
      const y0 = d[o + 1];
      const gx = Math.floor(x0 / cell);
      const gy = Math.floor(y0 / cell);
      let sx = x0;
      let sy = y0;
      let count = 1;
      for (let ax = gx - 1; ax <= gx + 1; ax++) {
        for (let ay = gy - 1; ay <= gy + 1; ay++) {
          const b = grid.get(key(ax, ay));
          if (!b) continue;
          for (const j of b) {
            if (taken[j]) continue;
            const dx = d[j * FLOATS] - x0;
            const dy = d[j * FLOATS + 1] - y0;
            if (dx * dx + dy * dy > r2) continue;
            taken[j] = 1;
            sx += d[j * FLOATS];
            sy += d[j * FLOATS + 1];
            count++;
          }
        }
      }
      list.push({ x: sx / count, y: sy / count, count, index: i });
    }
    this._clusters = { version: this.version, zoom: z, list };
    return list;
  }

  /**
   * Replace every marker: `fill(write)` calls `write(id, lon, lat, code)` once per responder; then one redraw
   * is scheduled for the next animation frame.
   */
  update(fill) {
    let n = 0;
    const ids = this.ids;
    const write = (id, lon, lat, code) => {
      if ((n + 1) * FLOATS > this.data.length) {
        const bigger = new Float32Array(this.data.length * 2);
        bigger.set(this.data);
        this.data = bigger;
      }
      const x = mercatorX(lon);
      const y = mercatorY(lat);
      if (!this.origin) this.origin = [x, y];
      const o = n * FLOATS;
      this.data[o] = x - this.origin[0];
      this.data[o + 1] = y - this.origin[1];
      this.data[o + 2] = code;
      ids[n++] = id;
    };
    fill(write);
    ids.length = n;
    this.count = n;
    this.version++;
    this.stats.updates++;
    this._index = null;
    if (!this._drawScheduled) {
      this._drawScheduled = true;
      requestAnimationFrame(() => {
        this._drawScheduled = false;
        if (this.drawnVersion !== this.version) this.draw();
      });
    }
  }

  _worldSize() {
    return TILE_SIZE * 2 ** this.map.getZoom();
  }

  /** The camera as [centre x, centre y (Mercator), world size (px), width, height (CSS px)]. */
  _camera() {
    const c = this.map.getCenter();
    const el = this.map.getCanvas();
    return [mercatorX(c.lng), mercatorY(c.lat), this._worldSize(), el.clientWidth, el.clientHeight];
  }

  /** A marker image per (state code, radius), drawn once and stamped with drawImage. */
  _sprite(code, radius, dpr) {
    const key = `${code}:${radius}:${dpr}`;
    let s = this._sprites.get(key);
    if (s) return s;
    const ring = code >= HAZARD_FLAG;
    const k = ring ? code - HAZARD_FLAG : code;
    const outer = ring ? RING_RADIUS + RING_WIDTH + 1 : radius + 2.5;
    const size = Math.ceil(2 * outer * dpr);
    const c = document.createElement("canvas");
    c.width = size;
    c.height = size;
    const g = c.getContext("2d");
    g.scale(dpr, dpr);
    const mid = size / dpr / 2;
    if (ring) {
      g.beginPath();
      g.arc(mid, mid, RING_RADIUS + RING_WIDTH / 2, 0, 2 * Math.PI);
      g.strokeStyle = "#b91c1c";
      g.lineWidth = RING_WIDTH;
      g.stroke();
    }
    g.globalAlpha = k === STATE_CODES.stale ? 0.65 : 1;
    g.beginPath();
    g.arc(mid, mid, radius + 0.75, 0, 2 * Math.PI);
    g.fillStyle = this.colors[k] || this.colors[OTHER];
    g.fill();
    g.strokeStyle = "#ffffff";
    g.lineWidth = 1.5;
    g.stroke();
    s = { canvas: c, half: size / 2 };
    this._sprites.set(key, s);
    return s;
  }

  /** Redraw every visible marker at the map's current camera. */
  draw() {
    if (!this.ctx) return;
    const ctx = this.ctx;
    const dpr = this.canvas.width / Math.max(1, this.map.getCanvas().clientWidth) || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.visible() || !this.count || !this.origin) {
      this.drawnVersion = -1;
      return;
    }
    const [cx, cy, ws, w, h] = this._camera();
    const radius = Math.round(dotRadius(this.map.getZoom()) * 2) / 2;
    const ox = (this.origin[0] - cx) * ws + w / 2;
    const oy = (this.origin[1] - cy) * ws + h / 2;
    const d = this.data;
    const margin = RING_RADIUS + RING_WIDTH + 2;
    const clusters = this.clusters();
    let drawn = 0;
    let lastCode = -1;
    let sprite = null;
    const stamp = (i, x, y) => {
      const code = d[i * FLOATS + 2];
      if (code !== lastCode) {
        sprite = this._sprite(code, radius, dpr);
        lastCode = code;
      }
      ctx.drawImage(sprite.canvas, Math.round(x * dpr - sprite.half), Math.round(y * dpr - sprite.half));
      drawn++;
    };
    if (clusters) {
      const groups = [];
      for (const c of clusters) {
        const x = ox + c.x * ws;
        const y = oy + c.y * ws;
        if (x < -40 || y < -40 || x > w + 40 || y > h + 40) continue;
        if (c.count === 1) stamp(c.index, x, y);
        else groups.push([x, y, c.count]);
      }
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.font = "bold 12px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      for (const [x, y, count] of groups) {
        ctx.beginPath();
        ctx.arc(x, y, clusterRadiusPx(count), 0, 2 * Math.PI);
        ctx.fillStyle = "rgba(30, 58, 138, 0.85)";
        ctx.fill();
        ctx.lineWidth = 2;
        ctx.strokeStyle = "#ffffff";
        ctx.stroke();
        ctx.fillStyle = "#ffffff";
        ctx.fillText(abbreviate(count), x, y + 0.5);
        drawn++;
      }
    } else {
      // Two passes: ringed markers first, so a plain marker is never hidden under a neighbour's ring.
      for (const rings of [true, false]) {
        for (let i = 0, o = 0; i < this.count; i++, o += FLOATS) {
          if (d[o + 2] >= HAZARD_FLAG !== rings) continue;
          const x = ox + d[o] * ws;
          const y = oy + d[o + 1] * ws;
          if (x < -margin || y < -margin || x > w + margin || y > h + margin) continue;
          stamp(i, x, y);
        }
      }
    }
    this.drawnVersion = this.version;
    this.stats.draws++;
    this.stats.drawnMarkers = drawn;
    this.stats.lastDrawAt = performance.now();
  }

  /**
   * What is drawn under screen point `p` ({x, y} CSS px), nearest first: `{id}` for a responder marker,
   * `{cluster: {lon, lat, count}}` for a cluster, or null.
   */
  pick(p, slopPx = 4) {
    if (!this.visible() || !this.origin) return null;
    const clusters = this.clusters();
    if (!clusters) {
      const id = this.hitTest(p, slopPx);
      return id ? { id } : null;
    }
    const [cx, cy, ws, w, h] = this._camera();
    let best = null;
    let bestD = Infinity;
    for (const c of clusters) {
      const dx = (c.x + this.origin[0] - cx) * ws + w / 2 - p.x;
      const dy = (c.y + this.origin[1] - cy) * ws + h / 2 - p.y;
      const reach = (c.count === 1 ? dotRadius(this.map.getZoom()) + 1.5 : clusterRadiusPx(c.count) + 1) + slopPx;
      const dd = dx * dx + dy * dy;
      if (dd <= reach * reach && dd < bestD) {
        bestD = dd;
        best = c;
      }
    }
    if (!best) return null;
    if (best.count === 1) return { id: this.ids[best.index] };
    const x = best.x + this.origin[0];
    const y = best.y + this.origin[1];
    return { cluster: { lon: x * 360 - 180, lat: latOfMercatorY(y), count: best.count } };
  }

  /** The id of the responder marker under screen point `p` ({x, y} CSS px), nearest first, or null. */
  hitTest(p, slopPx = 4) {
    if (!this.visible() || !this.origin) return null;
    if (this.clusters()) return this.pick(p, slopPx)?.id ?? null;
    const [cx, cy, ws, w, h] = this._camera();
    const mx = cx + (p.x - w / 2) / ws - this.origin[0];
    const my = cy + (p.y - h / 2) / ws - this.origin[1];
    const reach = (dotRadius(this.map.getZoom()) + 1.5 + slopPx) / ws;
    let best = -1;
    let bestD = reach * reach;
    const d = this.data;
    for (let i = 0, o = 0; i < this.count; i++, o += FLOATS) {
      const dx = d[o] - mx;
      const dy = d[o + 1] - my;
      const dd = dx * dx + dy * dy;
      if (dd <= bestD) {
        bestD = dd;
        best = i;
      }
    }
    return best < 0 ? null : this.ids[best];
  }

  /** What the layer holds for responder `id`: Mercator position, screen point, state code, and whether drawn. */
  lookup(id) {
    if (!this._index) {
      this._index = new Map();
      this.ids.forEach((x, i) => this._index.set(x, i));
    }
    const i = this._index.get(id);
    if (i === undefined) return null;
    const o = i * FLOATS;
    const x = this.data[o] + this.origin[0];
    const y = this.data[o + 1] + this.origin[1];
    const [cx, cy, ws, w, h] = this._camera();
    const screen = { x: (x - cx) * ws + w / 2, y: (y - cy) * ws + h / 2 };
    const onScreen = screen.x >= 0 && screen.y >= 0 && screen.x <= w && screen.y <= h;
    const clusters = this.clusters();
    const single = !clusters || clusters.some((c) => c.index === i && c.count === 1);
    return {
      x,
      y,
      code: this.data[o + 2],
      screen,
      clustered: !single,
      drawn: this.drawnVersion === this.version && this.visible() && onScreen && single,
    };
  }
}
