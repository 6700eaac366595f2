"""One gateway per platform server per worker: sessions (MT5's keep-alive socket) are pooled here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fxcrm.adapters.platforms.base import TradingPlatformGateway

# Builds a gateway for a server id (reads the server's settings itself).
GatewayFactory = Callable[[str], Awaitable[TradingPlatformGateway]]


class PlatformRegistry:
    def __init__(self, factory: GatewayFactory) -> None:
        self._factory = factory
        self._gateways: dict[str, TradingPlatformGateway] = {}
        self._lock = asyncio.Lock()

    async def get(self, server_id: str) -> TradingPlatformGateway:
        async with self._lock:
            gateway = self._gateways.get(server_id)
            if gateway is None:
                gateway = await self._factory(server_id)
                self._gateways[server_id] = gateway
            return gateway

    async def close(self) -> None:
        for gateway in self._gateways.values():
            await gateway.close()
        self._gateways.clear()
