"""`/v1/users` (admin) and `/v1/teams` (coordinators manage the teams below theirs)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.status_codes import HTTP_204_NO_CONTENT

from .. import audit
from ..deps import check_limit, decode_cursor, encode_cursor, principal_of, runtime_of
from ..errors import Conflict, InvalidInput, NotFound
from ..permissions import requires
from ..security import hash_password
from ..structs import Body
from ..tables import ROLES
from . import repository as repo
from .scope import managed_teams, require_manages


class User(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    role: str
    team_id: uuid.UUID | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class UserPage(msgspec.Struct, kw_only=True):
    items: list[User]
    next_cursor: str | None


class UserCreate(Body):
    username: str = msgspec.field()
    password: str
    role: str
    display_name: str = ""
    email: str | None = None
    team_id: uuid.UUID | None = None


class UserUpdate(Body):
    display_name: str | None = None
    email: str | None = None
    role: str | None = None
    team_id: uuid.UUID | None = None
    is_active: bool | None = None
    password: str | None = None


class Team(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    description: str
    created_at: datetime


class TeamCreate(Body):
    name: str
    parent_id: uuid.UUID | None = None
    description: str = ""


class TeamUpdate(Body):
    name: str | None = None
    parent_id: uuid.UUID | None = None
    description: str | None = None


def _user(row: asyncpg.Record) -> User:
    return User(**dict(row))


def _validate_user_fields(role: str | None, password: str | None, username: str | None = None) -> None:
    errors = []
    if role is not None and role not in ROLES:
        errors.append({"field": "role", "message": f"must be one of {', '.join(ROLES)}"})
    if password is not None and len(password) < 8:
        errors.append({"field": "password", "message": "at least 8 characters"})
    if username is not None and not (
        1 <= len(username) <= 64 and username.replace("_", "").replace("-", "").replace(".", "").isalnum()
    ):
        errors.append({"field": "username", "message": "1-64 letters, digits, '.', '-' or '_'"})
    if errors:
        raise InvalidInput("invalid user", errors=errors)


class UserController(Controller):
    path = "/v1/users"
    tags = ["users"]

    @get("/", guards=[requires("users:read")])
    async def list_users(
        self, request: Request[Any, Any, Any], limit: int = 100, cursor: str | None = None
    ) -> UserPage:
        check_limit(limit)
        after = decode_cursor(cursor, 1)
        async with runtime_of(request).pool.acquire() as conn:
            scope = await managed_teams(conn, principal_of(request))
            rows = await repo.list_users(conn, limit=limit + 1, after=after[0] if after else None, team_ids=scope)
        items = [_user(r) for r in rows[:limit]]
        return UserPage(items=items, next_cursor=encode_cursor(items[-1].username) if len(rows) > limit else None)

    @post("/", guards=[requires("users:write")])
    async def create_user(self, request: Request[Any, Any, Any], data: UserCreate) -> User:
        _validate_user_fields(data.role, data.password, data.username)
        principal = principal_of(request)
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            try:
                row = await repo.create_user(
                    conn,
                    username=data.username,
                    display_name=data.display_name,
                    email=data.email,
                    password_hash=hash_password(data.password),
                    role=data.role,
                    team_id=data.team_id,
                )
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"username {data.username!r} is taken") from exc
            except asyncpg.ForeignKeyViolationError as exc:
                raise InvalidInput("unknown team", errors=[{"field": "team_id", "message": "no such team"}]) from exc
            await audit.record(
                conn,
                principal,
                "user.create",
                "user",
                row["id"],
                {"username": data.username, "role": data.role},
            )
        return _user(row)

    @get("/{user_id:uuid}", guards=[requires("users:read")])
    async def get_user(self, request: Request[Any, Any, Any], user_id: uuid.UUID) -> User:
        async with runtime_of(request).pool.acquire() as conn:
            row = await repo.get_user(conn, user_id)
            if row is None:
                raise NotFound("no such user")
            scope = await managed_teams(conn, principal_of(request))
        if scope is not None and row["team_id"] not in scope:
            raise NotFound("no such user")
        return _user(row)

    @patch("/{user_id:uuid}", guards=[requires("users:write")])
    async def update_user(self, request: Request[Any, Any, Any], user_id: uuid.UUID, data: UserUpdate) -> User:
        _validate_user_fields(data.role, data.password)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None and k != "password"}
        if data.password is not None:
            changes["password_hash"] = hash_password(data.password)
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            row = await repo.update_user(conn, user_id, changes)
            if row is None:
                raise NotFound("no such user")
            await audit.record(
                conn,
                principal_of(request),
                "user.update",
                "user",
                user_id,
                {"fields": sorted(changes.keys() - {"password_hash"} | ({"password"} if data.password else set()))},
            )
        runtime_of(request).users.forget(user_id)
        return _user(row)

    @delete("/{user_id:uuid}", guards=[requires("users:write")], status_code=HTTP_204_NO_CONTENT)
    async def deactivate_user(self, request: Request[Any, Any, Any], user_id: uuid.UUID) -> None:
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            row = await repo.update_user(conn, user_id, {"is_active": False})
            if row is None:
                raise NotFound("no such user")
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
            )
            await audit.record(conn, principal_of(request), "user.deactivate", "user", user_id)
        runtime_of(request).users.forget(user_id)


class TeamController(Controller):
    path = "/v1/teams"
    tags = ["teams"]

    @get("/", guards=[requires("teams:read")])
    async def list_teams(self, request: Request[Any, Any, Any]) -> list[Team]:
        async with runtime_of(request).pool.acquire() as conn:
            return [Team(**dict(r)) for r in await repo.list_teams(conn)]

    @get("/{team_id:uuid}", guards=[requires("teams:read")])
    async def get_team(self, request: Request[Any, Any, Any], team_id: uuid.UUID) -> Team:
        async with runtime_of(request).pool.acquire() as conn:
            row = await repo.get_team(conn, team_id)
        if row is None:
            raise NotFound("no such team")
        return Team(**dict(row))

    @post("/", guards=[requires("teams:write")])
    async def create_team(self, request: Request[Any, Any, Any], data: TeamCreate) -> Team:
        if not data.name.strip():
            raise InvalidInput("name required", errors=[{"field": "name", "message": "must not be empty"}])
        principal = principal_of(request)
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            if principal.role != "admin":
                await require_manages(conn, principal, data.parent_id)
            try:
                row = await repo.create_team(conn, data.name.strip(), data.parent_id, data.description)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"team {data.name!r} exists") from exc
            except asyncpg.ForeignKeyViolationError as exc:
                raise InvalidInput(
                    "unknown parent", errors=[{"field": "parent_id", "message": "no such team"}]
                ) from exc
            await audit.record(conn, principal, "team.create", "team", row["id"], {"name": data.name})
        return Team(**dict(row))

    @patch("/{team_id:uuid}", guards=[requires("teams:write")])
    async def update_team(self, request: Request[Any, Any, Any], team_id: uuid.UUID, data: TeamUpdate) -> Team:
        principal = principal_of(request)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            await require_manages(conn, principal, team_id, strictly_below=True)
            if "parent_id" in changes:
                if changes["parent_id"] in await repo.team_subtree(conn, team_id):
                    raise InvalidInput(
                        "cycle", errors=[{"field": "parent_id", "message": "a team cannot sit below itself"}]
                    )
                await require_manages(conn, principal, changes["parent_id"])
            row = await repo.update_team(conn, team_id, changes)
            if row is None:
                raise NotFound("no such team")
            await audit.record(conn, principal, "team.update", "team", team_id, {"fields": sorted(changes)})
        return Team(**dict(row))

    @delete("/{team_id:uuid}", guards=[requires("teams:write")], status_code=HTTP_204_NO_CONTENT)
    async def delete_team(self, request: Request[Any, Any, Any], team_id: uuid.UUID) -> None:
        principal = principal_of(request)
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            await require_manages(conn, principal, team_id, strictly_below=True)
            try:
                if not await repo.delete_team(conn, team_id):
                    raise NotFound("no such team")
            except asyncpg.ForeignKeyViolationError as exc:
                raise Conflict("team has sub-teams; move or delete them first") from exc
            await audit.record(conn, principal, "team.delete", "team", team_id)
