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

A slot tick orders its points in strips of longitude, by latitude within each, so the points of
one box are a few runs of consecutive points; for the compact groups it then works out every
frame at once (:class:`Plan`): one gather of the slot's meta rows (:mod:`.metatable`) finds the few
metas to send, and each group's positions are byte ranges of the tick's positions joined once, so
a group's frame is a few slices joined into its WebSocket frame, with no Python work per item.

Everything else (whole-map, H3-cell or team-scoped groups, items without a point for box groups)
takes the same path as :meth:`Group.offer`, so the result is the same as asking each group in turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

import numpy as np

from .groups import Group, TickItems
from .lanedata import Plan, Prepared, nonzero2
from .metatable import MetaTable, SlotRows
from .ticks import Batch, Item, delta_frame_head

MIN_GROUPS = 16
"""Below this many bbox groups the plain per-group path is as fast."""

SLOT_GROUPS = 256
"""Most groups a lane routes in one loop turn. A lane with more is split into slots of about this
many groups that take turns (one slot every ``interval / slots``), so routing never holds the event
loop for long: a lane that flushed thousands of groups in one turn (~0.3 s of CPU for 2,500 city
boxes) stalled the Redis subscriber, the publisher and ingest behind it, and every stage of that
pipeline then waited a whole routing turn (seconds of latency with the CPU half idle). Since a
slot's frames are planned at once (no Python work per item), each slot tick costs mostly a fixed
overhead, so slots are larger than they were (128): 5,000 city boxes at 4 Hz delivered ~5,000-6,200
frames/s with 128 and ~6,300-9,300 with 256 (512: ~6,200) in bench/stream.py on this machine."""


QUANTUM_S = 0.004
"""Most time a lane spends flushing frames in one loop turn before it lets the others run."""


PLANNED = np.empty(0, np.intp)
"""A group's hits when its frame is in the slot tick's :class:`Plan` (its positions are runs there)."""


