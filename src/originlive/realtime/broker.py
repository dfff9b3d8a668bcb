"""Room events between processes: in-process by default, Redis pub/sub when configured.

A broker numbers each room's events (``seq``, increasing per room), stamps them (``ts``, ms
since the epoch), encodes each once, and hands the encoded JSON to every process's ``deliver``
callback, in ``seq`` order. It also keeps each room's latest comments for those who join, and
counts viewers across processes.

The event's text is put together from its parts (``compose``) and the Redis script does the
same, so that the number and the stamp are given where the event is ordered: in the process
(memory) or in Redis, atomically with the ``PUBLISH`` (several processes).
"""

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any, Protocol

import pydantic_core
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Deliver = Callable[[int, bytes], None]  # room id, encoded event

RECENT = 50  # comments a joining viewer gets
VIEWERS_FRESH_MS = 5000  # a process that has not reported its viewers for this long is gone


def compose(kind: str, seq: int, ts: int, fields: dict[str, Any]) -> bytes:
    """``{"type": kind, "seq": seq, "ts": ts, **fields}``, encoded (the script does the same)."""
    body = pydantic_core.to_json(fields)
    head = b'{"type":"%s","seq":%d,"ts":%d' % (kind.encode(), seq, ts)
    return head + b"}" if body == b"{}" else head + b"," + body[1:]


def seq_of(event: bytes) -> int:
    """The ``seq`` of an encoded event (it comes right after the type)."""
    start = event.index(b'"seq":') + 6
    return int(event[start : event.index(b",", start)])


class Broker(Protocol):
    async def start(self, deliver: Deliver) -> None:
        """Begin handing every room's events to ``deliver``."""
        ...

    async def publish(self, room: int, kind: str, fields: dict[str, Any], *, keep: bool) -> int:
        """Number, stamp and send an event to every process; ``keep`` it among the room's
        recent ones (comments). Returns its ``seq``."""
        ...

    async def recent(self, room: int) -> tuple[int, list[bytes]]:
        """The room's latest ``seq`` and its kept events, oldest first."""
        ...

    async def forget(self, room: int, seq: int) -> None:
        """Drop a kept event (a deleted comment)."""
        ...

    async def viewers(self, room: int, here: int) -> int:
        """Report this process's viewers of the room; the room's viewers in all processes."""
        ...

    async def close(self) -> None: ...


class MemoryBroker:
    """One process: the numbers, the recent comments and the viewers are this process's."""

    def __init__(self) -> None:
        self._seq: dict[int, int] = defaultdict(int)
        self._recent: dict[int, deque[bytes]] = defaultdict(lambda: deque(maxlen=RECENT))
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, room: int, kind: str, fields: dict[str, Any], *, keep: bool) -> int:
        self._seq[room] += 1
        seq = self._seq[room]
        event = compose(kind, seq, int(time.time() * 1000), fields)
        if keep:
            self._recent[room].append(event)
        assert self._deliver is not None, "publish before start"
        self._deliver(room, event)
        return seq

    async def recent(self, room: int) -> tuple[int, list[bytes]]:
        return self._seq[room], list(self._recent[room])

    async def forget(self, room: int, seq: int) -> None:
        kept = self._recent[room]
        for event in [e for e in kept if seq_of(e) == seq]:
            kept.remove(event)

    async def viewers(self, room: int, here: int) -> int:
        return here

    async def close(self) -> None:
        self._deliver = None


_PREFIX = "originlive:room:"
_CHANNELS = _PREFIX + "*"
_TTL = 7 * 24 * 3600  # a room's keys outlive any session

# KEYS: seq, recent. ARGV: channel, type, fields (a JSON object), keep, recent max, ttl.
# A room's first number is Redis's clock in ms, not 1: after Redis restarts empty, the numbers
# go on increasing for the sockets that stayed open (unless a room said more than one thing a
# millisecond over its whole life).
_PUBLISH = """
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq
if redis.call('EXISTS', KEYS[1]) == 1 then
  seq = redis.call('INCR', KEYS[1])
else
  seq = ts
  redis.call('SET', KEYS[1], seq)
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
local event = '{"type":"' .. ARGV[2] .. '","seq":' .. seq .. ',"ts":' .. ts
if ARGV[3] == '{}' then event = event .. '}' else event = event .. ',' .. string.sub(ARGV[3], 2) end
if ARGV[4] == '1' then
  redis.call('RPUSH', KEYS[2], event)
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
redis.call('PUBLISH', ARGV[1], event)
return seq
"""

# KEYS: recent. ARGV: the event's seq marker.
_FORGET = """
for _, event in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if string.find(event, ARGV[1], 1, true) then redis.call('LREM', KEYS[1], 1, event) end
end
"""

# KEYS: viewers. ARGV: process, count, fresh ms, ttl. Each process's count with its time;
# counts of processes that stopped reporting are dropped.
_VIEWERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. now)
redis.call('EXPIRE', KEYS[1], ARGV[4])
local total = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local count, at = string.match(all[i + 1], '(%d+):(%d+)')
  if now - tonumber(at) > tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    total = total + tonumber(count)
  end
end
return total
"""


class RedisBroker:
    """Several processes: Redis numbers the events and publishes them; every process hears
    every room (one pattern subscription) and delivers to the viewers it holds."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._publish = redis.register_script(_PUBLISH)
        self._forget = redis.register_script(_FORGET)
        self._viewers = redis.register_script(_VIEWERS)
        self._process = f"{os.getpid()}-{id(self):x}"
        self._listener: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(_CHANNELS)
        self._listener = asyncio.create_task(self._listen(pubsub, deliver))

    async def _listen(self, pubsub: Any, deliver: Deliver) -> None:
        start = len(_PREFIX)
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=None)
                except RedisError:
                    # redis-py subscribes again when it reconnects; events published
                    # meanwhile are lost to this process's viewers (seq shows the gap).
                    log.warning("room events: Redis connection lost; reconnecting")
                    await asyncio.sleep(0.5)
                    continue
                if message is None or message["type"] != "pmessage":
                    continue
                channel: bytes = message["channel"]
                deliver(int(channel[start:]), message["data"])
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()

    async def publish(self, room: int, kind: str, fields: dict[str, Any], *, keep: bool) -> int:
        keys = [f"{_PREFIX}{room}:seq", f"{_PREFIX}{room}:recent"]
        body = pydantic_core.to_json(fields)
        args: list[Any] = [f"{_PREFIX}{room}", kind, body, int(keep), RECENT, _TTL]
        return int(await self._publish(keys=keys, args=args))

    async def recent(self, room: int) -> tuple[int, list[bytes]]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(f"{_PREFIX}{room}:seq")
            pipe.lrange(f"{_PREFIX}{room}:recent", 0, -1)
            seq, kept = await pipe.execute()
        return int(seq or 0), list(kept)

    async def forget(self, room: int, seq: int) -> None:
        await self._forget(keys=[f"{_PREFIX}{room}:recent"], args=[f',"seq":{seq},'])

    async def viewers(self, room: int, here: int) -> int:
        keys = [f"{_PREFIX}{room}:viewers"]
        return int(await self._viewers(keys=keys, args=[self._process, here, VIEWERS_FRESH_MS, 60]))

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
