// /v1/stream client: subscribe, apply snapshot and delta batches, heartbeat watchdog, reconnect with backoff and
// resume from (epoch, seq). While the socket is down, a REST poll keeps positions moving (degraded mode).

import { accessToken } from "./api.js";

export const TOPICS = ["positions", "incidents", "hazards", "fence_events", "alerts", "feeds"];

export class StreamClient {
  /**
   * @param {object} o
   * @param {(items: object[], meta: {snapshot: boolean, reset: boolean}) => void} o.onItems
   * @param {(state: {state: string, since: number|null, detail?: string}) => void} o.onStatus
   * @param {() => Promise<void>} [o.poll] called every second while the stream is down
   * @param {"compact"|"json"} [o.encoding] how positions travel (compact arrays, decoded here into the json item shape)
   */
  constructor({ topics = TOPICS, bbox = null, onItems, onStatus, poll, encoding = "compact" }) {
    this.topics = topics;
    this.bbox = bbox;
    this.encoding = encoding;
    this.onItems = onItems;
    this.onStatus = onStatus;
    this.poll = poll;
    this.epoch = null;
    this.seq = null;
    this.attempt = 0;
    this.lastMessageAt = 0;
    this.lastLiveAt = null; // when data was last known current
    this.state = "connecting";
    this.closed = false;
    this.stats = { deltas: 0, items: 0, snapshots: 0, reconnects: 0, unknownHandles: 0 };
    // Compact positions name responders by a per-connection handle (docs/stream.md): handle → id, from
    // every meta this connection received; a new connection starts over.
    this.handles = new Map();
    this._watchdog = setInterval(() => this._check(), 1000);
  }

  start() {
    this._connect();
    return this;
  }

  stop() {
    this.closed = true;
    clearInterval(this._watchdog);
    clearTimeout(this._retry);
    clearTimeout(this._pollTimer);
    this.ws?.close(1000, "bye");
  }

  _setState(state, detail) {
    this.state = state;
    this.onStatus?.({ state, since: this.lastLiveAt, detail });
  }

