"""Fixed-window counters for rate limits, in-process or in Redis (shared by every process)."""

import time
from typing import Protocol

from redis.asyncio import Redis


class RateLimiter(Protocol):
    """Counts hits on a key within a window."""

    async def hit(self, key: str, *, window_seconds: int) -> tuple[int, int]:
        """Count one hit; return the hits in the current window and the seconds it has left."""
        ...

    async def count(self, key: str, *, window_seconds: int) -> tuple[int, int]:
        """The hits in the current window and the seconds it has left, counting none."""
        ...

    async def reset(self, key: str) -> None:
        """Forget the key's hits."""
        ...


class MemoryRateLimiter:
    """Counters in this process's memory; right for the single-process embedded default."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, *, window_seconds: int) -> tuple[int, int]:
        now = time.monotonic()
        started, count = self._current(key, now, window_seconds)
        self._windows[key] = (started, count + 1)
        if len(self._windows) > 100_000:
            self._evict(now, window_seconds)
        return count + 1, max(1, int(window_seconds - (now - started)))

    async def count(self, key: str, *, window_seconds: int) -> tuple[int, int]:
        now = time.monotonic()
        started, count = self._current(key, now, window_seconds)
        return count, max(1, int(window_seconds - (now - started)))

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    def _current(self, key: str, now: float, window_seconds: int) -> tuple[float, int]:
        started, count = self._windows.get(key, (now, 0))
        return (now, 0) if now - started >= window_seconds else (started, count)

    def _evict(self, now: float, window_seconds: int) -> None:
        # Bounded memory under an attack that varies the key: drop every expired window.
        for key in [k for k, (s, _) in self._windows.items() if now - s >= window_seconds]:
            del self._windows[key]


class RedisRateLimiter:
    """Counters in Redis, so every app process sees the same limit."""

    def __init__(self, redis: Redis, *, prefix: str = "originlive:rl:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def hit(self, key: str, *, window_seconds: int) -> tuple[int, int]:
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds, nx=True)
            pipe.ttl(name)
            count, _, ttl = await pipe.execute()
        return int(count), max(1, int(ttl))

    async def count(self, key: str, *, window_seconds: int) -> tuple[int, int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._prefix + key)
            pipe.ttl(self._prefix + key)
            count, ttl = await pipe.execute()
        return int(count or 0), max(1, int(ttl) if ttl > 0 else window_seconds)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
