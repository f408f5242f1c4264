"""Open N viewer sockets against /v1/stream, subscribe to areas and measure fix-accepted →
frame-received latency (from each item's ``accepted_at``), drops and resumes.

    python loadtests/ws_driver.py --url ws://127.0.0.1:8000 --viewers 500 --duration 30 \
        --username coord --password sitrep-demo [--area city|whole|cells] [--rate 10] \
        [--procs 2] [--sample 100] [--encoding json|compact] [--json]

Uses the public API only. With ``--encoding compact`` the viewers subscribe to the compact
positions form (docs/stream.md) and latency is measured from each compact position's
acceptance time (``fix_time_ms`` + ``accepted_after_ms``, indexes 3 and 8). A socket that is closed is reconnected and resumed from its last
``(epoch, seq)``; resumes (replayed or reset) and drops (4008) are counted.

Built so that the driver is not the bottleneck it measures:

- viewers are spread over ``--procs`` processes (each raises its open-file limit);
- each socket is a small WebSocket client on a bare asyncio protocol that walks frame headers and
  skips payloads without copying them; only ``--sample`` viewers (spread evenly) keep and decode
  whole messages (msgspec, just the fields needed) to measure latency, the others read
  ``type``/``epoch``/``seq`` from the first bytes of each message and count frames and bytes;
- sockets connect in paced batches; the measurement window starts once every viewer has its
  snapshot (the JSON output's first line ``{"ready": ...}`` says when), and the driver reports
  its own CPU use so a saturated driver is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import msgspec

CITY = (-91.6656, 41.9779)
HEAD_BYTES = 160
_HEAD_TYPE = re.compile(rb'"type":"(\w+)"')
_HEAD_EPOCH = re.compile(rb'"epoch":"([^"]*)"')
_HEAD_SEQ = re.compile(rb'"seq":(\d+)')
_HEAD_RESET = re.compile(rb'"reset":true')
_DELTA_HEAD = b'{"type":"delta","epoch":"'


class _Item(msgspec.Struct):
    accepted_at: float = 0.0


class _Position(msgspec.Struct, array_like=True):
    """A compact position: [handle, lon, lat, fix_time_ms, speed_mps, heading_deg, accuracy_m, flags,
    accepted_after_ms] (accepted at fix_time_ms + accepted_after_ms; unix ms itself without a fix time)."""

    handle: Any
    lon: Any
    lat: Any
    fix_time_ms: Any
    speed_mps: Any
    heading_deg: Any
    accuracy_m: Any
    flags: Any
    accepted_after_ms: float | None = None


class _Msg(msgspec.Struct):
    type: str = ""
    sent_at: float = 0.0
    epoch: str | None = None
    seq: int | None = None
    reset: bool = False
    items: list[_Item] = []
    positions: list[_Position] = []
    meta: list[Any] = []


_decode_msg = msgspec.json.Decoder(_Msg).decode


def area_for(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == "whole":
        return {}
    if kind == "cells":
        import h3

        lat = CITY[1] + rng.uniform(-0.04, 0.04)
        lon = CITY[0] + rng.uniform(-0.06, 0.06)
        return {"cells": list(h3.grid_disk(h3.latlng_to_cell(lat, lon, 7), 1))}
    # "city": a city-sized box (~8 x 9 km) somewhere around the demo city
    lon = CITY[0] + rng.uniform(-0.05, 0.05)
    lat = CITY[1] + rng.uniform(-0.04, 0.04)
    return {"bbox": [round(lon - 0.05, 5), round(lat - 0.04, 5), round(lon + 0.05, 5), round(lat + 0.04, 5)]}


class Stats:
    def __init__(self) -> None:
        self.latency_ms: Counter[int] = Counter()
        self.server_ms: Counter[int] = Counter()
        """accepted → the frame's ``sent_at`` (ingest, Redis, tick wait: the server pipeline)."""
        self.delivery_ms: Counter[int] = Counter()
        """``sent_at`` → received, per frame (fan-out queueing, sockets, this driver)."""
        self.counting = False
        self.frames = 0
        self.bytes = 0
        self.items = 0
        self.metas = 0
        """Compact metas in the sampled frames (a responder's callsign/status/team, sent when it changes or enters)."""
        self.sampled_frames = 0
        self.drops = 0
        self.closes: Counter[int] = Counter()
        self.resumed = 0
        self.resets = 0
        self.connects = 0
        self.errors: Counter[str] = Counter()
        self.measuring = False

    def window(self) -> None:
        """Start the measurement window: what came before (snapshots, connecting) is not counted."""
        self.latency_ms.clear()
        self.server_ms.clear()
        self.delivery_ms.clear()
        self.frames = self.bytes = self.items = self.metas = self.sampled_frames = 0
        self.measuring = True
        self.counting = True


