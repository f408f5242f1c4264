"""The OsmAnd / Traccar Client protocol on `/osmand`: query, form and JSON bodies; device tokens."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import Database, eventually
from tests.positions.helpers import iso, unique_time


async def _row(db: Any, device: dict[str, str], when: datetime) -> Any:
    return await db.fetchrow(
        "SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat, speed_mps, heading_deg, altitude_m, accuracy_m, "
        "battery_pct, source, attributes FROM positions WHERE responder_id = $1 AND fix_time = $2",
        uuid.UUID(device["responder_id"]),
        when,
    )


async def test_get_with_query_converts_knots_and_keeps_attributes(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    when = unique_time(30).replace(microsecond=0)
    params = {
        "id": device["unique_id"],
        "token": device["token"],
        "timestamp": str(int(when.timestamp())),
        "lat": "41.98",
        "lon": "-91.66",
        "speed": "19.43844",
        "bearing": "90",
        "altitude": "230.5",
        "accuracy": "12",
        "batt": "76",
        "charge": "true",
        "hdop": "0.9",
        "alarm": "sos",
    }
    r = await client.get("/osmand", params=params)
    assert r.status_code == 200 and r.content == b""
    row = await _row(db, device, when)
    assert row["lon"] == pytest.approx(-91.66) and row["lat"] == pytest.approx(41.98)
    assert row["speed_mps"] == pytest.approx(10.0)
    assert (row["heading_deg"], row["altitude_m"], row["accuracy_m"], row["battery_pct"]) == (90, 230.5, 12, 76)
    assert row["source"] == "osmand"
    assert json.loads(row["attributes"]) == {"charge": True, "hdop": 0.9, "alarm": "sos"}


@pytest.mark.parametrize("form", ["ms", "iso", "space", "seconds-float"])
async def test_timestamp_forms(client: httpx.AsyncClient, database: Database, db: Any, form: str, fresh: Any) -> None:
    device = await fresh()
    when = unique_time(120).replace(microsecond=0)
    text = {
        "ms": str(int(when.timestamp() * 1000)),
        "iso": iso(when),
        "space": when.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds-float": f"{when.timestamp():.0f}.0",
    }[form]
    r = await client.get(
        "/osmand",
        params={"deviceid": device["unique_id"], "timestamp": text, "lat": "41.9", "lon": "-91.6"},
        headers={"Authorization": f"Bearer {device['token']}"},
    )
    assert r.status_code == 200, r.text
    assert await _row(db, device, when) is not None


async def test_form_post_with_location_field(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    when = unique_time(40).replace(microsecond=0)
    r = await client.post(
        "/osmand",
        data={
            "id": device["unique_id"],
            "token": device["token"],
            "timestamp": str(int(when.timestamp())),
            "location": "41.97,-91.65",
            "speed": "0",
        },
    )
    assert r.status_code == 200, r.text
    row = await _row(db, device, when)
    assert (row["lon"], row["lat"], row["speed_mps"]) == (pytest.approx(-91.65), pytest.approx(41.97), 0.0)


async def test_json_body_variant(client: httpx.AsyncClient, database: Database, db: Any, fresh: Any) -> None:
    device = await fresh()
    when = unique_time(50).replace(microsecond=0)
    body = {
        "device_id": device["unique_id"],
        "location": {
            "timestamp": iso(when),
            "coords": {"latitude": 41.96, "longitude": -91.64, "speed": 3.5, "heading": -1, "accuracy": 8},
            "is_moving": True,
            "odometer": 12.5,
            "event": "motionchange",
            "battery": {"level": 0.8, "is_charging": False},
            "activity": {"type": "on_foot"},
        },
    }
    r = await client.post("/osmand", json=body, headers={"Authorization": f"Bearer {device['token']}"})
    assert r.status_code == 200, r.text
    row = await _row(db, device, when)
    assert row["speed_mps"] == 3.5 and row["heading_deg"] is None
    assert row["battery_pct"] == pytest.approx(80.0)
    attributes = json.loads(row["attributes"])
    assert attributes["activity"] == "on_foot" and attributes["charge"] is False


async def test_token_is_required_and_must_belong_to_the_device(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device, other = await fresh(), await fresh()
    base = {"id": device["unique_id"], "lat": "41.9", "lon": "-91.6", "timestamp": str(int(unique_time().timestamp()))}
    missing = await client.get("/osmand", params=base)
    assert missing.status_code == 401
    bad = await client.get("/osmand", params={**base, "token": "dev_not-a-token"})
    assert bad.status_code == 401
    stolen = await client.get("/osmand", params={**base, "token": other["token"]})
    assert stolen.status_code == 401
    unknown = await client.get("/osmand", params={**base, "id": "no-such-device", "token": device["token"]})
    assert unknown.status_code == 400
    no_id = await client.get("/osmand", params={"lat": "41.9", "lon": "-91.6", "token": device["token"]})
    assert no_id.status_code == 400
    count = await db.fetchval(
        "SELECT count(*) FROM positions WHERE responder_id = ANY($1::uuid[]) AND source = 'osmand'",
        [uuid.UUID(device["responder_id"]), uuid.UUID(other["responder_id"])],
    )
    assert count == 0


async def test_invalid_fix_is_refused_with_a_reason(client: httpx.AsyncClient, database: Database, fresh: Any) -> None:
    device = await fresh()
    r = await client.get(
        "/osmand", params={"id": device["unique_id"], "token": device["token"], "lat": "0", "lon": "0"}
    )
    # The protocol knows 200 and 400 only: a refused fix is a 400 with the reason, never a 422.
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "null_island"
    assert r.json()["type"].endswith("fix-rejected")
    r = await client.get(
        "/osmand", params={"id": device["unique_id"], "token": device["token"], "lat": "x", "lon": "1"}
    )
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "invalid_number"


async def test_revoked_device_token_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], database: Database, fresh: Any
) -> None:
    responder_id = (await fresh())["responder_id"]
    created = await client.post("/v1/devices", json={"responder_id": responder_id}, headers=admin_headers)
    assert created.status_code in (200, 201), created.text
    dev = created.json()
    params = {"id": dev["unique_id"], "token": dev["token"], "lat": "41.9", "lon": "-91.6"}
    assert (await client.get("/osmand", params=params)).status_code == 200
    # Warm the device cache on both workers (fresh connections land on either).
    for _ in range(6):
        async with httpx.AsyncClient(base_url=str(client.base_url)) as other:
            assert (await other.get("/osmand", params=params)).status_code == 200
    revoked = await client.post(f"/v1/devices/{dev['id']}/revoke", headers=admin_headers)
    assert revoked.status_code == 200
    assert (
        await client.get("/osmand", params={**params, "timestamp": str(int(datetime.now(UTC).timestamp()) - 5)})
    ).status_code == 401

    async def refused_everywhere() -> bool:
        # Every worker drops its cached identity within about a second (the revocation epoch in Redis).
        codes = []
        for _ in range(6):
            async with httpx.AsyncClient(base_url=str(client.base_url)) as other:
                codes.append((await other.get("/osmand", params=params)).status_code)
        return set(codes) == {401}

    await eventually(refused_everywhere, timeout=4, interval=0.5)
