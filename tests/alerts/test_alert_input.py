"""Bad input to alerts and sign-up: clear 4xx problems, and nothing written."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.alerts.conftest import alert_body, square

AREA = square(-91.2, 42.5, 0.02)


def _text(**over: Any) -> list[dict[str, Any]]:
    t = {"language": "en-US", "headline": "h", "description": "d"}
    t.update(over)
    return [t]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"texts": _text(headline="  ")}, "texts[0].headline"),
        ({"texts": _text(description="")}, "texts[0].description"),
        ({"texts": []}, "texts"),
        ({"texts": _text(sms_90="x" * 91)}, "texts[0].sms_90"),
        ({"texts": _text(sms_360="x" * 361)}, "texts[0].sms_360"),
        ({"effective": "2099-02-01T00:00:00Z"}, "expires"),
        ({"expires": "2001-01-01T00:00:00Z"}, "expires"),
        ({"urgency": "Whenever"}, "urgency"),
        ({"status": "Live"}, "status"),
        ({"category": ["Weather"]}, "category[0]"),
        ({"area": {"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}}, "area.geometry"),
        ({"area": {"geometry": square(-98, 39, 12.0)}}, "area"),  # most of the USA
        (
            {"area": {"geometry": {"type": "Polygon", "coordinates": [[[200, 0], [201, 0], [201, 1], [200, 0]]]}}},
            "area",
        ),
        ({"area": {"incident_id": str(uuid.uuid4()), "radius_m": -5}}, "area.radius_m"),
        ({"area": {}}, "area"),
    ],
)
async def test_bad_alerts_are_422_and_not_stored(
    client: httpx.AsyncClient, coord_headers: dict[str, str], db: asyncpg.Connection, over: dict[str, Any], field: str
) -> None:
    before = await db.fetchval("SELECT count(*) FROM alerts")
    r = await client.post("/v1/alerts", json=alert_body(AREA, **over), headers=coord_headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in r.json().get("errors", [])]
    assert any(f.startswith(field) for f in fields), fields
    assert await db.fetchval("SELECT count(*) FROM alerts") == before


async def test_unknown_fields_and_unknown_incident(client: httpx.AsyncClient, coord_headers: dict[str, str]) -> None:
    r = await client.post("/v1/alerts", json={**alert_body(AREA), "priority": 1}, headers=coord_headers)
    assert r.status_code in (400, 422)
    r = await client.post(
        "/v1/alerts",
        json=alert_body(AREA, area={"incident_id": str(uuid.uuid4()), "radius_m": 500}),
        headers=coord_headers,
    )
    assert r.status_code == 404


async def test_viewer_cannot_compose_and_drafts_are_not_public(
    client: httpx.AsyncClient, coord_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    assert (await client.post("/v1/alerts", json=alert_body(AREA), headers=viewer_headers)).status_code == 403
    aid = (await client.post("/v1/alerts", json=alert_body(AREA), headers=coord_headers)).json()["id"]
    assert (await client.get(f"/v1/alerts/{aid}.cap")).status_code == 401  # a draft needs a login
    assert (await client.get(f"/v1/alerts/{aid}.cap", headers=viewer_headers)).status_code == 200
    assert (await client.post(f"/v1/alerts/{aid}/send", headers=coord_headers)).status_code == 409


async def test_incident_buffer_area(
    client: httpx.AsyncClient, coord_headers: dict[str, str], db: asyncpg.Connection
) -> None:
    incident = await db.fetchval("SELECT id FROM incidents LIMIT 1")
    if incident is None:
        pytest.skip("no demo incident")
    r = await client.post(
        "/v1/alerts",
        json=alert_body(AREA, area={"incident_id": str(incident), "radius_m": 2000}),
        headers=coord_headers,
    )
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["content"]["area_source"]["kind"] == "incident" and a["area"]["type"] == "Polygon"
    assert len(a["area"]["coordinates"][0]) <= 101


async def test_huge_drawn_polygon_is_simplified_and_extra_area_reported(
    client: httpx.AsyncClient, coord_headers: dict[str, str]
) -> None:
    import math

    ring = [
        [-91.67 + (0.1 + 0.01 * math.sin(i * 0.37)) * math.cos(i * math.tau / 600),
         41.98 + (0.1 + 0.01 * math.sin(i * 0.37)) * math.sin(i * math.tau / 600)]
        for i in range(600)
    ]  # fmt: skip
    ring.append(ring[0])
    r = await client.post(
        "/v1/alerts", json=alert_body({"type": "Polygon", "coordinates": [ring]}), headers=coord_headers
    )
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["area_simplified"] is True and a["area_extra_m2"] > 0
    assert sum(len(p) for p in a["area"]["coordinates"]) <= 100


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "ftp://example.org/hook",
        "http://user:pw@example.org/hook",
    ],
)
async def test_hostile_webhook_urls_are_refused(client: httpx.AsyncClient, db: asyncpg.Connection, url: str) -> None:
    before = await db.fetchval("SELECT count(*) FROM subscribers")
    r = await client.post(
        "/v1/subscribers",
        json={"webhook_url": url, "places": [{"geometry": {"type": "Point", "coordinates": [-91.6, 42.0]}}]},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "webhook_url"
    assert await db.fetchval("SELECT count(*) FROM subscribers") == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"phone": "3195550100"}, "phone"),
        ({}, "channels"),
        ({"email": "x@example.org", "places": []}, "places"),
        ({"email": "x@example.org", "push": {"endpoint": "https://push.example/abc"}}, "push"),
        (
            {"email": "x@example.org", "quiet_hours": {"start": "25:00", "end": "07:00", "tz": "Mars/Base"}},
            "quiet_hours",
        ),
        (
            {"email": "x@example.org", "places": [{"geometry": {"type": "Point", "coordinates": [-191, 0]}}]},
            "places[0]",
        ),
        ({"email": "x@example.org", "places": [{"geometry": square(-91, 42, 1.0)}]}, "places[0]"),
    ],
)
async def test_bad_signups_are_422(client: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    body.setdefault("places", [{"geometry": {"type": "Point", "coordinates": [-91.6, 42.0]}}])
    r = await client.post("/v1/subscribers", json=body)
    assert r.status_code == 422, r.text
    assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.json()


async def test_bad_tokens(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/subscribers/confirm", params={"token": "nope"})).status_code == 404
    assert (
        await client.post("/v1/subscribers/unsubscribe", params={"token": f"{uuid.uuid4()}.forged"})
    ).status_code == 404
    forged = await client.post(
        "/v1/alerts/sms-status", data={"MessageSid": "SM1", "MessageStatus": "delivered"},
        headers={"X-Twilio-Signature": "bad"},
    )  # fmt: skip
    assert forged.status_code == 401
