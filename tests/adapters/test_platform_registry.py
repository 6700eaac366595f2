"""The registry keeps one gateway per server and purpose, so sync traffic never queues operations."""

from __future__ import annotations

from typing import Any

import pytest

from fxcrm.adapters.platforms.registry import PlatformRegistry


class _Gateway:
    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_one_gateway_per_server_and_purpose() -> None:
    built: list[str] = []

    async def factory(server_id: str) -> Any:
        built.append(server_id)
        return _Gateway(server_id)

    registry = PlatformRegistry(factory)
    sync = await registry.get("mt5-a", "sync")
    ops = await registry.get("mt5-a", "ops")
    assert sync is not ops
    assert await registry.get("mt5-a", "sync") is sync
    assert await registry.get("mt5-a") is ops  # operations are the default
    other = await registry.get("mt5-b", "sync")
    assert other is not sync and built == ["mt5-a", "mt5-a", "mt5-b"]

    await registry.close()
    assert sync.closed and ops.closed and other.closed


@pytest.mark.parametrize("purpose", ["sync", "ops"])
async def test_factory_failure_is_not_cached(purpose: Any) -> None:
    calls = 0

    async def factory(server_id: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise LookupError(server_id)
        return _Gateway(server_id)

    registry = PlatformRegistry(factory)
    with pytest.raises(LookupError):
        await registry.get("mt5-a", purpose)
    assert isinstance(await registry.get("mt5-a", purpose), _Gateway)
