"""Feed items → validated areas and H3 covers (server.feeds.covers), without a server."""

from __future__ import annotations

import shapely
from shapely.geometry import shape

from feeds import gdacs
from feeds.model import HazardItem
from feeds.shapes import bbox_polygon
from geo.geodesy import geodesic_area_m2
from server.feeds.covers import FEED_MIN_RES, CoverCache, prepare_items
from tests.conftest import samples_dir


def test_gdacs_cyclone_track_boxes_are_kept_with_a_coarse_cover() -> None:
    doc = gdacs.parse((samples_dir() / "gdacs" / "gdacs_rss_7d_2019-12-30.xml").read_bytes())
    ready, errors = prepare_items(doc.items, 5000.0)
    assert errors == [] and len(ready) == len(doc.items)
    cyclones = [p for p in ready if p.item.external_id.startswith("TC")]
    assert len(cyclones) == 3
    for p in cyclones:
        assert p.wkb is not None
        geom = shapely.from_wkb(p.wkb)
        assert geom.is_valid and geodesic_area_m2(geom) > 6e12  # bigger than the hazards area's 2 million km²
        assert FEED_MIN_RES <= p.res < 5 and 100 < len(p.cells) < 2000 and any(p.interior)
    # no GDACS box makes thousands of cells any more (earthquake boxes of ~700,000 km² made ~3,000 at res 5)
    assert max(len(p.cells) for p in ready) < 2000


def test_other_sources_keep_the_default_area_limit() -> None:
    box = bbox_polygon(120.0, 160.0, 0.0, 30.0)
    assert box is not None and geodesic_area_m2(shape(box)) > 2e12
    items = [HazardItem(source=s, external_id=s, version="1", kind="x", geometry=box) for s in ("nws", "gdacs")]
    cache = CoverCache()
    ready, errors = prepare_items(items, 5000.0, cache)
    assert [p.item.source for p in ready] == ["gdacs"]
    assert [e.external_id for e in errors] == ["nws"] and "exceeds the limit" in errors[0].reason
    # the cover cache does not lend the GDACS result to a source with a smaller limit
    again, errors = prepare_items(list(reversed(items)), 5000.0, cache)
    assert [p.item.source for p in again] == ["gdacs"] and [e.external_id for e in errors] == ["nws"]


def test_feed_areas_get_an_exact_cover_within_the_feed_cell_budget() -> None:
    """Feed covers use their own, smaller cell budget (hundreds of areas per document): a coarser
    resolution than the hazards area's for the same square, the cells of a PolygonCover at that
    budget, and still exact (every point inside is in a cell, boundary cells take the exact test)."""
    import numpy as np

    from geo.cover import PolygonCover
    from server.feeds.covers import FEED_TARGET_CELLS
    from server.hazards.shapes import cover_rows, parse_shape

    square = {"type": "Polygon", "coordinates": [[[-92, 41.8], [-91.5, 41.8], [-91.5, 42.2], [-92, 42.2], [-92, 41.8]]]}
    ready, _ = prepare_items([HazardItem(source="nws", external_id="a", version="1", kind="x", geometry=square)], 5000)
    geom = parse_shape(square, None, None)
    hazards_res, hazards_cells, _ = cover_rows(geom)
    expected = PolygonCover(geom, min_res=FEED_MIN_RES, target_cells=FEED_TARGET_CELLS)
    p = ready[0]
    assert p.res == expected.res < hazards_res and len(p.cells) < len(hazards_cells)
    assert sorted(zip(p.cells, p.interior, strict=True)) == sorted(expected.cells())
    stored = PolygonCover.from_cells(
        geom,
        [c for c, i in zip(p.cells, p.interior, strict=True) if i],
        [c for c, i in zip(p.cells, p.interior, strict=True) if not i],
    )
    rng = np.random.default_rng(7)
    lons, lats = rng.uniform(-92.1, -91.4, 20_000), rng.uniform(41.7, 42.3, 20_000)
    assert (stored.contains(lons, lats) == shapely.contains_xy(geom, lons, lats)).all()