class ViewerProtocol(asyncio.Protocol):
    """One viewer socket: a minimal RFC 6455 client (server frames are never masked)."""

    def __init__(self, viewer: Viewer, request: bytes) -> None:
        self.v = viewer
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.http = bytearray()
        self.hdr = b""
        self.need = -1  # payload bytes left in the current frame; -1: expecting a header
        self.opcode = 0
        self.msg_opcode = 0
        self.fin = True
        self.payload = bytearray()
        self.head = bytearray()
        self.msg_bytes = 0
        self.keep_all = viewer.sample
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(1006)

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.http += data
            end = self.http.find(b"\r\n\r\n")
            if end < 0:
                if len(self.http) > 65536:
                    self._finish(-1)
                return
            status = bytes(self.http[: self.http.find(b"\r\n")])
            rest = bytes(self.http[end + 4 :])
            self.http = bytearray()
            if b" 101 " not in status + b" ":
                self.v.stats.errors[f"http {status[:40].decode(errors='replace')}"] += 1
                self._finish(-1)
                return
            self.open = True
            self.v.on_open(self)
            if not rest:
                return
            data = rest
        self._frames(data)

    # -- frame walking
    def _frames(self, data: bytes) -> None:
        n = len(data)
        i = 0
        mv = memoryview(data)
        while i < n:
            if self.need < 0:
                hdr = self.hdr + data[i : i + 14]
                parsed = _parse_header(hdr)
                if parsed is None:
                    self.hdr = hdr
                    return
                hlen, fin, opcode, length = parsed
                i += hlen - len(self.hdr)
                self.hdr = b""
                self.fin, self.opcode, self.need = fin, opcode, length
                if opcode in (1, 2):
                    self.msg_opcode = opcode
                    self.msg_bytes = 0
                    self.payload = bytearray()
                    self.head = bytearray()
                if self.need == 0:
                    self._frame_done()
                continue
            k = min(self.need, n - i)
            if self.opcode >= 8 or self.keep_all:
                self.payload += mv[i : i + k]
            elif len(self.head) < HEAD_BYTES:
                self.head += mv[i : i + min(k, HEAD_BYTES - len(self.head))]
            self.msg_bytes += k
            self.need -= k
            i += k
            if self.need == 0:
                self._frame_done()

    def _frame_done(self) -> None:
        self.need = -1
        op = self.opcode
        if op == 8:
            code = int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else 1005
            self._send(8, bytes(self.payload[:2]))
            self._finish(code)
        elif op == 9:
            self._send(10, bytes(self.payload))
            self.payload = bytearray()
        elif op == 10:
            self.payload = bytearray()
        elif self.fin:
            if self.keep_all:
                self.v.on_message_full(bytes(self.payload), self.msg_bytes)
            else:
                self.v.on_message_head(bytes(self.head), self.msg_bytes)
            self.payload = bytearray()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes([0x80 | opcode, 0x80 | n])
        elif n < 65536:
            head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[j & 3] for j, b in enumerate(payload))
        self.transport.write(head + mask + masked)

    def send_text(self, text: str) -> None:
        self._send(1, text.encode())

    def _finish(self, code: int) -> None:
        if not self.done.done():
            self.done.set_result(code)
        if self.transport is not None:
            self.transport.close()


def _parse_header(h: bytes) -> tuple[int, bool, int, int] | None:
    if len(h) < 2:
        return None
    b0, b1 = h[0], h[1]
    length = b1 & 0x7F
    pos = 2
    if length == 126:
        if len(h) < 4:
            return None
        length = int.from_bytes(h[2:4], "big")
        pos = 4
    elif length == 127:
        if len(h) < 10:
            return None
        length = int.from_bytes(h[2:10], "big")
        pos = 10
    if b1 & 0x80:  # a masked server frame would be a protocol error; skip its key anyway
        if len(h) < pos + 4:
            return None
        pos += 4
    return pos, bool(b0 & 0x80), b0 & 0x0F, length


