"""The fence evaluator: one leader worker turns committed positions into fence events, exactly once.

Leadership: every worker runs this Component; the one that gets ``pg_try_advisory_lock`` on its
own dedicated connection (:func:`server.db.connect`) leads; the others hang up and retry every
0.5-1.5 s (followers hold no connection). A leader
that dies loses the lock with its connection, so another worker takes over within a second or two.
On takeover the leader bumps ``leader_state.fencing_token``; every write transaction first runs
``UPDATE leader_state SET checkpoint_seq=… WHERE name='fences' AND fencing_token=…`` and rolls back
unless it hits one row, so a deposed leader can never write.

State: the engine (:class:`geo.fences.FenceEngine`) is rebuilt on takeover from active hazards and
geofences, ``fence_positions`` (last evaluated fix per responder) and ``fence_states`` (open
visits). Each cycle commits, in ONE transaction, the new ``fence_events``, the changed
``fence_states``/``fence_positions``, the outbox rows of matching webhooks and the checkpoint, so
state, events and checkpoint always agree. Any failure (or being deposed) drops leadership and the
next leader resumes from the committed checkpoint: nothing duplicated, nothing lost.

Checkpoint: positions are read by ``seq`` (see :mod:`server.fences.gaps` for holes). The engine
holds fixes back for the reorder window, so the checkpoint is ``min(read_seq, smallest buffered
seq - 1)``; after a takeover fixes above the checkpoint are read again, and those the previous
leader already evaluated are recognised as not newer than the responder's restored position and
change nothing.

Fence changes arrive by ``LISTEN sitrep_fences`` (``hazard:<id>``, ``geofence:<id>``, ``webhooks``)
and become ``upsert_fence``/``remove_fence`` calls whose events are written the same way. A full
reload every ``fence_resync_s`` catches anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import random
import socket
import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter, Gauge

from geo.fences import Fence, FenceEngine, FenceEvent, Fix, rfc3339, to_tile38

from ..bus import Change
from ..db import connect
from ..hazards.repository import FENCE_CHANNEL, get_hazard, hazard_change
from ..outbox.core import enqueue_many
from ..outbox.repository import active_webhooks
from . import store
from .engine_view import all_visits, positions_of, visits_of
from .gaps import GapTracker

log = logging.getLogger("sitrep.fences")

EVENTS = Counter("sitrep_fence_events_total", "Fence events written", ["detect", "kind"])
LEADER = Gauge("sitrep_fence_leader", "1 on the worker leading the fence evaluator", multiprocess_mode="livesum")
TAKEOVERS = Counter("sitrep_fence_takeovers_total", "Times this worker became the fence leader")
GAP_SKIPS = Counter("sitrep_fence_seq_gaps_skipped_total", "Position seqs skipped as never committed")
LAG = Gauge("sitrep_fence_lag_seconds", "Received-to-evaluated lag of the newest consumed fix", multiprocess_mode="max")

CHANGED_FENCE_MARGIN = timedelta(seconds=30)
"""On takeover, fences changed this close to the previous leader's last commit are re-evaluated."""


def _state_key(v: dict[str, Any]) -> tuple[Any, ...]:
    return (v["state"], v["since"], v["group"], v["fence_version"])


def _state_json(v: dict[str, Any]) -> str:
    return msgspec.json.encode(
        {
            "state": v["state"],
            "since": rfc3339(v["since"]),
            "group": v["group"],
            "last_fix_time": rfc3339(v["last_fix_time"]),
            "fence_version": v["fence_version"],
        }
    ).decode()


def webhook_matches(flt: dict[str, Any], event: FenceEvent) -> bool:
    fences = flt.get("fences") or []
    if fences and event.fence_id not in fences:
        return False
    detects = flt.get("detects") or []
    if detects and event.detect not in detects:
        return False
    kinds = flt.get("hazard_kinds") or []
    return not kinds or (event.fence_kind == "hazard" and event.meta.get("kind") in kinds)


