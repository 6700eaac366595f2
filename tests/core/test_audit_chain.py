"""The hash-chained audit log: appends link, concurrent appenders never fork, tampering is found."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.core.audit import Actor, append_audit, verify_chain
from fxcrm.core.db import transaction
from fxcrm.models import AuditEvent

ACTOR = Actor(type="staff", id="s-1", role="admin")


async def _append(
    sessions: async_sessionmaker[AsyncSession], n: int, key: str | None = None
) -> None:
    async with transaction(sessions) as session:
        await append_audit(
            session,
            actor=ACTOR,
            action="test.event",
            entity_type="thing",
            entity_id=f"e-{n}",
            after={"n": n, "amount": "10.50"},
            event_key=key,
        )


async def test_chain_verifies_after_appends(sessions: async_sessionmaker[AsyncSession]) -> None:
    for n in range(5):
        await _append(sessions, n)
    async with sessions() as session:
        report = await verify_chain(session)
    assert report.ok, report
    assert report.events_checked >= 5


async def test_event_key_appends_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    key = f"k-{uuid.uuid4()}"
    await _append(sessions, 1, key)
    await _append(sessions, 1, key)
    async with sessions() as session:
        rows = (await session.scalars(select(AuditEvent).where(AuditEvent.event_key == key))).all()
    assert len(rows) == 1


async def test_concurrent_appends_keep_one_chain(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await asyncio.gather(*(_append(sessions, n) for n in range(20)))
    async with sessions() as session:
        report = await verify_chain(session)
        seqs = (await session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq))).all()
    assert report.ok, report
    assert list(seqs) == list(range(1, len(seqs) + 1))


async def test_altered_row_is_reported_with_its_seq(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _append(sessions, 100)
    await _append(sessions, 101)
    async with transaction(sessions) as session:
        target = await session.scalar(select(AuditEvent).where(AuditEvent.entity_id == "e-100"))
        assert target is not None
        seq = target.seq
        original = target.after
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.seq == seq)
            .values(after={"n": 100, "amount": "1000000"})
        )
    async with sessions() as session:
        report = await verify_chain(session)
    assert not report.ok
    assert report.first_broken_seq == seq
    assert report.problem and "altered" in report.problem
    # Put it back so other tests on this database see a valid chain.
    async with transaction(sessions) as session:
        await session.execute(
            update(AuditEvent).where(AuditEvent.seq == seq).values(after=original)
        )
    async with sessions() as session:
        assert (await verify_chain(session)).ok
