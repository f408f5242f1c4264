"""Hazard and geofence CRUD against the real server: validation 422s, H3 cells, soft delete."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import square

BASE = (-104.0, 39.0)


async def test_hazard_crud_stores_cells_and_audit(fc: httpx.AsyncClient, admin: dict[str, str], fdb: Any) -> None:
    body = {"kind": "flood", "severity": "severe", "title": "River flood", "geometry": square(*BASE, 0.02)}
    r = await fc.post("/v1/hazards", json=body, headers=admin)
    assert r.status_code == 201, r.text
    hz = r.json()
    assert hz["source"] == "manual" and hz["status"] == "active" and hz["version"] == "1"
    assert hz["geometry"]["type"] == "Polygon" and hz["h3_res"] >= 5
    cells = await fdb.fetch("SELECT interior FROM hazard_cells WHERE hazard_id = $1", hz["id"])
    assert any(c["interior"] for c in cells) and any(not c["interior"] for c in cells)
    assert (
        await fdb.fetchval("SELECT count(*) FROM audit_log WHERE action = 'hazard.create' AND target_id = $1", hz["id"])
        == 1
    )

    got = await fc.get(f"/v1/hazards/{hz['id']}", headers=admin)
    assert got.status_code == 200 and got.json()["title"] == "River flood"
    listed = await fc.get("/v1/hazards", params={"kind": "flood", "bbox": "-105,38,-103,40"}, headers=admin)
    assert hz["id"] in [h["id"] for h in listed.json()["items"]]

    r = await fc.patch(
        f"/v1/hazards/{hz['id']}", json={"severity": "extreme", "point": [-104.5, 39.5], "radius_m": 800}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["severity"] == "extreme" and r.json()["version"] == "2"
    assert -104.52 < r.json()["bbox"][0] < -104.5

    r = await fc.delete(f"/v1/hazards/{hz['id']}", headers=admin)
    assert r.status_code == 204
    ended = (await fc.get(f"/v1/hazards/{hz['id']}", headers=admin)).json()
    assert ended["status"] == "ended" and ended["ended_at"]


async def test_point_radius_hazard_is_a_geodesic_circle(fc: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await fc.post("/v1/hazards", json={"kind": "gas", "point": [-104.2, 39.2], "radius_m": 1000}, headers=admin)
    assert r.status_code == 201, r.text
    ring = r.json()["geometry"]["coordinates"][0]
    assert len(ring) >= 60


def _bowtie() -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "x", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}}, "geometry"),
        ({"kind": "x", "geometry": {"type": "Polygon", "coordinates": []}}, "geometry"),
        ({"kind": "x", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [2, 0], [0, 0]]]}}, "geometry"),
        (
            {"kind": "x", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]}},
            "geometry",
        ),
        ({"kind": "x", "geometry": square(0, 0, 30)}, "geometry"),
        ({"kind": "x", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "geometry"),
        ({"kind": "x", "point": [0, 0]}, "radius_m"),
        ({"kind": "x", "point": [0, 95], "radius_m": 10}, "point"),
        ({"kind": "x", "point": [0, 0], "radius_m": -5}, "radius_m"),
        ({"kind": "x"}, "geometry"),
        ({"kind": "x", "geometry": square(0, 0), "severity": "apocalyptic"}, "severity"),
        (
            {
                "kind": "x",
                "geometry": square(0, 0),
                "valid_from": "2030-01-02T00:00:00Z",
                "valid_until": "2030-01-01T00:00:00Z",
            },
            "valid_until",
        ),
    ],
)
async def test_bad_hazards_are_422_with_field_errors(
    fc: httpx.AsyncClient, admin: dict[str, str], fdb: Any, body: dict[str, Any], field: str
) -> None:
    before = await fdb.fetchval("SELECT count(*) FROM hazards")
    r = await fc.post("/v1/hazards", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = r.json().get("errors") or []
    assert any(e["field"].startswith(field) for e in errors), errors
    assert await fdb.fetchval("SELECT count(*) FROM hazards") == before


async def test_self_intersecting_polygon_is_repaired(fc: httpx.AsyncClient, admin: dict[str, str]) -> None:
    bow = {
        "type": "Polygon",
        "coordinates": [[[-104.0, 38.0], [-103.9, 38.1], [-103.9, 38.0], [-104.0, 38.1], [-104.0, 38.0]]],
    }
    r = await fc.post("/v1/hazards", json={"kind": "smoke", "geometry": bow}, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["geometry"]["type"] == "MultiPolygon"


async def test_viewer_cannot_write_hazards(fc: httpx.AsyncClient) -> None:
    from .conftest import token_for

    viewer = await token_for(fc, "viewer")
    r = await fc.post("/v1/hazards", json={"kind": "x", "geometry": square(0, 0)}, headers=viewer)
    assert r.status_code == 403


async def test_geofence_crud_and_unknown_detect(fc: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await fc.post(
        "/v1/geofences",
        json={"name": "staging", "geometry": square(-104.3, 39.3), "detect": ["enter", "teleport"]},
        headers=admin,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "detect"
    r = await fc.post(
        "/v1/geofences",
        json={"name": "staging", "geometry": square(-104.3, 39.3), "detect": ["enter", "exit", "dwell"], "dwell_s": 30},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    gf = r.json()
    assert gf["applies_to_all"] is True and gf["version"] == 1
    r = await fc.patch(f"/v1/geofences/{gf['id']}", json={"hysteresis_m": 25}, headers=admin)
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["hysteresis_m"] == 25
    assert (await fc.delete(f"/v1/geofences/{gf['id']}", headers=admin)).status_code == 204
    assert (await fc.get(f"/v1/geofences/{gf['id']}", headers=admin)).status_code == 404
    assert (await fc.delete(f"/v1/geofences/{gf['id']}", headers=admin)).status_code == 404
