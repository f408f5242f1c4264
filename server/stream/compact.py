"""The compact encoding of the ``positions`` topic (a subscription's ``"encoding": "compact"``).

Pure: no I/O. A moving responder is sent as a short array instead of a ~380-byte object::

    position: [handle, lon, lat, fix_time_ms, speed_mps, heading_deg, accuracy_m, flags, accepted_after_ms]
    meta:     [id, callsign, status, team_id, battery_pct, handle]

- ``handle``: a small integer standing for the responder's id (a UUID, 38 bytes of JSON, was a third of
  a position). Handles are numbered per worker (:class:`Handles`, from 1, never reused while the
  worker lives), so they are valid on one connection only: a client maps handle → id from the metas
  it received on that connection and starts a new map on a new connection. Every compact meta
  carries its handle, and a viewer always has a responder's meta before a position with its handle
  (a snapshot has the meta of everyone in it and, for an area, of everyone else its group named; a
  replayed delta the meta of everyone in it; a live delta the meta of anyone new to its group, which
  forgets what it sent when a viewer resumes, see :mod:`.groups`).
- ``lon``/``lat`` rounded to 6 decimals (~0.1 m); ``speed_mps``, ``heading_deg``, ``accuracy_m``
  to 1 decimal; whole numbers are written without a fraction; a missing value is ``null``.
- ``fix_time_ms``: unix milliseconds; ``accepted_after_ms``: when the server accepted the fix, in
  milliseconds after ``fix_time_ms`` (a few digits instead of 13); when ``fix_time_ms`` is ``null``
  (a delete) it is the unix milliseconds themselves (see :func:`accepted_ms`).
- ``flags``: bit 0 (1) stale, bit 1 (2) deleted (the responder is gone: remove it; the other
  fields but ``handle`` and the acceptance time are ``null``).
- ``battery_pct`` in meta: whole percent.

The slow-changing fields (meta) travel in the snapshot, and in a delta only when they differ from
what the subscription group last sent (see :mod:`.groups`), so a moving responder costs ~60
bytes per tick. :func:`expand` turns the pair back into the JSON form's
``data`` (without ``h3``), which is how clients and the tests read it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

POSITION_FIELDS = (
    "handle",
    "lon",
    "lat",
    "fix_time_ms",
    "speed_mps",
    "heading_deg",
    "accuracy_m",
    "flags",
    "accepted_after_ms",
)
META_FIELDS = ("id", "callsign", "status", "team_id", "battery_pct", "handle")
FLAG_STALE = 1
FLAG_DELETED = 2
ENCODINGS = ("json", "compact")


class PositionData(msgspec.Struct):
    """The fields of a ``positions`` change's ``data`` that the compact form carries."""

    id: str | None = None
    callsign: str | None = None
    lon: float | None = None
    lat: float | None = None
    fix_time: datetime | None = None
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    battery_pct: float | None = None
    status: str | None = None
    stale: bool = False
    deleted: bool = False


_enc = msgspec.json.Encoder()
_data_dec = msgspec.json.Decoder(PositionData)


class Handles:
    """A small integer per responder id, numbered from 1 in order of first sight and never reused
    (a worker holds one, :data:`HANDLES`: its live table, snapshots and received batches all number
    with it, so a meta and a position of one responder always agree)."""

    __slots__ = ("_of",)

    def __init__(self) -> None:
        self._of: dict[str, int] = {}

    def __call__(self, rid: str) -> int:
        h = self._of.get(rid)
        if h is None:
            h = self._of[rid] = len(self._of) + 1
        return h

    def __len__(self) -> int:
        return len(self._of)


HANDLES = Handles()
"""This worker's handles (one process is one worker)."""


def _trim(value: float | None, digits: int) -> float | int | None:
    if value is None:
        return None
    r = round(value, digits)
    i = int(r)
    return i if i == r else r


def _ms(value: datetime | float | None) -> int | None:
    if value is None:
        return None
    seconds = value.timestamp() if isinstance(value, datetime) else value
    return round(seconds * 1000)


def position_array(
    handle: int,
    lon: float | None,
    lat: float | None,
    fix_time: datetime | None,
    speed_mps: float | None,
    heading_deg: float | None,
    accuracy_m: float | None,
    stale: bool,
    accepted_at: float,
    deleted: bool = False,
) -> bytes:
    flags = (FLAG_STALE if stale else 0) | (FLAG_DELETED if deleted else 0)
    return _array(handle, lon, lat, _ms(fix_time), speed_mps, heading_deg, accuracy_m, flags, accepted_at)


def _array(
    handle: int,
    lon: float | None,
    lat: float | None,
    fix_ms: int | None,
    speed_mps: float | None,
    heading_deg: float | None,
    accuracy_m: float | None,
    flags: int,
    accepted_at: float,
) -> bytes:
    accepted = _ms(accepted_at)
    return _enc.encode(
        [
            handle,
            _trim(lon, 6),
            _trim(lat, 6),
            fix_ms,
            _trim(speed_mps, 1),
            _trim(heading_deg, 1),
            _trim(accuracy_m, 1),
            flags,
            accepted if fix_ms is None or accepted is None else accepted - fix_ms,
        ]
    )


