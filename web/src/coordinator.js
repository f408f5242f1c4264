// Coordinator (and viewer) view: the live map with a side panel of tabs — incidents, drawing, layers, feeds.

import { LiveMap, STATUS_COLORS, SEVERITY_COLORS, PRIORITY_COLORS } from "./livemap.js";
import { StreamClient } from "./stream.js";
import { api, listAll, itemsOf, ApiError } from "./api.js";
import { h, clear, notice, fmtTime } from "./ui.js";
import { IncidentsPanel } from "./incidents.js";
import { DrawPanel } from "./draw.js";
import { FeedsPanel } from "./feeds.js";
import { AlertsPanel } from "./alerts.js";
import { isStale } from "./model.js";

export function mount(main, { me, badge }) {
  const canWrite = me.role === "admin" || me.role === "coordinator";
  const sitrep = window.sitrep;
  main.classList.add("map-view");
  const mapEl = h("div", { class: "map", id: "map" });
  const flaggedEl = h("div", { class: "flagged", role: "status", "aria-live": "polite", id: "flagged" });
  const panel = h("aside", { class: "panel", "aria-label": "Operations panel" });
  main.append(h("section", { class: "map-wrap", "aria-label": "Map" }, mapEl), panel);

  const lm = new LiveMap(mapEl, { onIncidentClick: (id) => incidents.select(id, true) });
  sitrep.map = lm;

  const incidents = new IncidentsPanel(lm, { canWrite, me });
  const draw = canWrite ? new DrawPanel(lm) : null;
  const alerts = canWrite ? new AlertsPanel(lm, { me }) : null;
  const feeds = new FeedsPanel();
  const layers = layersPanel(lm);

  const tabs = [
    ["incidents", "Incidents", incidents.el],
    ...(draw ? [["draw", "Draw", draw.el]] : []),
    ...(alerts ? [["alerts", "Alerts", alerts.el]] : []),
    ["layers", "Layers", layers.el],
    ["feeds", "Feeds", feeds.el],
  ];
  const tablist = h("div", { role: "tablist", "aria-label": "Panels", class: "tabs" });
  const panes = [];
  const buttons = tabs.map(([key, text, el], i) => {
    const pane = h("div", { role: "tabpanel", id: `pane-${key}`, "aria-labelledby": `tab-${key}`, class: "pane", hidden: i !== 0, tabindex: "0" }, el);
    panes.push(pane);
    return h(
      "button",
      {
        type: "button",
        role: "tab",
        id: `tab-${key}`,
        "aria-controls": `pane-${key}`,
        "aria-selected": i === 0 ? "true" : "false",
        tabindex: i === 0 ? "0" : "-1",
        onclick: () => selectTab(i),
        onkeydown: (e) => {
          if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
            const j = (i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length;
            selectTab(j);
            buttons[j].focus();
          }
        },
      },
      text,
    );
  });
  function selectTab(i) {
    buttons.forEach((b, j) => {
      b.setAttribute("aria-selected", j === i ? "true" : "false");
      b.tabIndex = j === i ? 0 : -1;
      panes[j].hidden = j !== i;
    });
    if (tabs[i][0] === "feeds") feeds.refresh();
    if (tabs[i][0] === "alerts") alerts.refresh();
  }
  sitrep.selectTab = (key) => selectTab(tabs.findIndex((t) => t[0] === key));
  tablist.append(...buttons);
  panel.append(flaggedEl, tablist, ...panes);

  // ---- flagged responders (inside active hazards) ----
  let lastFlagKey = "";
  lm.onChange((what) => {
    if (what !== "responders") return;
    const ids = lm.flagged || [];
    const key = ids.join(",");
    if (key === lastFlagKey) return;
    lastFlagKey = key;
    if (!ids.length) {
      clear(flaggedEl);
      flaggedEl.hidden = true;
      return;
    }
    flaggedEl.hidden = false;
    const names = ids.slice(0, 12).map((id) => {
      const r = lm.responders.get(id);
      return h("button", { type: "button", class: "chip danger-chip", dataset: { responder: id }, onclick: () => { lm.map.easeTo({ center: [r.lon, r.lat], zoom: Math.max(lm.map.getZoom(), 13) }); lm.showResponderPopup(id); } }, r?.callsign || id.slice(0, 8));
    });
    clear(
      flaggedEl,
      h("strong", {}, `⚠ ${ids.length} responder${ids.length === 1 ? "" : "s"} inside hazards: `),
      names,
      ids.length > 12 ? ` and ${ids.length - 12} more` : null,
    );
  });
  flaggedEl.hidden = true;

  // ---- data: initial REST load, then the stream ----
  const status = { responders: null };
  async function loadResponders() {
    const list = await listAll("/v1/responders", { limit: 1000 });
    lm.upsertResponders(list);
    return list;
  }
  async function initial() {
    await lm.ready;
    const jobs = [
      loadResponders()
        .then((list) => {
          status.responders = "ok";
          if (list.length) lm.fitToResponders();
        })
        .catch((e) => layers.setMessage(e instanceof ApiError && e.missing ? "Responder positions are not available on this server yet." : `Responders: ${e.message}`)),
      listAll("/v1/hazards", { limit: 500 }, 5000)
        .then((l) => lm.upsertHazards(l))
        .catch((e) => draw?.setMessage(e instanceof ApiError && e.missing ? "Hazards are not available on this server yet." : `Hazards: ${e.message}`)),
      listAll("/v1/geofences", { limit: 500 }, 5000)
        .then((l) => lm.upsertGeofences(l))
        .catch(() => {}),
      incidents.load(),
    ];
    await Promise.allSettled(jobs);
    sitrep.initialLoadedAt = performance.now();
  }

  function applyItems(items, meta) {
    const byTopic = {};
    for (const it of items) (byTopic[it.topic] ||= []).push(it);
    if (meta.reset && byTopic.positions) lm.responders.clear();
    for (const [topic, list] of Object.entries(byTopic)) {
      if (topic === "positions") {
        const ups = [];
        for (const it of list) {
          if (it.data?.deleted) lm.removeResponder(it.key);
          else ups.push(it.data?.id ? it.data : { id: it.key, ...it.data });
        }
        lm.upsertResponders(ups);
      } else if (topic === "hazards") {
        for (const it of list) {
          if (!it.data || it.data.deleted) lm.removeHazard(it.key);
          else lm.upsertHazards([{ id: it.key, ...it.data }]);
        }
      } else if (topic === "incidents") {
        lm.upsertIncidents(list.filter((it) => it.data && !it.data.deleted).map((it) => ({ id: it.key, ...it.data })));
      } else if (topic === "fence_events") {
        for (const it of list) lm.applyFenceEvent(it.data);
      } else if (topic === "feeds") {
        feeds.applyDelta(list.map((it) => it.data));
      } else if (topic === "alerts") {
        alerts?.applyDelta();
      } else if (topic === "geofences") {
        lm.upsertGeofences(list.map((it) => ({ id: it.key, ...it.data })));
      }
    }
  }

  function setBadge({ state, since, detail }) {
    const cls = state === "live" ? "badge-live" : state === "reconnecting" ? "badge-reconnecting" : "badge-stale";
    let text;
    if (state === "live") text = "● Live";
    else if (state === "connecting") text = "Connecting…";
    else if (state === "reconnecting") {
      const s = since || stream.startedAt;
      text = Date.now() - s > 10000 ? `Stale since ${fmtTime(s)}` : "Reconnecting…";
      if (stream.polledAt && Date.now() - stream.polledAt < 3000) text += " · polling";
    } else text = `Stale since ${fmtTime(since || Date.now())}`;
    if (badge.textContent !== text) badge.textContent = text;
    badge.className = `badge ${cls}`;
    badge.title = detail || "";
    sitrep.streamState = state;
  }

  const stream = new StreamClient({
    topics: me.role === "viewer" ? ["hazards", "alerts"] : undefined,
    onItems: applyItems,
    onStatus: setBadge,
    poll: async () => {
      if (status.responders === "ok") await loadResponders();
    },
  });
  stream.startedAt = Date.now();
  sitrep.stream = stream;
  sitrep.applyItems = applyItems;
  initial().then(() => stream.start());

  return {
    unmount() {
      stream.stop();
      clearInterval(lm._ageTimer);
      lm.map.remove();
      incidents.destroy?.();
    },
  };
}