class FenceEvaluator:
    name = "fences"

    def __init__(self) -> None:
        self.runtime: Any = None
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self.leading = False
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._notes: list[str] = []
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, runtime: Any) -> None:
        self.runtime = runtime
        if runtime.settings.fences.fences_enabled:
            self._task = asyncio.create_task(self._run(), name="fence-evaluator")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()

    async def _run(self) -> None:
        while True:
            try:
                # followers hold no connection: connect, try the lock, and hang up when it is taken
                self._conn = await connect(self.runtime.settings.db)
                if await store.try_lock(self._conn):
                    await self._lead(self._conn)
            except asyncio.CancelledError:
                raise
            except store.Deposed as exc:
                log.warning("fence leader deposed", extra={"reason": str(exc)})
            except Exception:
                log.exception("fence evaluator failed; dropping leadership")
            finally:
                if self.leading:
                    LEADER.dec()
                self.leading = False
                await self._close()
            await asyncio.sleep(0.5 + random.random())

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._notes.append(payload)
        self._wake.set()

    # ------------------------------------------------------------------ leading
    async def _lead(self, conn: asyncpg.Connection) -> None:
        s = self.runtime.settings
        token, checkpoint, first, prev_commit = await store.take_over(conn, self.holder)
        self.leading = True
        LEADER.inc()
        TAKEOVERS.inc()
        log.info("fence leader", extra={"token": token, "checkpoint": checkpoint, "first": first})
        self.token, self.checkpoint, self.read_seq = token, checkpoint, checkpoint
        self.gaps = GapTracker(s.fences.fence_gap_grace_s)
        self._notes = []
        await conn.add_listener(FENCE_CHANNEL, self._on_notify)
        self.engine = FenceEngine(s.ingest.reorder_window_s)
        self._pending: list[tuple[datetime, str]] = []
        now = store.utcnow()
        fences = await store.load_active_fences(conn)
        for fence, _ in fences:
            self.engine.upsert_fence(fence, now)
        self.engine.load_positions(await store.load_positions(conn))
        states = await store.load_states(conn)
        active = {f.id for f, _ in fences}
        self.engine.restore([st for st in states if st["fence_id"] in active])
        self._mirror: dict[str, dict[str, tuple[Any, ...]]] = {
            rid: {fid: _state_key(v) for fid, v in vs.items()} for rid, vs in all_visits(self.engine).items()
        }
        # visits of fences that vanished while nobody led: exit the ones inside, drop the rest
        vanished = [st for st in states if st["fence_id"] not in active]
        events = await self._vanished_exits(conn, vanished, now)
        deletes = [(st["responder_id"], st["fence_id"]) for st in vanished]
        if prev_commit is not None:
            for fence, updated in fences:
                if updated >= prev_commit - CHANGED_FENCE_MARGIN:
                    events += self.engine.upsert_fence(fence, now)
        self.webhooks = [dict(r) for r in await active_webhooks(conn)]
        await self._commit(conn, events, set(), full=True, deletes=deletes)
        self._last_resync = self._last_activation = time.monotonic()
        self._activation_since = now
        await self._loop(conn)

    async def _vanished_exits(
        self, conn: asyncpg.Connection, vanished: list[dict[str, Any]], now: datetime
    ) -> list[FenceEvent]:
        inside = [st for st in vanished if st["state"] == "inside"]
        if not inside:
            return []
        info = await store.fence_detects(conn, sorted({st["fence_id"] for st in inside}))
        pos = {p["responder_id"]: p for p in positions_of(self.engine, {st["responder_id"] for st in inside})}
        events = []
        for st in inside:
            kind, name, detects, meta = info.get(st["fence_id"], ("geofence", "", frozenset({"exit"}), {}))
            if "exit" not in detects:
                continue
            p = pos.get(st["responder_id"], {})
            events.append(
                FenceEvent(
                    detect="exit", fence_id=st["fence_id"], fence_kind=kind, responder_id=st["responder_id"],  # type: ignore[arg-type]
                    fix_time=p.get("fix_time", st["last_fix_time"]), time=now, lon=p.get("lon", 0.0), lat=p.get("lat", 0.0),
                    group=st["group"], reason="fence_deleted", meta=meta, fence_name=name,
                )
            )  # fmt: skip
        return events

    async def _loop(self, conn: asyncpg.Connection) -> None:
        s = self.runtime.settings.fences
        while True:
            now = store.utcnow()
            mono = time.monotonic()
            events: list[FenceEvent] = []
            full = False
            ended: list[Any] = []
            notes, self._notes = self._notes, []
            if mono - self._last_resync >= s.fence_resync_s:
                notes = ["resync"]
                self._last_resync = mono
            for note in dict.fromkeys(notes):
                evs, changed = await self._apply_note(conn, note, now)
                events += evs
                full = full or changed
            if mono - self._last_activation >= 1.0:
                self._last_activation = mono
                for hid in await store.newly_valid_hazards(conn, self._activation_since - timedelta(seconds=2)):
                    if self.engine.fence(hid) is None:
                        evs, _ = await self._apply_note(conn, f"hazard:{hid}", now)
                        events += evs
                        full = True
                self._activation_since = now
                ended = ["check"]
            if any(f.valid_until is not None and f.valid_until <= now for f in self.engine.fences()):
                full = True
            rows = await conn.fetch(store.POSITIONS_SQL, self.read_seq, s.fence_batch)
            n = self.gaps.consumable(self.read_seq, rows, mono)
            fixes = [store.to_fix(r) for r in rows[:n]]
            if n:
                self.read_seq = int(rows[n - 1]["seq"])
                LAG.set(max(0.0, (now - rows[n - 1]["received_at"]).total_seconds()))
            events += self.engine.add_fixes(fixes, now) if fixes else self.engine.advance(now)
            self.engine.drain_late()
            touched = self._released(fixes, now)
            if self.gaps.skipped:
                GAP_SKIPS.inc(self.gaps.skipped)
                self.gaps.skipped = 0
            await self._commit(conn, events, touched, full=full, end_expired=bool(ended))
            if n < len(rows) or len(rows) >= s.fence_batch:
                await asyncio.sleep(0.01 if n == len(rows) else s.fence_poll_ms / 1000)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), s.fence_poll_ms / 1000)

    def _released(self, fixes: list[Fix], now: datetime) -> set[str]:
        """Responders whose buffered fixes the engine has released (evaluated) by ``now``."""
        for f in fixes:
            heapq.heappush(self._pending, (f.fix_time, f.responder_id))
        cutoff = now - self.engine.reorder_window
        out: set[str] = set()
        while self._pending and self._pending[0][0] <= cutoff:
            out.add(heapq.heappop(self._pending)[1])
        return out

    async def _apply_note(self, conn: asyncpg.Connection, note: str, now: datetime) -> tuple[list[FenceEvent], bool]:
        if note == "webhooks":
            self.webhooks = [dict(r) for r in await active_webhooks(conn)]
            return [], False
        if note == "resync":
            self.webhooks = [dict(r) for r in await active_webhooks(conn)]
            events: list[FenceEvent] = []
            loaded = {f.id: f for f, _ in await store.load_active_fences(conn)}
            for fence in self.engine.fences():
                if fence.id not in loaded:
                    events += self.engine.remove_fence(fence.id, now, self._reason(fence, now))
            for fid, fence in loaded.items():
                known = self.engine.fence(fid)
                if known is None or known.version != fence.version:
                    events += self.engine.upsert_fence(fence, now)
            return events, True
        kind, _, oid = note.partition(":")
        if kind not in {"hazard", "geofence"}:
            return [], False
        fence, active = await store.load_fence(conn, kind, oid)
        known = self.engine.fence(oid)
        if fence is not None and active:
            if known is not None and known.version == fence.version:
                return [], False
            return self.engine.upsert_fence(fence, now), True
        if known is not None:
            return self.engine.remove_fence(oid, now, self._reason(known, now)), True
        return [], False

    @staticmethod
    def _reason(fence: Fence, now: datetime) -> Any:
        return "fence_expired" if fence.valid_until is not None and fence.valid_until <= now else "fence_deleted"

    # ------------------------------------------------------------------ writing
    async def _commit(
        self,
        conn: asyncpg.Connection,
        events: list[FenceEvent],
        touched: set[str],
        *,
        full: bool = False,
        deletes: list[tuple[str, str]] | None = None,
        end_expired: bool = False,
    ) -> None:
        """Write events, state diffs, outbox rows and the checkpoint in one fenced transaction.

        ``touched`` are the responders whose fixes were evaluated; ``full`` diffs every visit (after
        fence changes), otherwise only the visits of touched responders and of the events'.
        """
        pending = self.engine.pending_min_seq()
        checkpoint = max(self.checkpoint, self.read_seq if pending is None else min(self.read_seq, pending - 1))
        if full:
            current = all_visits(self.engine)
            rids = set(current) | set(self._mirror)
        else:
            current = visits_of(self.engine, touched | {e.responder_id for e in events})
            rids = set(current)
        upserts: list[dict[str, Any]] = []
        dels: list[tuple[str, str]] = list(deletes or [])
        new_mirror: dict[str, dict[str, tuple[Any, ...]]] = {}
        for rid in rids:
            now_v = current.get(rid, {})
            old = self._mirror.get(rid, {})
            keys = {fid: _state_key(v) for fid, v in now_v.items()}
            for fid, v in now_v.items():
                if old.get(fid) != keys[fid]:
                    upserts.append({"responder_id": rid, "fence_id": fid, "json": _state_json(v)})
            dels += [(rid, fid) for fid in old if fid not in now_v]
            new_mirror[rid] = keys
        positions = positions_of(self.engine, touched) if touched else []
        if not (events or upserts or dels or positions or end_expired) and checkpoint == self.checkpoint:
            return
        payloads = [to_tile38(e, hook=e.fence_name or e.fence_id) for e in events]
        ended_ids: list[Any] = []
        async with conn.transaction():
            await store.check_token(conn, self.token, checkpoint)
            ids = await store.write_events(conn, events, payloads)
            await store.write_states(conn, upserts, dels)
            await store.write_positions(conn, positions)
            outbox = [
                {
                    "message_id": f"msg_fe{eid}_{w['id'].hex}",
                    "channel": "webhook",
                    "target": w["url"],
                    "payload": p,
                    "webhook_id": w["id"],
                }
                for eid, e, p in zip(ids, events, payloads, strict=True)
                for w in self.webhooks
                if webhook_matches(w["filter"] or {}, e)
            ]
            await enqueue_many(conn, outbox)
            if end_expired:
                ended_ids = await store.end_expired_hazards(conn)
        # committed: only now update memory and tell the world
        self.checkpoint = checkpoint
        for rid, keys in new_mirror.items():
            if keys:
                self._mirror[rid] = keys
            else:
                self._mirror.pop(rid, None)
        for e in events:
            EVENTS.labels(e.detect, e.fence_kind).inc()
        bus = self.runtime.bus
        if events:
            bus.publish(
                [
                    Change(
                        topic="fence_events",
                        key=str(eid),
                        data=p,
                        lon=e.lon,
                        lat=e.lat,
                        team_id=None,
                        responder_ids=(e.responder_id,),
                    )
                    for eid, e, p in zip(ids, events, payloads, strict=True)
                ]
            )
        if ended_ids:
            for hid in ended_ids:
                row = await get_hazard(conn, hid)
                if row is not None:
                    bus.publish(hazard_change(row, deleted=True))
        if outbox:
            dispatcher = self.runtime.by_name.get("outbox")
            if dispatcher is not None:
                dispatcher.wake()
