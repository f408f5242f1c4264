"""Subscription groups: viewers with the same topics, area, rate, scope and encoding share one group.

A group filters each received batch once, coalesces what passes (newest state per
``(topic, key)``), and at most ``rate`` times a second encodes one delta frame that every member
receives as the same string. A ``compact`` group (see :mod:`.compact`) sends positions as arrays
and a responder's meta only when it differs from what the group last sent; the record of what
was sent is forgotten whenever a snapshot is read for the group (and, for bbox and cell areas,
whenever a viewer joins; for any area, whenever a viewer resumes), so every member has the meta
(and so the handle, see :mod:`.compact`) of every responder whose position it receives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import compact
from .area import Area
from .metatable import MetaTable
from .scope import Scope
from .ticks import Batch, Item, delta_frame_body, delta_frame_head
from .viewer import Frame, ViewerSub

GroupKey = tuple[Any, ...]


class TickItems:
    """A router lane's tick: its items (newest per ``(topic, key)``, in the router's spatial order) and,
    per item, what frames are built from, as parallel lists (see :meth:`Group.flush_tick`)."""

    __slots__ = (
        "_is_compact",
        "_joined",
        "all_compact",
        "compact",
        "items",
        "json",
        "keys",
        "metas",
        "mids",
        "rcols",
        "table",
    )

    def __init__(self, items: list[Item], table: MetaTable | None = None, lists: tuple[Any, ...] | None = None) -> None:
        """``lists``: the items' keys, json, compact, metas, responder columns and meta ids, already
        gathered (see ``lanedata.Prepared``)."""
        self.items = items
        self.table = table
        """The worker's meta numbering (compact ticks): each item's responder column and meta id."""
        self.rcols: np.ndarray | None = None
        self.mids: np.ndarray | None = None
        if lists is not None:
            self.keys, self.json, self.compact, self.metas, self.rcols, self.mids = lists
        else:
            self.keys = [it.key for it in items]
            self.json = [it.json for it in items]
            self.compact = [it.compact for it in items]
            self.metas = [it.meta for it in items]
            if table is not None:
                self.rcols, self.mids = table.columns(self.keys, self.metas)
        self.all_compact = None not in self.compact
        self._joined: tuple[memoryview, np.ndarray] | None = None
        self._is_compact: np.ndarray | None = None

    @property
    def is_compact(self) -> np.ndarray:
        """Per item, whether it has a compact position (a fence event with a point has not)."""
        if self._is_compact is None:
            self._is_compact = np.fromiter((c is not None for c in self.compact), bool, len(self.compact))
        return self._is_compact

    def compact_at(self, at: Any) -> bool:
        """Every item at ``at`` (a bool mask or indices) has a compact position."""
        return self.all_compact or bool(self.is_compact[at].all())

    @property
    def joined(self) -> tuple[memoryview, np.ndarray]:
        """Every compact position after a comma, joined once (``,p0,p1,…``), and where each starts
        (``n + 1`` offsets): the positions of items ``a..b-1`` are one slice (built on first use)."""
        if self._joined is None:
            compact: list[bytes] = self.compact
            if not self.all_compact:  # (items without one are in no frame's runs)
                compact = [b"" if c is None else c for c in compact]
            n = len(compact)
            offsets = np.zeros(n + 1, np.int64)
            np.cumsum(np.fromiter(map(len, compact), np.int64, n) + 1, out=offsets[1:])
            self._joined = (memoryview(b"," + b",".join(compact) if compact else b""), offsets)
        return self._joined

    def position_slices(self, at: np.ndarray) -> list[memoryview]:
        """The compact positions of items ``at`` (ascending), comma-separated, as slices of
        :attr:`joined`: one per run of consecutive items (a box's items are a few runs, as the router
        orders a tick's points in strips of longitude, by latitude within each)."""
        buf, offsets = self.joined
        n = len(at)
        if n == 0:
            return []
        starts = np.empty(n, bool)
        starts[0] = True
        np.not_equal(at[1:], at[:-1] + 1, out=starts[1:])
        ends = np.empty(n, bool)
        ends[:-1] = starts[1:]
        ends[-1] = True
        a = offsets[at[starts]].tolist()
        b = offsets[at[ends] + 1].tolist()
        a[0] += 1  # the first position has no comma before it
        return [buf[x:y] for x, y in zip(a, b, strict=True)]


SNAPSHOT_SHARE_S = 1.0
"""How long after it is read a group's snapshot is handed to more joining viewers."""


class SnapshotShare:
    """One snapshot read for a group at ``(epoch, seq)``, shared by every viewer that joins while it
    is read or within :data:`SNAPSHOT_SHARE_S` after: they all get it, then the group's frames
    flushed since (recorded here), then their own held frames. A reconnect storm costs one query
    and one encoding per group, not one per viewer."""

    __slots__ = ("body", "epoch", "expires", "frames", "future", "metas", "seed", "seq", "truncated")

    def __init__(
        self,
        epoch: str,
        seq: int,
        future: asyncio.Future[tuple[str, bool, dict[str, bytes]]],
        seed: Group | None = None,
    ) -> None:
        self.epoch = epoch
        self.seq = seq
        self.future = future
        self.seed = seed
        """A new group's first snapshot: its compact meta is what every member knows (see ``seed_meta``)."""
        self.frames: list[Frame] = []
        self.expires = float("inf")
        self.body: str | None = None
        self.truncated = False
        self.metas: dict[str, bytes] = {}
        """The snapshot's compact metas (per responder in it)."""

    def usable(self, epoch: str) -> bool:
        return self.epoch == epoch and time.monotonic() < self.expires

    async def result(self) -> tuple[str, bool]:
        """The snapshot's body fields (encoded once) and whether the snapshot was truncated."""
        body, truncated, metas = await asyncio.shield(self.future)
        if self.body is None:
            self.body = body
            self.truncated = truncated
            self.metas = metas
            if self.seed is not None:
                self.seed.seed_meta(metas)
                self.seed = None
            self.expires = time.monotonic() + SNAPSHOT_SHARE_S
        return self.body, self.truncated


def group_key(topics: frozenset[str], area: Area, rate_hz: float, scope: Scope, encoding: str = "json") -> GroupKey:
    return (tuple(sorted(topics)), area.key(), round(rate_hz, 3), scope.key(), encoding)


def body_fields(items: list[Item], encoding: str, meta_sent: dict[str, bytes] | None = None) -> str:
    """A frame's body fields for ``items`` in ``encoding``. Compact: with ``meta_sent`` (what the group
    last sent per responder, updated here), only the metas that differ from it; without, every meta."""
    if encoding == "json":
        return '"items":[' + b",".join([it.json for it in items]).decode() + "]"
    other = [it.json for it in items if it.compact is None]
    positions = [it.compact for it in items if it.compact is not None]
    meta: list[bytes] = []
    if meta_sent is None:
        meta = [it.meta for it in items if it.meta is not None]
    else:
        # Steady state: nothing changed, one comprehension.
        for it in [it for it in items if meta_sent.get(it.key) != it.meta and it.meta is not None]:
            meta_sent[it.key] = it.meta  # type: ignore[assignment]
            meta.append(it.meta)  # type: ignore[arg-type]
    return compact.join(other, meta, positions)


class Group:
    def __init__(
        self,
        key: GroupKey,
        topics: frozenset[str],
        area: Area,
        rate_hz: float,
        scope: Scope,
        epoch: Callable[[], str],
        on_frames: Callable[[int], None] | None = None,
        encoding: str = "json",
    ) -> None:
        self.key = key
        self.topics = topics
        self.area = area
        self.rate_hz = rate_hz
        self.interval = 1.0 / rate_hz
        self.scope = scope
        self.members: set[ViewerSub] = set()
        self._epoch = epoch
        self._on_frames = on_frames
        self.encoding = encoding
        self._meta_sent: dict[str, bytes] = {}
        """compact: per responder, the meta this group last sent (since it last forgot)."""
        self._meta_known: object | None = None
        """The :class:`.metatable.MetaTable` token while ``_meta_row`` matches ``_meta_sent`` (None: rebuild)."""
        self._meta_row: np.ndarray | None = None
        """Per responder column, the id of the meta last sent (see :mod:`.metatable`)."""
        self.snapshots = 0
        """Snapshot reads started for this group."""
        self.meta_canon: dict[str, bytes] = {}
        """The worker's latest meta object per responder (see ``StreamHub._deliver``): seeds use these
        objects, so thousands of groups keep references to one bytes object, not a copy each."""
        self._pending: dict[tuple[str, str], Item] = {}
        self._pending_seq = 0
        self._last_flush = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.share: SnapshotShare | None = None

    def visible(self, item: Item) -> bool:
        """Topic and scope allow ``item`` (wherever it is)."""
        return item.topic in self.topics and self.scope.allows(
            item.topic, item.key, item.team_id, item.responder_ids, item.public
        )

    def matches(self, item: Item) -> bool:
        """Visible and in the area: its point (or bbox) is, or its previous point was (it left the
        area: one last update so the viewer moves it out)."""
        if not self.visible(item):
            return False
        area = self.area
        if area.matches(item.lon, item.lat, item.bbox, item.cells):
            return True
        return (
            item.plon is not None and item.plat is not None and area.contains_point(item.plon, item.plat, item.pcells)
        )

    def filter(self, batch: Batch) -> list[Item]:
        return [item for item in batch.items if self.matches(item)]

    def add(self, sub: ViewerSub, resuming: bool = False) -> None:
        """A viewer joins. Its snapshot holds the meta of every responder in the area and (bbox and
        cell areas) of every other one this group has sent (see :meth:`metas_outside`), so the group
        goes on sending a meta only when it changes: a join costs the other members nothing. A
        resuming viewer gets no snapshot, only the replayed deltas (with the meta of each responder
        in them), and compact handles are valid on one connection only, so the group forgets then
        and sends each responder's meta again on its next appearance."""
        self.members.add(sub)
        if resuming:
            self.forget_meta()

    def forget_meta(self) -> None:
        self._meta_sent.clear()
        self._meta_known = None

    def snapshot_started(self) -> bool:
        """A snapshot read for this group begins; True for the group's first (see ``seed_meta``)."""
        self.snapshots += 1
        return self.snapshots == 1

    def metas_outside(self, snapshot_metas: dict[str, bytes]) -> list[bytes]:
        """Compact bbox/cell groups: the metas this group has sent that a snapshot holding
        ``snapshot_metas`` lacks (responders outside the area now). A joining viewer gets them with
        its snapshot: the group sends a responder's meta once and then only when it changes, so
        without them a responder coming back into the area would reach the newcomer as a handle it
        never learned. Metas sent after the snapshot's position reach it in the frames it is handed."""
        if self.encoding != "compact" or self.area.everywhere:
            return []
        return [m for rid, m in self._meta_sent.items() if rid not in snapshot_metas]

    def seed_meta(self, metas: dict[str, bytes]) -> None:
        """The group's first snapshot has been read: its first members know these metas, so a
        responder's first delta needs no meta unless it changed (kept entries were sent in frames
        after the read began, which every member receives, so they win)."""
        sent, canon = self._meta_sent, self.meta_canon
        self._meta_known = None
        if not sent and getattr(metas, "canonical", False):
            sent.update(metas)  # the live table's: the shared objects already (see livetable.CanonicalMetas)
            return
        for rid, meta in metas.items():
            shared = canon.get(rid)
            sent.setdefault(rid, shared if shared == meta else meta)

    def offer(self, batch: Batch) -> None:
        """Take a received batch: keep what this group sees, flush now or when the rate allows."""
        pending = self._pending
        taken = False
        for item in batch.items:
            k = (item.topic, item.key)
            # An object already pending this tick keeps its newest state even where that no longer
            # matches (it left the area within the tick), as a router lane coalesces before it filters.
            if self.matches(item) or (k in pending and self.visible(item)):
                pending[k] = item
                taken = True
        if taken:
            self.taken(batch.seq)

    def offer_pairs(self, seq: int, pairs: Any) -> None:
        """Take pre-matched ``((topic, key), item)`` pairs (see :mod:`.router`)."""
        self._pending.update(pairs)
        self.taken(seq)

    def take(self, seq: int, pairs: Any) -> None:
        """Take pre-matched pairs without scheduling a flush (the router's lanes flush on their tick)."""
        self._pending.update(pairs)
        self._pending_seq = seq

    def taken(self, seq: int) -> None:
        """Something new is pending as of batch ``seq``: flush now or when the rate allows."""
        self._pending_seq = seq
        if self._timer is not None:
            return
        wait = self._last_flush + self.interval - time.monotonic()
        if wait <= 0:
            self.flush()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        self._timer = None
        if not self._pending:
            return
        items = list(self._pending.values())
        self._pending = {}
        self._meta_known = None
        self._emit(self._pending_seq, body_fields(items, self.encoding, self._meta_sent))

    def flush_tick(self, seq: int, tick: TickItems, at: np.ndarray, head: bytes | None = None) -> None:
        """Send the frame of a router lane's tick: the tick's items at ``at`` (ascending; newest per
        key already), with the body :func:`body_fields` builds (positions in tick order). Compact:
        no Python call per item while every meta is one the group already sent (one gather and
        comparison of meta ids, see :mod:`.metatable`), and the positions are a few slices of the
        tick's joined positions. ``head``: the frame's opening (:func:`.ticks.delta_frame_head`),
        shared by a tick's frames."""
        if head is None:
            head = delta_frame_head(self._epoch(), seq)
        if self.encoding == "json":
            self._send(
                Frame.from_parts(
                    "delta", seq, [head, b'"items":[', b",".join(map(tick.json.__getitem__, at.tolist())), b"]}"]
                )
            )
            return
        table = tick.table
        if table is not None and tick.compact_at(at):
            assert tick.rcols is not None and tick.mids is not None
            row = self._meta_row
            if row is None or self._meta_known is not table.token:
                row = table.row(self._meta_sent)
                self._meta_known = table.token
            rc = tick.rcols[at]
            if len(row) < len(table.index):
                row = table.fit(row)
            self._meta_row = row
            meta: list[bytes] = []
            unsent = (row[rc] != tick.mids[at]).nonzero()[0]
            if len(unsent):
                # Some responder entered the box or changed its meta (or a delete): just those.
                sent, metas, keys, mids = self._meta_sent, tick.metas, tick.keys, tick.mids
                for j, c in zip(unsent.tolist(), at[unsent].tolist(), strict=True):
                    m = metas[c]
                    if m is None:
                        continue  # a delete
                    if sent.get(keys[c]) != m:
                        sent[keys[c]] = m
                        meta.append(m)
                    row[rc[j]] = mids[c]
            # compact.join_parts([], meta, positions), joined once with the rest of the frame.
            parts: list[Any] = [
                head,
                b'"encoding":"compact","items":[],"meta":[',
                b",".join(meta),
                b'],"positions":[',
                *tick.position_slices(at),
                b"]}",
            ]
            self._send(Frame.from_parts("delta", seq, parts))
            return
        self._meta_known = None
        self._emit(seq, body_fields([tick.items[c] for c in at.tolist()], self.encoding, self._meta_sent))

    def send_positions(
        self, seq: int, head: bytes, meta: list[bytes] | None, positions: list[memoryview], now: float | None = None
    ) -> bool:
        """A compact frame of positions already joined in pieces (a router slot's plan: the metas to
        send, already recorded as sent, and byte ranges of its tick's joined positions).

        With ``now`` (``time.monotonic()`` of the caller's turn), a group of one member sharing no
        snapshot (a viewer with its own box) hands the frame straight to it and returns True: the
        caller counts the frame (one ``on_frames`` call per turn, not per frame). The member still
        takes it as :meth:`_send` would (held while its snapshot is prepared, queued or dropped by
        its viewer's bound when its socket is not writable)."""
        parts: list[Any] = [
            head,
            b'"encoding":"compact","items":[],"meta":[',
            b",".join(meta) if meta else b"",
            b'],"positions":[',
            *positions,
            b"]}",
        ]
        frame = Frame.from_parts("delta", seq, parts)
        members = self.members
        if now is not None and len(members) == 1 and self.share is None:
            for sub in members:
                sub.deliver(frame)
            self._last_flush = now
            return True
        self._send(frame)
        return False

    def _emit(self, seq: int, body: str) -> None:
        self._send(Frame("delta", seq, delta_frame_body(self._epoch(), seq, body)))

    def _emit_parts(self, seq: int, body: list[bytes]) -> None:
        """:meth:`_emit` for body fields given as byte pieces: one join into the WebSocket frame."""
        body.insert(0, delta_frame_head(self._epoch(), seq))
        body.append(b"}")
        self._send(Frame.from_parts("delta", seq, body))

    def _send(self, frame: Frame) -> None:
        self._last_flush = time.monotonic()
        for sub in list(self.members):
            sub.deliver(frame)
        share = self.share
        if share is not None:
            if time.monotonic() < share.expires:
                share.frames.append(frame)
            else:
                self.share = None
        if self._on_frames is not None:
            self._on_frames(len(self.members))

    def replay_frame(self, batch: Batch) -> Frame | None:
        """A missed batch for a resuming viewer (compact: with every position's meta)."""
        items = self.filter(batch)
        if not items:
            return None
        return Frame("delta", batch.seq, delta_frame_body(batch.epoch, batch.seq, body_fields(items, self.encoding)))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = {}
        self._meta_sent = {}
        self._meta_known = None
        self.share = None
