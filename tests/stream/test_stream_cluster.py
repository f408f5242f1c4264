"""Two single-worker servers on one database and a private Redis: fan-out across workers,
resume within and beyond the window, a new epoch after FLUSHALL, the slow-viewer drop and the
Redis subscriber's reconnect."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis

from server.bus import Change
from server.stream.history import History
from server.stream.ticks import encode_batch
from tests.conftest import Database, RedisServer, ServerProcess, eventually, login, start_redis, start_server
from tests.positions.helpers import device_headers, fix

from .helpers import open_viewer

HISTORY_S = 3.0


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    redis: RedisServer


@pytest.fixture(scope="module")
def pair(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    redis = start_redis(tmp_path_factory.mktemp("stream-redis"))
    env = {
        **database.env,
        "SITREP_REDIS_URL": redis.url,
        "SITREP_STREAM_HISTORY_S": str(HISTORY_S),
        "SITREP_STREAM_QUEUE_FRAMES": "16",
    }
    logs = tmp_path_factory.mktemp("stream-logs")
    a = start_server(env, logs)
    b = start_server(env, logs)
    yield Pair(a, b, redis)
    a.stop()
    b.stop()
    redis.stop()


@pytest.fixture
async def http_a(pair: Pair) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pair.a.url, timeout=30) as c:
        yield c


async def _metric(url: str, name: str) -> float:
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"{url}/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


async def test_viewer_on_b_sees_fix_ingested_on_a(pair: Pair, http_a: httpx.AsyncClient, database: Database) -> None:
    v = await open_viewer(pair.b.ws_url, await login(http_a, "coord"))
    try:
        await v.subscribe(topics=["positions"])
        device = database.devices[20]
        started = time.time()
        r = await http_a.post("/v1/positions", json=[fix(lon=-91.6, lat=41.95)], headers=device_headers(device))
        assert r.status_code == 200
        frame, item = await v.item("positions", device["responder_id"])
        assert item["accepted_at"] >= started - 0.5
        assert time.time() - item["accepted_at"] < 1.0
        # Both workers number batches identically: a viewer on A sees the same (epoch, seq).
        w = await open_viewer(pair.a.ws_url, await login(http_a, "coord"))
        snap_a = await w.subscribe(topics=["positions"])
        assert snap_a["epoch"] == frame["epoch"] and snap_a["seq"] >= frame["seq"]
        await w.ws.close()
    finally:
        await v.ws.close()


async def test_resume_within_window_replays_missed_batches_in_order(
    pair: Pair, http_a: httpx.AsyncClient, database: Database
) -> None:
    token = await login(http_a, "coord")
    v = await open_viewer(pair.b.ws_url, token)
    snap = await v.subscribe(topics=["positions"])
    epoch, seq = snap["epoch"], snap["seq"]
    await v.ws.close()
    devices = database.devices[30:33]
    for k, d in enumerate(devices):
        await http_a.post("/v1/positions", json=[fix(lon=-91.6 + k * 0.01, lat=41.95)], headers=device_headers(d))
        await asyncio.sleep(0.08)
    await asyncio.sleep(0.2)
    v = await open_viewer(pair.a.ws_url, token)
    try:
        await v.send({"type": "resume", "epoch": epoch, "from_seq": seq})
        await v.of_type("resume_accepted")
        resumed = await v.subscribe(topics=["positions"])
        assert resumed["type"] == "resumed" and resumed["from_seq"] == seq and resumed["batches"] >= 1
        seqs, keys = [], []
        while len(set(keys) & {d["responder_id"] for d in devices}) < 3:
            frame = await v.of_type("delta")
            seqs.append(frame["seq"])
            keys += [i["key"] for i in frame["items"]]
        assert seqs == sorted(seqs) and seqs[0] > seq
    finally:
        await v.ws.close()


async def test_resume_beyond_window_or_old_epoch_gets_reset_snapshot(
    pair: Pair, http_a: httpx.AsyncClient, database: Database
) -> None:
    token = await login(http_a, "coord")
    v = await open_viewer(pair.a.ws_url, token)
    try:
        snap = await v.subscribe(topics=["positions"])
        await http_a.post("/v1/positions", json=[fix()], headers=device_headers(database.devices[40]))
        await asyncio.sleep(HISTORY_S + 2.0)  # the missed batch falls out of the window
        await http_a.post("/v1/positions", json=[fix()], headers=device_headers(database.devices[41]))
        await asyncio.sleep(0.3)
        late = await v.subscribe(id="late", topics=["positions"], epoch=snap["epoch"], from_seq=snap["seq"])
        assert late["type"] == "snapshot" and late["reset"] is True and late["items"]
        stale_epoch = await v.subscribe(id="old", topics=["positions"], epoch="not-the-epoch", from_seq=1)
        assert stale_epoch["type"] == "snapshot" and stale_epoch["reset"] is True
    finally:
        await v.ws.close()


async def test_flushall_changes_epoch_and_connected_viewers_get_reset(
    pair: Pair, http_a: httpx.AsyncClient, database: Database
) -> None:
    token = await login(http_a, "coord")
    v = await open_viewer(pair.b.ws_url, token)
    try:
        snap = await v.subscribe(topics=["positions"])
        r = aioredis.from_url(pair.redis.url)
        await r.flushall()
        await r.aclose()
        await http_a.post("/v1/positions", json=[fix()], headers=device_headers(database.devices[50]))
        reset = await v.next(lambda m: m.get("type") == "snapshot" and m.get("reset") is True, timeout=5)
        assert reset["epoch"] != snap["epoch"] and reset["items"]
        # Resuming with the old epoch afterwards is a reset too, never a silent gap.
        again = await v.subscribe(id="again", topics=["positions"], epoch=snap["epoch"], from_seq=snap["seq"])
        assert again["type"] == "snapshot" and again["reset"] is True
    finally:
        await v.ws.close()


class StalledClient:
    """A WebSocket client over a raw socket that sends its subscription and then stops reading.

    No client library in between: nothing buffers on our side, so once the kernel buffers are
    full the server's writes really block, as with a phone that froze or a proxy that stalled.
    """

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buffer = b""

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def read_until_close(self, timeout_s: float) -> tuple[int, str, int]:
        """Read and discard frames until the close frame: (code, reason, data frames seen)."""
        self.sock.settimeout(timeout_s)
        frames = 0
        while True:
            b0, b1 = self._read(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(length)
            if b0 & 0x0F == 0x8:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode(), frames
            frames += 1

    def close(self) -> None:
        self.sock.close()


async def test_slow_viewer_is_dropped_with_4008_and_others_keep_up(pair: Pair, http_a: httpx.AsyncClient) -> None:
    token = await login(http_a, "coord")
    before = await _metric(pair.a.url, "sitrep_stream_viewers_dropped_total")
    slow = await asyncio.to_thread(StalledClient, pair.a.port, token)
    slow.send_text(json.dumps({"type": "subscribe", "id": "s", "topics": ["incidents"]}))
    healthy = await open_viewer(pair.a.ws_url, token, max_size=None)
    await healthy.subscribe(topics=["incidents"])
    # Act as another worker: publish big ticks straight into the shared Redis channel.
    r = aioredis.from_url(pair.redis.url)
    history = History(r, "sitrep:stream", 1000)
    blob = "x" * 20_000  # ~2 MB frames: the loopback buffers fill after a few
    dropped = False
    try:
        for n in range(120):
            changes = [Change("incidents", f"big-{k}", {"n": n, "blob": blob}, lon=-91.6, lat=41.9) for k in range(100)]
            await history.publish(encode_batch(changes, "test-worker"))
            if n % 5 == 4:
                frame = await healthy.of_type("delta", timeout=5)  # the healthy viewer is never held back
                assert frame["items"]
                healthy.messages.clear()
                if await _metric(pair.a.url, "sitrep_stream_viewers_dropped_total") > before:
                    dropped = True
                    break
            await asyncio.sleep(0.05)
        assert dropped, "the viewer that never reads was not dropped"
        # Once it reads again it gets what was already on the wire, then the close frame with the reason.
        code, reason, _frames = await asyncio.to_thread(slow.read_until_close, 30)
        assert code == 4008
        assert "too slow" in reason
    finally:
        await r.aclose()
        slow.close()
        await healthy.ws.close()


async def test_redis_restart_is_survived_and_counted(pair: Pair, http_a: httpx.AsyncClient, database: Database) -> None:
    token = await login(http_a, "coord")
    before = await _metric(pair.b.url, "sitrep_stream_redis_reconnects_total")
    pair.redis.stop()
    await asyncio.sleep(0.5)
    pair.redis.start()
    await eventually(lambda: _reconnected(pair.b.url, before), timeout=15, interval=0.3)
    v = await open_viewer(pair.b.ws_url, token)
    try:
        await v.subscribe(topics=["positions"])
        device = database.devices[60]

        async def delivered() -> bool:
            await http_a.post("/v1/positions", json=[fix()], headers=device_headers(device))
            try:
                await v.item("positions", device["responder_id"], timeout=1.0)
                return True
            except AssertionError:
                return False

        await eventually(delivered, timeout=15, interval=0.2)
    finally:
        await v.ws.close()


async def _reconnected(url: str, before: float) -> bool:
    return await _metric(url, "sitrep_stream_redis_reconnects_total") > before
