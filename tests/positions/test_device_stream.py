"""`/v1/devices/stream`: fixes in, acks out only after commit."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import websockets

from tests.conftest import Database, ServerProcess
from tests.positions.helpers import fix


async def test_ack_arrives_after_commit_and_bad_items_get_errors(
    server: ServerProcess, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    url = f"{server.ws_url}/v1/devices/stream?token={device['token']}"
    async with websockets.connect(url) as ws:
        one = fix(client_id="w-1")
        await ws.send(json.dumps({"type": "fix", **one}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "ack" and ack["client_ids"] == ["w-1"]
        assert ack["results"][0]["status"] == "stored"
        # Acknowledged means committed: visible to another connection right now.
        when = datetime.fromisoformat(one["fix_time"].replace("Z", "+00:00"))
        stored = await db.fetchval(
            "SELECT count(*) FROM positions WHERE responder_id = $1 AND fix_time = $2",
            uuid.UUID(device["responder_id"]),
            when,
        )
        assert stored == 1
        items = [fix(client_id="w-2"), fix(client_id="w-3", lat=120.0), dict(one)]
        await ws.send(json.dumps({"type": "fixes", "items": items}))
        messages = [json.loads(await ws.recv()) for _ in range(2)]
        by_type = {m["type"]: m for m in messages}
        assert by_type["ack"]["client_ids"] == ["w-2", "w-1"]
        assert [r["status"] for r in by_type["ack"]["results"]] == ["stored", "duplicate"]
        assert by_type["error"]["client_id"] == "w-3" and by_type["error"]["reason"] == "invalid_coordinates"
        await ws.send("not json")
        assert json.loads(await ws.recv())["reason"] == "malformed_json"


async def test_socket_without_a_valid_device_token_is_closed(server: ServerProcess) -> None:
    async with websockets.connect(f"{server.ws_url}/v1/devices/stream?token=dev_bogus") as ws:
        msg = json.loads(await ws.recv())
        assert msg["type"] == "error" and msg["reason"] == "unauthorized"
        try:
            await ws.recv()
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 1008
