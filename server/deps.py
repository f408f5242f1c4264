"""Helpers handlers use to reach the runtime and the caller."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection

from .errors import InvalidInput, Unauthorized
from .runtime import Runtime
from .security import Principal


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    return connection.app.state.runtime  # type: ignore[no-any-return]


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthorized("authentication required")
    return principal


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([str(v) for v in values])).decode().rstrip("=")


def decode_cursor(cursor: str | None, n: int) -> list[str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw, type=list[str])
    except (ValueError, msgspec.DecodeError) as exc:
        raise InvalidInput("invalid cursor", errors=[{"field": "cursor", "message": "not a cursor"}]) from exc
    if len(values) != n:
        raise InvalidInput("invalid cursor", errors=[{"field": "cursor", "message": "not a cursor"}])
    return values


def check_limit(limit: int, maximum: int = 1000) -> int:
    if limit < 1 or limit > maximum:
        raise InvalidInput(
            f"limit must be 1..{maximum}", errors=[{"field": "limit", "message": f"must be 1..{maximum}"}]
        )
    return limit
