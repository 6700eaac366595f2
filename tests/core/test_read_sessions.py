"""Read sessions on SQLite: a real transaction (one snapshot for all their statements), begun
without taking the write lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from fxcrm.core.db import create_engine, read_session_factory, session_factory, transaction


async def test_a_read_session_sees_one_snapshot_and_does_not_block_writers(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        writes, reads = session_factory(engine), read_session_factory(engine)
        async with reads() as reader:
            assert await reader.scalar(text("SELECT sum(n) FROM t")) == 1
            # A writer commits while the read transaction is open: it does not wait for it ...
            async with transaction(writes) as writer:
                await writer.execute(text("INSERT INTO t VALUES (2)"))
            # ... and the reader still sees the snapshot it began with.
            assert await reader.scalar(text("SELECT sum(n) FROM t")) == 1
        async with reads() as reader:
            assert await reader.scalar(text("SELECT sum(n) FROM t")) == 3
    finally:
        await engine.dispose()


async def test_read_sessions_side_by_side(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (5)"))
        reads = read_session_factory(engine)

        async def read() -> int:
            async with reads() as session:
                value = await session.scalar(text("SELECT n FROM t"))
                await asyncio.sleep(0.01)
                return int(value)

        assert await asyncio.gather(*(read() for _ in range(8))) == [5] * 8
    finally:
        await engine.dispose()
