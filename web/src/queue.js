// The responder's offline position queue: every fix is persisted in localStorage first, then sent oldest first in
// batches to POST /v1/positions. Only an acknowledged batch leaves the queue, so nothing is lost and order holds.

import { api, ApiError } from "./api.js";

const KEY = "sitrep.positionQueue";
const BATCH = 100;

export class PositionQueue {
  constructor(onChange) {
    this.onChange = onChange;
    this.flushing = null;
    this.sent = 0;
    this.lastError = null;
    this.backoffMs = 1000;
    window.addEventListener("online", () => this.flush());
    this._timer = setInterval(() => this.flush(), 5000);
  }

  items() {
    try {
      return JSON.parse(localStorage.getItem(KEY) || "[]");
    } catch {
      return [];
    }
  }

  _save(items) {
    localStorage.setItem(KEY, JSON.stringify(items));
    this.onChange?.(this);
  }

  get size() {
    return this.items().length;
  }

  push(fix) {
    const items = this.items();
    items.push(fix);
    this._save(items);
    this.flush();
  }

  /** Send queued fixes, oldest first, one batch at a time. Concurrent calls share one run. */
  flush() {
    if (this.flushing) return this.flushing;
    this.flushing = this._run().finally(() => {
      this.flushing = null;
      this.onChange?.(this);
    });
    return this.flushing;
  }

  async _run() {
    while (navigator.onLine !== false) {
      const items = this.items();
      if (!items.length) return;
      const batch = items.slice(0, BATCH);
      try {
        await api("/v1/positions", { method: "POST", body: batch });
      } catch (e) {
        if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429 && e.status !== 401) {
          // The server refused the batch as a whole (e.g. malformed); retrying forever would block the queue.
          this.lastError = e.describe();
          this._drop(batch.length);
          continue;
        }
        this.lastError = e instanceof ApiError ? e.describe() : "offline";
        return;
      }
      this.lastError = null;
      this.sent += batch.length;
      this.lastSentAt = Date.now();
      this._drop(batch.length);
    }
  }

  _drop(n) {
    const items = this.items();
    this._save(items.slice(n));
  }

  stop() {
    clearInterval(this._timer);
  }
}
