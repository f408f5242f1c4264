"""Feed items → the rows a hazard needs: validated geometry (WKB), H3 resolution and cover cells.

CPU work only (no I/O): the sink runs :func:`prepare_items` in a thread, chunk by chunk (see
:mod:`.hazard_apply`).

* Most items go through the hazards area's own rules (:func:`server.hazards.shapes.parse_shape`
  validation/repair and :func:`~server.hazards.shapes.cover_rows`, a :class:`geo.cover.PolygonCover`).
* FIRMS fire areas are unions of whole H3 cells by construction (``raw.h3_res``,
  ``raw.h3_cells``): their cover *is* those cells, taken as they are instead of a general cover
  (~1 ms per area; 13,582 areas in the global 24 h file) or a polyfill (~0.5 ms). They are
  stored as interior cells: the outline is their drawing (straight lon/lat edges, centimetres
  from H3's arcs at res 7), trusted without re-validation. Without ``h3_cells`` the general
  path is used.
* Items with only a point get a geodesic circle of ``point_radius_m``.
* Area limit: the hazards area's 2,000,000 km² (:data:`geo.geometry.MAX_AREA_KM2`), except for the
  sources in :data:`FEED_MAX_AREA_KM2`. GDACS gives a tropical cyclone only as the bounding box of
  its whole track (6.9–8.2 million km² in the recorded 2019 feeds): refusing it would drop the
  cyclone, so its boxes are kept up to 20 million km².
* Covers of feed areas may be as coarse as H3 res :data:`FEED_MIN_RES` (the hazards area stops at
  res 5): an area whose res-5 cover would exceed the cell budget (GDACS earthquake boxes of
  ~700,000 km² made ~3,000 cells and took ~0.4 s each; a cyclone box would make ~30,000) gets a
  few hundred coarser cells instead.
* Feed covers aim at :data:`FEED_TARGET_CELLS` cells, a third of the hazards area's budget: a feed
  brings hundreds of areas at once (the nationwide NWS capture: 529), and every cell is a row
  written, read back and indexed by the fence evaluator. Covers stay exact at any resolution (a
  point in a boundary cell gets the exact test), so this trades a few more exact tests per fix for
  about half the rows and ~40% less covering CPU (NWS capture: 82,027 → ~42,000 cells).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import h3.api.basic_int as h3i
import msgspec
from shapely.geometry.base import BaseGeometry

from feeds.model import HazardItem, ItemError
from geo.cover import PolygonCover
from geo.geometry import MAX_AREA_KM2, GeometryError, validate_geojson
from server.errors import InvalidGeometry
from server.hazards.shapes import parse_shape, wkb

FEED_MAX_AREA_KM2: dict[str, float] = {"gdacs": 20_000_000.0}
"""Per-source area limits above the hazards area's default (see the module docstring)."""
FEED_MIN_RES = 3
"""Coarsest H3 resolution of a feed area's cover (~12,000 km² cells)."""
FEED_TARGET_CELLS = 200
"""Cell budget of a feed area's cover: the finest resolution whose estimated cover fits it is used."""


@dataclass(slots=True)
class Prepared:
    """What the bulk insert needs for one item."""

    item: HazardItem
    wkb: bytes | None
    """Validated geometry, or None when ``geojson`` is trusted as is (FIRMS outlines)."""
    geojson: str | None
    res: int
    cells: list[int]
    interior: list[bool]


def _firms_cells(item: HazardItem) -> Prepared | None:
    res = item.raw.get("h3_res")
    names = item.raw.get("h3_cells")
    if item.geometry is None or not isinstance(res, int) or not isinstance(names, list) or not names:
        return None
    try:
        cells = [int(h3i.str_to_int(str(c))) for c in names]  # valid H3 ids fit a signed bigint
    except (ValueError, TypeError):
        return None
    if any(h3i.get_resolution(c) != res for c in cells[:1]):
        return None
    return Prepared(item, None, msgspec.json.encode(item.geometry).decode(), res, cells, [True] * len(cells))


class CoverCache:
    """Validated WKB + cover by area (GeoJSON digest), least recently used first out, bounded in cells."""

    def __init__(self, max_cells: int = 500_000) -> None:
        self.max_cells = max_cells
        self._entries: OrderedDict[bytes, tuple[bytes, int, list[int], list[bool]]] = OrderedDict()
        self._cells = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # feeds apply concurrently, each in its own worker thread

    def get(self, key: bytes) -> tuple[bytes, int, list[int], list[bool]] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: bytes, entry: tuple[bytes, int, list[int], list[bool]]) -> None:
        with self._lock:
            if len(entry[2]) > self.max_cells // 4 or key in self._entries:
                return
            self._entries[key] = entry
            self._cells += len(entry[2])
            while self._cells > self.max_cells:
                _, old = self._entries.popitem(last=False)
                self._cells -= len(old[2])


def feed_cover_rows(geom: BaseGeometry, area_m2: float | None = None) -> tuple[int, list[int], list[bool]]:
    """``(res, cells, interior)`` like :func:`server.hazards.shapes.cover_rows`, with the feed cell
    budget, down to :data:`FEED_MIN_RES` (``area_m2``: the geodesic area when already known)."""
    cover = PolygonCover(geom, min_res=FEED_MIN_RES, target_cells=FEED_TARGET_CELLS, area_m2=area_m2)
    inner, edge = sorted(cover.interior), sorted(cover.boundary)
    return cover.res, inner + edge, [True] * len(inner) + [False] * len(edge)


def prepare_item(item: HazardItem, point_radius_m: float, cache: CoverCache | None = None) -> Prepared:
    """One item's geometry and cover. Raises :class:`InvalidGeometry` when it has no usable area."""
    if item.source == "firms":
        fast = _firms_cells(item)
        if fast is not None:
            return fast
    if item.geometry is None and item.point is None:
        raise InvalidGeometry(f"feed item {item.external_id!r} has no geometry")
    limit = FEED_MAX_AREA_KM2.get(item.source, MAX_AREA_KM2)
    shape_key = msgspec.json.encode([item.geometry, None if item.geometry else item.point, point_radius_m, limit])
    key = hashlib.blake2b(shape_key, digest_size=16).digest()
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        return Prepared(item, hit[0], None, hit[1], hit[2], hit[3])
    area_m2: float | None = None
    if item.geometry is not None:
        try:
            parsed = validate_geojson(item.geometry, max_area_km2=limit)
        except GeometryError as exc:
            raise InvalidGeometry(str(exc)) from None
        geom, area_m2 = parsed.geometry, parsed.area_m2
    else:
        geom = parse_shape(None, list(item.point or ()), point_radius_m)
    assert geom is not None
    res, cells, interior = feed_cover_rows(geom, area_m2)
    entry = (wkb(geom), res, cells, interior)
    if cache is not None:
        cache.put(key, entry)
    return Prepared(item, entry[0], None, res, cells, interior)


def prepare_items(
    items: Sequence[HazardItem], point_radius_m: float, cache: CoverCache | None = None
) -> tuple[list[Prepared], list[ItemError]]:
    """Prepare every item; an item whose area is unusable becomes an :class:`ItemError`."""
    ready: list[Prepared] = []
    errors: list[ItemError] = []
    for item in items:
        try:
            ready.append(prepare_item(item, point_radius_m, cache))
        except InvalidGeometry as exc:
            errors.append(ItemError(item.external_id, f"unusable area: {exc}"))
        except (ValueError, TypeError) as exc:  # shapely/h3 on degenerate input
            errors.append(ItemError(item.external_id, f"unusable area: {type(exc).__name__}: {exc}"))
    return ready, errors
