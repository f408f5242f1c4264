"""Ingest orchestration: who may post for whom, per-item validation, dedup, then the group commit.

Used by the three ingest paths (batch JSON, OsmAnd/Traccar, WebSocket). Items that fail a check
are rejected with a reason; the valid rest is stored exactly once (duplicates are acknowledged as
``duplicate``, never stored twice).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec

from ..devices.auth import DeviceIdentity
from ..errors import Forbidden, InvalidInput, Unauthorized
from ..permissions import allowed
from ..security import Principal
from .batcher import IngestBatcher
from .directory import ResponderDirectory
from .fixes import MAX_BATCH, Fix, FixChecker, FixIn, Limits, Rejected
from .osmand import OsmandFix

if TYPE_CHECKING:
    from ..runtime import Runtime


# The answer's structs hold no cycles: not tracked by the cyclic GC (see fixes.Fix).
class AcceptedItem(msgspec.Struct, kw_only=True, gc=False):
    index: int
    status: str
    """``stored`` or ``duplicate``."""
    flags: tuple[str, ...] = ()
    client_id: str | None = None


class RejectedItem(msgspec.Struct, kw_only=True, gc=False):
    index: int
    reason: str
    detail: str = ""
    client_id: str | None = None


class BatchResult(msgspec.Struct, kw_only=True, gc=False):
    accepted: list[AcceptedItem]
    rejected: list[RejectedItem]


_item_decoder = msgspec.json.Decoder(FixIn)
_fix_list = msgspec.json.Decoder(list[FixIn])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_POOR_ACCURACY = ("poor_accuracy",)
_directory = ResponderDirectory()


def limits_of(runtime: Runtime) -> Limits:
    s = runtime.settings
    return Limits(s.ingest.max_future_s, s.db.retention_days, s.ingest.poor_accuracy_m)


# One-fix requests (OsmAnd) arrive thousands of times a second: they share a checker made at most
# _CHECKER_REUSE_S ago (its "now" is that old: the future limit is that much stricter, accepted_at that
# much earlier) instead of computing the time window per request.
_CHECKER_REUSE_S = 0.002
_recent: dict[int, FixChecker] = {}  # id(runtime) -> its latest checker


def _recent_checker(runtime: Runtime) -> FixChecker:
    checker = _recent.get(id(runtime))
    if checker is None or time.time() - checker.accepted_at > _CHECKER_REUSE_S:
        checker = _recent[id(runtime)] = FixChecker(limits_of(runtime))
    return checker


def batcher_of(runtime: Runtime) -> IngestBatcher:
    return runtime.get("ingest")  # type: ignore[no-any-return]


class Caller(msgspec.Struct, kw_only=True):
    """Who posts fixes: a user principal or a device."""

    principal: Principal | None = None
    device: DeviceIdentity | None = None


async def caller_for(runtime: Runtime, principal: Any, device_token: str | None) -> Caller:
    if isinstance(principal, Principal):
        if not allowed(principal.role, "positions:write"):
            raise Forbidden(f"role {principal.role!r} may not positions:write")
        return Caller(principal=principal)
    if device_token:
        return Caller(device=await runtime.device_auth.resolve(runtime.pool, device_token))
    raise Unauthorized("a device token or an access token is required")


def _responder_for(caller: Caller, requested: uuid.UUID | None) -> uuid.UUID:
    if caller.device is not None:
        if requested is not None and requested != caller.device.responder_id:
            raise Rejected("forbidden_responder", "a device posts only for its own responder")
        return caller.device.responder_id
    principal = caller.principal
    assert principal is not None
    if principal.role == "responder":
        own = principal.responder_id
        if own is None:
            raise Rejected("forbidden_responder", "this user is not a responder")
        if requested is not None and requested != own:
            raise Rejected("forbidden_responder", "a responder posts only for themself")
        return own
    if requested is None:
        raise Rejected("missing_responder", "responder_id is required")
    return requested


def decode_items(body: bytes) -> list[FixIn] | list[msgspec.Raw]:
    """The batch's items: decoded in one pass when every item is valid, else one raw item each
    (so an invalid item is rejected alone, with its reason, and the rest still goes in)."""
    items: list[FixIn] | list[msgspec.Raw]
    try:
        items = _fix_list.decode(body)
    except msgspec.ValidationError:
        items = _raw_items(body)
    except msgspec.DecodeError as exc:
        raise InvalidInput("malformed JSON", errors=[{"field": "body", "message": str(exc)}]) from exc
    if len(items) > MAX_BATCH:
        raise InvalidInput(
            f"at most {MAX_BATCH} fixes per batch",
            errors=[{"field": "body", "message": f"{len(items)} fixes; the limit is {MAX_BATCH}"}],
        )
    return items


def _raw_items(body: bytes) -> list[msgspec.Raw]:
    try:
        return _raw_list.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInput("expected a JSON array of fixes", errors=[{"field": "body", "message": str(exc)}]) from exc
    except msgspec.DecodeError as exc:
        raise InvalidInput("malformed JSON", errors=[{"field": "body", "message": str(exc)}]) from exc


async def ingest_items(
    runtime: Runtime, caller: Caller, items: Sequence[msgspec.Raw | bytes | FixIn], *, source: str = "api"
) -> BatchResult:
    check = FixChecker(limits_of(runtime)).build
    device_id = caller.device.device_id if caller.device else None
    own = caller.device.responder_id if caller.device else None
    rejected: list[RejectedItem] = []
    indices: list[int] = []
    valid: list[Fix] = []
    for index, raw in enumerate(items):
        client_id = None
        try:
            item = raw if type(raw) is FixIn else _item_decoder.decode(raw)  # type: ignore[arg-type]
            client_id = item.client_id
            requested = item.responder_id
            responder_id = (
                own
                if own is not None and (requested is None or requested == own)
                else _responder_for(caller, requested)
            )
            fix = _checked(check, responder_id, item, item.source or source, device_id, client_id)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            rejected.append(RejectedItem(index=index, reason="invalid_item", detail=str(exc)))
            continue
        except Rejected as exc:
            rejected.append(RejectedItem(index=index, reason=exc.reason, detail=exc.detail, client_id=client_id))
            continue
        indices.append(index)
        valid.append(fix)
    known = {caller.device.responder_id: caller.device.team_id} if caller.device else None
    return await _commit(runtime, indices, valid, rejected, known=known)


async def ingest_osmand(runtime: Runtime, device: DeviceIdentity, fixes: Sequence[OsmandFix]) -> BatchResult:
    check = _recent_checker(runtime).build
    if len(fixes) == 1:
        # The usual tracker request: what _commit would do for one fix of a known responder, without
        # its per-request sets and lists (thousands of requests a second).
        item = fixes[0]
        try:
            fix = _osmand_fix(check, device, item)
        except Rejected as exc:
            return BatchResult(accepted=[], rejected=[RejectedItem(index=0, reason=exc.reason, detail=exc.detail)])
        (status,) = await batcher_of(runtime).submit((fix,), {device.responder_id})
        flags = _POOR_ACCURACY if fix.poor_accuracy else ()
        return BatchResult(accepted=[AcceptedItem(index=0, status=status, flags=flags)], rejected=[])
    rejected: list[RejectedItem] = []
    indices: list[int] = []
    valid: list[Fix] = []
    for index, item in enumerate(fixes):
        try:
            fix = _osmand_fix(check, device, item)
        except Rejected as exc:
            rejected.append(RejectedItem(index=index, reason=exc.reason, detail=exc.detail))
            continue
        indices.append(index)
        valid.append(fix)
    # The device's identity already names its responder (and team): no directory lookup.
    return await _commit(runtime, indices, valid, rejected, known={device.responder_id: device.team_id})


def _osmand_fix(check: Callable[..., Fix], device: DeviceIdentity, item: OsmandFix) -> Fix:
    """One OsmAnd/Traccar fix of ``device``, checked by ``check`` (a :meth:`FixChecker.build`); raises :class:`Rejected`."""
    return _checked(check, device.responder_id, item, "osmand", device.device_id, None, item.attributes or None)


def _checked(
    check: Callable[..., Fix],
    responder_id: uuid.UUID,
    item: FixIn | OsmandFix,
    source: str,
    device_id: uuid.UUID | None,
    client_id: str | None,
    attributes: dict[str, Any] | None = None,
) -> Fix:
    """``item``'s fix fields (a JSON item or an OsmAnd fix: the same names) through ``check`` (a
    :meth:`FixChecker.build`); raises :class:`Rejected`."""
    return check(
        responder_id,
        item.fix_time,
        item.lon,
        item.lat,
        item.accuracy_m,
        item.speed_mps,
        item.heading_deg,
        item.altitude_m,
        item.battery_pct,
        source,
        device_id,
        client_id,
        attributes,
    )


async def _commit(
    runtime: Runtime,
    indices: list[int],
    valid: list[Fix],
    rejected: list[RejectedItem],
    known: dict[uuid.UUID, uuid.UUID | None] | None = None,
) -> BatchResult:
    """Store ``valid`` (the items at ``indices`` of the request) once each; answer per item."""
    ids = {f.responder_id for f in valid}
    if known is not None and ids <= known.keys():
        teams = known
    else:
        teams = await _directory.teams(runtime.pool, ids) if valid else {}
    n = len(valid)
    if n == 1 and ids <= teams.keys():
        # One fix (an OsmAnd request): nothing to deduplicate within the request.
        unique = valid
        slots: list[int] = [0]
    elif (
        ids <= teams.keys()
        and list(map(_client_id, valid)).count(None) == n
        and len(set(zip(map(_responder_id, valid), map(_fix_time, valid), strict=True))) == n
    ):
        # The usual batch (known responders, no client ids, no fix twice): every fix goes in.
        unique = valid
        slots = list(range(n))
    else:
        unique, slots = _unique(valid, teams)
    statuses = await batcher_of(runtime).submit(unique, ids & teams.keys()) if unique else []
    accepted = []
    for index, fix, pos in zip(indices, valid, slots, strict=True):
        if pos == -2:
            rejected.append(
                RejectedItem(
                    index=index, reason="unknown_responder", detail="no such responder", client_id=fix.client_id
                )
            )
            continue
        accepted.append(
            AcceptedItem(
                index=index,
                status="duplicate" if pos < 0 else statuses[pos],
                flags=_POOR_ACCURACY if fix.poor_accuracy else (),
                client_id=fix.client_id,
            )
        )
    if rejected:
        rejected.sort(key=lambda r: r.index)
    return BatchResult(accepted=accepted, rejected=rejected)


_client_id = attrgetter("client_id")
_responder_id = attrgetter("responder_id")
_fix_time = attrgetter("fix_time")


def _unique(valid: list[Fix], teams: dict[uuid.UUID, uuid.UUID | None]) -> tuple[list[Fix], list[int]]:
    """The fixes to store, and per valid fix its position among them (-1: a repeat of an earlier
    fix by responder + fix time or client id, -2: an unknown responder)."""
    unique: list[Fix] = []
    first: dict[Any, int] = {}  # key -> position in `unique`
    slots: list[int] = []
    for fix in valid:
        if fix.responder_id not in teams:
            slots.append(-2)
            continue
        key = fix.key
        pos = first.get(key)
        client_id = fix.client_id
        if pos is None and client_id is not None:
            pos = first.get(("client", fix.responder_id, client_id))
        if pos is not None:
            slots.append(-1)
            continue
        pos = len(unique)
        unique.append(fix)
        first[key] = pos
        if client_id is not None:
            first[("client", fix.responder_id, client_id)] = pos
        slots.append(pos)
    return unique, slots
