"""Client messages of the stream protocol, parsed and validated without I/O.

Every problem raises :class:`StreamError` with a stable ``code`` the client can switch on; the
connection answers with an ``error`` message and stays open (see ``docs/stream.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import h3.api.basic_int as h3i
import msgspec

from ..bus import TOPICS
from ..settings import StreamSettings
from .area import Area, cells_envelope
from .compact import ENCODINGS

MAX_MESSAGE_BYTES = 256 * 1024
CLIENT_TYPES = ("subscribe", "unsubscribe", "resume", "ping")


class StreamError(Exception):
    def __init__(self, code: str, message: str, *, id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id

    def to_message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: str
    topics: frozenset[str]
    area: Area
    max_rate_hz: float
    epoch: str | None = None
    from_seq: int | None = None
    encoding: str = "json"
    """How ``positions`` items are written: ``json`` objects or ``compact`` arrays (see ``.compact``)."""


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: str


@dataclass(frozen=True, slots=True)
class Resume:
    epoch: str
    from_seq: int


@dataclass(frozen=True, slots=True)
class Ping:
    id: str | None


ClientMessage = Subscribe | Unsubscribe | Resume | Ping

_decoder = msgspec.json.Decoder()


def parse_message(raw: str | bytes, settings: StreamSettings) -> ClientMessage:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise StreamError("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise StreamError("bad_json", f"message is not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise StreamError("invalid_message", "a message is a JSON object with a `type`")
    kind = msg.get("type")
    mid = msg.get("id")
    if mid is not None and (not isinstance(mid, str) or not 0 < len(mid) <= 64):
        raise StreamError("invalid_message", "`id` must be a string of 1..64 characters")
    if kind == "subscribe":
        return parse_subscribe(msg, settings)
    if kind == "unsubscribe":
        if mid is None:
            raise StreamError("invalid_message", "`unsubscribe` needs the subscription `id`")
        return Unsubscribe(mid)
    if kind == "resume":
        epoch, from_seq = _position(msg.get("epoch"), msg.get("from_seq"), mid)
        if epoch is None or from_seq is None:
            raise StreamError("invalid_message", "`resume` needs `epoch` and `from_seq`", id=mid)
        return Resume(epoch, from_seq)
    if kind == "ping":
        return Ping(mid)
    raise StreamError(
        "unknown_type", f"unknown message type {kind!r}; expected one of {', '.join(CLIENT_TYPES)}", id=mid
    )


def _position(epoch: Any, from_seq: Any, mid: str | None) -> tuple[str | None, int | None]:
    if epoch is None and from_seq is None:
        return None, None
    if not isinstance(epoch, str) or not 0 < len(epoch) <= 64:
        raise StreamError("invalid_message", "`epoch` must be the string the server sent", id=mid)
    if isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 0:
        raise StreamError("invalid_message", "`from_seq` must be a non-negative integer", id=mid)
    return epoch, from_seq


def parse_subscribe(msg: dict[str, Any], settings: StreamSettings) -> Subscribe:
    mid = msg.get("id") or "default"
    unknown = set(msg) - {"type", "id", "topics", "bbox", "cells", "max_rate_hz", "epoch", "from_seq", "encoding"}
    if unknown:
        raise StreamError("invalid_message", f"unknown fields: {', '.join(sorted(unknown))}", id=mid)
    topics = parse_topics(msg.get("topics"), mid)
    area = parse_area(msg.get("bbox"), msg.get("cells"), settings, mid)
    rate = msg.get("max_rate_hz", settings.stream_max_rate_hz)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate or not math.isfinite(rate):
        raise StreamError("invalid_message", "`max_rate_hz` must be a positive number", id=mid)
    rate = min(float(rate), settings.stream_max_rate_hz)
    epoch, from_seq = _position(msg.get("epoch"), msg.get("from_seq"), mid)
    encoding = msg.get("encoding", "json")
    if encoding not in ENCODINGS:
        raise StreamError("invalid_message", f"`encoding` must be one of {', '.join(ENCODINGS)}", id=mid)
    return Subscribe(mid, topics, area, rate, epoch, from_seq, encoding)


def parse_topics(raw: Any, mid: str | None) -> frozenset[str]:
    if raw is None:
        raise StreamError("invalid_message", "`topics` is required (a list of topic names)", id=mid)
    if isinstance(raw, str):
        raw = [t for t in raw.split(",") if t]
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise StreamError("invalid_message", "`topics` must be a non-empty list of strings", id=mid)
    bad = [t for t in raw if t not in TOPICS]
    if bad:
        raise StreamError("unknown_topic", f"unknown topics {bad}; topics are {', '.join(TOPICS)}", id=mid)
    return frozenset(raw)


def parse_area(bbox: Any, cells: Any, settings: StreamSettings, mid: str | None) -> Area:
    if bbox is not None and cells is not None:
        raise StreamError("invalid_area", "give either `bbox` or `cells`, not both", id=mid)
    if bbox is not None:
        return Area(bbox=snap_bbox(parse_bbox(bbox, settings, mid), settings.stream_bbox_grid))
    if cells is not None:
        parsed = parse_cells(cells, settings, mid)
        return Area(cells=parsed, envelope=cells_envelope(parsed))
    return Area()


def parse_bbox(raw: Any, settings: StreamSettings, mid: str | None) -> tuple[float, float, float, float]:
    if isinstance(raw, str):
        try:
            raw = [float(p) for p in raw.split(",")]
        except ValueError:
            raise StreamError("invalid_area", "bbox must be min_lon,min_lat,max_lon,max_lat", id=mid) from None
    if (
        not isinstance(raw, list)
        or len(raw) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
        or not all(math.isfinite(v) for v in raw)
    ):
        raise StreamError("invalid_area", "bbox must be [min_lon, min_lat, max_lon, max_lat] numbers", id=mid)
    min_lon, min_lat, max_lon, max_lat = (float(v) for v in raw)
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180 and -90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise StreamError("invalid_area", "bbox coordinates out of range (lon ±180, lat ±90)", id=mid)
    if min_lat > max_lat:
        raise StreamError("invalid_area", "bbox min_lat is above max_lat", id=mid)
    if min_lon > max_lon:
        raise StreamError(
            "invalid_area", "bbox min_lon is east of max_lon (split areas across the antimeridian)", id=mid
        )
    if (max_lon - min_lon) * (max_lat - min_lat) > settings.stream_max_bbox_deg2:
        raise StreamError(
            "area_too_large",
            f"bbox covers more than {settings.stream_max_bbox_deg2:g} square degrees; "
            "omit the area to follow everything",
            id=mid,
        )
    return (min_lon, min_lat, max_lon, max_lat)


def snap_bbox(bbox: tuple[float, float, float, float], grid: int) -> tuple[float, float, float, float]:
    """``bbox`` widened outward to a grid of ``2**k`` degrees, the coarsest no larger than 1/``grid`` of
    its longer side: viewers of nearly the same view (the same zoom, panned a little) then have the
    same area, so they share one group, and each tick's frame is built once for all of them, as map
    tiles are. Each edge moves out by less than one step (at most 1/``grid`` of the longer side; a city
    view ~10 km across gains under ~1.3 km a side). Powers of two are exact in binary, so equal
    snapped boxes compare equal. ``grid`` 0 (or a point) leaves the bbox as it is."""
    span = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    if grid <= 0 or span <= 0:
        return bbox
    step = 2.0 ** math.floor(math.log2(span / grid))
    return (
        max(-180.0, math.floor(bbox[0] / step) * step),
        max(-90.0, math.floor(bbox[1] / step) * step),
        min(180.0, math.ceil(bbox[2] / step) * step),
        min(90.0, math.ceil(bbox[3] / step) * step),
    )


def parse_cells(raw: Any, settings: StreamSettings, mid: str | None) -> frozenset[int]:
    if not isinstance(raw, list) or not raw:
        raise StreamError("invalid_area", "`cells` must be a non-empty list of H3 cell strings", id=mid)
    if len(raw) > settings.stream_max_cells:
        raise StreamError("area_too_large", f"at most {settings.stream_max_cells} cells per subscription", id=mid)
    out: set[int] = set()
    for item in raw:
        try:
            cell = int(item, 16) if isinstance(item, str) else -1
        except ValueError:
            cell = -1
        if cell < 0 or not h3i.is_valid_cell(cell):
            raise StreamError("invalid_area", f"{item!r} is not an H3 cell", id=mid)
        out.add(cell)
    return frozenset(out)
