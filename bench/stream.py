"""Stream benchmark (bounded, loopback): raw `websockets.broadcast` ceiling vs the sitrep stream.

    .venv/bin/python bench/stream.py [--viewers 1000] [--rate 2000] [--duration 15] \
        [--city-viewers 5000] [--city-rate 2000] [--encoding compact|json] [--phases whole,city]

1. sitrep, 2 workers, N viewers on the whole map (positions, 10 Hz) while 2,000 responders send
   2,000 fixes/s in total (small coordinator batches at an even pace) → fix-accepted →
   frame-received latency p50/p95/p99, drops, server CPU, driver CPU; viewers land on both
   workers and fixes are ingested on both, so most frames cross workers through Redis;
2. raw ceiling: a bare websockets server broadcasting a frame of the size sitrep's frames had in
   step 1 to N sockets, as fast as every socket keeps up (server and clients in separate
   processes, clients reading with the same frame-walking client as the driver) → frames/s;
   Then the same raw broadcast with the frame the target really asks for (every fix of a 10 Hz
   tick at the measured bytes per item), against the viewers x 10 frames/s the target asks;
3. sitrep, city-sized subscriptions (each viewer its own box) at 4 ticks/s; what 4 Hz asks in bytes
   (every fix in a box once: fixes/s x the share of responders in a box x bytes per item), and
   (``--no-city-raw`` skips it) the raw broadcast of frames of that size to as many sockets.
``--phases city`` runs only step 3 (``whole`` runs steps 1 and 2); ``--profile DIR`` records a
py-spy profile of each server worker during each sitrep phase (flame graphs in DIR).
Viewers subscribe with ``--encoding`` (default ``compact``: positions as short arrays, meta only
when it changes; ``json`` for the object form); bytes per item are printed for both phases.
The driver (loadtests/ws_driver.py) decodes only a sample of viewers fully; the measurement
window starts once every viewer has its snapshot. Throw-away database, Redis and servers;
everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ITEM = {
    "topic": "positions",
    "key": "0016bbb4-142a-4574-84c7-e894ddd60352",
    "data": {
        "id": "0016bbb4-142a-4574-84c7-e894ddd60352",
        "callsign": "SAR-1151",
        "lon": -91.60833299999997,
        "lat": 42.030467,
        "fix_time": "2026-11-25T21:30:21.734046Z",
        "accuracy_m": 5.0,
        "speed_mps": None,
        "heading_deg": None,
        "battery_pct": None,
        "status": "busy",
        "stale": False,
        "h3": "892674cde6fffff",
    },
    "accepted_at": 1795642222.186543,
}


def raw_frame(size: int) -> str:
    """A delta frame of about ``size`` bytes made of position items like sitrep's."""
    one = json.dumps(ITEM, separators=(",", ":"))
    n = max(1, round((size - 80) / (len(one) + 1)))
    return json.dumps(
        {"type": "delta", "epoch": "e", "seq": 1, "sent_at": 0.0, "items": [ITEM] * n}, separators=(",", ":")
    )


# ---- raw ceiling -------------------------------------------------------------------------------
HIGH_WATER = 256 * 1024


