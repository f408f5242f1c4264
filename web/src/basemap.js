// Offline basemap: country outlines from world-atlas, US states and counties from us-atlas, converted from
// TopoJSON in the browser with topojson-client. No tile server, no glyphs, no sprites: works with no internet.

import { feature, mesh } from "topojson-client";
import countriesUrl from "world-atlas/countries-50m.json?url";
import usUrl from "us-atlas/counties-10m.json?url";

export const BASE_STYLE = {
  version: 8,
  name: "sitrep offline",
  sources: {},
  layers: [{ id: "water", type: "background", paint: { "background-color": "#c9dceb" } }],
};

const EMPTY = { type: "FeatureCollection", features: [] };

let fetched = null;

/**
 * Fetch and parse both TopoJSON files at once; the login page starts this while the user types, and the map
 * reuses the same promise. A failure is forgotten so that the next map retries.
 */
export function prefetchBasemap() {
  fetched ??= Promise.all([countriesUrl, usUrl].map((url) => fetch(url).then((r) => r.json()))).catch((e) => {
    fetched = null;
    throw e;
  });
  return fetched;
}

export function addBasemap(map) {
  map.addSource("countries", { type: "geojson", data: EMPTY });
  map.addSource("us-states", { type: "geojson", data: EMPTY });
  map.addSource("us-counties", { type: "geojson", data: EMPTY });
  map.addLayer({ id: "land", type: "fill", source: "countries", paint: { "fill-color": "#f3f1ea" } });
  map.addLayer({
    id: "country-lines",
    type: "line",
    source: "countries",
    paint: { "line-color": "#6b6b6b", "line-width": 0.8 },
  });
  map.addLayer({
    id: "county-lines",
    type: "line",
    source: "us-counties",
    minzoom: 6,
    paint: { "line-color": "#b3aca0", "line-width": 0.6 },
  });
  map.addLayer({
    id: "state-lines",
    type: "line",
    source: "us-states",
    paint: { "line-color": "#857d70", "line-width": ["interpolate", ["linear"], ["zoom"], 3, 0.6, 9, 1.6] },
  });
  const loaded = (async () => {
    const [world, us] = await prefetchBasemap();
    map.getSource("countries").setData(feature(world, world.objects.countries));
    map.getSource("us-states").setData(mesh(us, us.objects.states, (a, b) => a !== b));
    map.getSource("us-counties").setData(mesh(us, us.objects.counties, (a, b) => a !== b));
  })();
  return loaded.catch((e) => console.warn("basemap failed", e));
}
