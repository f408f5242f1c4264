"""A router lane's data: each received batch prepared once for every slot (:class:`Prepared`), and
a slot tick's compact frames worked out at once (:class:`Plan`). Pure: no I/O (see :mod:`.router`)."""

from __future__ import annotations

from itertools import chain

import numpy as np

from .metatable import MetaTable
from .ticks import Item


def nonzero2(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``m.nonzero()`` of a 2-D bool matrix, row-major: the flat indices split into rows and columns
    (a 2-D ``nonzero`` took ~10x as long: ~3.3 ms vs ~0.3 ms on 256 x 1,500 in this machine)."""
    if not m.flags.c_contiguous:
        m = np.ascontiguousarray(m)
    rows, cols = np.divmod(np.flatnonzero(m), m.shape[1])
    return rows, cols


class Prepared:
    """A received batch's items as parallel lists and arrays (computed once, shared by every slot
    that routes it): (topic, key) numbers, whether each has a point, lon/lat, what frames are built
    from, and responder columns and meta ids."""

    __slots__ = (
        "compact",
        "has_point",
        "items",
        "json",
        "kcols",
        "keys",
        "lat",
        "lon",
        "metas",
        "mids",
        "plat",
        "plon",
        "rcols",
        "token",
        "topics",
    )

    def __init__(self, items: list[Item], keycols: dict[tuple[str, str], int] | None, table: MetaTable | None) -> None:
        if keycols is None or table is None:
            return  # (concatenate fills it)
        n = len(items)
        self.items = items
        self.topics = [it.topic for it in items]
        self.keys = [it.key for it in items]
        pairs = list(zip(self.topics, self.keys, strict=True))
        found = list(map(keycols.get, pairs))
        if None in found:
            found = [keycols.setdefault(pair, len(keycols)) for pair in pairs]
        self.kcols = np.array(found, np.intp)
        self.has_point = np.fromiter((it.lon is not None and it.lat is not None for it in items), bool, n)
        self.lon = np.fromiter((np.nan if it.lon is None else it.lon for it in items), np.float64, n)
        self.lat = np.fromiter((np.nan if it.lat is None else it.lat for it in items), np.float64, n)
        self.plon = np.fromiter((np.nan if it.plon is None else it.plon for it in items), np.float64, n)
        self.plat = np.fromiter((np.nan if it.plat is None else it.plat for it in items), np.float64, n)
        self.json = [it.json for it in items]
        self.compact = [it.compact for it in items]
        self.metas = [it.meta for it in items]
        self.rcols, self.mids = table.columns(self.keys, self.metas)
        self.token = table.token

    @classmethod
    def concatenate(cls, parts: list[Prepared]) -> Prepared:
        p = cls([], None, None)
        for name in ("items", "topics", "keys", "json", "compact", "metas"):
            setattr(p, name, list(chain.from_iterable(getattr(q, name) for q in parts)))
        for name in ("kcols", "has_point", "lon", "lat", "plon", "plat", "rcols", "mids"):
            setattr(p, name, np.concatenate([getattr(q, name) for q in parts]))
        p.token = parts[0].token
        return p


class Plan:
    """A slot tick's compact frames worked out for all its groups at once (see ``Router._plan``)."""

    __slots__ = ("metas", "runs", "views")

    def __init__(self) -> None:
        self.metas: dict[int, list[bytes]] = {}
        """Per group (slot index), the metas its frame carries."""
        self.runs: dict[int, tuple[int, int]] = {}
        """Per group, its range in ``views``: its positions, runs of the tick's joined positions."""
        self.views: list[memoryview] = []
        """Every run of every planned frame: a view of the tick's joined positions (comma-separated)."""
