import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from geo import h3index
from geo.cover import CoverIndex, PolygonCover, choose_res
from geo.geodesy import point_buffer
from geo.geometry import parse_geojson


@st.composite
def random_polygons(draw):
    """Star-shaped polygons (valid by construction), some with a hole, some MultiPolygons."""
    cx = draw(st.floats(-170, 170))
    cy = draw(st.floats(-70, 70))
    radius = draw(st.floats(0.002, 0.5))
    n = draw(st.integers(3, 40))
    angles = np.sort(np.asarray(draw(st.lists(st.floats(0, 2 * np.pi), min_size=n, max_size=n, unique=True))))
    radii = np.asarray(draw(st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n))) * radius
    ring = list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles), strict=True))
    poly = shapely.make_valid(Polygon(ring))
    if draw(st.booleans()):
        poly = poly.difference(point_buffer(cx, cy, radius * 111_000 * 0.1))
    if draw(st.booleans()):
        poly = shapely.union(poly, box(cx + radius * 1.5, cy, cx + radius * 2, cy + radius * 0.5))
    parts = [g for g in getattr(poly, "geoms", [poly]) if isinstance(g, Polygon) and g.area > 0]
    if not parts:
        parts = [box(cx, cy, cx + radius, cy + radius)]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _points_around(geom, n, seed):
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = geom.bounds
    pad_x, pad_y = (maxx - minx) * 0.2 + 1e-4, (maxy - miny) * 0.2 + 1e-4
    lons = rng.uniform(max(minx - pad_x, -180), min(maxx + pad_x, 180), n)
    lats = rng.uniform(max(miny - pad_y, -90), min(maxy + pad_y, 90), n)
    return lons, lats


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geom=random_polygons(), seed=st.integers(0, 2**31))
def test_cover_contains_equals_shapely_on_100k_points(geom, seed):
    cover = PolygonCover(geom)
    lons, lats = _points_around(geom, 100_000, seed)
    expected = shapely.contains_xy(geom, lons, lats)
    got = cover.contains(lons, lats)
    assert np.array_equal(got, expected), f"{int((got != expected).sum())} mismatches at res {cover.res}"


def test_cover_contains_points_near_vertices_and_edges():
    geom = parse_geojson({"type": "Polygon", "coordinates": [[[14, 46], [14.3, 46], [14.15, 46.2], [14, 46]]]})
    cover = PolygonCover(geom)
    coords = np.asarray(shapely.segmentize(geom, 0.001).exterior.coords)
    rng = np.random.default_rng(7)
    jitter = rng.normal(0, 1e-5, (20, *coords.shape))
    pts = (coords[None, :, :] + jitter).reshape(-1, 2)
    assert np.array_equal(cover.contains(pts[:, 0], pts[:, 1]), shapely.contains_xy(geom, pts[:, 0], pts[:, 1]))


def test_cover_across_the_antimeridian():
    geom = parse_geojson(
        {
            "type": "Polygon",
            "coordinates": [[[179.7, -0.3], [-179.7, -0.3], [-179.7, 0.3], [179.7, 0.3], [179.7, -0.3]]],
        }
    )
    cover = PolygonCover(geom)
    rng = np.random.default_rng(3)
    lons = np.concatenate([rng.uniform(179.5, 180, 50_000), rng.uniform(-180, -179.5, 50_000)])
    lats = rng.uniform(-0.5, 0.5, 100_000)
    assert np.array_equal(cover.contains(lons, lats), shapely.contains_xy(geom, lons, lats))


def test_interior_cells_are_fully_inside_and_boundary_cells_touch():
    geom = point_buffer(14.5, 46.0, 5000)
    cover = PolygonCover(geom)
    assert cover.interior and cover.boundary and not cover.interior & cover.boundary
    for cell in cover.interior:
        hexagon = Polygon(h3index.cell_boundary_geojson(cell)["coordinates"][0])
        assert geom.contains(hexagon)
    assert 5 <= cover.res <= 10


def test_resolution_follows_size():
    assert choose_res(point_buffer(0, 0, 100)) == 10
    assert choose_res(point_buffer(0, 0, 100_000)) <= 6


def test_cells_at_other_resolution_rows():
    cover = PolygonCover(point_buffer(14.5, 46.0, 2000))
    rows = cover.cells_at(9)
    assert all(res == 9 for _, res, _ in rows)
    inside_cell = h3index.cell_for(14.5, 46.0, 9)
    assert (inside_cell, 9, True) in rows
    with pytest.raises(ValueError):
        PolygonCover(point_buffer(14.5, 46.0, 2000)).cells_at(15, max_cells=1000)


def test_cover_index_candidates_are_complete():
    geoms = [point_buffer(14.5 + 0.05 * i, 46.0, 2000 + 500 * i) for i in range(5)]
    index = CoverIndex()
    for i, g in enumerate(geoms):
        index.add(i, PolygonCover(g))
    lons, lats = _points_around(shapely.union_all(geoms), 20_000, 11)
    pts, keys, interior = index.candidates(lons, lats)
    pairs = set(zip(pts.tolist(), keys.tolist(), strict=True))
    for k, g in enumerate(geoms):
        for p in np.flatnonzero(shapely.contains_xy(g, lons, lats)).tolist():
            assert (p, k) in pairs
    assert interior.any() and (~interior).any()
    index.remove(2)
    _, keys2, _ = index.candidates(lons, lats)
    assert 2 not in set(keys2.tolist())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geom=random_polygons())
def test_centre_classification_agrees_with_testing_every_hexagon(geom):
    """The fast path (cells classified from their centres, hexagons only near the boundary) keeps
    every cell the hexagon-only path finds, and its interior cells lie inside the polygon."""
    from geo.antimeridian import polygonal_parts
    from geo.cover import _classify_by_hexagons, classify_cells, edge_length_m

    res = choose_res(geom)
    interior, boundary = classify_cells(geom, res)
    eps = (
        0.01 * edge_length_m(res) / 111_000 / np.cos(np.radians(min(80, max(abs(geom.bounds[1]), abs(geom.bounds[3])))))
    )
    slow_in, slow_b = _classify_by_hexagons(geom, polygonal_parts(geom), res, eps, 250_000)
    assert (slow_in | slow_b) <= (interior | boundary)
    assert not interior & boundary
    assert len(interior ^ slow_in) <= max(2, len(slow_in) // 50)
    hexes = [Polygon(h3index.cell_boundary_geojson(c)["coordinates"][0]) for c in interior]
    assert all(shapely.contains_properly(geom, h) for h in hexes if (h.bounds[2] - h.bounds[0]) < 180)