  async _connect() {
    if (this.closed) return;
    let token;
    try {
      token = await accessToken();
    } catch {
      this._scheduleReconnect("not logged in");
      return;
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/v1/stream?access_token=${encodeURIComponent(token)}`);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.handles = new Map();
      this.lastMessageAt = Date.now();
      const sub = { type: "subscribe", id: "s1", topics: this.topics };
      if (this.encoding !== "json") sub.encoding = this.encoding;
      if (this.bbox) sub.bbox = this.bbox;
      if (this.epoch !== null && this.seq !== null) {
        sub.epoch = this.epoch;
        sub.from_seq = this.seq;
      }
      ws.send(JSON.stringify(sub));
    };
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      this._scheduleReconnect(opened ? ev.reason || `closed (${ev.code})` : "stream unavailable");
    };
    ws.onerror = () => {};
  }

  _scheduleReconnect(detail) {
    this.stats.reconnects++;
    if (this.state === "live") this.lastLiveAt = Date.now();
    this._setState("reconnecting", detail);
    this._startPolling();
    const delay = Math.min(15000, 500 * 2 ** Math.min(this.attempt, 5)) * (0.5 + Math.random() / 2);
    this.attempt++;
    clearTimeout(this._retry);
    this._retry = setTimeout(() => this._connect(), delay);
  }

  _startPolling() {
    if (!this.poll || this._pollTimer) return;
    const tick = async () => {
      if (this.state === "live" || this.closed) {
        this._pollTimer = null;
        return;
      }
      try {
        await this.poll();
        this.polledAt = Date.now();
      } catch {
        /* the panel shows the error */
      }
      this._pollTimer = setTimeout(tick, 1000);
    };
    this._pollTimer = setTimeout(tick, 0);
  }

  _check() {
    if (this.state === "live" && Date.now() - this.lastMessageAt > 35000) {
      // No heartbeat for two periods: the socket is dead even if it looks open.
      this.lastLiveAt = this.lastMessageAt;
      this.ws?.close(4000, "heartbeat timeout");
      this._setState("stale", "no heartbeat");
    } else {
      this.onStatus?.({ state: this.state, since: this.lastLiveAt });
    }
  }

  _onMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    this.lastMessageAt = Date.now();
    switch (msg.type) {
      case "snapshot": {
        this.stats.snapshots++;
        this._position(msg);
        this.attempt = 0;
        this.handles = new Map(); // the snapshot carries the meta (so the handle) of everyone in it
        const items = snapshotItems(msg, this.handles, this.stats);
        this.onItems(items, { snapshot: true, reset: !!msg.reset || this.stats.snapshots === 1 });
        this.lastLiveAt = null;
        this._setState("live");
        break;
      }
      case "delta": {
        this.stats.lastDeltaReceivedAt = performance.now();
        if (this.epoch !== null && msg.epoch && msg.epoch !== this.epoch) {
          // A new epoch without a snapshot means history may be lost: resubscribe for a fresh snapshot.
          this.epoch = null;
          this.seq = null;
          this.ws?.close(4001, "epoch changed");
          return;
        }
        this._position(msg);
        const items = deltaItems(msg, this.handles, this.stats);
        this.stats.deltas++;
        this.stats.items += items.length;
        // End-to-end latency (server accepted → applied here), for the badge tooltip and the tests.
        if (items.length) {
          let newest = 0;
          for (const i of items) if (i.accepted_at > newest) newest = i.accepted_at;
          this.stats.lastLatencyS = Date.now() / 1000 - newest;
        }
        this.onItems(items, { snapshot: false, reset: false });
        if (this.state !== "live") {
          this.attempt = 0;
          this.lastLiveAt = null;
          this._setState("live");
        }
        break;
      }
      case "heartbeat":
      case "pong":
      case "resumed":
      case "subscribed":
        this._position(msg);
        if (msg.type === "resumed") this.attempt = 0;
        if (this.state !== "live" && msg.type !== "heartbeat") this._setState("live");
        break;
      case "error":
        this.onStatus?.({ state: this.state, since: this.lastLiveAt, detail: `${msg.code}: ${msg.message}` });
        if (msg.code === "token_expired" || msg.code === "unauthorized") this.ws?.close(4002, "reauth");
        if (msg.code === "resume_gap" || msg.code === "unknown_epoch") {
          this.epoch = null;
          this.seq = null;
        }
        break;
      default:
        break;
    }
  }

  _position(msg) {
    if (msg.epoch !== undefined && msg.epoch !== null) this.epoch = String(msg.epoch);
    if (Number.isInteger(msg.seq)) this.seq = Math.max(this.seq ?? 0, msg.seq);
  }
}

/**
 * Compact positions (docs/stream.md): meta [id, callsign, status, team_id, battery_pct, handle] and
 * position [handle, lon, lat, fix_time_ms, speed_mps, heading_deg, accuracy_m, flags, accepted_after_ms],
 * decoded into the json item shape ({topic, key, data, accepted_at}); meta items come first, so a
 * responder's callsign and status are known before its position is drawn. A handle stands for a
 * responder id on one connection only: `handles` (handle → id) learns from every meta and must start
 * empty on a new connection. A position whose handle is unknown is skipped (counted in
 * `stats.unknownHandles`; the server always sends the meta first).
 */
export function compactItems(msg, handles = new Map(), stats = null) {
  const out = Array.isArray(msg.items) ? msg.items.slice() : [];
  for (const m of msg.meta || []) {
    const data = { id: m[0], callsign: m[1], status: m[2], team_id: m[3] };
    if (m[4] !== null && m[4] !== undefined) data.battery_pct = m[4];
    if (m[5] !== null && m[5] !== undefined) handles.set(m[5], m[0]);
    out.push({ topic: "positions", key: m[0], data, accepted_at: null });
  }
  for (const p of msg.positions || []) {
    const id = handles.get(p[0]);
    if (id === undefined) {
      if (stats) stats.unknownHandles++;
      continue;
    }
    // accepted_after_ms counts from fix_time_ms; without a fix time (a delete) it is unix ms itself.
    const accepted = p[8] === null ? null : ((p[3] ?? 0) + p[8]) / 1000;
    if (p[7] & 2) {
      out.push({ topic: "positions", key: id, data: { id, deleted: true }, accepted_at: accepted });
      continue;
    }
    // fix_ms stays a number: no ISO string to format here and parse again when merging (5,000 a tick).
    const data = { id, lon: p[1], lat: p[2], speed_mps: p[4], heading_deg: p[5], accuracy_m: p[6], stale: !!(p[7] & 1) };
    if (p[3] !== null) data.fix_ms = p[3];
    out.push({ topic: "positions", key: id, data, accepted_at: accepted });
  }
  return out;
}

/** A delta's items in the json shape, whatever its encoding. */
export function deltaItems(msg, handles, stats) {
  return msg.encoding === "compact" ? compactItems(msg, handles, stats) : msg.items || [];
}

/** Snapshot messages list items as [{topic, key, data}] or group them per topic ({topics: {positions: [...]}}). */
export function snapshotItems(msg, handles, stats) {
  if (msg.encoding === "compact") return compactItems(msg, handles, stats);
  if (Array.isArray(msg.items)) return msg.items;
  const out = [];
  const groups = msg.topics && !Array.isArray(msg.topics) ? msg.topics : msg.data && typeof msg.data === "object" ? msg.data : msg;
  for (const topic of TOPICS) {
    const list = groups[topic];
    if (!Array.isArray(list)) continue;
    for (const data of list) out.push({ topic, key: String(data?.id ?? data?.key ?? ""), data: data?.data ?? data });
  }
  return out;
}
