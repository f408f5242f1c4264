"""`/v1/auth/*` and `/v1/me`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from ..deps import client_address, principal_of, runtime_of
from ..errors import InvalidInput, NotFound, Unauthorized
from ..permissions import PERMISSIONS, requires
from ..structs import Body
from . import service
from .service import TokenPair


class LoginBody(Body):
    username: str
    password: str


class RefreshBody(Body):
    refresh_token: str


class Me(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    role: str
    team_id: uuid.UUID | None
    responder_id: uuid.UUID | None
    created_at: datetime
    permissions: list[str]


async def _login_body(request: Request[Any, Any, Any]) -> LoginBody:
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type", "password")
        if grant != "password":
            raise InvalidInput(
                "unsupported grant_type",
                errors=[{"field": "grant_type", "message": "only 'password' is supported"}],
            )
        missing = [f for f in ("username", "password") if not form.get(f)]
        if missing:
            raise InvalidInput("missing fields", errors=[{"field": f, "message": "required"} for f in missing])
        return LoginBody(username=form["username"], password=form["password"])
    try:
        return msgspec.json.decode(raw, type=LoginBody)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc), errors=[{"field": "body", "message": str(exc)}]) from exc
    except msgspec.DecodeError as exc:
        from litestar.exceptions import ClientException

        raise ClientException(f"malformed JSON: {exc}") from exc


class AuthController(Controller):
    path = "/v1"
    tags = ["auth"]

    @post("/auth/token", status_code=HTTP_200_OK, summary="Log in with a password (JSON or OAuth2 form)")
    async def token(self, request: Request[Any, Any, Any]) -> TokenPair:
        rt = runtime_of(request)
        body = await _login_body(request)
        address = client_address(request)
        await rt.rate_limiter.check_login(body.username, address)
        pair = await service.login(rt.pool, rt.settings.auth, body.username, body.password)
        if pair is None:
            await rt.rate_limiter.login_failed(body.username, address)
            raise Unauthorized("wrong username or password")
        await rt.rate_limiter.login_succeeded(body.username, address)
        return pair

    @post("/auth/refresh", status_code=HTTP_200_OK, summary="Rotate a refresh token")
    async def refresh(self, request: Request[Any, Any, Any], data: RefreshBody) -> TokenPair:
        rt = runtime_of(request)
        return await service.refresh(rt.pool, rt.settings.auth, data.refresh_token)

    @post("/auth/logout", status_code=HTTP_204_NO_CONTENT, summary="Revoke a refresh token's session")
    async def logout(self, request: Request[Any, Any, Any], data: RefreshBody) -> None:
        principal = request.scope.get("user")
        await service.logout(runtime_of(request).pool, data.refresh_token, principal)

    @get("/me", guards=[requires("me:read")], summary="The caller")
    async def me(self, request: Request[Any, Any, Any]) -> Me:
        principal = principal_of(request)
        runtime = runtime_of(request)
        row = await runtime.users.get(runtime.pool, principal.id)
        if row is None or not row["is_active"]:
            raise NotFound("user no longer exists")
        perms = sorted(p for p, roles in PERMISSIONS.items() if row["role"] in roles)
        return Me(
            **{
                k: row[k]
                for k in (
                    "id",
                    "username",
                    "display_name",
                    "email",
                    "role",
                    "team_id",
                    "responder_id",
                    "created_at",
                )
            },
            permissions=perms,
        )
