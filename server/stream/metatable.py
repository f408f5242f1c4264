"""Which compact meta each lane group last sent, as numbers (see :meth:`.groups.Group.flush_tick`).

A compact group sends a responder's meta only when it differs from the one it last sent. Asking a
per-group set of meta byte strings for every item of every frame cost ~0.25 us per item: with
thousands of city boxes each set is its own few tens of kilobytes, so nearly every lookup missed
the CPU cache (~50 us of a ~90 us frame for 190 items). Here the worker numbers responders
(columns) and distinct meta values (ids, ``0`` for none); a tick's items carry both as arrays, and
each group keeps one ``int32`` row (per responder column, the id of the meta it last sent, ``-1``
unknown), so "every meta of this frame was sent already" is one gather and one comparison.

The group's ``_meta_sent`` dict stays the record (the per-group path and snapshots use it); a row
is rebuilt from it whenever the group forgets or is seeded (``Group._meta_known`` stops being the
table's token) and is kept in step by the lane path. Meta ids are never reused: once there are
:data:`MAX_IDS` of them the table starts over with a new token, so every row is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .ticks import Item

MAX_IDS = 1 << 20
"""Distinct meta values numbered before the table starts over (a meta changes with battery, status, team)."""


class MetaTable:
    __slots__ = ("ids", "index", "token")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        """Responder key to its column."""
        self.ids: dict[bytes, int] = {}
        """Meta value to its id (from 1)."""
        self.token = object()
        """Rows built for this table (ids of this generation) carry it as ``Group._meta_known``."""

    def _id(self, meta: bytes) -> int:
        ids = self.ids
        j = ids.get(meta)
        if j is None:
            j = ids[meta] = len(ids) + 1
        return j

    def _column(self, key: str) -> int:
        index = self.index
        i = index.get(key)
        if i is None:
            i = index[key] = len(index)
        return i

    def columns(self, items: Iterable[Item]) -> tuple[np.ndarray, np.ndarray]:
        """Each item's responder column and meta id (0: no meta, e.g. a delete)."""
        if len(self.ids) >= MAX_IDS:
            self.ids = {}
            self.token = object()
        column, meta_id = self._column, self._id
        cols: list[int] = []
        mids: list[int] = []
        for it in items:
            cols.append(column(it.key))
            m = it.meta
            mids.append(0 if m is None else meta_id(m))
        return np.array(cols, np.intp), np.array(mids, np.int32)

    def row(self, sent: Mapping[str, bytes]) -> np.ndarray:
        """A group's row from its record of sent metas."""
        keys = list(sent)
        cols = list(map(self.index.get, keys))  # (C-level lookups: a seeded group holds every responder's meta)
        if None in cols:
            cols = [self._column(k) for k in keys]
        mids = list(map(self.ids.get, sent.values()))
        if None in mids:
            mids = [self._id(m) for m in sent.values()]
        row = np.full(max(64, len(self.index) * 2), -1, np.int32)
        if cols:
            row[cols] = mids
        return row

    def fit(self, row: np.ndarray) -> np.ndarray:
        """``row`` long enough for every column (new responders unknown)."""
        n = len(self.index)
        if len(row) >= n:
            return row
        grown = np.full(n * 2, -1, np.int32)
        grown[: len(row)] = row
        return grown
