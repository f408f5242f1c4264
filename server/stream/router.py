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

Everything else (whole-map, H3-cell or team-scoped groups, items without a point for box groups)
takes the same path as :meth:`Group.offer`, so the result is the same as asking each group in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import numpy as np

from .groups import Group, TickItems
from .ticks import Batch, Item

MIN_GROUPS = 16
"""Below this many bbox groups the plain per-group path is as fast."""


class Lane:
    """The box groups of one rate, and the batches they have not taken yet."""

    __slots__ = ("batches", "boxes", "groups", "interval", "last", "timer")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.groups: list[Group] = []
        self.boxes = np.empty((0, 4))
        self.batches: list[Batch] = []
        self.last = -1e18
        self.timer: asyncio.Handle | None = None

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Router:
    def __init__(self) -> None:
        self._version = -1
        self._other_groups: list[Group] = []
        self._lanes: dict[float, Lane] = {}

    def _index(self, groups: Iterable[Group], version: int) -> None:
        if version == self._version:
            return
        box, other = [], []
        for g in groups:
            (box if g.area.bbox is not None and g.scope.kind == "all" else other).append(g)
        if len(box) < MIN_GROUPS:
            other, box = other + box, []
        by_interval: dict[float, list[Group]] = {}
        for g in box:
            by_interval.setdefault(g.interval, []).append(g)
        lanes: dict[float, Lane] = {}
        for interval, members in by_interval.items():
            lane = self._lanes.pop(interval, None) or Lane(interval)
            lane.groups = members
            lane.boxes = np.array([g.area.bbox for g in members], dtype=np.float64).reshape(len(members), 4)
            lanes[interval] = lane
        for gone in self._lanes.values():
            # Its groups now take batches one by one; what it held goes to them first.
            gone.cancel()
            for batch in gone.batches:
                for g in gone.groups:
                    g.offer(batch)
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
            lane.batches.append(batch)
            if lane.timer is None:
                due = lane.last + lane.interval
                if due <= now:
                    lane.timer = loop.call_soon(self._fire, lane)
                else:
                    lane.timer = loop.call_at(due, self._fire, lane)

    def route_pending(self, flush: bool = True) -> None:
        """Route every lane's queued batches now (``flush=False``: the groups only take them)."""
        for lane in list(self._lanes.values()):
            lane.cancel()
            self._route(lane, flush)

    def _fire(self, lane: Lane) -> None:
        lane.timer = None
        lane.last = asyncio.get_running_loop().time()
        self._route(lane, True)

    def _route(self, lane: Lane, flush: bool) -> None:
        batches, lane.batches = lane.batches, []
        if not batches or not lane.groups:
            return
        seq = batches[-1].seq
        # Within a tick only the newest state of each object is sent (as the groups coalesce).
        latest: dict[tuple[str, str], Item] = {}
        for b in batches:
            for it in b.items:
                latest[(it.topic, it.key)] = it
        point = [it for it in latest.values() if it.lon is not None and it.lat is not None]
        rest = [it for it in latest.values() if it.lon is None or it.lat is None]
        hits: dict[int, list[int]] = {}
        if point:
            lon = np.fromiter((it.lon for it in point), np.float64, len(point))
            lat = np.fromiter((it.lat for it in point), np.float64, len(point))
            b = lane.boxes
            inside = (
                (lon >= b[:, 0:1]) & (lon <= b[:, 2:3]) & (lat >= b[:, 1:2]) & (lat <= b[:, 3:4])
            )  # groups x points
            topics = [it.topic for it in point]
            rows_by_topics: dict[frozenset[str], list[int]] = {}
            for g, group in enumerate(lane.groups):
                rows_by_topics.setdefault(group.topics, []).append(g)
            for wanted_topics, rows in rows_by_topics.items():
                wanted = np.fromiter((t in wanted_topics for t in topics), bool, len(topics))
                if not wanted.any():
                    continue
                sub = inside[rows] & wanted if len(rows) < len(lane.groups) else inside & wanted
                hit_rows, hit_cols = np.nonzero(sub)
                if not len(hit_rows):
                    continue
                # Per group (row), its matching items: split the row-major hits at each new row.
                cuts = (np.flatnonzero(np.diff(hit_rows)) + 1).tolist()
                cols = hit_cols.tolist()
                row_ids = hit_rows[[0, *cuts]].tolist()
                for r, s, e in zip(row_ids, [0, *cuts], [*cuts, len(cols)], strict=True):
                    hits[rows[r]] = cols[s:e]
        tick = TickItems(point)
        for g, group in enumerate(lane.groups):
            cols_g = hits.get(g)
            extra = [((it.topic, it.key), it) for it in rest if group.matches(it)] if rest else None
            if extra:
                # Rare (a point-less item for a box): the group's general path.
                group.take(seq, [((point[c].topic, point[c].key), point[c]) for c in cols_g or ()] + extra)
                if flush and group.members:
                    group.flush()
            elif cols_g:
                if flush and group.members:
                    group.flush_tick(seq, tick, cols_g)
                elif not flush:
                    group.take(seq, [((point[c].topic, point[c].key), point[c]) for c in cols_g])
