"""The compact encoding of the ``positions`` topic (a subscription's ``"encoding": "compact"``).

Pure: no I/O. A moving responder is sent as a short array instead of a ~380-byte object::

    position: [id, lon, lat, fix_time_ms, speed_mps, heading_deg, accuracy_m, flags, accepted_at_ms]
    meta:     [id, callsign, status, team_id, battery_pct]

- ``lon``/``lat`` rounded to 6 decimals (~0.1 m); ``speed_mps``, ``heading_deg``, ``accuracy_m``
  to 1 decimal; whole numbers are written without a fraction; a missing value is ``null``.
- ``fix_time_ms`` and ``accepted_at_ms``: unix milliseconds (integers).
- ``flags``: bit 0 (1) stale, bit 1 (2) deleted (the responder is gone: remove it; the other
  fields are ``null``).
- ``battery_pct`` in meta: whole percent.

The slow-changing fields (meta) travel in the snapshot, and in a delta only when they differ from
what the subscription group last sent (see :mod:`.groups`), so a moving responder costs ~100
bytes per tick. :func:`expand` turns the pair back into the JSON form's
``data`` (without ``h3``), which is how clients and the tests read it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

POSITION_FIELDS = (
    "id",
    "lon",
    "lat",
    "fix_time_ms",
    "speed_mps",
    "heading_deg",
    "accuracy_m",
    "flags",
    "accepted_at_ms",
)
META_FIELDS = ("id", "callsign", "status", "team_id", "battery_pct")
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
    rid: str,
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
    return _enc.encode(
        [
            rid,
            _trim(lon, 6),
            _trim(lat, 6),
            _ms(fix_time),
            _trim(speed_mps, 1),
            _trim(heading_deg, 1),
            _trim(accuracy_m, 1),
            flags,
            _ms(accepted_at),
        ]
    )


def row_position_array(r: Any) -> bytes:
    """:func:`position_array` of a stored live-position row (``id``, ``lon``, ``lat``, ``fix_time``,
    ``speed_mps``, ``heading_deg``, ``accuracy_m``, ``stale``, ``accepted_at``): snapshots and the live table."""
    return position_array(
        r["id"],
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
    rid: str, callsign: str | None, status: str | None, team_id: str | None, battery_pct: float | None
) -> bytes:
    return _enc.encode([rid, callsign, status, team_id, _trim(battery_pct, 0)])


def encode_change(
    key: str, data: bytes | msgspec.Raw, accepted_at: float, team_id: str | None
) -> tuple[bytes, bytes | None, int | None]:
    """(position, meta, fix_time_ms) of one ``positions`` change whose ``data`` is JSON bytes (a delete
    has no meta and no fix time)."""
    d = _data_dec.decode(data)
    rid = d.id or key
    if d.deleted:
        return position_array(rid, None, None, None, None, None, None, False, accepted_at, True), None, None
    position = position_array(
        rid, d.lon, d.lat, d.fix_time, d.speed_mps, d.heading_deg, d.accuracy_m, d.stale, accepted_at
    )
    return position, meta_array(rid, d.callsign, d.status, team_id, d.battery_pct), _ms(d.fix_time)


def expand(position: list[Any], meta: list[Any] | None = None) -> dict[str, Any]:
    """The JSON form's ``data`` (plus ``team_id``) from a compact position and, when given, its meta."""
    rid, lon, lat, fix_ms, speed, heading, accuracy, flags, _accepted_ms = position
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
        out.update(dict(zip(META_FIELDS[1:], meta[1:], strict=True)))
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
