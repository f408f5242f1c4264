"""`POST /v1/positions`: per-item accept/reject, exactly-once storage, duplicates, late fixes, auth."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx

from tests.conftest import Database
from tests.positions.helpers import device_headers, fix, iso, now, unique_time


async def _stored(db: Any, responder_id: str, times: list[str]) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM positions WHERE responder_id = $1 AND fix_time = ANY($2::timestamptz[])",
            uuid.UUID(responder_id),
            [_parse(t) for t in times],
        )
    )


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_batch_accepts_valid_items_and_rejects_bad_ones_with_reasons(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    good = fix()
    poor = fix(accuracy_m=900.0)
    items = [
        good,
        fix(lon=0.0, lat=0.0),
        fix(lat=95.0),
        fix(when=now() + timedelta(minutes=10)),
        fix(speed_mps=-3.0),
        fix(battery_pct=150.0),
        {**fix(), "colour": "red"},
        {**fix(), "lon": "east"},
        poor,
        fix(heading_deg=400.0),
        fix(fix_time=1e300),
        fix(responder_id=str(uuid.uuid4())),
    ]
    r = await client.post("/v1/positions", json=items, headers=device_headers(device))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(a["index"], a["status"], a["flags"]) for a in body["accepted"]] == [
        (0, "stored", []),
        (8, "stored", ["poor_accuracy"]),
    ]
    reasons = {x["index"]: x["reason"] for x in body["rejected"]}
    assert reasons == {
        1: "null_island",
        2: "invalid_coordinates",
        3: "future_fix_time",
        4: "out_of_range",
        5: "out_of_range",
        6: "invalid_item",
        7: "invalid_item",
        9: "out_of_range",
        10: "invalid_fix_time",
        11: "forbidden_responder",
    }
    assert all(x["detail"] for x in body["rejected"])
    assert await _stored(db, device["responder_id"], [good["fix_time"], poor["fix_time"]]) == 2
    flagged = await db.fetchval(
        "SELECT poor_accuracy FROM positions WHERE responder_id = $1 AND fix_time = $2",
        uuid.UUID(device["responder_id"]),
        _parse(poor["fix_time"]),
    )
    assert flagged is True


async def test_valid_part_is_stored_exactly_once_when_the_batch_is_repeated(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    items = [fix() for _ in range(20)] + [fix(lat=-100.0)]
    first = (await client.post("/v1/positions", json=items, headers=device_headers(device))).json()
    assert {a["status"] for a in first["accepted"]} == {"stored"} and len(first["accepted"]) == 20
    again = (await client.post("/v1/positions", json=items, headers=device_headers(device))).json()
    assert {a["status"] for a in again["accepted"]} == {"duplicate"} and len(again["accepted"]) == 20
    assert [x["index"] for x in again["rejected"]] == [20]
    assert await _stored(db, device["responder_id"], [i["fix_time"] for i in items[:20]]) == 20


async def test_repeats_within_one_batch_by_fix_time_or_client_id_are_duplicates(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    a = fix(client_id="c-1")
    same_time = dict(a, client_id="c-2", lon=a["lon"] + 0.01)
    same_client = fix(client_id="c-1")
    r = await client.post("/v1/positions", json=[a, same_time, same_client], headers=device_headers(device))
    assert [(x["index"], x["status"]) for x in r.json()["accepted"]] == [
        (0, "stored"),
        (1, "duplicate"),
        (2, "duplicate"),
    ]
    assert await _stored(db, device["responder_id"], [a["fix_time"], same_client["fix_time"]]) == 1


async def test_late_fix_goes_to_history_and_does_not_replace_latest(
    client: httpx.AsyncClient, database: Database, db: Any, admin_headers: dict[str, str], fresh: Any
) -> None:
    device = await fresh()
    newer = fix(when=unique_time(0), lon=-91.60, lat=41.95)
    older = fix(when=unique_time(600), lon=-91.70, lat=42.00)
    await client.post("/v1/positions", json=[newer], headers=device_headers(device))
    r = await client.post("/v1/positions", json=[older], headers=device_headers(device))
    assert r.json()["accepted"][0]["status"] == "stored"
    live = (await client.get(f"/v1/responders/{device['responder_id']}", headers=admin_headers)).json()
    assert live["position"]["lon"] == newer["lon"] and live["position"]["lat"] == newer["lat"]
    assert iso(_parse(live["position"]["fix_time"])) == newer["fix_time"]
    assert await _stored(db, device["responder_id"], [newer["fix_time"], older["fix_time"]]) == 2


async def test_users_post_by_role_and_unknown_responders_are_rejected(
    client: httpx.AsyncClient,
    database: Database,
    responder_headers: dict[str, str],
    coord_headers: dict[str, str],
    viewer_headers: dict[str, str],
    fresh: Any,
) -> None:
    own = database.devices[0]["responder_id"]  # the demo user "responder"
    other = (await fresh())["responder_id"]
    # An old fix: stored in history, but the demo responder stays where the seed put it.
    r = await client.post(
        "/v1/positions", json=[fix(when=unique_time(3600)), fix(responder_id=other)], headers=responder_headers
    )
    assert [a["index"] for a in r.json()["accepted"]] == [0]
    assert r.json()["rejected"][0]["reason"] == "forbidden_responder"
    r = await client.post(
        "/v1/positions",
        json=[fix(responder_id=other), fix(responder_id=str(uuid.uuid4())), fix()],
        headers=coord_headers,
    )
    assert [a["index"] for a in r.json()["accepted"]] == [0]
    assert [x["reason"] for x in r.json()["rejected"]] == ["unknown_responder", "missing_responder"]
    assert (await client.post("/v1/positions", json=[fix(own)], headers=viewer_headers)).status_code == 403
    assert (await client.post("/v1/positions", json=[fix(own)])).status_code == 401
    bad = await client.post("/v1/positions", json=[fix()], headers={"Authorization": "Bearer dev_nope"})
    assert bad.status_code == 401


async def test_device_token_as_query_parameter(client: httpx.AsyncClient, database: Database, fresh: Any) -> None:
    device = await fresh()
    r = await client.post(f"/v1/positions?token={device['token']}", json=[fix()])
    assert r.status_code == 200 and r.json()["accepted"][0]["status"] == "stored"


async def test_oversized_and_malformed_batches_are_refused_whole(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    items = [fix() for _ in range(1001)]
    r = await client.post("/v1/positions", json=items, headers=device_headers(device))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert await _stored(db, device["responder_id"], [i["fix_time"] for i in items]) == 0
    r = await client.post(
        "/v1/positions",
        content=b'[{"fix_time": "2024',
        headers={**device_headers(device), "content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["errors"]
    r = await client.post("/v1/positions", json={"fix_time": "x"}, headers=device_headers(device))
    assert r.status_code == 422
