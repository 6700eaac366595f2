"""Fixed-window rate limits: in memory for the embedded default, Redis when several API replicas
must share the counts (production).

A limit is a number of hits per window; `hit` counts one and says how long to wait once the
window is full. Counting stops at the limit's edge only for the caller: every hit is counted, so a
client that keeps hammering keeps its window full until the window ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Limit:
    hits: int
    seconds: int

    @property
    def enabled(self) -> bool:
        return self.hits > 0 and self.seconds > 0


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: Limit) -> int:
        """Counts one hit; returns 0 if allowed, else the seconds until the window ends."""
        ...

    async def peek(self, key: str, limit: Limit) -> int:
        """Like hit, but counts nothing: is this key already over its limit?"""
        ...

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """One process's counts: right for `make dev` and a single API process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, hits)
        self._max_keys = max_keys

    def _now(self) -> float:
        return time.monotonic()

    def _window(self, key: str, limit: Limit) -> tuple[float, int]:
        now = self._now()
        ends, hits = self._windows.get(key, (0.0, 0))
        if ends <= now:
            if len(self._windows) >= self._max_keys:
                self._sweep(now)
            ends, hits = now + limit.seconds, 0
        return ends, hits

    def _sweep(self, now: float) -> None:
        for key in [k for k, (ends, _) in self._windows.items() if ends <= now]:
            del self._windows[key]

    def _wait(self, ends: float, hits: int, limit: Limit) -> int:
        return 0 if hits <= limit.hits else max(1, int(ends - self._now()) + 1)

    async def hit(self, key: str, limit: Limit) -> int:
        if not limit.enabled:
            return 0
        ends, hits = self._window(key, limit)
        self._windows[key] = (ends, hits + 1)
        return self._wait(ends, hits + 1, limit)

    async def peek(self, key: str, limit: Limit) -> int:
        if not limit.enabled:
            return 0
        ends, hits = self._window(key, limit)
        return self._wait(ends, hits + 1, limit) if hits >= limit.hits else 0

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    async def close(self) -> None:
        self._windows.clear()


class RedisRateLimiter:
    """Counts shared by every API replica: INCR on a key that expires with its window."""

    def __init__(self, url: str, prefix: str = "fxcrm:rl:") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._prefix = prefix

    async def hit(self, key: str, limit: Limit) -> int:
        if not limit.enabled:
            return 0
        name = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(name, 0, ex=limit.seconds, nx=True)
                pipe.incr(name)
                pipe.ttl(name)
                _, hits, ttl = await pipe.execute()
        except Exception as exc:  # fail open: an outage of Redis must not stop every login
            log.error("rate limiter unavailable", error=str(exc))
            return 0
        return 0 if int(hits) <= limit.hits else max(1, int(ttl))

    async def peek(self, key: str, limit: Limit) -> int:
        if not limit.enabled:
            return 0
        name = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(name)
                pipe.ttl(name)
                hits, ttl = await pipe.execute()
        except Exception as exc:
            log.error("rate limiter unavailable", error=str(exc))
            return 0
        return max(1, int(ttl)) if hits is not None and int(hits) >= limit.hits else 0

    async def reset(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except Exception as exc:
            log.error("rate limiter unavailable", error=str(exc))

    async def close(self) -> None:
        await self._redis.aclose()


def build_rate_limiter(redis_url: str | None, prefix: str = "fxcrm:rl:") -> RateLimiter:
    return RedisRateLimiter(redis_url, prefix) if redis_url else MemoryRateLimiter()
