"""Token issuing and rotation.

Refresh tokens rotate: each use returns a new one and spends the old. Reusing a spent token is
treated as theft (RFC 6819 §5.2.2.3): the whole family is revoked and the caller must log in again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec

from .. import audit
from ..errors import Unauthorized
from ..security import (
    Principal,
    encode_access_token,
    new_opaque_token,
    token_hash,
    verify_password,
)
from ..settings import AuthSettings
from . import repository as repo


class TokenPair(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    role: str


async def _issue(conn: asyncpg.Connection, auth: AuthSettings, user: asyncpg.Record, family_id: uuid.UUID) -> TokenPair:
    refresh = new_opaque_token("rt")
    await repo.store_refresh(
        conn,
        user_id=user["id"],
        family_id=family_id,
        token_hash=token_hash(refresh),
        ttl_s=auth.refresh_ttl_s,
    )
    access = encode_access_token(
        auth.jwt_secret,
        user_id=user["id"],
        username=user["username"],
        role=user["role"],
        team_id=user["team_id"],
        responder_id=user["responder_id"],
        ttl_s=auth.access_ttl_s,
    )
    return TokenPair(access_token=access, expires_in=auth.access_ttl_s, refresh_token=refresh, role=user["role"])


async def login(pool: asyncpg.Pool, auth: AuthSettings, username: str, password: str) -> TokenPair | None:
    async with pool.acquire() as conn:
        user = await repo.user_by_username(conn, username)
    ok = verify_password(user["password_hash"] if user else None, password)
    if not ok or user is None or not user["is_active"]:
        return None
    async with pool.acquire() as conn, conn.transaction():
        pair = await _issue(conn, auth, user, uuid.uuid4())
        await audit.record(
            conn,
            Principal("user", user["id"], user["username"], user["role"]),
            "auth.login",
            "user",
            user["id"],
        )
    return pair


async def refresh(pool: asyncpg.Pool, auth: AuthSettings, refresh_token: str) -> TokenPair:
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.claim_refresh(conn, token_hash(refresh_token))
        if row is None:
            raise Unauthorized("unknown refresh token")
        if row["revoked_at"] is not None:
            raise Unauthorized("refresh token revoked")
        if row["used_at"] is not None:
            await repo.revoke_family(conn, row["family_id"])
            await audit.record(conn, None, "auth.refresh_reuse_detected", "user", row["user_id"])
            return_error = Unauthorized("refresh token already used; the session was revoked")
        elif row["expires_at"] <= datetime.now(UTC):
            return_error = Unauthorized("refresh token expired")
        else:
            user = await repo.user_by_id(conn, row["user_id"])
            if user is None or not user["is_active"]:
                raise Unauthorized("account disabled")
            await repo.mark_used(conn, row["id"])
            full = await repo.user_by_username(conn, user["username"])
            return await _issue(conn, auth, full, row["family_id"])
    raise return_error


async def logout(pool: asyncpg.Pool, refresh_token: str, principal: Principal | None) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.claim_refresh(conn, token_hash(refresh_token))
        if row is None:
            return False
        await repo.revoke_family(conn, row["family_id"])
        await audit.record(conn, principal, "auth.logout", "user", row["user_id"])
    return True
