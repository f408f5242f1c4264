"""Small helpers shared by the positions tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

CITY = (-91.6656, 41.9779)
_counter = itertools.count(1)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def unique_time(seconds_ago: float = 1.0) -> datetime:
    """A fix time no other test in the session uses (distinct microseconds)."""
    return now() - timedelta(seconds=seconds_ago) + timedelta(microseconds=next(_counter))


def fix(responder_id: str | None = None, when: datetime | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fix_time": iso(when or unique_time()),
        "lon": CITY[0] + 0.001 * (next(_counter) % 50),
        "lat": CITY[1],
        "accuracy_m": 5.0,
    }
    if responder_id is not None:
        body["responder_id"] = responder_id
    body.update(extra)
    return body


def device_headers(device: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {device['token']}"}


async def new_device(client: Any, headers: dict[str, str]) -> dict[str, str]:
    """A new responder (in the first team) with a device and no position yet."""
    import uuid

    teams = (await client.get("/v1/teams", headers=headers)).json()
    team_id = (teams["items"] if isinstance(teams, dict) else teams)[0]["id"]
    rsp = await client.post(
        "/v1/responders", json={"callsign": f"T-{uuid.uuid4().hex[:6]}", "team_id": team_id}, headers=headers
    )
    assert rsp.status_code in (200, 201), rsp.text
    dev = await client.post("/v1/devices", json={"responder_id": rsp.json()["id"]}, headers=headers)
    assert dev.status_code in (200, 201), dev.text
    return {"responder_id": rsp.json()["id"], "token": dev.json()["token"], "unique_id": dev.json()["unique_id"]}
