"""Routing received batches to many subscription groups at once.

With thousands of viewers each watching their own box, asking every group about every item is
groups x items Python calls per batch, and even a vectorized match still costs a few Python
operations per group per batch (20 batches a second from every worker). Here the common case is
both vectorized and batched in time: groups of the ``all`` scope with a bbox area form one *lane*
per rate. A lane queues the batches it receives and routes them together at most once per
interval (the first batch after a quiet interval at once, later ones at the lane's next tick): one
numpy comparison of every queued point item against every box, then each group with a match
takes its slice (newest state per key, as if it had taken the batches one by one) and flushes its
frame at once. So a group costs Python work once per frame it sends, not once per batch.

A lane with many groups is split into *slots* (:data:`SLOT_GROUPS` groups each) that route in
turn, spread evenly over the interval, so one loop turn never flushes more than a slot's frames
and the rest of the worker (the Redis subscriber and publisher, ingest) keeps its pace.

Everything else (whole-map, H3-cell or team-scoped groups, items without a point for box groups)
takes the same path as :meth:`Group.offer`, so the result is the same as asking each group in turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import numpy as np

from .groups import Group, TickItems
from .metatable import MetaTable
from .ticks import Batch, Item, delta_frame_head

MIN_GROUPS = 16
"""Below this many bbox groups the plain per-group path is as fast."""

SLOT_GROUPS = 128
"""Most groups a lane routes in one loop turn. A lane with more is split into slots of about this
many groups that take turns (one slot every ``interval / slots``), so routing never holds the event
loop for long: a lane that flushed thousands of groups in one turn (~0.3 s of CPU for 2,500 city
boxes) stalled the Redis subscriber, the publisher and ingest behind it, and every stage of that
pipeline then waited a whole routing turn (seconds of latency with the CPU half idle)."""


QUANTUM_S = 0.004
"""Most time a lane spends flushing frames in one loop turn before it lets the others run."""


class Slot:
    """Some of a lane's groups, their boxes, and the batches they have not taken yet."""

    __slots__ = ("batches", "boxes", "groups", "last")

    def __init__(self, groups: list[Group], batches: list[Batch], last: float) -> None:
        self.groups = groups
        self.boxes = np.array([g.area.bbox for g in groups], dtype=np.float64).reshape(len(groups), 4)
        self.batches = batches
        self.last = last


