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
and become ``upsert_fences``/``remove_fence`` calls whose events are written the same way. The
notifications that arrived together (a feed poll changing hundreds of hazards) are loaded in one
query and re-evaluated in one vectorised pass, with each hazard's cover rebuilt from its stored
``hazard_cells`` instead of being classified again. A full reload every ``fence_resync_s`` catches
anything missed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter, Gauge

from geo.fences import Fence, FenceEngine, FenceEvent, Fix, VisitState, rfc3339, to_tile38

from ..bus import Change
from ..db import connect
from ..hazards.repository import FENCE_CHANNEL, get_hazard, hazard_change
from ..notifications import repository as notifications
from ..outbox.core import enqueue_many
from ..outbox.repository import active_webhooks
from . import store
from .gaps import GapTracker

log = logging.getLogger("sitrep.fences")

EVENTS = Counter("sitrep_fence_events_total", "Fence events written", ["detect", "kind"])
LEADER = Gauge("sitrep_fence_leader", "1 on the worker leading the fence evaluator", multiprocess_mode="livesum")
TAKEOVERS = Counter("sitrep_fence_takeovers_total", "Times this worker became the fence leader")
GAP_SKIPS = Counter("sitrep_fence_seq_gaps_skipped_total", "Position seqs skipped as never committed")
LAG = Gauge("sitrep_fence_lag_seconds", "Received-to-evaluated lag of the newest consumed fix", multiprocess_mode="max")

EVAL_CHUNK = 1000
"""Fixes evaluated between two event-loop turns (~20-60 ms of engine work)."""
PAYLOAD_CHUNK = 2000
"""Event payloads built between two event-loop turns."""
MIN_CYCLE_S = 0.02
"""Shortest wait between cycles when held fixes are due (a cycle costs a read and a write transaction)."""

CHANGED_FENCE_MARGIN = timedelta(seconds=30)
"""On takeover, fences changed this close to the previous leader's last commit are re-evaluated."""


def _state_key(v: VisitState) -> tuple[Any, ...]:
    """What a persisted visit must agree on (``last_fix_time`` alone changes no row)."""
    return (v.state, v.since, v.group, v.fence_version)


_encode = msgspec.json.Encoder().encode


