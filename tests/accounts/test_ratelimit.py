"""The rate limiter's two backends count alike; the Redis one is shared between clients."""

import pytest
from redis.asyncio import Redis

from originlive.realtime.ratelimit import MemoryRateLimiter, RedisRateLimiter


async def _exercise(limiter) -> None:
    assert (await limiter.hit("k", window_seconds=60))[0] == 1
    count, left = await limiter.hit("k", window_seconds=60)
    assert count == 2 and 0 < left <= 60
    assert (await limiter.count("k", window_seconds=60))[0] == 2  # counting is not a hit
    assert (await limiter.count("never", window_seconds=60)) == (0, 60)
    assert (await limiter.hit("other", window_seconds=60))[0] == 1
    await limiter.reset("k")
    assert (await limiter.hit("k", window_seconds=60))[0] == 1


async def test_memory_limiter() -> None:
    await _exercise(MemoryRateLimiter())


@pytest.mark.redis
async def test_redis_limiter_is_shared(redis_url: str) -> None:
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        await _exercise(RedisRateLimiter(a))
        # A second process (here: a second client) sees the same counter.
        assert (await RedisRateLimiter(b).hit("k", window_seconds=60))[0] == 2
    finally:
        await a.aclose()
        await b.aclose()