class Slot:
    """Some of a lane's groups, their boxes, and the batches they have not taken yet."""

    __slots__ = ("batches", "boxes", "compact", "edges", "groups", "last", "rows", "topics")

    def __init__(self, groups: list[Group], batches: list[Batch], last: float) -> None:
        self.groups = groups
        self.boxes = np.array([g.area.bbox for g in groups], dtype=np.float64).reshape(len(groups), 4)
        self.compact = np.array([g.encoding == "compact" for g in groups], dtype=bool)
        self.edges = np.sort(self.boxes, axis=0).T.copy()
        """Each box edge (west, south, east, north) of every box, sorted (see ``Router._left``)."""
        self.batches = batches
        self.last = last
        self.rows = SlotRows()
        """The compact groups' meta rows as one matrix (see :class:`.metatable.SlotRows`)."""
        self.topics: frozenset[str] = frozenset().union(*(g.topics for g in groups))


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
        self._keycols: dict[tuple[str, str], int] = {}
        """A number per (topic, key), to find the newest state of each over several batches with numpy."""
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
        work = self._match(slot, plan=flush)
        if work is not None:
            work.flush(flush, float("inf"))

    def _match(self, slot: Slot, plan: bool = True) -> Work | None:
        """The groups of ``slot`` with their items from the batches it queued (taken from it)."""
        batches, slot.batches = slot.batches, []
        if not batches or not slot.groups:
            return None
        seq = batches[-1].seq
        # Within a tick only the newest state of each object is sent (as the groups coalesce): the
        # last occurrence of each (topic, key) over the queued batches, prepared once per batch.
        preps = [self._prepare(b) for b in batches]
        if any(p.token is not self.metas.token for p in preps):  # the meta numbering started over
            preps = [self._prepare(b) for b in batches]
        if len(preps) == 1:
            (whole,) = preps
        else:
            whole = Prepared.concatenate(preps)
        kcols = whole.kcols
        _, first = np.unique(kcols[::-1], return_index=True)
        keep = len(kcols) - 1 - first
        keep.sort()
        has_point = whole.has_point[keep]
        rest = [it for it in map(whole.items.__getitem__, keep[~has_point].tolist()) if it.topic in slot.topics]
        sel = keep[has_point]
        hits: dict[int, np.ndarray] = {}
        compact = bool(slot.compact.any())
        frames = Plan()
        lon, lat = whole.lon[sel], whole.lat[sel]
        if len(sel) > 2:
            # Points in strips of longitude, by latitude within each: a box's items are then a few
            # runs of consecutive points, so its frame is a few slices (TickItems.position_slices).
            lo, hi = float(lon.min()), float(lon.max())
            strips = max(1, int((len(sel) / 2) ** 0.5))
            order = np.lexsort((lat, np.floor((lon - lo) * (strips / ((hi - lo) or 1.0)))))
            lon, lat, sel = lon[order], lat[order], sel[order]
        at = sel.tolist()
        point = list(map(whole.items.__getitem__, at))
        lists = (
            list(map(whole.keys.__getitem__, at)),
            list(map(whole.json.__getitem__, at)),
            list(map(whole.compact.__getitem__, at)),
            list(map(whole.metas.__getitem__, at)),
            whole.rcols[sel],
            whole.mids[sel],
        )
        tick = TickItems(point, self.metas if compact else None, lists)
        if point:
            bx = slot.boxes
            inside = (
                (lon >= bx[:, 0:1]) & (lon <= bx[:, 2:3]) & (lat >= bx[:, 1:2]) & (lat <= bx[:, 3:4])
            )  # groups x points
            self._left(whole, sel, lon, lat, slot.edges, bx, inside)
            topics = list(map(whole.topics.__getitem__, at))
            present = set(topics)
            rows_by_topics: dict[frozenset[str], list[int]] = {}
            for g, group in enumerate(slot.groups):
                rows_by_topics.setdefault(group.topics, []).append(g)
            for wanted_topics, rows in rows_by_topics.items():
                if present <= wanted_topics:
                    wanted: Any = True
                else:
                    wanted = np.fromiter((t in wanted_topics for t in topics), bool, len(topics))
                    if not wanted.any():
                        continue
                if wanted is True:
                    sub = inside[rows] if len(rows) < len(slot.groups) else inside
                else:
                    sub = inside[rows] & wanted if len(rows) < len(slot.groups) else inside & wanted
                planned = plan and not rest and tick.compact_at(slice(None) if wanted is True else wanted)
                if planned and slot.compact[rows].all():
                    # Every frame of these groups is planned at once (no per-group item lists).
                    self._plan(slot, tick, rows, sub, frames)
                    for g in frames.runs:
                        hits[g] = PLANNED
                    continue
                hit_rows, hit_cols = nonzero2(sub)
                if not len(hit_rows):
                    continue
                # Per group (row), its matching items (ascending): split the row-major hits at each new row.
                cuts = (np.flatnonzero(np.diff(hit_rows)) + 1).tolist()
                row_ids = hit_rows[[0, *cuts]].tolist()
                for r, s, e in zip(row_ids, [0, *cuts], [*cuts, len(hit_cols)], strict=True):
                    hits[rows[r]] = hit_cols[s:e]
                if planned and compact:
                    self._plan(slot, tick, rows, sub, frames)
        return Work(list(slot.groups), seq, point, rest, hits, tick, frames)

    @staticmethod
    def _left(
        whole: Prepared,
        sel: np.ndarray,
        lon: np.ndarray,
        lat: np.ndarray,
        edges: np.ndarray,
        bx: np.ndarray,
        inside: np.ndarray,
    ) -> None:
        """A box also sends a point whose previous point it held (the object left it: one last update),
        as ``Group.matches`` does. Over the tick's batches an object's previous points are the one
        before the tick and each of its points but the newest, so the newest state (column of ``sel``,
        at ``lon``/``lat``) goes to every box that held any of them, as a group taking the batches one
        by one sends it. Only previous points that some box edge (``edges``: each kind sorted)
        separates from the newest point can add anything (an object moves a few metres per fix), so
        just those are compared with every box."""
        kcols, plon, plat = whole.kcols, whole.plon, whole.plat
        column = np.full(int(kcols.max()) + 1, -1, np.intp)
        column[kcols[sel]] = np.arange(len(sel))
        cols = column[kcols]
        loose = (cols >= 0) & ~whole.has_point
        if loose.any():
            # An earlier state without a point (a delete, then the object is back) went everywhere.
            inside[:, cols[loose]] = True
        has = (cols >= 0) & ~np.isnan(plon)
        if not has.any():
            return
        cols = cols[has]
        px, py = plon[has], plat[has]
        # A box holds p and not c (or the reverse) only if one of its edges lies between them:
        # west in (lo, hi] or east in [lo, hi) of the longitudes, the same for latitudes.
        cross = np.zeros(len(cols), bool)
        for v, c, (low, high) in ((px, lon[cols], (edges[0], edges[2])), (py, lat[cols], (edges[1], edges[3]))):
            lo, hi = np.minimum(v, c), np.maximum(v, c)
            cross |= low.searchsorted(hi, "right") != low.searchsorted(lo, "right")
            cross |= high.searchsorted(hi, "left") != high.searchsorted(lo, "left")
        if not cross.any():
            return
        cols, px, py = cols[cross], px[cross], py[cross]
        order = np.argsort(cols, kind="stable")
        cols = cols[order]
        px, py = px[order][:, None], py[order][:, None]
        # previous points x groups (rows contiguous, so an object's several previous points reduce fast)
        held = (px >= bx[:, 0]) & (px <= bx[:, 2]) & (py >= bx[:, 1]) & (py <= bx[:, 3])
        is_first = np.r_[True, cols[1:] != cols[:-1]]
        first = np.flatnonzero(is_first)
        if len(first) < len(cols):
            # OR each object's rows together, one pass per occurrence rank (an object has a few
            # previous points per tick; ufunc.reduceat over rows was as slow as the comparisons).
            group = np.cumsum(is_first) - 1
            rank = np.arange(len(cols)) - first[group]
            out = held[first]
            for r in range(1, int(rank.max()) + 1):
                rows = np.flatnonzero(rank == r)
                out[group[rows]] |= held[rows]
            held = out
        inside[:, cols[first]] |= held.T

    def _prepare(self, batch: Batch) -> Prepared:
        """What every slot routing ``batch`` needs from it, computed once (per meta numbering)."""
        p = batch.prepared
        if p is None or p.token is not self.metas.token:
            p = batch.prepared = Prepared(batch.items, self._keycols, self.metas)
        return p  # type: ignore[no-any-return]

    def _plan(self, slot: Slot, tick: TickItems, rows: list[int], sub: np.ndarray, plan: Plan) -> None:
        """The compact groups' frames of a slot tick, worked out on the (groups ``rows`` x points)
        match matrix ``sub`` at once: which metas each group must send (the slot's meta rows gathered
        at the points' responder columns, then Python only for the rare misses) and its positions as
        runs of consecutive points, i.e. byte ranges of the tick's joined positions."""
        rows_a = np.asarray(rows, np.intp)
        keep = slot.compact[rows_a]
        if not keep.all():
            rows_a, sub = rows_a[keep], sub[keep]
        if not len(rows_a):
            return
        assert tick.table is not None and tick.rcols is not None and tick.mids is not None
        matrix = slot.rows.refresh(tick.table, slot.groups)
        rcols, mids = tick.rcols, tick.mids
        known = matrix.take(rcols, axis=1) if len(rows_a) == len(matrix) else matrix[rows_a][:, rcols]
        groups, metas, keys = slot.groups, tick.metas, tick.keys
        unsent_r, unsent_c = nonzero2((known != mids) & sub)
        for r, c in zip(unsent_r.tolist(), unsent_c.tolist(), strict=True):
            # Some responder entered a box or changed its meta (or a delete): just those.
            m = metas[c]
            if m is None:
                continue
            g = int(rows_a[r])
            sent = groups[g]._meta_sent
            if sent.get(keys[c]) != m:
                sent[keys[c]] = m
                plan.metas.setdefault(g, []).append(m)
            matrix[g, rcols[c]] = mids[c]
        # Runs of consecutive points in each row: with a column of no hits on either side, a row's
        # changes alternate between the start of a run and the column after its end (one nonzero).
        padded = np.zeros((sub.shape[0], sub.shape[1] + 2), bool)
        padded[:, 1:-1] = sub
        change_r, change_c = nonzero2(padded[:, 1:] != padded[:, :-1])
        if not len(change_r):
            return
        run_r, first_c, last_c = change_r[0::2], change_c[0::2], change_c[1::2] - 1
        _, offsets = tick.joined
        a = offsets[first_c]
        b = offsets[last_c + 1]
        firsts = np.ones(len(run_r), bool)
        np.not_equal(run_r[1:], run_r[:-1], out=firsts[1:])
        a[firsts] += 1  # a frame's first position has no comma before it
        first_runs = np.flatnonzero(firsts)
        bounds = [*first_runs.tolist(), len(run_r)]
        # Every run's bytes as a view of the joined positions, made in one C-level pass for the slot
        # (a Python loop per frame over its ~15 runs was the largest cost of sending it).
        buf = tick.joined[0]
        plan.views = list(map(buf.__getitem__, map(slice, a.tolist(), b.tolist())))
        plan.runs = dict(zip(rows_a[run_r[first_runs]].tolist(), pairwise(bounds), strict=True))


