"""Async SQLAlchemy engine and sessions for SQLite (dev, tests) and PostgreSQL (production, CI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(database_url, pool_pre_ping=True, **kwargs)


# The API's connections to SQLite, per process: a few, and no overflow. Each aiosqlite connection is a
# thread; with more of them the threads contend for the GIL, and overflow connections opened and
# closed under sustained load (with their PRAGMAs) cost more than the wait for a pooled one. With 4
# and no overflow the portal's reads served 1.4-1.9x the requests/s of the default (5 + 10
# overflow) at 100 clients, with a third of the p99. A request holds at most one connection.
SQLITE_API_POOL = {"pool_size": 4, "max_overflow": 0}


def api_pool_options(database_url: str) -> dict[str, Any]:
    """Pool settings for the API's engine (create_engine's keyword arguments)."""
    if make_url(database_url).get_backend_name() == "sqlite":
        return dict(SQLITE_API_POOL)
    return {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin_immediate) and keep WAL for concurrency.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN: two writers then queue on busy_timeout instead of failing
    # with "database is locked" when a reader upgrades to a writer mid-transaction. Sessions made
    # by read_session_factory only read: WAL lets them run beside the writer, so they don't queue.
    if conn.get_execution_options().get(READ_ONLY):
        # A deferred BEGIN takes no lock and cannot fail on one, so it goes straight to the
        # driver: one trip to aiosqlite's thread instead of three (cursor, execute, close),
        # which was a tenth of the time of a portal read.
        conn.connection.dbapi_connection.run_async(lambda driver: driver.execute("BEGIN"))
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


READ_ONLY = "fxcrm_read_only"


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads only (the API's GET endpoints): on SQLite they don't take the write lock,
    so a page of history never waits behind a deposit being posted. Elsewhere the same as
    session_factory."""
    return async_sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessions() as session, session.begin():
        yield session


async def insert_ignoring_duplicates(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], unique: list[str]
) -> int:
    """INSERT ... ON CONFLICT (unique) DO NOTHING on SQLite and PostgreSQL; returns how many rows
    were new. One compiled statement, executed for many rows (SQLAlchemy batches the VALUES)."""
    if not rows:
        return 0
    from sqlalchemy.dialects import postgresql, sqlite

    primary_key = next(iter(table.primary_key.columns))
    if session.get_bind().dialect.name == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=unique)
    else:
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=unique)
    statement = statement.returning(primary_key)
    result = await session.execute(statement, rows)
    return len(result.all())
