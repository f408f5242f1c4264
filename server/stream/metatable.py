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

from collections.abc import Mapping
from typing import Any

import numpy as np

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

    def columns(self, keys: list[str], metas: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
        """Each item's responder column and meta id (0: no meta, e.g. a delete), from the items'
        keys and metas (C-level lookups while every responder and meta is known)."""
        if len(self.ids) >= MAX_IDS:
            self.ids = {}
            self.token = object()
        cols = list(map(self.index.get, keys))
        if None in cols:
            cols = [self._column(k) for k in keys]
        mids = list(map(self.ids.get, metas))  # type: ignore[arg-type]
        if None in mids:
            meta_id = self._id
            mids = [0 if m is None else meta_id(m) for m in metas]
        return np.array(cols, np.intp), np.array(mids, np.int32)

    def row(self, sent: Mapping[str, bytes]) -> np.ndarray:
        """A group's row from its record of sent metas."""
        n = len(sent)
        # C-level lookups (a seeded city box holds ~1,000 metas); a None (not numbered yet) raises.
        try:
            cols = np.fromiter(map(self.index.get, sent), np.intp, n)
        except TypeError:
            cols = np.array([self._column(k) for k in sent], np.intp)
        try:
            mids = np.fromiter(map(self.ids.get, sent.values()), np.int32, n)
        except TypeError:
            mids = np.array([self._id(m) for m in sent.values()], np.int32)
        row = np.full(_capacity(len(self.index)), -1, np.int32)
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


def _capacity(columns: int) -> int:
    return max(64, columns + 256, columns * 5 // 4)


class SlotRows:
    """The meta rows of a router slot's groups as one matrix, each group's row a view of it, so a
    slot tick checks every (group, item) hit with one gather (see ``router.Router._match``). A group
    whose row is not its view here (new, rebuilt after it forgot, or moved from another slot) has
    its current row copied in."""

    __slots__ = ("matrix", "token", "views")

    def __init__(self) -> None:
        self.matrix: np.ndarray | None = None
        self.views: list[np.ndarray | None] = []
        self.token: object = None

    def refresh(self, table: MetaTable, groups: list[Any]) -> np.ndarray:
        columns = len(table.index)
        m = self.matrix
        if m is None or self.token is not table.token or m.shape[0] != len(groups):
            m = self.matrix = np.full((len(groups), _capacity(columns)), -1, np.int32)
            self.views = [None] * len(groups)
            self.token = table.token
        elif m.shape[1] < columns:
            grown = np.full((len(groups), _capacity(columns)), -1, np.int32)
            grown[:, : m.shape[1]] = m
            m = self.matrix = grown
            self.views = [None] * len(groups)
        views, token, width = self.views, table.token, m.shape[1]
        for i, g in enumerate(groups):
            row = g._meta_row
            if row is not None and row is views[i] and g._meta_known is token:
                continue
            if row is None or g._meta_known is not token:
                row = table.row(g._meta_sent)
                g._meta_known = token
            k = min(len(row), width)
            m[i, :k] = row[:k]
            m[i, k:] = -1
            views[i] = g._meta_row = m[i]
        return m
