"""Apply Alembic migrations programmatically (CLI, dev runner, tests)."""

from __future__ import annotations

import asyncio

from alembic.config import Config

from alembic import command
from fxcrm.core.config import ROOT


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str) -> None:
    # alembic's env.py runs its own event loop: keep it off ours.
    await asyncio.to_thread(upgrade, database_url)
