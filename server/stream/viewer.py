"""A connected viewer: a bounded queue of frames and its subscriptions.

Transport-agnostic: the WebSocket and SSE handlers drain :meth:`Viewer.next_frames` and write
them. Producers only ever append (never await), so one slow viewer cannot slow the others: when
its queue is full it is closed with 4008 and a reason.

A transport that can write without waiting (a WebSocket whose socket buffer is below its high-water
mark) sets :attr:`Viewer.writer`: while nothing is queued or being sent, a frame is written at once
by the producer, with no task switch per viewer per tick; otherwise (the socket is backed up) it
joins the bounded queue behind what is waiting, which the handler drains in order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..security import Principal
from .scope import Scope

if TYPE_CHECKING:
    from .groups import Group

CLOSE_TOO_SLOW = 4008
CLOSE_RESTART = 1012


def ws_header(n: int) -> bytes:
    """The header of an unmasked final text frame of ``n`` payload bytes."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big")
    return bytes((0x81, 127)) + n.to_bytes(8, "big")


class Frame:
    """One message for viewers: its text, and (built once, shared by every viewer that takes it) the
    whole WebSocket frame."""

    __slots__ = ("_text", "event", "seq", "wire", "wire_head")

    def __init__(self, event: str, seq: int | None, text: str | None, wire: bytes | None = None, wire_head: int = 0):
        self.event = event
        """delta | snapshot | heartbeat | control (the SSE event name)."""
        self.seq = seq
        self._text = text
        self.wire = wire
        """The whole WebSocket frame (unmasked, no extensions)."""
        self.wire_head = wire_head
        """Bytes of ``wire`` before the message (the frame header)."""

    @classmethod
    def from_parts(cls, event: str, seq: int | None, parts: list[bytes]) -> Frame:
        """A frame whose message is the concatenation of ``parts`` (UTF-8), joined once straight into
        its WebSocket frame (the text is decoded from it only if a queued or SSE viewer needs it)."""
        head = ws_header(sum(map(len, parts)))
        parts.insert(0, head)
        return cls(event, seq, None, b"".join(parts), len(head))

    @property
    def text(self) -> str:
        text = self._text
        if text is None:
            assert self.wire is not None
            text = self._text = self.wire[self.wire_head :].decode()
        return text

    def ws_frame(self) -> bytes:
        wire = self.wire
        if wire is None:
            payload = self.text.encode()
            head = ws_header(len(payload))
            wire = self.wire = head + payload
            self.wire_head = len(head)
        return wire


class ViewerClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(eq=False, slots=True)
class ViewerSub:
    id: str
    viewer: Viewer
    group: Group
    holding: bool = True
    """While its snapshot or replay is prepared, live frames wait in ``held``."""
    held: list[Frame] = field(default_factory=list)

    def deliver(self, frame: Frame) -> None:
        if self.holding:
            if len(self.held) >= self.viewer.limit:
                self.viewer.drop()
            else:
                self.held.append(frame)
        else:
            self.viewer.put(frame)

    def release(self) -> None:
        held, self.held, self.holding = self.held, [], False
        for frame in held:
            self.viewer.put(frame)


class Viewer:
    def __init__(self, principal: Principal, scope: Scope, limit: int, on_drop: Callable[[Viewer], None]) -> None:
        self.principal = principal
        self.scope = scope
        self.limit = limit
        self.subs: dict[str, ViewerSub] = {}
        self.resume_point: tuple[str, int] | None = None
        self.closed: ViewerClosed | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._queue: deque[Frame] = deque()
        self._wake = asyncio.Event()
        self._on_drop = on_drop
        self.writer: Callable[[Frame], bool] | None = None
        """Writes a frame now and returns True, or returns False when it cannot without waiting."""
        self.sending = False
        """The handler holds frames taken from the queue and has not finished writing them."""

    def put(self, frame: Frame) -> bool:
        if self.closed is not None:
            return False
        if self.writer is not None and not self._queue and not self.sending:
            try:
                if self.writer(frame):
                    return True
            except Exception:
                self.writer = None  # the queue path reports what went wrong
        if len(self._queue) >= self.limit:
            self.drop()
            return False
        self._queue.append(frame)
        self._wake.set()
        return True

    def drop(self) -> None:
        if self.closed is None:
            self.close(CLOSE_TOO_SLOW, f"viewer too slow: more than {self.limit} frames waiting")
            self._on_drop(self)

    def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = ViewerClosed(code, reason)
            self._queue.clear()
            self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def next_frames(self) -> list[Frame]:
        """Everything queued (waiting for at least one frame); raises ViewerClosed once closed."""
        while not self._queue:
            if self.closed is not None:
                raise self.closed
            self._wake.clear()
            await self._wake.wait()
        if self.closed is not None:
            raise self.closed
        frames = list(self._queue)
        self._queue.clear()
        self.sending = True
        return frames

    def sent(self) -> None:
        """The frames :meth:`next_frames` returned are written: direct writes may resume."""
        self.sending = False

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()
