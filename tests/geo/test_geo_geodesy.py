import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from geo import geodesy


def test_distance_one_degree_on_equator():
    assert geodesy.distance_m(0, 0, 1, 0) == pytest.approx(111_319.49, rel=1e-6)


def test_distances_vectorised_equals_scalar():
    lons, lats = np.array([1.0, 2.0, -120.0]), np.array([0.0, 45.0, -30.0])
    got = geodesy.distances_m(0.5, 10.0, lons, lats)
    want = [geodesy.distance_m(0.5, 10.0, lo, la) for lo, la in zip(lons, lats, strict=True)]
    assert got == pytest.approx(want)


@settings(max_examples=40, deadline=None)
@given(
    lon=st.floats(-179.0, 179.0),
    lat=st.floats(-80.0, 80.0),
    radius_m=st.floats(10.0, 200_000.0),
)
def test_point_buffer_ring_is_radius_from_centre(lon, lat, radius_m):
    circle = geodesy.point_buffer(lon, lat, radius_m)
    for part in getattr(circle, "geoms", [circle]):
        xy = np.asarray(part.exterior.coords)
        # skip the artificial vertices created on the antimeridian by a split
        real = np.abs(np.abs(xy[:, 0]) - 180.0) > 1e-9
        d = geodesy.distances_m(lon, lat, xy[real, 0], xy[real, 1])
        assert np.all(np.abs(d - radius_m) <= 0.005 * radius_m)


def test_point_buffer_area_and_orientation():
    circle = geodesy.point_buffer(10, 45, 1000)
    assert circle.exterior.is_ccw
    assert geodesy.geodesic_area_m2(circle) == pytest.approx(math.pi * 1000**2, rel=0.01)


def test_point_buffer_split_at_antimeridian():
    circle = geodesy.point_buffer(179.99, 10, 5000)
    assert isinstance(circle, MultiPolygon)
    assert circle.bounds[0] == -180.0 and circle.bounds[2] == 180.0
    assert geodesy.geodesic_area_m2(circle) == pytest.approx(math.pi * 5000**2, rel=0.01)


def test_point_buffer_rejects_polar_circle_and_bad_radius():
    with pytest.raises(ValueError):
        geodesy.point_buffer(0, 89.9, 50_000)
    with pytest.raises(ValueError):
        geodesy.point_buffer(0, 0, -1)


def test_buffer_geometry_m_grows_and_shrinks_by_metres():
    square = geodesy.point_buffer(14.5, 46.0, 2000)
    grown = geodesy.buffer_geometry_m(square, 500)
    shrunk = geodesy.buffer_geometry_m(square, -500)
    assert geodesy.geodesic_area_m2(grown) == pytest.approx(math.pi * 2500**2, rel=0.01)
    assert geodesy.geodesic_area_m2(shrunk) == pytest.approx(math.pi * 1500**2, rel=0.01)
    assert geodesy.buffer_geometry_m(square, -5000).is_empty


def test_buffer_geometry_m_across_antimeridian_stays_split():
    part = MultiPolygon([box(179.9, 0, 180, 0.1), box(-180, 0, -179.9, 0.1)])
    grown = geodesy.buffer_geometry_m(part, 1000)
    assert grown.bounds[0] >= -180 and grown.bounds[2] <= 180
    assert shapely.contains_xy(grown, 179.95, 0.05) and shapely.contains_xy(grown, -179.95, 0.05)
    assert shapely.contains_xy(grown, -179.895, 0.05)


def test_geodesic_area_subtracts_holes():
    outer = box(0, 0, 1, 1)
    with_hole = Polygon(outer.exterior.coords, [box(0.25, 0.25, 0.75, 0.75).exterior.coords])
    a, b = geodesy.geodesic_area_m2(outer), geodesy.geodesic_area_m2(with_hole)
    assert b == pytest.approx(a * 0.75, rel=0.01)


def test_line_crosses_polygon():
    zone = box(10, 45, 10.1, 45.1)
    assert geodesy.line_crosses(zone, 9.9, 45.05, 10.2, 45.05)
    assert not geodesy.line_crosses(zone, 9.9, 45.2, 10.2, 45.2)


def test_distance_to_boundary_m_is_metric():
    circle = geodesy.point_buffer(10, 60, 1000, segments=256)
    d = geodesy.distance_to_boundary_m(circle, 10, 60, 5000)
    assert d == pytest.approx(1000, rel=0.01)
    assert geodesy.distance_to_boundary_m(circle, 10, 60, 500) == math.inf