class Lane:
    """The box groups of one rate, in slots that route in turn: each slot at most once per
    ``interval``, one slot per ``interval / len(slots)`` (the first batch after a quiet interval at
    once, later ones at the next slot's turn)."""

    __slots__ = ("interval", "last", "next", "slots", "timer", "work")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.slots: list[Slot] = []
        self.work: Work | None = None
        """A slot's tick still being flushed (a few groups per loop turn)."""
        self.next = 0
        self.last = -1e18
        self.timer: asyncio.Handle | None = None

    @property
    def step(self) -> float:
        return self.interval / max(1, len(self.slots))

    def pending(self) -> list[Batch]:
        """Every batch some slot has not routed yet, in order (slots receive the same batches, so the
        longest list holds all the others)."""
        return max((s.batches for s in self.slots), key=len, default=[])

    def cancel(self) -> None:
        """Stop the timer; a tick being flushed is finished now."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.work is not None:
            work, self.work = self.work, None
            work.flush(True, float("inf"))


class Router:
    def __init__(self) -> None:
        self._version = -1
        self._other_groups: list[Group] = []
        self._lanes: dict[float, Lane] = {}
        self._numbers: dict[int, int] = {}
        """A stable number per box group (by id), so it keeps its slot while others come and go."""
        self._counter = 0
        self.metas = MetaTable()
        """Responder columns and meta ids for the compact lane frames (see :mod:`.metatable`)."""

    def _index(self, groups: Iterable[Group], version: int) -> None:
        if version == self._version:
            return
        box: list[Group] = []
        other: list[Group] = []
        for g in groups:
            (box if g.area.bbox is not None and g.scope.kind == "all" else other).append(g)
        if len(box) < MIN_GROUPS:
            other, box = other + box, []
        by_interval: dict[float, list[Group]] = {}
        for g in box:
            by_interval.setdefault(g.interval, []).append(g)
        numbers, kept = self._numbers, {}
        lanes: dict[float, Lane] = {}
        for interval, members in by_interval.items():
            lane = self._lanes.pop(interval, None) or Lane(interval)
            pending = lane.pending()
            n_slots = max(1, -(-len(members) // SLOT_GROUPS))
            by_slot: list[list[Group]] = [[] for _ in range(n_slots)]
            for g in members:
                number = numbers.get(id(g))
                if number is None:
                    number = self._counter
                    self._counter += 1
                kept[id(g)] = number
                by_slot[number % n_slots].append(g)
            old = lane.slots
            # A slot keeps its place in the rotation; what any slot had not routed goes to every new slot
            # (a member may see an item twice, never miss one).
            lane.slots = [
                Slot(gs, list(pending), old[i].last if len(old) == n_slots else lane.last)
                for i, gs in enumerate(by_slot)
            ]
            lane.next %= max(1, len(lane.slots))
            lanes[interval] = lane
        for gone in self._lanes.values():
            # Its groups now take batches one by one; what it held goes to them first.
            gone.cancel()
            pending = gone.pending()
            for slot in gone.slots:
                for g in slot.groups:
                    for batch in pending:
                        g.offer(batch)
        self._numbers = kept
        self._lanes = lanes
        self._other_groups = other
        self._version = version

    def deliver(self, batch: Batch, groups: Iterable[Group], version: int) -> None:
        self._index(groups, version)
        for g in self._other_groups:
            g.offer(batch)
        if not self._lanes:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for lane in self._lanes.values():
            for slot in lane.slots:
                slot.batches.append(batch)
            if lane.timer is None:
                self._schedule(lane, loop, now)

    def _schedule(self, lane: Lane, loop: asyncio.AbstractEventLoop, now: float) -> None:
        if not lane.slots:
            return
        due = max(lane.slots[lane.next].last + lane.interval, lane.last + lane.step)
        if due <= now:
            lane.timer = loop.call_soon(self._fire, lane)
        else:
            lane.timer = loop.call_at(due, self._fire, lane)

    def route_pending(self, flush: bool = True) -> None:
        """Route every lane's queued batches now (``flush=False``: the groups only take them)."""
        for lane in list(self._lanes.values()):
            lane.cancel()
            for slot in lane.slots:
                self._route(slot, flush)

    def _fire(self, lane: Lane) -> None:
        lane.timer = None
        loop = asyncio.get_running_loop()
        work = lane.work
        if work is None:
            if not lane.slots:
                return
            now = loop.time()
            slot = lane.slots[lane.next]
            lane.next = (lane.next + 1) % len(lane.slots)
            if slot.batches:
                lane.last = slot.last = now
                work = self._match(slot)
        if work is not None:
            # At most QUANTUM_S of frames per loop turn; the rest on the next turn.
            deadline = time.perf_counter() + QUANTUM_S
            if not work.flush(True, deadline):
                lane.work = work
                lane.timer = loop.call_soon(self._fire, lane)
                return
            lane.work = None
        if any(s.batches for s in lane.slots):
            self._schedule(lane, loop, loop.time())

    def _route(self, slot: Slot, flush: bool) -> None:
        work = self._match(slot)
        if work is not None:
            work.flush(flush, float("inf"))

    def _match(self, slot: Slot) -> Work | None:
        """The groups of ``slot`` with their items from the batches it queued (taken from it)."""
        batches, slot.batches = slot.batches, []
        if not batches or not slot.groups:
            return None
        seq = batches[-1].seq
        # Within a tick only the newest state of each object is sent (as the groups coalesce).
        latest: dict[tuple[str, str], Item] = {}
        for b in batches:
            for it in b.items:
                latest[(it.topic, it.key)] = it
        point = [it for it in latest.values() if it.lon is not None and it.lat is not None]
        rest = [it for it in latest.values() if it.lon is None or it.lat is None]
        hits: dict[int, tuple[list[int], np.ndarray]] = {}
        if point:
            lon = np.fromiter((it.lon for it in point), np.float64, len(point))
            lat = np.fromiter((it.lat for it in point), np.float64, len(point))
            bx = slot.boxes
            inside = (
                (lon >= bx[:, 0:1]) & (lon <= bx[:, 2:3]) & (lat >= bx[:, 1:2]) & (lat <= bx[:, 3:4])
            )  # groups x points
            topics = [it.topic for it in point]
            rows_by_topics: dict[frozenset[str], list[int]] = {}
            for g, group in enumerate(slot.groups):
                rows_by_topics.setdefault(group.topics, []).append(g)
            for wanted_topics, rows in rows_by_topics.items():
                wanted = np.fromiter((t in wanted_topics for t in topics), bool, len(topics))
                if not wanted.any():
                    continue
                sub = inside[rows] & wanted if len(rows) < len(slot.groups) else inside & wanted
                hit_rows, hit_cols = np.nonzero(sub)
                if not len(hit_rows):
                    continue
                # Per group (row), its matching items: split the row-major hits at each new row.
                cuts = (np.flatnonzero(np.diff(hit_rows)) + 1).tolist()
                cols = hit_cols.tolist()
                row_ids = hit_rows[[0, *cuts]].tolist()
                for r, s, e in zip(row_ids, [0, *cuts], [*cuts, len(cols)], strict=True):
                    hits[rows[r]] = (cols[s:e], hit_cols[s:e])
        compact = any(g.encoding == "compact" for g in slot.groups)
        return Work(list(slot.groups), seq, point, rest, hits, self.metas if compact else None)


