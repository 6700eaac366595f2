"""Both rate-limiter backends keep the same fixed-window rules (Redis: the one on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from fxcrm.core.ratelimit import (
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    build_rate_limiter,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        backend: RateLimiter = MemoryRateLimiter()
    else:
        # A prefix of this run's own, so no other user of the server is touched.
        backend = RedisRateLimiter(REDIS_URL, prefix=f"fxcrm-test-sec:{uuid.uuid4().hex}:")
    yield backend
    await backend.close()


async def test_allows_the_limit_then_says_how_long_to_wait(limiter: RateLimiter) -> None:
    limit = Limit(3, 60)
    assert [await limiter.hit("k", limit) for _ in range(3)] == [0, 0, 0]
    wait = await limiter.hit("k", limit)
    assert 1 <= wait <= 60
    assert await limiter.hit("other", limit) == 0  # keys are counted apart


async def test_peek_counts_nothing(limiter: RateLimiter) -> None:
    limit = Limit(2, 60)
    for _ in range(5):
        assert await limiter.peek("k", limit) == 0
    await limiter.hit("k", limit)
    assert await limiter.peek("k", limit) == 0
    await limiter.hit("k", limit)
    assert 1 <= await limiter.peek("k", limit) <= 60


async def test_reset_and_window_end_free_the_key(limiter: RateLimiter) -> None:
    limit = Limit(1, 1)
    await limiter.hit("k", limit)
    assert await limiter.hit("k", limit) > 0
    await limiter.reset("k")
    assert await limiter.hit("k", limit) == 0
    await asyncio.sleep(1.2)
    assert await limiter.hit("k", limit) == 0


async def test_a_zero_limit_is_off(limiter: RateLimiter) -> None:
    for _ in range(10):
        assert await limiter.hit("k", Limit(0, 60)) == 0


async def test_concurrent_hits_never_exceed_the_limit(limiter: RateLimiter) -> None:
    limit = Limit(10, 60)
    waits = await asyncio.gather(*(limiter.hit("k", limit) for _ in range(40)))
    assert sum(1 for w in waits if w == 0) == 10


async def test_an_unreachable_redis_fails_open() -> None:
    # An outage must not stop every login and write: allow, and log the error.
    down = RedisRateLimiter("redis://127.0.0.1:1/0")
    assert await down.hit("k", Limit(1, 60)) == 0
    assert await down.hit("k", Limit(1, 60)) == 0
    await down.close()


def test_backend_follows_the_setting() -> None:
    assert isinstance(build_rate_limiter(None), MemoryRateLimiter)
    assert isinstance(build_rate_limiter(REDIS_URL), RedisRateLimiter)
