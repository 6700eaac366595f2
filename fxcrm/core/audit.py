"""Append to and verify the hash-chained audit log.

Each event's hash covers its own fields and the previous event's hash, so altering, deleting or
re-ordering any row breaks every link after it. Appenders serialize on the single head row.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.models.audit import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64


class Actor(BaseModel):
    type: str  # staff | trader | ib | system | provider
    id: str
    role: str | None = None


SYSTEM = Actor(type="system", id="fxcrm")


def _canonical(value: Any) -> Any:
    """JSON-normalize so what we hash is exactly what the JSON column gives back."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _hashed_fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at.astimezone(UTC).isoformat(),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "brand_id": event.brand_id,
        "before": event.before,
        "after": event.after,
        "workflow_id": event.workflow_id,
        "event_key": event.event_key,
    }


async def append_audit(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str,
    brand_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    workflow_id: str | None = None,
    event_key: str | None = None,
) -> AuditEvent | None:
    """Append one event inside the caller's transaction. With an event_key, appends at most once."""
    if event_key is not None:
        existing = await session.scalar(select(AuditEvent).where(AuditEvent.event_key == event_key))
        if existing is not None:
            return None
    # Bump the head first: this takes the row (PostgreSQL) or database (SQLite) write lock
    # before we read the previous hash, so two appenders can never fork the chain.
    await session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    head = await session.scalar(
        select(AuditHead).where(AuditHead.id == 1).execution_options(populate_existing=True)
    )
    if head is None:
        head = AuditHead(id=1, seq=1, hash=GENESIS_HASH)
        session.add(head)
    event = AuditEvent(
        seq=head.seq,
        at=datetime.now(UTC),
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        brand_id=brand_id,
        before=_canonical(before),
        after=_canonical(after),
        workflow_id=workflow_id,
        event_key=event_key,
        prev_hash=head.hash,
    )
    event.hash = event_hash(head.hash, _hashed_fields(event))
    head.hash = event.hash
    session.add(event)
    await session.flush()
    return event


class ChainReport(BaseModel):
    ok: bool
    events_checked: int
    first_broken_seq: int | None = None
    problem: str | None = None


async def verify_chain(session: AsyncSession, batch: int = 5000) -> ChainReport:
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.seq > last_seq)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            break
        for event in rows:
            if event.seq != expected_seq:
                return ChainReport(
                    ok=False,
                    events_checked=checked,
                    first_broken_seq=expected_seq,
                    problem=f"event {expected_seq} is missing",
                )
            if event.prev_hash != prev_hash:
                return ChainReport(
                    ok=False,
                    events_checked=checked,
                    first_broken_seq=event.seq,
                    problem="prev_hash does not link to the previous event",
                )
            if event_hash(prev_hash, _hashed_fields(event)) != event.hash:
                return ChainReport(
                    ok=False,
                    events_checked=checked,
                    first_broken_seq=event.seq,
                    problem="event content does not match its hash (altered)",
                )
            prev_hash = event.hash
            expected_seq += 1
            checked += 1
            last_seq = event.seq
    head = await session.get(AuditHead, 1)
    if head is not None and checked and head.hash != prev_hash:
        return ChainReport(
            ok=False,
            events_checked=checked,
            first_broken_seq=checked + 1,
            problem="events after the last one were removed",
        )
    return ChainReport(ok=True, events_checked=checked)
