"""Passwords (argon2id), access tokens (JWT HS256) and opaque tokens (refresh, device).

Opaque tokens are 256-bit random strings; only their SHA-256 is stored, so a database leak
does not leak usable tokens, and checking one costs a hash, not an argon2 run.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import Unauthorized

_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash("sitrep-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_opaque_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (from a JWT) or a device (from its token)."""

    kind: str  # "user" | "device"
    id: uuid.UUID
    name: str
    role: str
    team_id: uuid.UUID | None = None
    responder_id: uuid.UUID | None = None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


def encode_access_token(
    secret: str,
    *,
    user_id: uuid.UUID,
    username: str,
    role: str,
    team_id: uuid.UUID | None,
    responder_id: uuid.UUID | None,
    ttl_s: int,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "name": username,
        "role": role,
        "iat": now,
        "exp": now + ttl_s,
        "typ": "access",
    }
    if team_id:
        claims["team"] = str(team_id)
    if responder_id:
        claims["rsp"] = str(responder_id)
    return jwt.encode(claims, secret, algorithm="HS256")


_verified: dict[str, tuple[float, Principal]] = {}
_VERIFIED_MAX = 50_000


def decode_access_token(secret: str, token: str) -> Principal:
    """Verify a JWT once per worker; later uses only re-check its expiry (tokens are immutable)."""
    hit = _verified.get(token)
    if hit is not None:
        if hit[0] > time.time():
            return hit[1]
        _verified.pop(token, None)
        raise Unauthorized("access token expired")
    principal, exp = _decode(secret, token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[token] = (exp, principal)
    return principal


def _decode(secret: str, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("access token expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid access token") from exc
    if claims.get("typ") != "access":
        raise Unauthorized("not an access token")
    try:
        principal = Principal(
            kind="user",
            id=uuid.UUID(claims["sub"]),
            name=str(claims.get("name", "")),
            role=str(claims["role"]),
            team_id=uuid.UUID(claims["team"]) if claims.get("team") else None,
            responder_id=uuid.UUID(claims["rsp"]) if claims.get("rsp") else None,
        )
    except (KeyError, ValueError) as exc:
        raise Unauthorized("malformed access token") from exc
    return principal, float(claims["exp"])
