"""Routing a received batch to many subscription groups at once.

With thousands of viewers each watching their own box, asking every group about every item is
groups x items Python calls per batch. Here the common case is vectorized: for groups of the
``all`` scope with a bbox area, one numpy comparison of every point item against every box gives
the matches, and each group takes its slice with one ``dict.update`` (C speed). Everything else
(whole-map, H3-cell or team-scoped groups, items without a point) goes through
:meth:`Group.offer` unchanged, so the result is the same as asking each group in turn.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .groups import Group
from .ticks import Batch

MIN_GROUPS = 16
"""Below this many bbox groups the plain per-group loop is as fast."""


class Router:
    def __init__(self) -> None:
        self._version = -1
        self._box_groups: list[Group] = []
        self._other_groups: list[Group] = []
        self._boxes = np.empty((0, 4))

    def _index(self, groups: Iterable[Group], version: int) -> None:
        if version == self._version:
            return
        box, other = [], []
        for g in groups:
            (box if g.area.bbox is not None and g.scope.kind == "all" else other).append(g)
        if len(box) < MIN_GROUPS:
            other, box = other + box, []
        self._box_groups, self._other_groups = box, other
        self._boxes = np.array([g.area.bbox for g in box], dtype=np.float64).reshape(len(box), 4)
        self._version = version

    def deliver(self, batch: Batch, groups: Iterable[Group], version: int) -> None:
        self._index(groups, version)
        for g in self._other_groups:
            g.offer(batch)
        if not self._box_groups:
            return
        items = batch.items
        point = [i for i, it in enumerate(items) if it.lon is not None and it.lat is not None]
        rest = [items[i] for i in range(len(items)) if items[i].lon is None or items[i].lat is None]
        if point:
            lon = np.fromiter((items[i].lon for i in point), np.float64, len(point))
            lat = np.fromiter((items[i].lat for i in point), np.float64, len(point))
            b = self._boxes
            inside = (
                (lon >= b[:, 0:1]) & (lon <= b[:, 2:3]) & (lat >= b[:, 1:2]) & (lat <= b[:, 3:4])
            )  # groups x points
            keys = np.empty(len(point), dtype=object)
            keys[:] = [(items[i].topic, items[i].key) for i in point]
            picked = np.empty(len(point), dtype=object)
            picked[:] = [items[i] for i in point]
            topics = np.array([items[i].topic for i in point], dtype=object)
            by_topics: dict[frozenset[str], np.ndarray] = {}
        for g, group in enumerate(self._box_groups):
            if point:
                mask = inside[g]
                wanted = by_topics.get(group.topics)
                if wanted is None:
                    wanted = np.fromiter((t in group.topics for t in topics), bool, len(topics))
                    by_topics[group.topics] = wanted
                sel = mask & wanted
                if sel.any():
                    group.offer_pairs(batch.seq, zip(keys[sel].tolist(), picked[sel].tolist(), strict=True))
            if rest:
                extra = [((it.topic, it.key), it) for it in rest if group.matches(it)]
                if extra:
                    group.offer_pairs(batch.seq, extra)
