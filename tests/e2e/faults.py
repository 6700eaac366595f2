"""An ASGI wrapper that holds back chosen responses: the platform did the work, the answer is late."""

from __future__ import annotations

import asyncio
from typing import Any

Scope = dict[str, Any]


class SlowResponses:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.delay_paths: dict[str, float] = {}
        self.seen: asyncio.Event | None = None
        self.seen_count = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        delay = self.delay_paths.get(scope.get("path", "")) if scope["type"] == "http" else None
        if not delay:
            await self.app(scope, receive, send)
            return

        async def late_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.seen_count += 1
                await asyncio.sleep(delay)
            await send(message)

        await self.app(scope, receive, late_send)