def _state_json(v: VisitState) -> str:
    return _encode(
        {
            "state": v.state,
            "since": rfc3339(v.since),
            "group": v.group,
            "last_fix_time": rfc3339(v.last_fix_time),
            "fence_version": v.fence_version,
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
        self._reader: asyncpg.Connection | None = None
        self._inflight: asyncio.Task[None] | None = None

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
        """Lead until cancelled or failed; a second connection reads while the first one writes."""
        self._reader = await connect(self.runtime.settings.db)
        try:
            await self._lead_with(conn, self._reader)
        finally:
            task, self._inflight = self._inflight, None
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
            reader, self._reader = self._reader, None
            try:
                await asyncio.wait_for(reader.close(), 2)
            except Exception:
                reader.terminate()

    async def _lead_with(self, conn: asyncpg.Connection, reader: asyncpg.Connection) -> None:
        s = self.runtime.settings
        await store.binary_jsonb(conn)  # events are written with COPY
        token, checkpoint, first, prev_commit = await store.take_over(conn, self.holder)
        self.leading = True
        LEADER.inc()
        TAKEOVERS.inc()
        log.info("fence leader", extra={"token": token, "checkpoint": checkpoint, "first": first})
        self.token, self.checkpoint, self.read_seq = token, checkpoint, checkpoint
        self._planned = checkpoint
        self.gaps = GapTracker(s.fences.fence_gap_grace_s)
        self._notes = []
        await conn.add_listener(FENCE_CHANNEL, self._on_notify)
        self.engine = FenceEngine(s.ingest.reorder_window_s)
        now = store.utcnow()
        fences = await store.load_active_fences(conn)
        covers = {f.fence.id: f.cover for f in fences if f.cover is not None}
        self.engine.upsert_fences([f.fence for f in fences], now, covers)  # no positions yet: no events
        self.engine.load_positions(await store.load_positions(conn))
        states = await store.load_states(conn)
        active = {f.fence.id for f in fences}
        self.engine.restore([st for st in states if st["fence_id"] in active])
        self._mirror: dict[tuple[str, str], tuple[Any, ...]] = {
            (rid, fid): _state_key(v) for rid, vs in self.engine.all_visits().items() for fid, v in vs.items()
        }
        self.engine.drain_changed()
        # visits of fences that vanished while nobody led: exit the ones inside, drop the rest
        vanished = [st for st in states if st["fence_id"] not in active]
        events = await self._vanished_exits(conn, vanished, now)
        deletes = [(st["responder_id"], st["fence_id"]) for st in vanished]
        if prev_commit is not None:
            margin = prev_commit - CHANGED_FENCE_MARGIN
            events += self.engine.upsert_fences([f.fence for f in fences if f.updated_at >= margin], now, covers)
        self.webhooks = [dict(r) for r in await active_webhooks(conn)]
        for pair in deletes:
            self._mirror.pop(pair, None)
        await self._commit(conn, events, set(), deletes=deletes)
        await self._settle()
        self._last_resync = self._last_activation = time.monotonic()
        self._activation_since = now
        await self._loop(conn, reader)

    async def _vanished_exits(
        self, conn: asyncpg.Connection, vanished: list[dict[str, Any]], now: datetime
    ) -> list[FenceEvent]:
        inside = [st for st in vanished if st["state"] == "inside"]
        if not inside:
            return []
        info = await store.fence_detects(conn, sorted({st["fence_id"] for st in inside}))
        pos = {p.responder_id: p for p in self.engine.positions_of({st["responder_id"] for st in inside})}
        events = []
        for st in inside:
            kind, name, detects, meta = info.get(st["fence_id"], ("geofence", "", frozenset({"exit"}), {}))
            if "exit" not in detects:
                continue
            p = pos.get(st["responder_id"])
            events.append(
                FenceEvent(
                    detect="exit", fence_id=st["fence_id"], fence_kind=kind, responder_id=st["responder_id"],  # type: ignore[arg-type]
                    fix_time=p.fix_time if p else st["last_fix_time"], time=now,
                    lon=p.lon if p else 0.0, lat=p.lat if p else 0.0,
                    group=st["group"], reason="fence_deleted", meta=meta, fence_name=name,
                )
            )  # fmt: skip
        return events

    async def _loop(self, conn: asyncpg.Connection, reader: asyncpg.Connection) -> None:
        """``conn`` writes (see :meth:`_commit`), ``reader`` reads, so both may be busy at once."""
        s = self.runtime.settings.fences
        while True:
            now = store.utcnow()
            mono = time.monotonic()
            events: list[FenceEvent] = []
            ended: list[Any] = []
            notes, self._notes = self._notes, []
            if mono - self._last_resync >= s.fence_resync_s:
                notes = ["resync"]
                self._last_resync = mono
            if notes:
                evs, _ = await self._apply_notes(reader, list(dict.fromkeys(notes)), now)
                events += evs
            if mono - self._last_activation >= 1.0:
                self._last_activation = mono
                since = self._activation_since - timedelta(seconds=2)
                fresh = [h for h in await store.newly_valid_hazards(reader, since) if self.engine.fence(h) is None]
                if fresh:
                    evs, _ = await self._apply_notes(reader, [f"hazard:{h}" for h in fresh], now)
                    events += evs
                self._activation_since = now
                ended = ["check"]
            rows = await reader.fetch(store.POSITIONS_SQL, self.read_seq, s.fence_batch)
            n = self.gaps.consumable(self.read_seq, rows, mono)
            fixes = store.to_fixes(rows[:n])
            if n:
                self.read_seq = int(rows[n - 1]["seq"])
                LAG.set(max(0.0, (now - rows[n - 1]["received_at"]).total_seconds()))
            events += await self._evaluate(fixes, now)
            self.engine.drain_late()
            touched = self.engine.drain_evaluated()
            if self.gaps.skipped:
                GAP_SKIPS.inc(self.gaps.skipped)
                self.gaps.skipped = 0
            await self._commit(conn, events, touched, end_expired=bool(ended))
            if n < len(rows) or len(rows) >= s.fence_batch:
                await asyncio.sleep(0.01 if n == len(rows) else s.fence_poll_ms / 1000)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_s(s.fence_poll_ms / 1000))

    def _idle_s(self, poll_s: float) -> float:
        """How long to wait for new positions: the poll interval, or less when a held fix leaves
        the reorder window sooner (it is evaluated then, not up to a poll interval later), but at
        least :data:`MIN_CYCLE_S` so cycles (one read and one write transaction each) stay batched."""
        due = self.engine.next_release()
        if due is None:
            return poll_s
        return min(poll_s, max(MIN_CYCLE_S, (due - store.utcnow()).total_seconds()))

    async def _evaluate(self, fixes: list[Fix], now: datetime) -> list[FenceEvent]:
        """Buffer the fixes read and evaluate those due, :data:`EVAL_CHUNK` at a time, giving the
        event loop a turn between chunks: the previous cycle's write (same loop) keeps feeding
        PostgreSQL (COPY data, next statement) while a large batch is evaluated."""
        engine = self.engine
        if fixes:
            engine.buffer(fixes, now)
        events = engine.advance(now, EVAL_CHUNK)
        while engine.due(now):
            await asyncio.sleep(0)
            events += engine.advance(now, EVAL_CHUNK)
        return events

    async def _apply_notes(
        self, conn: asyncpg.Connection, notes: list[str], now: datetime
    ) -> tuple[list[FenceEvent], bool]:
        """Apply fence-change notifications together: fences that changed at the same time (a feed
        poll writing hundreds of hazards) are loaded in one query per kind and re-evaluated against
        every responder in one vectorised pass. Returns ``(events, fences_changed)``."""
        if "webhooks" in notes or "resync" in notes:
            self.webhooks = [dict(r) for r in await active_webhooks(conn)]
        loaded: dict[str, store.Loaded] = {}
        if "resync" in notes:
            loaded = {f.fence.id: f for f in await store.load_active_fences(conn)}
            return self._apply_fences([(fid, loaded.get(fid)) for fid in self._all_ids(loaded)], now), True
        wanted: dict[str, list[str]] = {"hazard": [], "geofence": []}
        order: dict[str, None] = {}
        for note in notes:
            kind, _, oid = note.partition(":")
            if kind in wanted and oid not in order:
                wanted[kind].append(oid)
                order[oid] = None
        if not order:
            return [], False
        for kind, ids in wanted.items():
            if ids:
                loaded.update(await store.load_fences(conn, kind, ids))
        changes = [(oid, loaded.get(oid)) for oid in order]
        changed = any(self._differs(oid, fence) for oid, fence in changes)
        return self._apply_fences(changes, now), changed

    def _all_ids(self, loaded: dict[str, store.Loaded]) -> list[str]:
        return [f.id for f in self.engine.fences() if f.id not in loaded] + list(loaded)

    def _differs(self, oid: str, loaded: store.Loaded | None) -> bool:
        known = self.engine.fence(oid)
        if loaded is None:
            return known is not None
        return known is None or known.version != loaded.fence.version

    def _apply_fences(self, changes: list[tuple[str, store.Loaded | None]], now: datetime) -> list[FenceEvent]:
        """``(id, active fence or None)`` in order: removals exit at once, consecutive upserts are
        re-evaluated as one batch (fences are independent, so this equals one-by-one application)."""
        events: list[FenceEvent] = []
        batch: list[store.Loaded] = []
        for oid, loaded in changes:
            if not self._differs(oid, loaded):
                continue
            if loaded is not None:
                batch.append(loaded)
                continue
            events += self._upsert(batch, now)
            batch = []
            known = self.engine.fence(oid)
            if known is not None:
                events += self.engine.remove_fence(oid, now, self._reason(known, now))
        return events + self._upsert(batch, now)

    def _upsert(self, batch: list[store.Loaded], now: datetime) -> list[FenceEvent]:
        if not batch:
            return []
        covers = {f.fence.id: f.cover for f in batch if f.cover is not None}
        return self.engine.upsert_fences([f.fence for f in batch], now, covers)

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
        deletes: list[tuple[str, str]] | None = None,
        end_expired: bool = False,
    ) -> None:
        """Write events, state diffs, outbox rows and the checkpoint in one fenced transaction.

        The rows are prepared now; the transaction starts once the previous one has committed and
        runs in the background on the leader connection, so PostgreSQL writes one batch while the
        next is read and evaluated (reads use :attr:`_reader`). One write is in flight at most, and
        writes commit in order. A failed write is raised by the next :meth:`_settle` and drops
        leadership, discarding the engine and the mirror with it (the next leader resumes from the
        last committed checkpoint), so both may run ahead of what is committed.
        """
        batch = self._prepare(events, touched, deletes=deletes, end_expired=end_expired)
        if batch is not None:
            batch.payloads = await self._payloads(events)
        await self._settle()
        if batch is not None:
            self._inflight = asyncio.create_task(self._write(conn, batch), name="fence-write")

    async def _settle(self) -> None:
        """Wait for the write in flight (re-raising its failure)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    def _prepare(
        self,
        events: list[FenceEvent],
        touched: set[str],
        *,
        deletes: list[tuple[str, str]] | None,
        end_expired: bool,
    ) -> _Write | None:
        """``touched`` are the responders whose fixes were evaluated (their positions are written);
        visits are written only where the engine reports a change (:meth:`FenceEngine.drain_changed`)
        that differs from what was last written (``_mirror``): a fix that changes no visit writes no
        state row."""
        pending = self.engine.pending_min_seq()
        checkpoint = max(self._planned, self.read_seq if pending is None else min(self.read_seq, pending - 1))
        upserts: list[tuple[str, str, str]] = []
        dels: list[tuple[str, str]] = list(deletes or [])
        mirror, visit_of = self._mirror, self.engine.visit_of
        for pair in self.engine.drain_changed():
            v = visit_of(*pair)
            if v is None:
                if mirror.pop(pair, None) is not None:
                    dels.append(pair)
                continue
            key = _state_key(v)
            if mirror.get(pair) != key:
                mirror[pair] = key
                upserts.append((pair[0], pair[1], _state_json(v)))
        positions = self.engine.positions_of(touched) if touched else []
        if not (events or upserts or dels or positions or end_expired) and checkpoint == self._planned:
            return None
        self._planned = checkpoint
        hazard_notes: tuple[list[str], list[str], list[str]] = ([], [], [])
        for e in events:
            if e.fence_kind == "hazard" and e.detect in store.HAZARD_DETECTS:
                hazard_notes[0].append(e.responder_id)
                hazard_notes[1].append(e.detect)
                hazard_notes[2].append(e.fence_id)
        return _Write(checkpoint, events, [], upserts, dels, positions, end_expired, hazard_notes)

    @staticmethod
    async def _payloads(events: list[FenceEvent]) -> list[dict[str, Any]]:
        """Tile38-shaped payloads, :data:`PAYLOAD_CHUNK` at a time with a loop turn between (a
        first-fix burst is tens of thousands of events, and the previous write runs meanwhile)."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(events), PAYLOAD_CHUNK):
            if start:
                await asyncio.sleep(0)
            out += [to_tile38(e, hook=e.fence_name or e.fence_id) for e in events[start : start + PAYLOAD_CHUNK]]
        return out

    async def _write(self, conn: asyncpg.Connection, w: _Write) -> None:
        events, payloads = w.events, w.payloads
        ended_ids: list[Any] = []
        async with conn.transaction():
            await store.check_token(conn, self.token, w.checkpoint)
            ids = await store.write_events(conn, events, payloads)
            # responders are told about hazards they entered or left, in this same transaction
            notes = await notifications.from_hazard_events(conn, *w.hazard_notes) if w.hazard_notes[0] else []
            await store.write_states(conn, w.upserts, w.dels)
            await store.write_positions(conn, w.positions)
            outbox = [
                {
                    "message_id": f"msg_fe{eid}_{wh['id'].hex}",
                    "channel": "webhook",
                    "target": wh["url"],
                    "payload": p,
                    "webhook_id": wh["id"],
                }
                for eid, e, p in zip(ids, events, payloads, strict=True)
                for wh in self.webhooks
                if webhook_matches(wh["filter"] or {}, e)
            ]
            await enqueue_many(conn, outbox)
            if w.end_expired:
                ended_ids = await store.end_expired_hazards(conn)
        # committed: only now tell the world
        self.checkpoint = w.checkpoint
        for (detect, kind), n in collections.Counter((e.detect, e.fence_kind) for e in events).items():
            EVENTS.labels(detect, kind).inc(n)
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
        if notes:
            bus.publish([notifications.change(n) for n in notes])
        if ended_ids:
            for hid in ended_ids:
                row = await get_hazard(conn, hid)
                if row is not None:
                    bus.publish(hazard_change(row, deleted=True))
        if outbox:
            dispatcher = self.runtime.by_name.get("outbox")
            if dispatcher is not None:
                dispatcher.wake()


@dataclass(slots=True)
class _Write:
    """One prepared commit: what :meth:`FenceEvaluator._write` puts in its transaction."""

    checkpoint: int
    events: list[FenceEvent]
    payloads: list[dict[str, Any]]
    upserts: list[tuple[str, str, str]]
    dels: list[tuple[str, str]]
    positions: list[Fix]
    end_expired: bool
    hazard_notes: tuple[list[str], list[str], list[str]]
    """Hazard enters/exits as (responder ids, detects, hazard ids): the responders' notifications."""
