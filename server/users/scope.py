"""Team scoping: what a coordinator may see and change."""

from __future__ import annotations

import uuid

import asyncpg

from ..errors import Forbidden
from ..security import Principal
from . import repository as repo


async def managed_teams(conn: asyncpg.Connection, principal: Principal) -> list[uuid.UUID] | None:
    """None means unrestricted (admins, and coordinators without a team: the whole organisation)."""
    if principal.role == "admin" or principal.team_id is None:
        return None
    return await repo.team_subtree(conn, principal.team_id)


async def require_manages(
    conn: asyncpg.Connection, principal: Principal, team_id: uuid.UUID | None, *, strictly_below: bool = False
) -> None:
    scope = await managed_teams(conn, principal)
    if scope is None:
        return
    if team_id is None or team_id not in scope or (strictly_below and team_id == principal.team_id):
        raise Forbidden("outside the teams you manage")