async def _raw_server(port: int, n: int, seconds: float, size: int, hz: float = 0.0) -> None:
    """Flood (``hz`` 0): broadcast to every socket as fast as every socket keeps up. Paced: each socket
    at most ``hz`` frames a second, the sockets in slots of 256 taking turns over the interval (as
    sitrep's lanes do); a socket with a backlog misses that turn."""
    from websockets.asyncio.server import broadcast, serve

    frame = raw_frame(size)
    clients: set = set()
    ready = asyncio.Event()

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        clients.add(ws)
        if len(clients) >= n:
            ready.set()
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, max_queue=None, ping_interval=None):
        await asyncio.wait_for(ready.wait(), 120)
        end = time.time() + seconds
        cpu0, t0 = time.process_time(), time.time()
        sent = 0
        if hz > 0:
            order = list(clients)
            slots = [order[i : i + 256] for i in range(0, len(order), 256)]
            step = 1.0 / hz / len(slots)
            due = time.monotonic()
            turn = 0
            while time.time() < end:
                # (a server more than an interval behind does not then hurry to catch up)
                due = max(due + step, time.monotonic() - 1.0 / hz)
                slot = [ws for ws in slots[turn % len(slots)] if ws.transport.get_write_buffer_size() <= HIGH_WATER]
                broadcast(slot, frame)
                sent += 1
                turn += 1
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        while hz <= 0 and time.time() < end:
            broadcast(clients, frame)
            sent += 1
            # As fast as every socket keeps up: wait until no socket has a backlog.
            while any(ws.transport.get_write_buffer_size() > HIGH_WATER for ws in clients) and time.time() < end:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)
        cpu = (time.process_time() - cpu0) / (time.time() - t0)
        for ws in list(clients):
            await ws.close()
        print(json.dumps({"broadcasts": sent, "frame_bytes": len(frame), "cpu_cores": cpu}), flush=True)


async def _raw_clients(port: int, n: int, seconds: float) -> None:
    sys.path.insert(0, str(REPO / "loadtests"))
    from ws_driver import Stats, ViewerProtocol, _raise_nofile  # type: ignore[import-not-found]

    _raise_nofile()
    stats = Stats()
    stats.window()
    started: list[float] = []
    cpu0: list[float] = []
    last = [0.0]  # the rate is over the first to the last frame's arrival (not the close handshakes after)

    class Counter:
        sample = False

        def __init__(self) -> None:
            self.stats = stats

        def on_open(self, proto: object) -> None:
            pass

        def on_message_head(self, head: bytes, nbytes: int) -> None:
            now = time.time()
            if not started:
                started.append(now)
                cpu0.append(time.process_time())
            last[0] = now
            stats.frames += 1

    loop = asyncio.get_running_loop()
    protos = []
    request = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    for i in range(n):
        proto = ViewerProtocol(Counter(), request)  # type: ignore[arg-type]
        await loop.create_connection(lambda p=proto: p, "127.0.0.1", port)
        protos.append(proto)
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.wait([p.done for p in protos], timeout=seconds + 60)
    elapsed = last[0] - started[0] if started else 1
    cpu = (time.process_time() - cpu0[0]) / max(elapsed, 1e-3) if cpu0 else 0.0
    print(json.dumps({"frames": stats.frames, "elapsed": elapsed, "cpu_cores": cpu}), flush=True)


RAW_CPU = {"server": 0.0, "clients": 0.0}
"""Cores the last raw ceiling's server and clients used while sending."""


