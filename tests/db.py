"""Databases under test: a fresh SQLite file always, and PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy import text

from fxcrm.core.db import create_engine
from fxcrm.core.migrate import upgrade


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def fresh_database(backend: str, tmp_dir: Path) -> str:
    """A migrated, empty database; returns its async URL."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_dir / 'fxcrm-test.db'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
        await _reset_postgres(url)
    await asyncio.to_thread(upgrade, url)
    return url
