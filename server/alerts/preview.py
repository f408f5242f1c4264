"""What an alert would do, before anyone approves it: who gets it, the CAP, the message per channel."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from lxml import etree

from feeds.capschema import validate_cap

from ..settings import Settings
from . import repository as repo
from .cap import check_rules
from .delivery import CHANNELS, channels_of
from .messages import render
from .model import is_exercise
from .service import cap_for
from .targeting import Recipient, near_edge_count, recipients_in


class Preview(msgspec.Struct, kw_only=True):
    alert_id: uuid.UUID
    exercise: bool
    inside: int
    inside_by_channel: dict[str, int]
    near_edge: int
    near_edge_m: float
    area_extra_m2: float
    area_simplified: bool
    cap: str
    cap_problems: list[str]
    messages: dict[str, Any]


async def preview(conn: asyncpg.Connection, row: asyncpg.Record, settings: Settings) -> Preview:
    area = repo.area_of(row)
    exercise = is_exercise(row["cap_status"])
    inside = await recipients_in(conn, area, exercise=exercise)
    by_channel: dict[str, int] = {}
    for r in inside:
        for ch in channels_of(r):
            by_channel[ch] = by_channel.get(ch, 0) + 1
    near = await near_edge_count(conn, area, settings.alerts.alerts_near_edge_m, exercise=exercise)
    cap = cap_for(row, settings)
    problems = check_rules(cap) + validate_cap(etree.fromstring(cap))
    sample = Recipient(
        id="00000000-0000-0000-0000-000000000000",
        email="someone@example.org",
        phone="+15550100000",
        webhook_url="https://example.org/hook",
        push={"endpoint": "https://push.example.org/sample", "keys": {"p256dh": "", "auth": ""}},
        language=row["content"]["texts"][0]["language"],
        quiet_hours=None,
        exercise=exercise,
    )
    alert = {
        **dict(row),
        "version": row["content"]["version"],
        "sent_at": None,
        "delivery_ids": {(sample.id, ch): 0 for ch in CHANNELS},
    }
    messages = {}
    for ch in CHANNELS:
        p = render(
            channel=ch, recipient=sample, alert=alert, base_url=settings.alerts.alerts_public_url, secret="preview"
        )
        p.pop("delivery_id", None)
        p.pop("subscription", None)
        messages[ch] = p
    return Preview(
        alert_id=row["id"],
        exercise=exercise,
        inside=len(inside),
        inside_by_channel=by_channel,
        near_edge=near,
        near_edge_m=settings.alerts.alerts_near_edge_m,
        area_extra_m2=float(row["content"].get("area_extra_m2", 0.0)),
        area_simplified=bool(row["content"].get("area_simplified", False)),
        cap=cap.decode(),
        cap_problems=problems,
        messages=messages,
    )
