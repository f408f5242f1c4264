// Feeds panel: each feed's health, last success, last item and errors (GET /v1/feeds, live on the feeds topic).

import { api, itemsOf, ApiError } from "./api.js";
import { h, clear, notice, fmtDateTime } from "./ui.js";

export class FeedsPanel {
  constructor() {
    this.feeds = new Map();
    this.body = h("div");
    this.el = h("div", {}, h("div", { class: "row spread" }, h("h2", {}, "Feeds"), h("button", { type: "button", onclick: () => this.refresh() }, "Refresh")), this.body);
  }

  async refresh() {
    try {
      const items = itemsOf(await api("/v1/feeds"));
      this.feeds.clear();
      for (const f of items) this.feeds.set(String(f.id || f.name), f);
      this.render();
    } catch (e) {
      clear(this.body, notice(e instanceof ApiError && e.missing ? "Feeds are not available on this server yet." : `Feeds: ${e.message}`, e.missing ? "missing" : "error"));
    }
  }

  applyDelta(list) {
    for (const f of list) if (f) this.feeds.set(String(f.id || f.name), { ...(this.feeds.get(String(f.id || f.name)) || {}), ...f });
    if (this.feeds.size) this.render();
  }

  render() {
    if (!this.feeds.size) return clear(this.body, h("p", { class: "muted" }, "No feeds configured."));
    const rows = [...this.feeds.values()].map((f) => {
      const health = String(f.health || f.status || "unknown").toLowerCase();
      return h(
        "tr",
        {},
        h("th", { scope: "row" }, f.name || f.id),
        h("td", {}, h("span", { class: `health health-${health}` }, health)),
        h("td", {}, fmtDateTime(f.last_success_at || f.last_ok_at || f.last_polled_at)),
        h("td", {}, f.last_item_at ? fmtDateTime(f.last_item_at) : (f.last_item || f.items_last) ?? "—"),
        h("td", { class: "small" }, f.last_error ? `${f.last_error}${f.consecutive_errors ? ` (×${f.consecutive_errors})` : ""}` : f.error_count ? `${f.error_count} errors` : "—"),
      );
    });
    clear(
      this.body,
      h(
        "div",
        { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Feed health" },
        h("table", {}, h("caption", { class: "sr-only" }, "Feed health"), h("thead", {}, h("tr", {}, ["Feed", "Health", "Last success", "Last item", "Errors"].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)),
      ),
    );
  }
}
