"""The life of a public alert: draft → submitted → approved → sent (→ superseded | cancelled).

Every function takes the connection (inside the caller's transaction) and writes its audit row.
An ``Update`` or ``Cancel`` is a new alert row (its own CAP identifier, the next version of the
thread) whose CAP ``references`` name every earlier version still live; sending it retires them.
An author may not approve their own alert unless ``SITREP_ALERTS_ALLOW_SELF_APPROVAL`` is on.
A *correction* is the prepared way out of a mistake: one call issues a Cancel and sends it at once to
exactly the people the ledger says got the alert (a cancel only reduces harm, so it needs no second
person).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from .. import audit
from ..errors import Conflict, Forbidden, IllegalTransition, NotFound
from ..security import Principal
from ..settings import Settings
from . import repository as repo
from .area import resolve_area
from .cap import build_cap, cap_time
from .delivery import fan_out, ledger_recipients
from .model import AlertCompose, AlertPatch, check_content, content_of, is_exercise
from .targeting import recipients_by_id, recipients_in

CANCEL_PREFIX = "Cancelled: "


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def new_identifier(settings: Settings) -> str:
    domain = settings.alerts.alerts_sender.split("@")[-1]
    return f"{domain}.{uuid.uuid4().hex}"


async def get(conn: asyncpg.Connection, alert_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record:
    row = await repo.get_alert(conn, alert_id, lock=lock)
    if row is None:
        raise NotFound("no such alert")
    return row


async def compose(
    conn: asyncpg.Connection, principal: Principal, data: AlertCompose, settings: Settings
) -> asyncpg.Record:
    content = content_of(data)
    check_content(content, ipaws=settings.alerts.alerts_ipaws)
    area = await resolve_area(conn, data.area, max_vertices=settings.alerts.alerts_max_vertices)
    alert_id = uuid.uuid4()
    content.update(
        thread_id=str(alert_id),
        version=1,
        area_desc=area.description,
        area_source=area.source,
        area_extra_m2=round(area.extra_m2, 1),
        area_simplified=area.simplified,
    )
    row = await repo.insert_alert(
        conn,
        alert_id=alert_id,
        identifier=new_identifier(settings),
        sender=settings.alerts.alerts_sender,
        cap_status=content["status"],
        msg_type="Alert",
        references=[],
        supersedes_id=None,
        area=area.geometry,
        content=content,
        effective=_dt(content.get("effective")),
        expires=_dt(content["expires"]),
        created_by=principal.id,
    )
    await audit.record(conn, principal, "alert.compose", "alert", row["id"], {"status": content["status"]})
    return row


async def patch(
    conn: asyncpg.Connection, principal: Principal, alert_id: uuid.UUID, data: AlertPatch, settings: Settings
) -> asyncpg.Record:
    row = await get(conn, alert_id, lock=True)
    if row["status"] != "draft":
        raise IllegalTransition(f"only a draft can be edited (this alert is {row['status']})")
    content = dict(row["content"])
    changes = {k: v for k, v in msgspec.to_builtins(data).items() if v is not None and k != "area"}
    if row["msg_type"] == "Cancel" and changes.keys() - {"texts", "note"}:
        raise IllegalTransition("a Cancel may only change its texts and note")
    content.update(changes)
    check_content(content, ipaws=settings.alerts.alerts_ipaws)
    area_geom = repo.area_of(row)
    if data.area is not None:
        if row["msg_type"] == "Cancel":
            raise IllegalTransition("a Cancel keeps the area of what it cancels")
        area = await resolve_area(conn, data.area, max_vertices=settings.alerts.alerts_max_vertices)
        area_geom = area.geometry
        content.update(
            area_desc=area.description,
            area_source=area.source,
            area_extra_m2=round(area.extra_m2, 1),
            area_simplified=area.simplified,
        )
    out = await repo.update_draft(
        conn,
        alert_id,
        cap_status=content["status"],
        area=area_geom,
        content=content,
        effective=_dt(content.get("effective")),
        expires=_dt(content["expires"]),
    )
    await audit.record(conn, principal, "alert.edit", "alert", alert_id, {"fields": sorted(changes)})
    return out


async def submit(conn: asyncpg.Connection, principal: Principal, alert_id: uuid.UUID) -> asyncpg.Record:
    row = await get(conn, alert_id, lock=True)
    if row["status"] != "draft":
        raise IllegalTransition(f"only a draft can be submitted (this alert is {row['status']})")
    out = await repo.set_status(conn, alert_id, "submitted")
    await audit.record(conn, principal, "alert.submit", "alert", alert_id)
    return out


async def approve(
    conn: asyncpg.Connection, principal: Principal, alert_id: uuid.UUID, settings: Settings
) -> asyncpg.Record:
    row = await get(conn, alert_id, lock=True)
    if row["status"] != "submitted":
        raise IllegalTransition(f"only a submitted alert can be approved (this alert is {row['status']})")
    if row["created_by"] == principal.id and not settings.alerts.alerts_allow_self_approval:
        raise Forbidden(
            "you composed this alert; a second person must approve it "
            "(single-operator deployments may set SITREP_ALERTS_ALLOW_SELF_APPROVAL)",
            extra={"reason": "self-approval"},
        )
    await _check_thread_live(conn, row)
    out = await repo.set_status(conn, alert_id, "approved", approved_by=principal.id)
    await audit.record(conn, principal, "alert.approve", "alert", alert_id)
    return out


async def _check_thread_live(conn: asyncpg.Connection, row: asyncpg.Record) -> list[asyncpg.Record]:
    if row["msg_type"] == "Alert":
        return []
    live = await repo.live_versions(conn, row["content"]["thread_id"])
    if not live:
        raise Conflict("nothing left to update or cancel: every earlier version was cancelled or replaced")
    return live


def cap_for(row: asyncpg.Record | dict[str, Any], settings: Settings, *, sent: datetime | None = None) -> bytes:
    if row["cap_xml"] and sent is None:
        return str(row["cap_xml"]).encode()
    return build_cap(
        identifier=row["identifier"],
        sender=row["sender"],
        sent=sent or row["sent_at"] or datetime.now(UTC),
        cap_status=row["cap_status"],
        msg_type=row["msg_type"],
        content=row["content"],
        area=repo.area_of(row),
        area_desc=row["content"].get("area_desc", ""),
        references=row["references"],
        ipaws=settings.alerts.alerts_ipaws,
    )


async def send(
    conn: asyncpg.Connection, principal: Principal, alert_id: uuid.UUID, settings: Settings
) -> tuple[asyncpg.Record, dict[str, int]]:
    row = await get(conn, alert_id, lock=True)
    if row["status"] == "sent":
        raise IllegalTransition("this alert version was already sent")
    if row["status"] != "approved":
        raise IllegalTransition(f"only an approved alert can be sent (this alert is {row['status']})")
    live = await _check_thread_live(conn, row)
    now = datetime.now(UTC).replace(microsecond=0)
    # References name every earlier version still live (fixed now, at send time).
    references = [f"{r['sender']},{r['identifier']},{cap_time(r['sent_at'])}" for r in live]
    exercise = is_exercise(row["cap_status"])
    earlier = await ledger_recipients(conn, [r["identifier"] for r in live]) if live else []
    if row["msg_type"] == "Cancel":
        recipients = await recipients_by_id(conn, earlier, exercise=exercise)
    else:
        inside = await recipients_in(conn, repo.area_of(row), exercise=exercise)
        seen = {r.id for r in inside}
        recipients = inside + [r for r in await recipients_by_id(conn, earlier, exercise=exercise) if r.id not in seen]
    draft = {**dict(row), "references": references, "cap_xml": None}
    cap_xml = cap_for(draft, settings, sent=now).decode()
    out = await repo.set_status(conn, alert_id, "sent", sent_at=now, cap_xml=cap_xml, references=references)
    retired = "cancelled" if row["msg_type"] == "Cancel" else "superseded"
    for r in live:
        await repo.set_status(conn, r["id"], retired)
    alert = {
        **dict(out),
        "version": row["content"]["version"],
        "sent_at": now.isoformat(),
    }
    counts = await fan_out(conn, alert, recipients, settings=settings.alerts, secret=settings.auth.jwt_secret)
    await audit.record(
        conn,
        principal,
        "alert.send",
        "alert",
        alert_id,
        {"recipients": len(recipients), "deliveries": counts, "retired": [str(r["id"]) for r in live]},
    )
    return out, counts


async def derive(
    conn: asyncpg.Connection,
    principal: Principal,
    alert_id: uuid.UUID,
    msg_type: str,
    settings: Settings,
    *,
    note: str | None = None,
) -> asyncpg.Record:
    """A new draft ``Update`` (content copied, edit it with PATCH) or ``Cancel`` of a sent alert."""
    src = await get(conn, alert_id)
    if src["status"] == "cancelled":
        raise IllegalTransition("this alert was cancelled; it cannot be updated or cancelled again")
    if src["status"] != "sent":
        raise IllegalTransition(f"only a sent, live alert can be updated or cancelled (this one is {src['status']})")
    thread_id = src["content"]["thread_id"]
    versions = await repo.thread_versions(conn, thread_id)
    content = dict(src["content"])
    content["version"] = max(int(v["content"]["version"]) for v in versions) + 1
    if msg_type == "Cancel":
        content["response_type"] = ["AllClear"]
        text_note = note or "This alert is cancelled."
        content["note"] = text_note
        content["texts"] = [
            {
                **t,
                "headline": (CANCEL_PREFIX + t["headline"])[:160],
                "description": text_note,
                "instruction": "",
                "sms_90": "",
                "sms_360": "",
            }
            for t in content["texts"]
        ]
    new_id = uuid.uuid4()
    row = await repo.insert_alert(
        conn,
        alert_id=new_id,
        identifier=new_identifier(settings),
        sender=settings.alerts.alerts_sender,
        cap_status=src["cap_status"],
        msg_type=msg_type,
        references=[],
        supersedes_id=src["id"],
        area=repo.area_of(src),
        content=content,
        effective=_dt(content.get("effective")),
        expires=_dt(content["expires"]),
        created_by=principal.id,
    )
    await audit.record(conn, principal, f"alert.{msg_type.lower()}", "alert", new_id, {"of": str(alert_id)})
    return row


async def correct(
    conn: asyncpg.Connection, principal: Principal, alert_id: uuid.UUID, note: str, settings: Settings
) -> tuple[asyncpg.Record, dict[str, int]]:
    """Cancel a mistaken alert and send the correction to exactly its recipients, in one step."""
    draft = await derive(conn, principal, alert_id, "Cancel", settings, note=note)
    await repo.set_status(conn, draft["id"], "approved", approved_by=principal.id)
    await audit.record(conn, principal, "alert.correct", "alert", draft["id"], {"of": str(alert_id)})
    return await send(conn, principal, draft["id"], settings)
