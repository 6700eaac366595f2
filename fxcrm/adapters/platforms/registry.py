"""Gateways per platform server per worker: sessions (MT5's keep-alive socket) are pooled here.

Each server gets one gateway per purpose. Sync (deal ingestion, account mirrors) is a long stream of
batch reads; operations (account opening, balance operations, dealer changes) are short calls a person
or a payment is waiting on. On separate sessions a sync backlog can never starve an operation, and an
MT5 session pinned to one connection serves one kind of traffic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from fxcrm.adapters.platforms.base import TradingPlatformGateway

# Builds a gateway for a server id (reads the server's settings itself).
GatewayFactory = Callable[[str], Awaitable[TradingPlatformGateway]]

Purpose = Literal["sync", "ops"]


class PlatformRegistry:
    def __init__(self, factory: GatewayFactory) -> None:
        self._factory = factory
        self._gateways: dict[tuple[str, Purpose], TradingPlatformGateway] = {}
        self._lock = asyncio.Lock()

    async def get(self, server_id: str, purpose: Purpose = "ops") -> TradingPlatformGateway:
        async with self._lock:
            key = (server_id, purpose)
            gateway = self._gateways.get(key)
            if gateway is None:
                gateway = await self._factory(server_id)
                self._gateways[key] = gateway
            return gateway

    async def close(self) -> None:
        for gateway in self._gateways.values():
            await gateway.close()
        self._gateways.clear()