function layersPanel(lm) {
  const msg = h("div");
  const toggles = [
    ["Responders", ["responders-overlay"]],
    ["Incidents", ["incidents-points"]],
    ["Hazards", ["hazards-fill", "hazards-line"]],
    ["Geofences", ["geofences-fill", "geofences-line"]],
  ];
  const heatMsg = h("p", { class: "muted", "aria-live": "polite" });
  const heat = h("input", {
    type: "checkbox",
    id: "toggle-heat",
    onchange: async (e) => {
      const on = e.target.checked;
      if (on) {
        try {
          heatMsg.textContent = "Loading heat cells…";
          const n = await loadHexbins(lm);
          heatMsg.textContent = `${n} H3 cells with positions in the last 24 h.`;
        } catch (ex) {
          heatMsg.textContent = ex instanceof ApiError && ex.missing ? "Heat layer unavailable: the hexbins endpoint is missing." : `Heat layer: ${ex.message}`;
        }
      }
      lm.setHexbinsVisible(on);
    },
  });
  const counts = h("p", { class: "muted", "aria-live": "off" });
  lm.onChange((what) => {
    if (what !== "responders") return;
    let stale = 0;
    let n = 0;
    for (const r of lm.responders.values()) {
      n++;
      if (isStale(r)) stale++;
    }
    counts.textContent = `${n} responders, ${stale} stale, ${lm.flagged?.length || 0} inside hazards.`;
  });
  const legend = h(
    "div",
    { class: "legend" },
    h("h3", {}, "Legend"),
    h("ul", {}, Object.entries(STATUS_COLORS).map(([k, c]) => h("li", {}, h("span", { class: "swatch dot", style: `background:${c}` }), `Responder: ${k.replace("_", " ")}`))),
    h("ul", {}, h("li", {}, h("span", { class: "swatch dot ring" }), "Responder inside a hazard")),
    h("ul", {}, Object.entries(PRIORITY_COLORS).map(([k, c]) => h("li", {}, h("span", { class: "swatch dot inc", style: `background:${c}` }), `Incident P${k}`))),
    h("ul", {}, Object.entries(SEVERITY_COLORS).map(([k, c]) => h("li", {}, h("span", { class: "swatch", style: `background:${c}` }), `Hazard: ${k}`))),
  );
  const el = h(
    "div",
    {},
    h("h2", {}, "Layers"),
    msg,
    counts,
    h(
      "fieldset",
      {},
      h("legend", {}, "Show on map"),
      toggles.map(([name, ids]) =>
        h(
          "div",
          { class: "check" },
          h("input", {
            type: "checkbox",
            id: `toggle-${name.toLowerCase()}`,
            checked: true,
            onchange: (e) => ids.forEach((id) => lm.setLayerVisible(id, e.target.checked)),
          }),
          h("label", { for: `toggle-${name.toLowerCase()}` }, name),
        ),
      ),
      h("div", { class: "check" }, heat, h("label", { for: "toggle-heat" }, "H3 heat (positions, 24 h)")),
    ),
    heatMsg,
    h("button", { type: "button", onclick: () => lm.fitToResponders() }, "Zoom to all responders"),
    legend,
  );
  return { el, setMessage: (t) => clear(msg, notice(t, "missing")) };
}

async function loadHexbins(lm) {
  const b = lm.map.getBounds();
  const z = lm.map.getZoom();
  const res = Math.max(4, Math.min(9, Math.round(z * 0.55)));
  const data = await api("/v1/positions/hexbins", {
    query: { res, bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",") },
  });
  const cells = data?.cells || itemsOf(data);
  const { cellToBoundary } = await import("h3-js");
  const max = Math.max(1, ...cells.map((c) => c.count || 0));
  const features = cells.map((c) => {
    let id = String(c.cell ?? c.h3);
    if (/^\d+$/.test(id)) id = BigInt(id).toString(16);
    return {
      type: "Feature",
      geometry: c.boundary || { type: "Polygon", coordinates: [closeRing(cellToBoundary(id, true))] },
      properties: { count: c.count, norm: (c.count || 0) / max },
    };
  });
  lm.setHexbins({ type: "FeatureCollection", features });
  return features.length;
}

function closeRing(r) {
  const a = r[0];
  const b = r[r.length - 1];
  return a[0] === b[0] && a[1] === b[1] ? r : [...r, a];
}
