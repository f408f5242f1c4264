"""The stream's Redis side: epoch, global sequence, the resume log and the tick channel.

One Lua script per tick does everything atomically, so every worker sees batches in the same
order with the same ``(epoch, seq)``:

- the epoch lives at ``{prefix}:epoch``; when it is missing (Redis restarted or was flushed, or a
  worker lost a tick) a new one is set and the sequence restarts, so a client resuming with the
  old epoch gets a fresh snapshot rather than a silent gap;
- ``INCR {prefix}:seq`` numbers the batch; it is appended to the stream ``{prefix}:log`` with the
  id ``<seq>-0`` (approximate MAXLEN cap; time trimming is done with XTRIM MINID by every worker);
- the batch is PUBLISHed on ``{prefix}:ticks`` as ``<epoch> <seq> <payload>``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

PUBLISH_LUA = """
local epoch = redis.call('GET', KEYS[1])
if (not epoch) or ARGV[4] == '1' then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], seq .. '-0', 't', ARGV[5], 'p', ARGV[2])
redis.call('PUBLISH', KEYS[4], epoch .. ' ' .. seq .. ' ' .. ARGV[2])
return {epoch, seq}
"""

ENSURE_EPOCH_LUA = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
return {epoch, seq}
"""


def new_epoch() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Keys:
    epoch: str
    seq: str
    log: str
    channel: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Keys:
        return cls(f"{prefix}:epoch", f"{prefix}:seq", f"{prefix}:log", f"{prefix}:ticks")

    def all(self) -> list[str]:
        return [self.epoch, self.seq, self.log, self.channel]


class History:
    def __init__(self, redis: aioredis.Redis, prefix: str, max_len: int) -> None:
        self.redis = redis
        self.keys = Keys.for_prefix(prefix)
        self.max_len = max_len
        self._publish = redis.register_script(PUBLISH_LUA)
        self._ensure = redis.register_script(ENSURE_EPOCH_LUA)

    async def publish(self, payload: bytes, *, force_new_epoch: bool = False) -> tuple[str, int]:
        """Append and broadcast one tick; returns its ``(epoch, seq)``."""
        res = await self._publish(
            keys=self.keys.all(),
            args=[new_epoch(), payload, self.max_len, "1" if force_new_epoch else "0", f"{time.time():.6f}"],
        )
        return _s(res[0]), int(res[1])

    async def current(self) -> tuple[str, int]:
        """The current epoch (created if missing) and the last sequence number."""
        res = await self._ensure(keys=self.keys.all(), args=[new_epoch()])
        return _s(res[0]), int(res[1])

    async def range_after(self, from_seq: int, count: int = 2000) -> list[tuple[int, float, bytes]]:
        """Batches with seq > ``from_seq``, oldest first, as ``(seq, published_at, payload)``."""
        entries = await self.redis.xrange(self.keys.log, min=f"{from_seq + 1}-0", max="+", count=count)
        out = []
        for entry_id, fields in entries:
            seq = int(_s(entry_id).split("-", 1)[0])
            out.append((seq, float(fields[b"t"]), bytes(fields[b"p"])))
        return out

    async def first_seq(self) -> int | None:
        entries = await self.redis.xrange(self.keys.log, min="-", max="+", count=1)
        if not entries:
            return None
        return int(_s(entries[0][0]).split("-", 1)[0])

    async def trim_before(self, seq: int) -> None:
        await self.redis.xtrim(self.keys.log, minid=f"{seq}-0", approximate=False)


def parse_message(data: Any) -> tuple[str, int, bytes]:
    raw = data if isinstance(data, bytes) else str(data).encode()
    epoch, seq, payload = raw.split(b" ", 2)
    return epoch.decode(), int(seq), payload


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
