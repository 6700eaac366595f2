"""The API's engine on SQLite: a few pooled connections and no overflow (see SQLITE_API_POOL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from fxcrm.api.main import create_app
from fxcrm.core.config import Settings
from fxcrm.core.db import SQLITE_API_POOL, api_pool_options


def test_only_sqlite_gets_the_small_pool() -> None:
    assert api_pool_options("sqlite+aiosqlite:////tmp/x.db") == SQLITE_API_POOL
    assert api_pool_options("postgresql+asyncpg://u@h/db") == {}


async def test_the_api_uses_it(tmp_path: Path) -> None:
    settings = Settings(env="test", database_url=f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.sessions.kw["bind"]
        pool = engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow) == (4, 0)  # type: ignore[attr-defined]
