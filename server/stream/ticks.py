"""Ticks: the coalesced batch of changes one worker publishes, and the frames viewers receive.

Pure: encoding, decoding and coalescing only. Within a tick only the newest change of each
``(topic, key)`` survives; the wire form keeps the scoping metadata (location, team, responders,
public) so every worker can filter for its own viewers, and ``data`` travels as raw JSON so it is
never decoded and re-encoded on the way through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from ..bus import Change
from .compact import encode_change

BBox = tuple[float, float, float, float]


class WireItem(msgspec.Struct, array_like=True):
    topic: str
    key: str
    data: msgspec.Raw
    accepted_at: float
    lon: float | None = None
    lat: float | None = None
    bbox: BBox | None = None
    team_id: str | None = None
    responder_ids: tuple[str, ...] = ()
    public: bool = False


class WireBatch(msgspec.Struct, array_like=True):
    t: float
    """Publish time (unix seconds)."""
    worker: str
    items: list[WireItem]


class ClientItem(msgspec.Struct):
    topic: str
    key: str
    data: msgspec.Raw
    accepted_at: float


_enc = msgspec.json.Encoder()
_batch_dec = msgspec.json.Decoder(WireBatch)


class Item:
    """A received change: its scoping metadata plus its client JSON, encoded once per batch."""

    __slots__ = (
        "accepted_at",
        "bbox",
        "cells",
        "compact",
        "fix_ms",
        "json",
        "key",
        "lat",
        "lon",
        "meta",
        "pcells",
        "plat",
        "plon",
        "public",
        "responder_ids",
        "team_id",
        "topic",
    )

    def __init__(self, w: WireItem) -> None:
        self.topic = w.topic
        self.key = w.key
        self.lon = w.lon
        self.lat = w.lat
        self.bbox = w.bbox
        self.team_id = w.team_id
        self.responder_ids = w.responder_ids
        self.public = w.public
        self.accepted_at = w.accepted_at
        self.json = _enc.encode(ClientItem(w.topic, w.key, w.data, w.accepted_at))
        self.compact: bytes | None = None
        """Positions only: the compact position array (see :mod:`.compact`); other topics stay JSON."""
        self.meta: bytes | None = None
        """Positions only: the compact meta array (callsign, status, team, battery)."""
        self.fix_ms: int | None = None
        """Positions only: the fix time (unix ms; None for a delete)."""
        if w.topic == "positions":
            try:
                self.compact, self.meta, self.fix_ms = encode_change(w.key, w.data, w.accepted_at, w.team_id)
            except (msgspec.ValidationError, msgspec.DecodeError, ValueError, OverflowError):
                pass  # not position-shaped: compact viewers get this item as its json object
        self.cells: dict[int, int] = {}
        """H3 cell of the point per resolution, computed once per batch for cell areas."""
        self.plon: float | None = None
        self.plat: float | None = None
        """The previous point of this ``(topic, key)`` this worker saw (see :class:`PointMemory`): a box or
        cell group that contained it also gets this item, so its viewers see the object leave."""
        self.pcells: dict[int, int] = {}
        """:attr:`cells` of the previous point."""


class PointMemory:
    """The last point seen per ``(topic, key)``, kept per worker: :meth:`apply` sets each item's
    previous point (``plon``/``plat``) before the batch is routed, so an area that held the object's
    previous point sends one last update when it leaves (the client moves it out or drops it).
    Applied in batch order, so over several batches of one tick an object's previous points are the
    point before the tick and every point but its last within it."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._last)

    def clear(self) -> None:
        self._last.clear()

    def apply(self, items: list[Item], position_of: Callable[[str], tuple[float, float] | None] | None = None) -> None:
        """``position_of``: where a responder was before these items when this memory has no point
        for it (the worker's live positions table: its points from before the worker had viewers, or
        from PostgreSQL, are forgotten here, see ``StreamHub._skip``)."""
        last = self._last
        for it in items:
            k = (it.topic, it.key)
            prev = last.get(k)
            if prev is None and position_of is not None and it.topic == "positions":
                prev = position_of(it.key)
            if prev is not None:
                it.plon, it.plat = prev
            if it.lon is not None and it.lat is not None:
                last[k] = (it.lon, it.lat)
            elif prev is not None:
                del last[k]  # deleted (or no longer located): nothing to leave from next time


class Batch:
    __slots__ = ("epoch", "items", "prepared", "seq", "t", "worker")

    def __init__(self, epoch: str, seq: int, t: float, worker: str, items: list[Item]) -> None:
        self.epoch = epoch
        self.seq = seq
        self.t = t
        self.worker = worker
        self.items = items
        self.prepared: Any = None
        """What a router lane computed from this batch once for all its slots (``router.Prepared``)."""


def wire_item(change: Change) -> WireItem:
    return WireItem(
        change.topic,
        change.key,
        msgspec.Raw(_enc.encode(change.data)),
        change.accepted_at,
        change.lon,
        change.lat,
        change.bbox,
        change.team_id,
        tuple(change.responder_ids),
        change.public,
    )


def encode_batch(changes: list[Change], worker: str, t: float | None = None) -> bytes:
    return _enc.encode(WireBatch(time.time() if t is None else t, worker, [wire_item(c) for c in changes]))


def decode_batch(epoch: str, seq: int, payload: bytes) -> Batch:
    wire = _batch_dec.decode(payload)
    return Batch(epoch, seq, wire.t, wire.worker, [Item(w) for w in wire.items])


class Coalescer:
    """Keeps only the newest change per (topic, key) until drained."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], Change] = {}

    def add(self, changes: list[Change]) -> None:
        pending = self._pending
        for c in changes:
            pending[(c.topic, c.key)] = c

    def __len__(self) -> int:
        return len(self._pending)

    def drain(self) -> list[Change]:
        out = list(self._pending.values())
        self._pending = {}
        return out


def delta_frame(epoch: str, seq: int, items: list[bytes], sent_at: float | None = None) -> str:
    """One delta message; built from pre-encoded items, so a frame costs one join."""
    return delta_frame_body(epoch, seq, '"items":[' + b",".join(items).decode() + "]", sent_at)


def delta_frame_body(epoch: str, seq: int, body: str, sent_at: float | None = None) -> str:
    """One delta message around pre-joined body fields (``"items":[…]`` or the compact fields)."""
    head = (
        f'{{"type":"delta","epoch":"{epoch}","seq":{seq},"sent_at":{time.time() if sent_at is None else sent_at:.6f},'
    )
    return head + body + "}"


def delta_frame_head(epoch: str, seq: int, sent_at: float | None = None) -> bytes:
    """:func:`delta_frame_body`'s opening, as bytes (the body fields and ``}`` follow)."""
    return (
        f'{{"type":"delta","epoch":"{epoch}","seq":{seq},"sent_at":{time.time() if sent_at is None else sent_at:.6f},'
    ).encode()


def message(obj: dict[str, Any]) -> str:
    return _enc.encode(obj).decode()
