"""The one permission table: which role may do what. Guards read only this."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from .errors import Forbidden, Unauthorized
from .security import Principal

ALL = frozenset({"admin", "coordinator", "responder", "viewer"})
STAFF = frozenset({"admin", "coordinator"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "me:read": ALL,
    "users:read": STAFF,
    "users:write": frozenset({"admin"}),
    "teams:read": ALL,
    "teams:write": STAFF,
    "devices:read": STAFF,
    "devices:write": STAFF,
    "responders:read": frozenset({"admin", "coordinator", "responder"}),
    "responders:write": STAFF,
    "positions:write": frozenset({"admin", "coordinator", "responder"}),
    "positions:read": frozenset({"admin", "coordinator", "responder"}),
    "hazards:read": ALL,
    "hazards:write": STAFF,
    "geofences:read": frozenset({"admin", "coordinator", "responder"}),
    "geofences:write": STAFF,
    "incidents:read": frozenset({"admin", "coordinator", "responder"}),
    "incidents:write": STAFF,
    "incidents:update": frozenset({"admin", "coordinator", "responder"}),
    "assignments:respond": frozenset({"admin", "coordinator", "responder"}),
    "resources:read": frozenset({"admin", "coordinator", "responder"}),
    "resources:write": STAFF,
    "reports:read": STAFF,
    "webhooks:read": STAFF,
    "webhooks:write": frozenset({"admin"}),
    "feeds:read": ALL,
    "feeds:write": frozenset({"admin"}),
    "alerts:read": ALL,
    "alerts:compose": STAFF,
    "alerts:approve": STAFF,
    "audit:read": frozenset({"admin"}),
    "stream:read": ALL,
}


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def requires(permission: str) -> Any:
    """A Litestar guard that admits principals whose role holds ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")

    # async: Litestar runs a sync guard in a worker thread, a thread hop on every request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise Unauthorized("authentication required")
        if principal.role not in PERMISSIONS[permission]:
            raise Forbidden(f"role {principal.role!r} may not {permission}")
        if principal.kind == "user":
            runtime = connection.app.state.runtime
            row = await runtime.users.get(runtime.pool, principal.id)
            if row is None or not row["is_active"]:
                raise Unauthorized("this user has been deactivated")

    guard.__name__ = f"requires_{permission.replace(':', '_')}"
    return guard


async def _authorize_connection(self: BaseRouteHandler, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Run the route's guards without Litestar's defensive ``copy(handler)`` per guard call.

    Litestar copies the route handler before each guard so a guard cannot mutate it; that copy was
    about a tenth of the CPU of a small authenticated request. sitrep's only guard is
    :func:`requires`, which reads the connection and never touches the handler.
    """
    for guard in self.resolve_guards():
        await guard(connection, self)  # type: ignore[misc]


BaseRouteHandler.authorize_connection = _authorize_connection  # type: ignore[method-assign]