def raw_ceiling(n: int, seconds: float, size: int, hz: float = 0.0) -> tuple[float, int]:
    """(frames/s delivered, frame bytes) for a broadcast of ``size``-byte frames to ``n`` sockets (as
    fast as they keep up, or ``hz`` frames a second to each; see ``_raw_server``)."""
    from tests.conftest import free_port

    port = free_port()
    srv = subprocess.Popen(
        [sys.executable, __file__, "--raw-server", str(port), str(n), str(seconds), str(size), str(hz)],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    # As many client processes as the driver uses for n viewers (one per 2,500).
    procs = max(1, min(4, (n + 2499) // 2500))
    clis = [
        subprocess.Popen(
            [sys.executable, __file__, "--raw-clients", str(port), str(n // procs + (i < n % procs)), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(procs)
    ]
    got = [json.loads(c.communicate(timeout=seconds + 150)[0].strip().splitlines()[-1]) for c in clis]
    out, _ = srv.communicate(timeout=30)
    sent = json.loads(out.strip().splitlines()[-1])
    frame_bytes = sent["frame_bytes"]
    RAW_CPU["server"] = float(sent.get("cpu_cores", 0.0))
    RAW_CPU["clients"] = sum(float(g.get("cpu_cores", 0.0)) for g in got)
    return sum(float(g["frames"]) / max(g["elapsed"], 1e-3) for g in got), frame_bytes


# ---- sitrep ------------------------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
    except psutil.Error:
        pass
    return total


class _Http:
    """A minimal HTTP/1.1 keep-alive client for the ingest load (the bench's own CPU is the machine's
    too: httpx cost ~6 ms of CPU per post, two thirds of a core at 100 posts/s, taken from the server
    and the driver it measures). One request at a time per connection; ``Content-Length`` answers only."""

    def __init__(self, url: str, token: str) -> None:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.head = (
            f"POST /v1/positions HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.all: list[asyncio.StreamWriter] = []

    async def post(self, body: bytes) -> tuple[int, bytes]:
        request = self.head + str(len(body)).encode() + b"\r\n\r\n" + body
        reused = bool(self.idle)
        if reused:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await self._connect()
        writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            # The server closed this idle keep-alive connection before reading the request: resend
            # on a new one (what HTTP clients do for a request the server never saw).
            writer.close()
            reader, writer = await self._connect()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await reader.readexactly(length) if length else b""
        self.idle.append((reader, writer))
        return status, data

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.all.append(writer)
        return reader, writer

    def close(self) -> None:
        for w in self.all:
            w.close()


async def _ingest(url: str, token: str, devices: list[dict[str, str]], rate: int, seconds: float) -> int:
    """Offer ``rate`` fixes/s for ``seconds``: small coordinator batches (``per_post`` fixes) sent at an
    even pace, each responder in turn, so fixes arrive steadily rather than in one burst a second."""
    per_post = 20
    failures: list[str] = []
    posts_per_s = max(1, rate // per_post)
    interval = 1.0 / posts_per_s
    state = {d["responder_id"]: [float(d["lon"]), float(d["lat"])] for d in devices}
    ids = list(state)
    ok = [0]
    in_flight: set[asyncio.Task[None]] = set()
    client = _Http(url, token)

    async def post(items: list[dict[str, object]]) -> None:
        try:
            status, data = await client.post(json.dumps(items, separators=(",", ":")).encode())
            if status == 200:
                ok[0] += len(items)
            else:
                failures.append(f"{status} {data[:200]!r}")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            failures.append(repr(exc))

    start = time.monotonic()
    n = 0
    while (due := start + n * interval) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        items: list[dict[str, object]] = []
        for k in range(per_post):
            rid = ids[(n * per_post + k) % len(ids)]
            pos = state[rid]
            pos[0] += 0.0001
            items.append({"responder_id": rid, "fix_time": now, "lon": pos[0], "lat": pos[1], "accuracy_m": 5.0})
        task = asyncio.create_task(post(items))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        n += 1
    if in_flight:
        await asyncio.wait(in_flight, timeout=30)
    client.close()
    if failures:
        print(f"  ingest: {len(failures)} posts failed, e.g. {failures[0]}", flush=True)
    return ok[0]


async def _login(url: str, user: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        r = await c.post("/v1/auth/token", json={"username": user, "password": "sitrep-demo"})
        r.raise_for_status()
        return str(r.json()["access_token"])


PROFILE_DIR = ""


def _profilers(pid: int, label: str) -> list[subprocess.Popen[bytes]]:
    """py-spy recorders on every worker (``--profile``), collapsed stacks, stopped with SIGINT."""
    if not PROFILE_DIR:
        return []
    Path(PROFILE_DIR).mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--nonblocking",
                "--format",
                "raw",
                "-r",
                "50",
                "-p",
                str(w),
                "-o",
                str(Path(PROFILE_DIR) / f"{label}-{w}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for w in sorted(_workers(pid))
    ]


def _stop_profilers(procs: list[subprocess.Popen[bytes]]) -> None:
    import signal

    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def sitrep_phase(  # type: ignore[no-untyped-def]
    server, devices, viewers: int, area: str, rate_hz: float, fixes_per_s: int, seconds: float, encoding: str = "json"
) -> dict:
    token = asyncio.run(_login(server.url, "coord"))
    profilers = _profilers(server.proc.pid, f"{area}-connect")
    driver = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "loadtests" / "ws_driver.py"),
            "--url",
            server.ws_url,
            "--viewers",
            str(viewers),
            "--duration",
            str(seconds),
            "--area",
            area,
            "--rate",
            str(rate_hz),
            "--encoding",
            encoding,
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None
    driver.stdout.readline()  # {"ready": n}: every viewer has its snapshot (or the connect timeout passed)
    groups = _metric(server.url, "sitrep_stream_groups")
    _stop_profilers(profilers)
    profilers = _profilers(server.proc.pid, f"{area}-window")
    workers0 = _workers(server.proc.pid)
    import uvloop

    cpu0, t0, own0 = _cpu_seconds(server.proc.pid), time.time(), time.process_time()
    sent = uvloop.run(_ingest(server.url, token, devices, fixes_per_s, seconds))
    cpu = (_cpu_seconds(server.proc.pid) - cpu0) / (time.time() - t0)
    ingest_cpu = (time.process_time() - own0) / (time.time() - t0)
    out, err = driver.communicate(timeout=seconds + 200)
    _stop_profilers(profilers)
    restarted = len(workers0 - _workers(server.proc.pid))
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-2000:]}
    result["fixes_per_s"] = round(sent / seconds)
    result["server_cpu_cores"] = round(cpu, 2)
    result["ingest_client_cpu_cores"] = round(ingest_cpu, 2)
    result["worker_restarts"] = restarted
    result["groups"] = groups
    return result


def _metric(url: str, name: str) -> float | None:
    """A metric's value summed over its series in ``/metrics`` (None when it is not there)."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    values = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    ]
    return sum(values) if values else None


def _workers(pid: int) -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def _line(label: str, r: dict, raw: float | None = None) -> str:  # type: ignore[type-arg]
    lat = r.get("latency_ms", {})
    ratio = f" ({r.get('frames_per_s', 0) / raw:.1%} of raw)" if raw else ""
    return (
        f"  {label} [{r.get('encoding')}]: {r.get('connected')}/{r.get('viewers')} viewers ready in {r.get('setup_s')} s "
        f"({r.get('groups') or 0:.0f} subscription groups), "
        f"{r.get('fixes_per_s')} fixes/s: {r.get('frames_per_s')} frames/s{ratio} of {r.get('expected_frames_per_s')} "
        f"asked, {r.get('mb_per_s')} MB/s ({r.get('bytes_per_frame')} B, ~{r.get('items_per_frame')} items and "
        f"~{r.get('metas_per_frame')} metas per frame, "
        f"~{_per_item(r):.0f} B per item), "
        f"latency p50 {lat.get('p50')} ms p95 {lat.get('p95')} ms p99 {lat.get('p99')} ms (accepted→sent p95 "
        f"{r.get('server_part_ms', {}).get('p95')} ms, sent→received p95 {r.get('delivery_part_ms', {}).get('p95')} ms), "
        f"drops {r.get('drops')}, "
        f"closes {r.get('closes')}, errors {r.get('errors')}, server CPU {r.get('server_cpu_cores')} cores, "
        f"driver CPU {r.get('driver_cpu_cores')} cores ({r.get('procs')} procs), ingest client CPU "
        f"{r.get('ingest_client_cpu_cores')} cores, worker restarts {r.get('worker_restarts')}"
    )


def _city_share(devices: list[dict[str, str]], viewers: int) -> float:
    """The mean share of the responders inside a driver viewer's city box (the driver's boxes, seeded
    per viewer; responders where they were seeded, as the ingest load moves them only ~1 m per fix)."""
    import random

    import numpy as np

    sys.path.insert(0, str(REPO / "loadtests"))
    from ws_driver import area_for  # type: ignore[import-not-found]

    lon = np.array([float(d["lon"]) for d in devices])
    lat = np.array([float(d["lat"]) for d in devices])
    inside = 0.0
    for i in range(viewers):
        x0, y0, x1, y1 = area_for("city", random.Random(i))["bbox"]
        inside += float(np.count_nonzero((lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)))
    return inside / max(1, viewers * len(devices))


def _per_item(r: dict) -> float:  # type: ignore[type-arg]
    """Frame bytes per position item (meta and frame envelope included)."""
    return float(r.get("bytes_per_frame") or 0) / max(float(r.get("items_per_frame") or 1), 1.0)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--raw-server", "--raw-clients"):
        import uvloop

        port, n, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        if sys.argv[1] == "--raw-server":
            uvloop.run(_raw_server(port, n, seconds, int(sys.argv[5]), float(sys.argv[6])))
        else:
            uvloop.run(_raw_clients(port, n, seconds))
        return
    p = argparse.ArgumentParser()
    p.add_argument("--viewers", type=int, default=1000)
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--responders", type=int, default=2000)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--city-viewers", type=int, default=5000)
    p.add_argument("--city-rate", type=int, default=0, help="fixes/s during the city phase (default: --rate)")
    p.add_argument("--encoding", choices=["compact", "json"], default="compact", help="how viewers ask for positions")
    p.add_argument("--phases", default="whole,city", help="comma-separated: whole (with the raw ceilings), city")
    p.add_argument(
        "--city-raw",
        dest="city_raw",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the city phase, the raw broadcast ceiling of the frames 4 Hz asks to as many sockets",
    )
    p.add_argument("--profile", default="", help="directory for py-spy flame graphs of the workers (optional)")
    args = p.parse_args()
    global PROFILE_DIR
    PROFILE_DIR = args.profile

    from tests.conftest import create_database, drop_database, run_cli, sitrep_env, start_redis, start_server

    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="sitrep-bench-stream-"))
    name = f"sitrep_bench_stream_{os.getpid()}"
    redis = start_redis(tmp / "redis")
    url = create_database(name)
    server = None
    try:
        env = sitrep_env(url, redis.url, tmp / "state", SITREP_RATE_LIMIT_PER_MIN="1000000")
        run_cli(env, "migrate")
        run_cli(env, "seed-demo", "--responders", str(args.responders))
        devices = json.loads((tmp / "state" / "demo-devices.json").read_text())
        server = start_server(env, tmp, workers=2, timeout=120)
        print(f"setup {time.time() - started:.0f}s; sitrep with 2 workers", flush=True)

        phases = set(args.phases.split(","))
        whole: dict = {}  # type: ignore[type-arg]
        city: dict = {}  # type: ignore[type-arg]
        raw = raw_t = 0.0
        raw_bytes = raw_t_bytes = 0
        if "whole" in phases:
            whole = sitrep_phase(server, devices, args.viewers, "whole", 10, args.rate, args.duration, args.encoding)
            size = int(whole.get("bytes_per_frame") or 0) or len(raw_frame(380 * args.rate // 10))
            print(
                f"raw ceiling: websockets.broadcast of {size:,}-byte frames to {args.viewers} sockets ...", flush=True
            )
            raw, raw_bytes = raw_ceiling(args.viewers, 8, size)
            print(
                f"  raw broadcast: {raw:,.0f} frames/s ({raw * raw_bytes / 1e6:,.0f} MB/s) delivered to {args.viewers} "
                f"sockets, {raw_bytes:,}-byte frames",
                flush=True,
            )
            print(_line("whole map", whole, raw), flush=True)
            per_item = _per_item(whole)
            need = args.viewers * whole.get("fixes_per_s", 0) * per_item / 1e6
            print(
                f"  what the whole-map target asks: {args.viewers} viewers x {whole.get('fixes_per_s')} items/s x "
                f"{per_item:.0f} B = {need:,.0f} MB/s of frames, {need / max(raw * raw_bytes / 1e6, 1e-9):.1f}x the raw "
                "ceiling measured above",
                flush=True,
            )
            # The frame the target really asks for: every fix of the tick at this encoding's bytes per item.
            target_bytes = int(per_item * whole.get("fixes_per_s", 0) / 10) + 120
            raw_t, raw_t_bytes = raw_ceiling(args.viewers, 6, target_bytes)
            print(
                f"  raw broadcast of the target's frames ({raw_t_bytes:,} B = {whole.get('fixes_per_s', 0) / 10:.0f} items "
                f"x {per_item:.0f} B): {raw_t:,.0f} frames/s ({raw_t * raw_t_bytes / 1e6:,.0f} MB/s) to {args.viewers} "
                f"sockets = {raw_t / max(args.viewers * 10, 1):.0%} of the {args.viewers * 10:,} frames/s the target asks",
                flush=True,
            )
        if "city" in phases:
            city_rate = args.city_rate or args.rate
            city = sitrep_phase(server, devices, args.city_viewers, "city", 4, city_rate, args.duration, args.encoding)
            # What 4 Hz asks: every fix inside a box reaches it once (a responder sends 1 fix/s, so a
            # 250 ms tick coalesces next to nothing): fixes/s x the share of responders in a box.
            share = _city_share(devices, args.city_viewers)
            per_viewer_s = city.get("fixes_per_s", 0) * share
            per_item = _per_item(city)
            need = args.city_viewers * per_viewer_s * per_item / 1e6
            print(_line("city areas @4 Hz", city), flush=True)
            print(
                f"  what the city target asks: {args.city_viewers} viewers x 4 frames/s of ~{per_viewer_s / 4:.0f} "
                f"items ({share:.0%} of the responders are in a box) x {per_item:.0f} B = {need:,.0f} MB/s of frames",
                flush=True,
            )
            if args.city_raw:
                # The raw ceiling for the frames the target asks (the same frame to every socket, so the
                # server side is cheaper than sitrep's distinct frames: a ceiling, not a twin).
                target_bytes = int(per_item * per_viewer_s / 4) + 120
                raw_c, raw_c_bytes = raw_ceiling(args.city_viewers, 6, target_bytes)
                print(
                    f"  raw broadcast of the target's frames ({raw_c_bytes:,} B) to {args.city_viewers} sockets: "
                    f"{raw_c:,.0f} frames/s ({raw_c * raw_c_bytes / 1e6:,.0f} MB/s) = {raw_c / max(args.city_viewers * 4, 1):.0%} "
                    f"of the {args.city_viewers * 4:,} frames/s the target asks; sitrep delivered "
                    f"{float(city.get('frames_per_s') or 0) * float(city.get('bytes_per_frame') or 0) / 1e6 / max(raw_c * raw_c_bytes / 1e6, 1e-9):.0%} "
                    "of its bytes/s",
                    flush=True,
                )
                city["raw_target_frames_per_s"] = round(raw_c)
                city["raw_target_frame_bytes"] = raw_c_bytes
                # The same frames at the target's pace: each socket its frame 4 times a second, so every
                # read and write carries one frame (as in sitrep), not the many a flooded socket batches.
                paced, _ = raw_ceiling(args.city_viewers, 8, target_bytes, 4.0)
                print(
                    f"  raw broadcast of those frames at 4 Hz to each of {args.city_viewers} sockets (slots of 256 "
                    f"taking turns): {paced:,.0f} frames/s = {paced / max(args.city_viewers * 4, 1):.0%} of the "
                    f"{args.city_viewers * 4:,} asked (raw server {RAW_CPU['server']:.2f} cores, clients "
                    f"{RAW_CPU['clients']:.2f} cores); sitrep delivered "
                    f"{float(city.get('frames_per_s') or 0) / max(paced, 1e-9):.0%} of its frames/s",
                    flush=True,
                )
                city["raw_paced_frames_per_s"] = round(paced)
        print(
            json.dumps(
                {
                    "raw_frames_per_s": round(raw),
                    "raw_frame_bytes": raw_bytes,
                    "raw_target_frames_per_s": round(raw_t),
                    "raw_target_frame_bytes": raw_t_bytes,
                    "whole": whole,
                    "city": city,
                }
            )
        )
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        drop_database(name)
        print(f"total {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
