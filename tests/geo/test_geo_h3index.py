import h3
import numpy as np
import pytest

from geo import h3index


def test_cell_for_is_a_bigint_matching_h3():
    cell = h3index.cell_for(14.5, 46.05)
    assert 0 < cell < 2**63
    assert h3index.cell_to_str(cell) == h3.latlng_to_cell(46.05, 14.5, h3index.RES_POSITION)
    assert h3index.str_to_cell(h3index.cell_to_str(cell)) == cell


def test_cells_for_matches_scalar_and_is_int64():
    rng = np.random.default_rng(1)
    lons, lats = rng.uniform(-180, 180, 500), rng.uniform(-80, 80, 500)
    cells = h3index.cells_for(lons, lats, 7)
    assert cells.dtype == np.int64
    assert cells.tolist() == [h3index.cell_for(lo, la, 7) for lo, la in zip(lons, lats, strict=True)]


def test_str_to_cell_rejects_garbage():
    with pytest.raises(ValueError):
        h3index.str_to_cell("not-a-cell")


def test_cells_in_bbox_covers_every_point_in_the_box():
    cells = h3index.cells_in_bbox(14.4, 46.0, 14.6, 46.1, 8)
    rng = np.random.default_rng(2)
    pts = h3index.cells_for(rng.uniform(14.4, 14.6, 2000), rng.uniform(46.0, 46.1, 2000), 8)
    assert set(pts.tolist()) <= cells


def test_cells_in_bbox_is_bounded():
    with pytest.raises(ValueError, match="cells"):
        h3index.cells_in_bbox(-10, 30, 30, 60, 10)


def test_cells_in_bbox_across_the_antimeridian():
    cells = h3index.cells_in_bbox(179.9, -0.1, -179.9, 0.1, 7)
    assert h3index.cell_for(179.95, 0.0, 7) in cells
    assert h3index.cell_for(-179.95, 0.0, 7) in cells


def test_grid_disk_parent_and_boundary():
    cell = h3index.cell_for(14.5, 46.05)
    disk = h3index.grid_disk(cell, 1)
    assert len(disk) == 7 and cell in disk
    parent = h3index.parent(cell, 5)
    assert h3index.resolution(parent) == 5
    gj = h3index.cell_boundary_geojson(cell)
    ring = gj["coordinates"][0]
    assert gj["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) == 7
    lon, lat = h3index.cell_center(cell)
    assert abs(lon - 14.5) < 0.01 and abs(lat - 46.05) < 0.01