class Viewer:
    def __init__(self, i: int, args: argparse.Namespace, token: str, stats: Stats, sample: bool) -> None:
        self.i = i
        self.args = args
        self.stats = stats
        self.sample = sample
        rng = random.Random(i)
        self.sub: dict[str, Any] = {
            "type": "subscribe",
            "id": f"v{i}",
            "topics": args.topics.split(","),
            "max_rate_hz": args.rate,
        }
        if args.encoding != "json":
            self.sub["encoding"] = args.encoding
        self.sub.update(area_for(args.area, rng))
        u = urlsplit(args.url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        key = base64.b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET /v1/stream?access_token={token} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.position: tuple[str, int] | None = None
        self.has_snapshot = asyncio.Event()

    def on_open(self, proto: ViewerProtocol) -> None:
        self.stats.connects += 1
        msg = dict(self.sub)
        if self.position:
            msg.update(epoch=self.position[0], from_seq=self.position[1])
        proto.send_text(json.dumps(msg))

    def _account(self, kind: str, nbytes: int, epoch: str | None, seq: int | None, reset: bool) -> None:
        st = self.stats
        if kind == "delta" and st.counting:
            st.frames += 1
            st.bytes += nbytes
        elif kind == "snapshot":
            self.has_snapshot.set()
            if reset:
                st.resets += 1
        elif kind == "resumed":
            st.resumed += 1
            self.has_snapshot.set()
        elif kind == "error":
            st.errors["stream error message"] += 1
        if epoch is not None and seq is not None and kind in ("delta", "snapshot", "resumed"):
            self.position = (epoch, seq)

    def on_message_head(self, head: bytes, nbytes: int) -> None:
        if head.startswith(_DELTA_HEAD):  # the server's delta opening: epoch and seq at known places
            end = head.find(b'"', len(_DELTA_HEAD))
            if end > 0 and head.startswith(b',"seq":', end + 1):
                comma = head.find(b",", end + 8)
                if comma > 0:
                    self._account(
                        "delta", nbytes, head[len(_DELTA_HEAD) : end].decode(), int(head[end + 8 : comma]), False
                    )
                    return
        m = _HEAD_TYPE.search(head)
        kind = m.group(1).decode() if m else ""
        e = _HEAD_EPOCH.search(head)
        s = _HEAD_SEQ.search(head)
        self._account(
            kind,
            nbytes,
            e.group(1).decode() if e else None,
            int(s.group(1)) if s else None,
            _HEAD_RESET.search(head) is not None,
        )

    def on_message_full(self, payload: bytes, nbytes: int) -> None:
        now = time.time()
        try:
            m = _decode_msg(payload)
        except msgspec.DecodeError:
            self.stats.errors["undecodable message"] += 1
            return
        self._account(m.type, nbytes, m.epoch, m.seq, m.reset)
        if m.type == "delta":
            st = self.stats
            if st.counting:
                st.sampled_frames += 1
                st.items += len(m.items) + len(m.positions)
                st.metas += len(m.meta)
            lat, srv = st.latency_ms, st.server_ms
            for it in m.items:
                lat[int((now - it.accepted_at) * 1000)] += 1
                srv[int((m.sent_at - it.accepted_at) * 1000)] += 1
            now_ms, sent_ms = now * 1000, m.sent_at * 1000
            for p in m.positions:
                if p.accepted_after_ms is not None:
                    accepted_ms = p.accepted_after_ms + (p.fix_time_ms or 0)
                    lat[int(now_ms - accepted_ms)] += 1
                    srv[int(sent_ms - accepted_ms)] += 1
            st.delivery_ms[int((now - m.sent_at) * 1000)] += 1

    async def run(self, stop: Stop) -> None:
        loop = asyncio.get_running_loop()
        st = self.stats
        while not stop.done.done():
            proto = ViewerProtocol(self, self.request)
            try:
                await asyncio.wait_for(loop.create_connection(lambda p=proto: p, self.host, self.port), 30)
            except (OSError, TimeoutError) as exc:
                st.errors[f"connect {type(exc).__name__}"] += 1
                await asyncio.sleep(0.5 + random.random())
                continue
            # One wake when the socket closes or the run ends (a poll per viewer per second cost the
            # driver ~2,500 wakes a second per process, CPU the server it measures shares).
            await asyncio.wait([proto.done, stop.done], return_when=asyncio.FIRST_COMPLETED)
            if not proto.done.done():
                if proto.transport is not None:
                    proto.transport.close()
                return
            code = proto.done.result()
            if code >= 0:
                st.closes[code] += 1
            if code == 4008:
                st.drops += 1
            await asyncio.sleep(0.5)


class Stop:
    """When the viewers of a driver process stop (wall-clock ``at``, movable): ``done`` resolves then."""

    def __init__(self, at: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self.move(at)

    def move(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(self.loop.time() + max(0.0, at - time.time()), self._fire)

    def _fire(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def pct_from_hist(hist: dict[int, int], p: float) -> float:
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank = p / 100 * total
    seen = 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= rank:
            return float(ms)
    return float(max(hist))


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def child(args: argparse.Namespace) -> None:
    """One driver process: viewers ``args.part::args.procs``; prints ready, waits for ``go``."""
    limit = _raise_nofile()
    token = os.environ["SITREP_DRIVER_TOKEN"]
    stats = Stats()
    mine = list(range(args.part, args.viewers, args.procs))
    if len(mine) + 64 > limit:
        print(f"open-file limit {limit} is too low for {len(mine)} sockets", file=sys.stderr)
    every = max(1, args.viewers // max(1, args.sample)) if args.sample else 0
    viewers = [Viewer(i, args, token, stats, bool(every) and i % every == 0) for i in mine]
    stop = Stop(time.time() + args.connect_timeout + args.duration + 60)
    tasks = []
    for n, v in enumerate(viewers):
        tasks.append(asyncio.create_task(v.run(stop)))
        if n % args.connect_batch == args.connect_batch - 1:
            await asyncio.sleep(args.connect_pause)
    waits = [asyncio.create_task(v.has_snapshot.wait()) for v in viewers]
    await asyncio.wait(waits, timeout=args.connect_timeout)
    for w in waits:
        w.cancel()
    ready = sum(v.has_snapshot.is_set() for v in viewers)
    print(json.dumps({"ready": ready}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    window_end = float(line.split()[1])
    stats.window()
    cpu0, t0 = _cpu_s(), time.time()
    # Frames and bytes count within the window; latencies also for args.drain_s after it, so the
    # fixes still in flight when the window closes are measured too (not left out as if lost).
    stop.move(window_end + args.drain_s)
    await asyncio.sleep(max(0.0, window_end - time.time()))
    stats.counting = False
    elapsed = max(time.time() - t0, 1e-3)
    cpu = _cpu_s() - cpu0
    await asyncio.gather(*tasks)
    print(
        json.dumps(
            {
                "ready": ready,
                "frames": stats.frames,
                "bytes": stats.bytes,
                "items": stats.items,
                "metas": stats.metas,
                "sampled_frames": stats.sampled_frames,
                "sampled_viewers": sum(v.sample for v in viewers),
                "latency_ms": {str(k): c for k, c in stats.latency_ms.items()},
                "server_ms": {str(k): c for k, c in stats.server_ms.items()},
                "delivery_ms": {str(k): c for k, c in stats.delivery_ms.items()},
                "drops": stats.drops,
                "closes": {str(k): c for k, c in stats.closes.items()},
                "resumed": stats.resumed,
                "resets": stats.resets,
                "connects": stats.connects,
                "errors": dict(stats.errors),
                "cpu_s": cpu,
                "elapsed_s": elapsed,
            }
        ),
        flush=True,
    )


def _login(args: argparse.Namespace) -> str:
    import httpx

    http = args.url.replace("ws://", "http://").replace("wss://", "https://")
    r = httpx.post(f"{http}/v1/auth/token", json={"username": args.username, "password": args.password}, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def run(args: argparse.Namespace, on_ready: Any = None) -> dict[str, Any]:
    """Start the driver processes, wait until every viewer has its snapshot (or the connect
    timeout), measure for ``args.duration`` seconds, and merge what the processes saw."""
    env = dict(os.environ, SITREP_DRIVER_TOKEN=_login(args))
    procs = []
    for part in range(args.procs):
        argv = [sys.executable, os.path.abspath(__file__), "--child", str(part), *args.passthrough]
        procs.append(
            subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        )
    started = time.time()
    ready = 0
    for p in procs:
        line = p.stdout.readline() if p.stdout else ""
        ready += int(json.loads(line)["ready"]) if line.strip() else 0
    setup_s = time.time() - started
    if on_ready is not None:
        on_ready(ready)
    stop = time.time() + args.duration
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"go {stop}\n")
        p.stdin.flush()
    parts = []
    for p in procs:
        out, _ = p.communicate(timeout=args.duration + args.drain_s + 120)
        if out.strip():
            parts.append(json.loads(out.strip().splitlines()[-1]))
    hist: Counter[int] = Counter()
    server_hist: Counter[int] = Counter()
    delivery_hist: Counter[int] = Counter()
    closes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for part in parts:
        hist.update({int(k): c for k, c in part["latency_ms"].items()})
        server_hist.update({int(k): c for k, c in part["server_ms"].items()})
        delivery_hist.update({int(k): c for k, c in part["delivery_ms"].items()})
        closes.update(part["closes"])
        errors.update(part["errors"])
    total = {k: sum(p[k] for p in parts) for k in ("frames", "bytes", "items", "metas", "sampled_frames", "drops")}
    total.update({k: sum(p[k] for p in parts) for k in ("resumed", "resets", "connects", "sampled_viewers")})
    elapsed = max((p["elapsed_s"] for p in parts), default=args.duration)
    return {
        "viewers": args.viewers,
        "connected": ready,
        "setup_s": round(setup_s, 1),
        "procs": args.procs,
        "frames": total["frames"],
        "frames_per_s": round(total["frames"] / elapsed, 1),
        "expected_frames_per_s": round(ready * args.rate, 1),
        "mb_per_s": round(total["bytes"] / elapsed / 1e6, 1),
        "bytes_per_frame": round(total["bytes"] / max(1, total["frames"])),
        "items_per_frame": round(total["items"] / max(1, total["sampled_frames"]), 1),
        "metas_per_frame": round(total["metas"] / max(1, total["sampled_frames"]), 1),
        "encoding": args.encoding,
        "sampled_viewers": total["sampled_viewers"],
        "latency_ms": {f"p{p}": pct_from_hist(hist, p) for p in (50, 95, 99)},
        "server_part_ms": {f"p{p}": pct_from_hist(server_hist, p) for p in (50, 95)},
        "delivery_part_ms": {f"p{p}": pct_from_hist(delivery_hist, p) for p in (50, 95)},
        "drops": total["drops"],
        "closes": dict(closes),
        "resumed": total["resumed"],
        "resets": total["resets"],
        "reconnects": total["connects"] - ready,
        "errors": dict(errors),
        "driver_cpu_cores": round(sum(p["cpu_s"] for p in parts) / elapsed, 2),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="ws://127.0.0.1:8000")
    p.add_argument("--viewers", type=int, default=100)
    p.add_argument("--duration", type=float, default=20, help="measurement window after every viewer is ready")
    p.add_argument("--username", default="coord")
    p.add_argument("--password", default="sitrep-demo")
    p.add_argument("--topics", default="positions")
    p.add_argument("--encoding", choices=["json", "compact"], default="json", help="how positions travel")
    p.add_argument("--area", choices=["whole", "city", "cells"], default="whole")
    p.add_argument("--rate", type=float, default=10)
    p.add_argument("--procs", type=int, default=0, help="driver processes (default: one per 2,500 viewers, ≥1)")
    p.add_argument("--sample", type=int, default=50, help="viewers that decode whole frames for latency")
    p.add_argument("--drain-s", dest="drain_s", type=float, default=3, help="latency-only time after the window")
    p.add_argument("--connect-batch", dest="connect_batch", type=int, default=100)
    p.add_argument("--connect-pause", dest="connect_pause", type=float, default=0.1)
    p.add_argument("--connect-timeout", dest="connect_timeout", type=float, default=120)
    p.add_argument("--warmup-s", dest="warmup_s", type=float, default=0, help="(ignored: the window starts at ready)")
    p.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        part = int(argv[1])
        args = parser().parse_args(argv[2:])
        args.part = part
        try:
            import uvloop

            uvloop.run(child(args))
        except ImportError:
            asyncio.run(child(args))
        return
    args = parser().parse_args(argv)
    if args.procs <= 0:
        args.procs = max(1, min(4, (args.viewers + 2499) // 2500))
    args.passthrough = [a for a in argv if a != "--json"] + ["--procs", str(args.procs)]

    def ready(n: int) -> None:
        if args.json:
            print(json.dumps({"ready": n}), flush=True)

    result = run(args, ready)
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["latency_ms"]
        print(
            f"{result['connected']}/{result['viewers']} viewers: {result['frames_per_s']} frames/s "
            f"(of {result['expected_frames_per_s']} at the asked rate), {result['mb_per_s']} MB/s, latency "
            f"p50 {lat['p50']} ms p95 {lat['p95']} ms p99 {lat['p99']} ms, drops {result['drops']}, "
            f"resumed {result['resumed']}, resets {result['resets']}, closes {result['closes']}, "
            f"errors {result['errors']}, driver CPU {result['driver_cpu_cores']} cores"
        )


if __name__ == "__main__":
    main()
