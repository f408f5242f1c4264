"""The stream hub (a runtime :class:`~server.runtime.Component`, one per worker).

Data path::

    bus.publish ─▶ Coalescer ─(≤ publish_hz)─▶ Redis script: INCR seq, XADD log, PUBLISH ticks
                                                              │ (every worker, itself included)
    viewers ◀─ queue ◀─ Group.flush (≤ rate, one encode) ◀─ Group.offer ◀─ subscriber task

Every worker serves its viewers only from what arrives through Redis, so all workers see the
same batches in the same order with the same ``(epoch, seq)``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..bus import Change
from ..security import Principal
from . import compact, snapshot
from . import metrics as m
from .area import Area
from .groups import Group, GroupKey, SnapshotShare, group_key
from .history import History, parse_message
from .livetable import LivePositions
from .protocol import Ping, Resume, StreamError, Subscribe, Unsubscribe
from .protocol import parse_message as parse_client
from .router import Router
from .scope import check_topics, scope_for
from .ticks import Batch, Coalescer, PointMemory, decode_batch, encode_batch, message
from .viewer import CLOSE_RESTART, Frame, Viewer, ViewerSub

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..settings import StreamSettings

log = logging.getLogger("sitrep.stream")

RESTART_REASON = "server restarting; reconnect and resume"


class StreamHub:
    name = "stream"

    def __init__(self) -> None:
        self.worker = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.epoch = ""
        self.last_seq = 0
        self.viewers: set[Viewer] = set()
        self.groups: dict[GroupKey, Group] = {}
        self._coalescer = Coalescer()
        self._metas: dict[str, bytes] = {}
        self._router = Router()
        self._points = PointMemory()
        """The last point of every located object, so areas it leaves hear about it (see ``Group.matches``)."""
        self._groups_version = 0
        self._pending = asyncio.Event()
        self._lost = False
        self._tasks: list[asyncio.Task[None]] = []
        self._received: deque[tuple[float, int]] = deque()
        self._frames_uncounted = 0
        self._unsubscribe_bus: Any = None
        self.stopping = False
        self.live = LivePositions(self._metas)
        """This worker's copy of ``latest_positions`` for positions snapshots (see :mod:`.livetable`)."""
        self._live_due = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings: StreamSettings = runtime.settings.stream
        s = self.settings
        self.history = History(runtime.redis, s.stream_redis_prefix, s.stream_history_max)
        self._snapshot_slots = asyncio.Semaphore(max(1, s.stream_snapshot_concurrency))
        # Pub/sub holds its connection open indefinitely: its own client, without a read timeout.
        self._sub_redis = aioredis.from_url(
            runtime.settings.redis.redis_url, socket_connect_timeout=2, socket_keepalive=True
        )
        try:
            self.epoch, self.last_seq = await self.history.current()
        except RedisError:
            log.warning("redis unavailable at start; the stream subscriber will keep trying")
        self._unsubscribe_bus = runtime.bus.subscribe(self._on_changes)
        self._live_due.set()  # the live positions table loads now
        self._tasks = [
            asyncio.create_task(self._publisher(), name="stream-publisher"),
            asyncio.create_task(self._subscriber(), name="stream-subscriber"),
            asyncio.create_task(self._heartbeats(), name="stream-heartbeats"),
            asyncio.create_task(self._trimmer(), name="stream-trimmer"),
            asyncio.create_task(self._live_keeper(), name="stream-live-positions"),
        ]

    async def stop(self) -> None:
        self.stopping = True
        for viewer in list(self.viewers):
            viewer.close(CLOSE_RESTART, RESTART_REASON)
        if self._unsubscribe_bus is not None:
            self._unsubscribe_bus()
        # What was accepted but not yet published still goes out (other workers' viewers want it).
        if len(self._coalescer):
            try:
                await asyncio.wait_for(self._publish(self._coalescer.drain()), 2)
            except (RedisError, TimeoutError, OSError):
                log.warning("final stream tick not published")
        await asyncio.sleep(0.05)  # let the senders write their close frames
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for group in self.groups.values():
            group.close()
        await self._sub_redis.aclose()

    # ---- publishing (this worker's changes → Redis) --------------------------------------
    def _on_changes(self, changes: list[Change]) -> None:
        self._coalescer.add(changes)
        self._pending.set()

    async def _publisher(self) -> None:
        interval = 1.0 / self.settings.stream_publish_hz
        last = 0.0
        while True:
            await self._pending.wait()
            wait = last + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._pending.clear()
            changes = self._coalescer.drain()
            last = time.monotonic()
            if not changes:
                continue
            try:
                await self._publish(changes)
            except (RedisError, OSError) as exc:
                # Viewers everywhere missed this tick: the next publish starts a new epoch so they
                # resync from PostgreSQL instead of silently keeping a gap.
                self._lost = True
                m.PUBLISH_ERRORS.inc()
                log.warning("stream tick not published", extra={"error": str(exc), "changes": len(changes)})
                await asyncio.sleep(0.5)

    async def _publish(self, changes: list[Change]) -> None:
        await self.history.publish(encode_batch(changes, self.worker), force_new_epoch=self._lost)
        self._lost = False
        m.TICKS_PUBLISHED.inc()

    # ---- receiving (Redis → groups → viewers) ----------------------------------------------
    async def _subscriber(self) -> None:
        backoff = 0.1
        connected_before = False
        while True:
            pubsub = self._sub_redis.pubsub()
            try:
                await pubsub.subscribe(self.history.keys.channel)
                if connected_before:
                    m.REDIS_RECONNECTS.inc()
                    log.info("stream subscriber reconnected")
                connected_before = True
                epoch, last = await self.history.current()
                await self._catch_up(epoch, last)
                backoff = 0.1
                idle_since = time.monotonic()
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None:
                        if time.monotonic() - idle_since > 5:
                            await pubsub.ping()
                            idle_since = time.monotonic()
                        continue
                    idle_since = time.monotonic()
                    if msg.get("type") == "message":
                        await self._on_message(msg["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("stream subscriber lost redis", extra={"error": str(exc)})
            except Exception:
                log.exception("stream subscriber failed")
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _catch_up(self, epoch: str, last: int) -> None:
        """After (re)subscribing: replay what was published while we were away, or resync."""
        if epoch != self.epoch:
            self._new_epoch(epoch, last)
            return
        if last > self.last_seq and not await self._fill_gap(last):
            self._new_epoch(epoch, last)

    async def _fill_gap(self, upto: int) -> bool:
        entries = await self.history.range_after(self.last_seq, count=upto - self.last_seq)
        if not entries or entries[0][0] != self.last_seq + 1:
            return False
        for seq, _, payload in entries:
            if seq <= upto:
                self._deliver(decode_batch(self.epoch, seq, payload))
        return True

    async def _on_message(self, data: Any) -> None:
        epoch, seq, payload = parse_message(data)
        if not self.viewers:
            self._skip(epoch, seq)
            return
        if epoch != self.epoch:
            self._new_epoch(epoch, seq)
        elif seq <= self.last_seq:
            return
        elif seq > self.last_seq + 1 and not await self._fill_gap(seq - 1):
            self._new_epoch(epoch, seq)
        self._deliver(decode_batch(epoch, seq, payload))

    def _skip(self, epoch: str, seq: int) -> None:
        """Nobody watches on this worker: keep its place in the stream (and the trimmer's clock) without
        decoding the batch. The live positions table goes cold and reloads when a viewer arrives."""
        if epoch != self.epoch:
            self._new_epoch(epoch, seq)
        elif seq <= self.last_seq:
            return
        self.last_seq = seq
        self._received.append((time.time(), seq))
        if len(self._points):
            self._points.clear()  # the points it holds go stale while batches are skipped
        if self.live.warm or self.live.loading:
            self.live.invalidate()
        m.BATCHES_RECEIVED.inc()

    def _deliver(self, batch: Batch) -> None:
        self._points.apply(batch.items, self.live.point)  # (before the live table takes the batch)
        # One bytes object per responder's current compact meta, shared by every group that keeps it.
        canon = self._metas
        for it in batch.items:
            meta = it.meta
            if meta is not None:
                shared = canon.get(it.key)
                if shared == meta:
                    it.meta = shared
                else:
                    canon[it.key] = meta
        self.live.apply(batch.items)
        self.last_seq = max(self.last_seq, batch.seq)
        self._received.append((batch.t, batch.seq))
        m.BATCHES_RECEIVED.inc()
        self._router.deliver(batch, list(self.groups.values()), self._groups_version)

    def _new_epoch(self, epoch: str, seq: int) -> None:
        """History may have been lost: every viewer gets a fresh snapshot marked ``reset``."""
        had_epoch = bool(self.epoch)
        log.info("stream epoch changed", extra={"old": self.epoch, "new": epoch, "seq": seq})
        self.epoch = epoch
        self.last_seq = seq
        self._received.clear()
        # Ticks may have been lost: the live positions table reloads from PostgreSQL (meanwhile
        # snapshots read SQL).
        self.live.invalidate()
        self._live_due.set()
        if not had_epoch:
            return
        m.RESYNCS.inc()
        for viewer in list(self.viewers):
            for sub in list(viewer.subs.values()):
                viewer.spawn(self._resync(viewer, sub))

    async def _resync(self, viewer: Viewer, sub: ViewerSub) -> None:
        sub.holding = True
        await self._send_snapshot(viewer, sub, reset=True)

    def _frames_sent(self, n: int) -> None:
        # Counted here, added to the (multiprocess, file-backed) counter once a second by the trimmer.
        self._frames_uncounted += n

    # ---- housekeeping ----------------------------------------------------------------------
    async def _live_keeper(self) -> None:
        """Load the live positions table when viewers are connected: at the first one, after an epoch
        change, and every ``stream_live_refresh_s`` (a safety net for writes that bypass the stream)."""
        refresh = self.settings.stream_live_refresh_s
        while True:
            try:
                await asyncio.wait_for(self._live_due.wait(), refresh if refresh > 0 else None)
            except TimeoutError:
                pass
            self._live_due.clear()
            if not self.viewers:
                continue  # loaded when a viewer arrives (see connect)
            try:
                async with self.runtime.pool.acquire() as conn:
                    await self.live.load(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A failed refresh leaves the (still current) table serving; a failed first load or
                # epoch reload leaves it cold, so snapshots read SQL until a load succeeds.
                log.warning("live positions not loaded", extra={"error": repr(exc), "warm": self.live.warm})
                self._live_due.set()
                await asyncio.sleep(1.0)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stream_heartbeat_s)
            frame = Frame(
                "heartbeat",
                None,
                message({"type": "heartbeat", "epoch": self.epoch, "seq": self.last_seq, "t": time.time()}),
            )
            for viewer in list(self.viewers):
                viewer.put(frame)

    async def _trimmer(self) -> None:
        """Keep about ``history_s`` of batches in the Redis log (every worker may do it)."""
        while True:
            await asyncio.sleep(1.0)
            if self._frames_uncounted:
                m.FRAMES.inc(self._frames_uncounted)
                self._frames_uncounted = 0
            cutoff = time.time() - self.settings.stream_history_s
            first: int | None = None
            while self._received and self._received[0][0] < cutoff:
                self._received.popleft()
                first = self._received[0][1] if self._received else self.last_seq + 1
            if first is not None:
                try:
                    await self.history.trim_before(first)
                except (RedisError, OSError):
                    pass

    # ---- viewers ---------------------------------------------------------------------------
    def connect(self, principal: Principal, transport: str = "ws") -> Viewer:
        viewer = Viewer(principal, scope_for(principal), self.settings.stream_queue_frames, self._dropped)
        if self.stopping:
            viewer.close(CLOSE_RESTART, RESTART_REASON)
        self.viewers.add(viewer)
        if not self.live.warm and not self.live.loading:
            self._live_due.set()  # the first viewer on an idle worker: load the live positions table
        m.VIEWERS.labels(transport).inc()
        viewer.transport = transport  # type: ignore[attr-defined]
        return viewer

    def disconnect(self, viewer: Viewer) -> None:
        if viewer not in self.viewers:
            return
        self.viewers.discard(viewer)
        m.VIEWERS.labels(getattr(viewer, "transport", "ws")).dec()
        viewer.cancel_tasks()
        for sub_id in list(viewer.subs):
            self._remove_sub(viewer, sub_id)
        viewer.close(1000, "bye")

    def _dropped(self, viewer: Viewer) -> None:
        m.DROPPED.inc()
        log.info("stream viewer dropped", extra={"user": viewer.principal.name})

    async def handle(self, viewer: Viewer, raw: str | bytes) -> None:
        """One client message; protocol errors become ``error`` messages, never exceptions."""
        try:
            msg = parse_client(raw, self.settings)
            if isinstance(msg, Subscribe):
                await self.subscribe(viewer, msg)
            elif isinstance(msg, Unsubscribe):
                if msg.id not in viewer.subs:
                    raise StreamError("unknown_subscription", f"no subscription {msg.id!r}", id=msg.id)
                self._remove_sub(viewer, msg.id)
                viewer.put(Frame("control", None, message({"type": "unsubscribed", "id": msg.id})))
            elif isinstance(msg, Resume):
                viewer.resume_point = (msg.epoch, msg.from_seq)
                viewer.put(
                    Frame(
                        "control",
                        None,
                        message({"type": "resume_accepted", "epoch": msg.epoch, "from_seq": msg.from_seq}),
                    )
                )
            elif isinstance(msg, Ping):
                out: dict[str, Any] = {"type": "pong", "t": time.time(), "epoch": self.epoch, "seq": self.last_seq}
                if msg.id is not None:
                    out["id"] = msg.id
                viewer.put(Frame("control", None, message(out)))
        except StreamError as exc:
            viewer.put(Frame("control", None, message(exc.to_message())))

    async def subscribe(self, viewer: Viewer, sub: Subscribe) -> None:
        check_topics(viewer.principal, sub.topics, sub.id)
        if sub.id in viewer.subs:
            self._remove_sub(viewer, sub.id)
        if len(viewer.subs) >= self.settings.stream_max_subscriptions:
            raise StreamError(
                "too_many_subscriptions",
                f"at most {self.settings.stream_max_subscriptions} subscriptions per connection",
                id=sub.id,
            )
        group = self._group(sub.topics, sub.area, sub.max_rate_hz, viewer, sub.encoding)
        vsub = ViewerSub(sub.id, viewer, group)
        point = (sub.epoch, sub.from_seq) if sub.epoch is not None else viewer.resume_point
        group.add(vsub, resuming=point is not None and point[1] is not None)
        viewer.subs[sub.id] = vsub
        if point is not None and point[1] is not None:
            if await self._replay(viewer, vsub, point[0], point[1]):
                return
        await self._send_snapshot(viewer, vsub, reset=point is not None)

    def _group(self, topics: frozenset[str], area: Area, rate: float, viewer: Viewer, encoding: str) -> Group:
        key = group_key(topics, area, rate, viewer.scope, encoding)
        group = self.groups.get(key)
        if group is None:
            group = Group(key, topics, area, rate, viewer.scope, lambda: self.epoch, self._frames_sent, encoding)
            group.meta_canon = self._metas
            self.groups[key] = group
            self._groups_version += 1
            m.GROUPS.inc()
        return group

    def _remove_sub(self, viewer: Viewer, sub_id: str) -> None:
        vsub = viewer.subs.pop(sub_id, None)
        if vsub is None:
            return
        group = vsub.group
        group.members.discard(vsub)
        if not group.members:
            group.close()
            if self.groups.pop(group.key, None) is not None:
                m.GROUPS.dec()
            self._groups_version += 1

    async def _replay(self, viewer: Viewer, vsub: ViewerSub, epoch: str, from_seq: int) -> bool:
        """Send what the subscription missed since ``from_seq``; False when a snapshot is needed."""
        upto, current = self.last_seq, self.epoch
        outcome = "reset"
        try:
            if epoch != current or from_seq > upto:
                return False
            entries = await self.history.range_after(from_seq, count=max(upto - from_seq, 1))
            if upto > from_seq:
                if not entries or entries[0][0] != from_seq + 1:
                    return False
                if entries[0][1] < time.time() - self.settings.stream_history_s:
                    return False
            frames = []
            points = PointMemory()  # an object leaving the area within the replayed batches is sent leaving it
            for seq, _, payload in entries:
                if seq > upto:
                    break
                batch = decode_batch(current, seq, payload)
                points.apply(batch.items)
                frame = vsub.group.replay_frame(batch)
                if frame is not None:
                    frames.append(frame)
            viewer.put(
                Frame(
                    "control",
                    upto,
                    message(
                        {
                            "type": "resumed",
                            "id": vsub.id,
                            "epoch": current,
                            "from_seq": from_seq,
                            "seq": upto,
                            "batches": len(frames),
                        }
                    ),
                )
            )
            for frame in frames:
                viewer.put(frame)
            vsub.release()
            outcome = "replayed"
            return True
        except (RedisError, OSError):
            return False
        finally:
            m.RESUMES.labels(outcome).inc()

    async def _send_snapshot(self, viewer: Viewer, vsub: ViewerSub, *, reset: bool) -> None:
        group = vsub.group
        share = group.share
        if share is None or not share.usable(self.epoch):
            if snapshot.needs_sql(group.topics, group.scope, self.live):
                future = asyncio.ensure_future(self._load_snapshot(group))
            else:
                # Served from memory, at exactly (epoch, last_seq): no query, no wait.
                future = asyncio.get_running_loop().create_future()
                try:
                    future.set_result(
                        snapshot.load_live(
                            group.topics,
                            group.area,
                            group.scope,
                            self.settings.stream_snapshot_limit,
                            group.encoding,
                            self.live,
                        )
                    )
                except Exception as exc:
                    future.set_exception(exc)
            share = SnapshotShare(self.epoch, self.last_seq, future)
            group.share = share
            if group.snapshot_started():
                share.seed = group
        try:
            body, truncated = await share.result()
        except Exception:
            log.exception("stream snapshot failed")
            if group.share is share:
                group.share = None
            self._remove_sub(viewer, vsub.id)
            viewer.put(
                Frame(
                    "control",
                    None,
                    message(
                        {"type": "error", "code": "unavailable", "id": vsub.id, "message": "snapshot failed; retry"}
                    ),
                )
            )
            return
        extra = group.metas_outside(share.metas)
        if extra:
            body = compact.with_metas(body, extra)
        text = snapshot.snapshot_message(
            vsub.id, share.epoch, share.seq, body, reset=reset, truncated=truncated, bbox=group.area.bbox
        )
        viewer.put(Frame("snapshot", share.seq, text))
        # Frames the group flushed since the snapshot's position but before this viewer joined
        # (those after are in its held list already).
        held = {id(f) for f in vsub.held}
        for frame in list(share.frames):
            if id(frame) not in held:
                viewer.put(frame)
        vsub.release()

    async def _load_snapshot(self, group: Group) -> tuple[str, bool, dict[str, bytes]]:
        async with self._snapshot_slots, self.runtime.pool.acquire() as conn:
            return await snapshot.load(
                conn,
                group.topics,
                group.area,
                group.scope,
                self.settings.stream_snapshot_limit,
                group.encoding,
                self.live,
            )
