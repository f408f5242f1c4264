"""Feed items → the rows a hazard needs: validated geometry (WKB), H3 resolution and cover cells.

CPU work only (no I/O): the sink runs :func:`prepare_items` in a thread for a whole parse.

* Most items go through the hazards area's own rules (:func:`server.hazards.shapes.parse_shape`
  validation/repair and :func:`~server.hazards.shapes.cover_rows`, a :class:`geo.cover.PolygonCover`).
* FIRMS fire areas are unions of whole H3 cells by construction (``raw.h3_res``,
  ``raw.h3_cells``): their cover *is* those cells, taken as they are instead of a general cover
  (~1 ms per area; 13,582 areas in the global 24 h file) or a polyfill (~0.5 ms). They are
  stored as interior cells: the outline is their drawing (straight lon/lat edges, centimetres
  from H3's arcs at res 7), trusted without re-validation. Without ``h3_cells`` the general
  path is used.
* Items with only a point get a geodesic circle of ``point_radius_m``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import h3.api.basic_int as h3i
import msgspec

from feeds.model import HazardItem, ItemError
from server.errors import InvalidGeometry
from server.hazards.shapes import cover_rows, parse_shape, wkb


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


def prepare_item(item: HazardItem, point_radius_m: float) -> Prepared:
    """One item's geometry and cover. Raises :class:`InvalidGeometry` when it has no usable area."""
    if item.source == "firms":
        fast = _firms_cells(item)
        if fast is not None:
            return fast
    if item.geometry is None and item.point is None:
        raise InvalidGeometry(f"feed item {item.external_id!r} has no geometry")
    if item.geometry is not None:
        geom = parse_shape(item.geometry, None, None)
    else:
        geom = parse_shape(None, list(item.point or ()), point_radius_m)
    assert geom is not None
    res, cells, interior = cover_rows(geom)
    return Prepared(item, wkb(geom), None, res, cells, interior)


def prepare_items(items: Sequence[HazardItem], point_radius_m: float) -> tuple[list[Prepared], list[ItemError]]:
    """Prepare every item; an item whose area is unusable becomes an :class:`ItemError`."""
    ready: list[Prepared] = []
    errors: list[ItemError] = []
    for item in items:
        try:
            ready.append(prepare_item(item, point_radius_m))
        except InvalidGeometry as exc:
            errors.append(ItemError(item.external_id, f"unusable area: {exc}"))
        except (ValueError, TypeError) as exc:  # shapely/h3 on degenerate input
            errors.append(ItemError(item.external_id, f"unusable area: {type(exc).__name__}: {exc}"))
    return ready, errors
