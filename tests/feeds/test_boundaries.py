from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from shapely.geometry import Point, shape

from feeds.boundaries import CountyResolver, load_us_atlas_counties, same_to_fips, topojson_to_features, ugc_to_fips

# Two unit squares sharing an edge, quantized (scale 1, translate 10,20) and delta-encoded;
# county B walks the shared arc backwards (~0).
TOPO = {
    "type": "Topology",
    "transform": {"scale": [1, 1], "translate": [10, 20]},
    "objects": {
        "counties": {
            "type": "GeometryCollection",
            "geometries": [
                {"type": "Polygon", "id": "19113", "arcs": [[0, 1]], "properties": {"name": "A"}},
                {"type": "MultiPolygon", "id": "19105", "arcs": [[[~0, 2]]], "properties": {"name": "B"}},
            ],
        }
    },
    "arcs": [
        [[1, 0], [0, 1]],  # (11,20) → (11,21): shared edge
        [[1, 1], [-1, 0], [0, -1], [1, 0]],  # (11,21) → (10,21) → (10,20) → (11,20)
        [[1, 0], [1, 0], [0, 1], [-1, 0]],  # (11,20) → (12,20) → (12,21) → (11,21)
    ],
}


def test_quantized_delta_arcs_decode_to_county_features() -> None:
    features = topojson_to_features(TOPO)
    a, b = shape(features["19113"]["geometry"]), shape(features["19105"]["geometry"])
    assert a.is_valid and b.is_valid
    assert a.area == pytest.approx(1.0) and b.area == pytest.approx(1.0)
    assert a.contains(Point(10.5, 20.5)) and b.contains(Point(11.5, 20.5))
    assert a.touches(b)
    assert features["19105"]["properties"] == {"name": "B"}
    with pytest.raises(ValueError):
        topojson_to_features({"type": "FeatureCollection"})


def test_same_and_ugc_codes_map_to_fips() -> None:
    assert same_to_fips("019113") == "19113"
    assert ugc_to_fips("IAC113") == "19113"
    assert ugc_to_fips("AZC013") == "04013"
    assert ugc_to_fips("IAZ052") is None and ugc_to_fips("XXC001") is None
    assert same_to_fips("19113") is None


async def test_county_resolver_answers_ugc_same_and_fips() -> None:
    resolver = CountyResolver(topojson_to_features(TOPO))
    geoms = [await resolver.geometry_for(c) for c in ("IAC113", "019113", "19113")]
    assert geoms[0] is not None and geoms[0] == geoms[1] == geoms[2]
    assert await resolver.geometry_for("IAZ052") is None


@pytest.fixture(scope="module")
def us_atlas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    tmp = tmp_path_factory.mktemp("us-atlas")
    try:
        out = subprocess.run(["npm", "pack", "us-atlas@3"], cwd=tmp, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("npm pack us-atlas timed out (no registry access?)")
    tgz = next(tmp.glob("us-atlas-*.tgz"), None)
    if out.returncode != 0 or tgz is None:
        pytest.skip(f"npm pack us-atlas failed: {out.stderr[-200:]}")
    with tarfile.open(tgz) as tar:
        tar.extract("package/counties-10m.json", tmp, filter="data")
    return tmp / "package" / "counties-10m.json"


def test_us_atlas_counties_resolve_real_alert_codes(us_atlas: Path) -> None:
    counties = load_us_atlas_counties(us_atlas)
    assert len(counties) > 3000
    assert json.loads(us_atlas.read_bytes())["objects"]["counties"]["type"] == "GeometryCollection"
    linn = shape(counties[ugc_to_fips("IAC113") or ""]["geometry"])
    assert linn.contains(Point(-91.67, 41.978))  # Cedar Rapids (the weather.gov points capture)
    maricopa = shape(counties[same_to_fips("004013") or ""]["geometry"])
    assert maricopa.contains(Point(-112.07, 33.45))  # Phoenix
    aleutians = shape(counties["02016"]["geometry"])
    assert aleutians.geom_type == "MultiPolygon"
    assert aleutians.bounds[0] >= -180 and aleutians.bounds[2] <= 180
