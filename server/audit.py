"""Audit trail: every mutation writes one row, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

import asyncpg

from .observability import request_id_var
from .security import Principal


async def record(
    conn: asyncpg.Connection,
    actor: Principal | None,
    action: str,
    target_type: str,
    target_id: Any = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, actor, action, target_type, target_id, request_id, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        actor.id if actor else None,
        actor.actor if actor else "system",
        action,
        target_type,
        None if target_id is None else str(target_id),
        request_id_var.get(),
        detail or {},
    )
