"""Base structs shared by every area's request and response bodies."""

from __future__ import annotations

import msgspec


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Request bodies: unknown fields are refused (422), never silently ignored."""


class Out(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Response bodies."""


class Page(msgspec.Struct, kw_only=True):
    items: list  # type: ignore[type-arg]
    next_cursor: str | None = None
