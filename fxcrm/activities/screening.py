"""Holds the sanctions screener of this worker: lists loaded once, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from fxcrm.domain.screening import Screener


class ScreeningService:
    def __init__(self, build: Callable[[], Screener]) -> None:
        self._build = build
        self._screener: Screener | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_paths(cls, paths: list[Path]) -> ScreeningService:
        def build() -> Screener:
            from fxcrm.adapters.sanctions import load_lists

            loaded = load_lists(paths)
            return Screener(loaded.entities, loaded.version)

        return cls(build)

    async def screener(self) -> Screener:
        async with self._lock:
            if self._screener is None:
                self._screener = await asyncio.to_thread(self._build)
            return self._screener
