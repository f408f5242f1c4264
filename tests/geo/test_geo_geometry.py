import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon

from geo.geometry import (
    GeometryError,
    count_vertices,
    parse_geojson,
    parse_point_radius,
    simplify_covering,
    to_geojson,
    validate_geojson,
)


def poly(coords):
    return {"type": "Polygon", "coordinates": [coords]}


SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]


def fields(exc: GeometryError) -> list[str]:
    return [f for f, _ in exc.errors]


def test_valid_polygon_is_accepted_unchanged():
    r = validate_geojson(poly(SQUARE))
    assert not r.repaired and r.repairs == []
    assert r.geometry.equals(Polygon(SQUARE))
    assert r.area_m2 == pytest.approx(12_308e6, rel=0.01)


def test_bowtie_is_repaired_into_two_triangles():
    r = validate_geojson(poly([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]))
    assert r.repaired and any("made valid" in x for x in r.repairs)
    assert isinstance(r.geometry, MultiPolygon) and len(r.geometry.geoms) == 2
    assert r.geometry.is_valid


def test_bowtie_is_rejected_with_reason_when_repair_is_off():
    with pytest.raises(GeometryError) as exc:
        validate_geojson(poly([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]), repair=False)
    assert "Self-intersection" in str(exc.value)


def test_unclosed_ring_gives_field_error():
    with pytest.raises(GeometryError) as exc:
        parse_geojson(poly([[0, 0], [1, 0], [1, 1], [0, 1]]))
    assert exc.value.errors == [("geometry.coordinates[0]", "ring is not closed (first position must equal the last)")]


def test_ring_with_too_few_positions():
    with pytest.raises(GeometryError, match="at least 4 positions"):
        parse_geojson(poly([[0, 0], [1, 0], [0, 0]]))


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "Polygon", "coordinates": []},
        {"type": "Polygon", "coordinates": [[]]},
        {"type": "MultiPolygon", "coordinates": []},
        {"type": "Polygon"},
    ],
)
def test_empty_geometry_is_rejected(obj):
    with pytest.raises(GeometryError) as exc:
        parse_geojson(obj)
    assert exc.value.errors


def test_degenerate_zero_area_is_rejected():
    with pytest.raises(GeometryError, match="degenerate"):
        parse_geojson(poly([[0, 0], [1, 0], [2, 0], [0, 0]]))


@pytest.mark.parametrize(
    ("pos", "message"),
    [
        ([181, 0], "longitude 181.0 outside"),
        ([-180.5, 0], "longitude -180.5 outside"),
        ([0, 91], "latitude 91.0 outside"),
        ([math.nan, 0], "finite"),
        ([0, math.inf], "finite"),
        (["1", 0], "numbers"),
        ([True, 0], "numbers"),
        ([1], "position must be"),
    ],
)
def test_bad_positions_are_rejected_with_their_path(pos, message):
    ring = [[0, 0], pos, [1, 1], [0, 0]]
    with pytest.raises(GeometryError) as exc:
        parse_geojson(poly(ring))
    assert fields(exc.value) == ["geometry.coordinates[0][1]"]
    assert message in exc.value.errors[0][1]


def test_unknown_type_and_bare_point_are_rejected():
    with pytest.raises(GeometryError, match="unsupported type"):
        parse_geojson({"type": "LineString", "coordinates": [[0, 0], [1, 1]]})
    with pytest.raises(GeometryError, match="radius_m"):
        parse_geojson({"type": "Point", "coordinates": [0, 0]})


def test_too_many_vertices():
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    ring = [[float(np.cos(a)), float(np.sin(a))] for a in t]
    ring.append(ring[0])
    with pytest.raises(GeometryError, match="too many vertices"):
        parse_geojson(poly(ring), max_vertices=100)
    assert parse_geojson(poly(ring), max_vertices=201).is_valid


def test_huge_area_is_rejected():
    with pytest.raises(GeometryError, match="exceeds the limit"):
        parse_geojson(poly([[-100, -60], [100, -60], [100, 60], [-100, 60], [-100, -60]]))
    with pytest.raises(GeometryError, match="exceeds the limit"):
        parse_geojson(poly(SQUARE), max_area_km2=1000)


def test_clockwise_ring_is_reoriented():
    r = validate_geojson(poly(SQUARE[::-1]))
    assert r.repaired and any("orientation" in x for x in r.repairs)
    assert r.geometry.exterior.is_ccw


def test_antimeridian_crossing_polygon_is_split():
    r = validate_geojson(poly([[179, -1], [-179, -1], [-179, 1], [179, 1], [179, -1]]))
    g = r.geometry
    assert isinstance(g, MultiPolygon) and len(g.geoms) == 2
    assert "split at the antimeridian" in r.repairs
    assert g.bounds == (-180.0, -1.0, 180.0, 1.0)
    assert shapely.contains_xy(g, 179.5, 0) and shapely.contains_xy(g, -179.5, 0)
    assert not shapely.contains_xy(g, 0, 0)
    assert all(p.exterior.is_ccw for p in g.geoms)
    # 2° × 2° at the equator, not 358° × 2°
    assert r.area_m2 == pytest.approx(4 * 12_364e6, rel=0.01)


def test_feature_wrapper_and_multipolygon_accepted():
    mp = {"type": "MultiPolygon", "coordinates": [[SQUARE], [[[2, 2], [3, 2], [3, 3], [2, 3], [2, 2]]]]}
    g = parse_geojson({"type": "Feature", "properties": {}, "geometry": mp})
    assert isinstance(g, MultiPolygon) and len(g.geoms) == 2


def test_point_with_radius():
    r = parse_point_radius({"type": "Point", "coordinates": [14.5, 46.05]}, 500)
    assert r.area_m2 == pytest.approx(math.pi * 500**2, rel=0.01)
    with pytest.raises(GeometryError) as exc:
        parse_point_radius({"type": "Point", "coordinates": [14.5, 46.05]}, -5)
    assert fields(exc.value) == ["radius_m"]


def test_to_geojson_round_trips():
    g = parse_geojson(poly(SQUARE))
    out = to_geojson(g)
    assert out["type"] == "Polygon" and isinstance(out["coordinates"][0][0], list)
    assert parse_geojson(out).equals(g)


def _star(n, lobes, cx=10.0, cy=45.0, r=0.1):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rr = r * (1 + 0.3 * np.sin(lobes * t))
    return Polygon(zip(cx + rr * np.cos(t), cy + rr * np.sin(t), strict=True))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(50, 3000),
    lobes=st.integers(2, 15),
    max_vertices=st.integers(5, 200),
)
def test_simplify_covering_contains_input_within_vertex_budget(n, lobes, max_vertices):
    src = _star(n, lobes)
    out, extra_m2 = simplify_covering(src, max_vertices)
    assert count_vertices(out) <= max_vertices
    assert shapely.covers(out, src)
    assert extra_m2 >= 0


def test_simplify_covering_keeps_small_inputs_and_handles_antimeridian():
    small = Polygon(SQUARE)
    assert simplify_covering(small, 10) == (small, 0.0)
    r = validate_geojson(poly([[179, -1], [-179, -1], [-179, 1], [179, 1], [179, -1]]))
    dense = shapely.segmentize(r.geometry, 0.01)
    out, _ = simplify_covering(dense, 20)
    assert count_vertices(out) <= 20 and shapely.covers(out, r.geometry)