class Work:
    """A slot's routed tick: what each of its groups takes, flushed group by group."""

    __slots__ = ("groups", "hits", "next", "point", "rest", "seq", "tick")

    def __init__(
        self,
        groups: list[Group],
        seq: int,
        point: list[Item],
        rest: list[Item],
        hits: dict[int, tuple[list[int], np.ndarray]],
        metas: MetaTable | None = None,
    ) -> None:
        self.groups = groups
        self.seq = seq
        self.point = point
        self.rest = rest
        self.hits = hits
        self.tick = TickItems(point, metas)
        self.next = 0

    def flush(self, flush: bool, deadline: float) -> bool:
        """Hand the next groups their items (``flush``: and send their frames) until ``deadline``
        (``time.perf_counter``); True once every group has been served."""
        groups, hits, point, rest, seq, tick = self.groups, self.hits, self.point, self.rest, self.seq, self.tick
        g = self.next
        n = len(groups)
        # One frame opening (epoch, seq, sent_at) for the frames of this turn.
        head = delta_frame_head(groups[g]._epoch(), seq) if g < n else b""
        while g < n:
            group = groups[g]
            hit = hits.get(g)
            cols_g = hit[0] if hit is not None else None
            extra = [((it.topic, it.key), it) for it in rest if group.matches(it)] if rest else None
            if extra:
                # Rare (a point-less item for a box): the group's general path.
                group.take(seq, [((point[c].topic, point[c].key), point[c]) for c in cols_g or ()] + extra)
                if flush and group.members:
                    group.flush()
            elif cols_g:
                if flush and group.members:
                    group.flush_tick(seq, tick, cols_g, hit[1], head)  # type: ignore[index]
                elif not flush:
                    group.take(seq, [((point[c].topic, point[c].key), point[c]) for c in cols_g])
            g += 1
            if g & 7 == 0 and time.perf_counter() >= deadline:
                break
        self.next = g
        return g >= n