class Work:
    """A slot's routed tick: what each of its groups takes, flushed group by group."""

    __slots__ = ("groups", "hits", "next", "plan", "point", "rest", "seq", "tick")

    def __init__(
        self,
        groups: list[Group],
        seq: int,
        point: list[Item],
        rest: list[Item],
        hits: dict[int, np.ndarray],
        tick: TickItems,
        plan: Plan | None = None,
    ) -> None:
        self.groups = groups
        self.seq = seq
        self.point = point
        self.rest = rest
        self.hits = hits
        self.tick = tick
        self.plan = plan or Plan()
        self.next = 0

    def flush(self, flush: bool, deadline: float) -> bool:
        """Hand the next groups their items (``flush``: and send their frames) until ``deadline``
        (``time.perf_counter``); True once every group has been served."""
        groups, hits, point, rest, seq, tick = self.groups, self.hits, self.point, self.rest, self.seq, self.tick
        g = self.next
        n = len(groups)
        # One frame opening (epoch, seq, sent_at) for the frames of this turn.
        head = delta_frame_head(groups[g]._epoch(), seq) if g < n else b""
        plan = self.plan
        runs, metas, views = plan.runs, plan.metas, plan.views
        now = time.monotonic()
        counter: Any = None
        """Frames handed straight to single-member groups, counted once per turn (see ``send_positions``)."""
        counted = 0
        while g < n:
            group = groups[g]
            at = hits.get(g)
            extra = [((it.topic, it.key), it) for it in rest if group.matches(it)] if rest else None
            if extra:
                # Rare (a point-less item for a box): the group's general path.
                cols = at.tolist() if at is not None else []
                group.take(seq, [((point[c].topic, point[c].key), point[c]) for c in cols] + extra)
                if flush and group.members:
                    group.flush()
            elif at is not None:
                if flush and group.members:
                    run = runs.get(g)
                    if run is not None:
                        if group.send_positions(seq, head, metas.get(g), views[run[0] : run[1]], now):
                            on_frames = group._on_frames
                            if on_frames is not counter and on_frames != counter:
                                if counted:
                                    counter(counted)
                                counter, counted = on_frames, 0
                            counted += 1
                    else:
                        group.flush_tick(seq, tick, at, head)
                elif not flush:
                    group.take(seq, [((point[c].topic, point[c].key), point[c]) for c in at.tolist()])
            g += 1
            if g & 7 == 0 and time.perf_counter() >= deadline:
                break
        if counted and counter is not None:
            counter(counted)
        self.next = g
        return g >= n