def row_position_array(r: Any, handles: Handles = HANDLES) -> bytes:
    """:func:`position_array` of a stored live-position row (``id``, ``lon``, ``lat``, ``fix_time``,
    ``speed_mps``, ``heading_deg``, ``accuracy_m``, ``stale``, ``accepted_at``): snapshots and the live table."""
    return position_array(
        handles(r["id"]),
        r["lon"],
        r["lat"],
        r["fix_time"],
        r["speed_mps"],
        r["heading_deg"],
        r["accuracy_m"],
        r["stale"],
        r["accepted_at"],
    )


def meta_array(
    rid: str,
    callsign: str | None,
    status: str | None,
    team_id: str | None,
    battery_pct: float | None,
    handles: Handles = HANDLES,
) -> bytes:
    return _enc.encode([rid, callsign, status, team_id, _trim(battery_pct, 0), handles(rid)])


def encode_change(
    key: str, data: bytes | msgspec.Raw, accepted_at: float, team_id: str | None, handles: Handles = HANDLES
) -> tuple[bytes, bytes | None, int | None]:
    """(position, meta, fix_time_ms) of one ``positions`` change whose ``data`` is JSON bytes (a delete
    has no meta and no fix time)."""
    d = _data_dec.decode(data)
    rid = d.id or key
    if d.deleted:
        return position_array(handles(rid), None, None, None, None, None, None, False, accepted_at, True), None, None
    fix_ms = _ms(d.fix_time)
    flags = FLAG_STALE if d.stale else 0
    position = _array(handles(rid), d.lon, d.lat, fix_ms, d.speed_mps, d.heading_deg, d.accuracy_m, flags, accepted_at)
    return position, meta_array(rid, d.callsign, d.status, team_id, d.battery_pct, handles), fix_ms


def accepted_ms(position: list[Any]) -> int | None:
    """A compact position's acceptance time in unix milliseconds (the json form's ``accepted_at`` x 1000)."""
    fix_ms, after = position[3], position[8]
    if after is None:
        return None
    return int(after) if fix_ms is None else int(fix_ms) + int(after)


def ids_of(metas: list[list[Any]]) -> dict[int, str]:
    """Handle → responder id from compact metas (a client keeps this per connection)."""
    return {m[5]: m[0] for m in metas}


def expand(position: list[Any], meta: list[Any] | None = None, rid: str | None = None) -> dict[str, Any]:
    """The JSON form's ``data`` (plus ``team_id``) from a compact position and, when given, its meta
    (the id is the meta's, else ``rid``)."""
    _handle, lon, lat, fix_ms, speed, heading, accuracy, flags, _accepted = position
    if meta is not None:
        rid = meta[0]
    if flags & FLAG_DELETED:
        return {"id": rid, "deleted": True}
    out: dict[str, Any] = {
        "id": rid,
        "lon": lon,
        "lat": lat,
        "fix_time": None
        if fix_ms is None
        else datetime.fromtimestamp(fix_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "speed_mps": speed,
        "heading_deg": heading,
        "accuracy_m": accuracy,
        "stale": bool(flags & FLAG_STALE),
    }
    if meta is not None:
        out.update(dict(zip(META_FIELDS[1:5], meta[1:5], strict=True)))
    return out


def join_parts(items: list[bytes], meta: list[bytes], positions: list[bytes]) -> list[bytes]:
    """:func:`join`'s body fields as pieces to concatenate (see ``viewer.Frame.from_parts``)."""
    return [
        b'"encoding":"compact","items":[',
        b",".join(items),
        b'],"meta":[',
        b",".join(meta),
        b'],"positions":[',
        b",".join(positions),
        b"]",
    ]


def with_metas(body: str, extra: list[bytes]) -> str:
    """A compact body (:func:`join`) with ``extra`` metas appended to its meta list. The meta list is
    the one before the last ``],"positions":[``: only position arrays (numbers, null) follow it, and
    inside a JSON string the quotes would be escaped, so no item or meta can hold that text after it."""
    if not extra:
        return body
    at = body.rfind('],"positions":[')
    if at < 0:
        raise ValueError("not a compact body")
    sep = "" if body[at - 1] == "[" else ","
    return body[:at] + sep + b",".join(extra).decode() + body[at:]


def join(items: list[bytes], meta: list[bytes], positions: list[bytes]) -> str:
    """The body fields of a compact snapshot or delta: ``"encoding":"compact","items":[…],"meta":[…],"positions":[…]``."""
    return (
        b'"encoding":"compact","items":['
        + b",".join(items)
        + b'],"meta":['
        + b",".join(meta)
        + b'],"positions":['
        + b",".join(positions)
        + b"]"
    ).decode()
