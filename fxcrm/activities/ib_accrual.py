"""Real-time accrual of IB commissions from the ingested deals of one platform server.

Reads closed_deals past the server's accrual cursor in batches, works out with the commission
engine (fxcrm.domain.ib.engine.accrue) who earns what on each deal, and writes one IbAccrual row per
(deal, beneficiary, rule).

Exactly once: a batch's accruals are inserted ignoring duplicates on (deal_pk, beneficiary_id,
rule) and the cursor moves past the batch in the same transaction, so a retried call redoes at
most the batch that did not commit, and a deal is never accrued twice. A deal that pays nobody gets
one IbUnpaidDeal row saying why (unknown login, no rate, opening deal, ...), in the same way.

Period: the month the deal closed in, unless settlement already started on that month for the
brand; then the next unsettled month (a late deal becomes an adjustment of the next settlement),
the deal's own month kept in the inputs.

Memory stays flat however long the backlog: one batch of deals at a time, and the brand's IB
context (fxcrm.ib.context), kept between calls and rebuilt when its tables change.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from fxcrm.core.db import insert_ignoring_duplicates, transaction
from fxcrm.ib.accrual import ACCRUAL_UNIQUE, DEAL_COLUMNS, UNPAID_UNIQUE, accrual_rows
from fxcrm.ib.context import IbContext, context_fingerprint
from fxcrm.ib.periods import closed_through, lock_periods
from fxcrm.models import IbAccrual, IbAccrualCursor, IbUnpaidDeal, IngestedDeal
from fxcrm.workflows.ib_accrual_types import AccrueInput, AccrueResult

log = structlog.get_logger(__name__)

BATCH_SIZE = 5_000  # deals per transaction
# A context is rebuilt when rows are added to its tables (fingerprint), and at least this often
# for rows edited in place (an account moved to another group).
CONTEXT_MAX_AGE_SECONDS = 60.0


@dataclass
class _Cached:
    fingerprint: tuple[Any, ...]
    loaded_at: float
    context: IbContext


@dataclass
class _Batch:
    read: int = 0
    accrued: int = 0
    excluded: int = 0
    upto: int = 0
    caught_up: bool = True


class IbAccrualActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        batch_size: int = BATCH_SIZE,
        context_max_age_seconds: float = CONTEXT_MAX_AGE_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._batch_size = batch_size
        self._max_age = context_max_age_seconds
        self._contexts: dict[str, _Cached] = {}

    @activity.defn
    async def accrue_deals(self, inp: AccrueInput) -> AccrueResult:
        total = _Batch()
        reasons: Counter[str] = Counter()
        first = True
        while True:
            limit = min(self._batch_size, inp.max_deals - total.read)
            # Changes to the IB tables are looked for once per call, not per batch.
            batch = await self._accrue_batch(inp.server_id, limit, reasons, check=first)
            first = False
            activity.heartbeat(batch.upto)
            total.read += batch.read
            total.accrued += batch.accrued
            total.excluded += batch.excluded
            total.upto = batch.upto
            total.caught_up = batch.caught_up
            if batch.caught_up or total.read >= inp.max_deals:
                break
        if total.read:
            log.info(
                "IB commissions accrued",
                server_id=inp.server_id,
                deals=total.read,
                accruals=total.accrued,
                excluded=total.excluded,
                upto=total.upto,
            )
        return AccrueResult(
            read=total.read,
            accrued=total.accrued,
            excluded=total.excluded,
            upto=total.upto,
            caught_up=total.caught_up,
            reasons=dict(reasons),
        )

    async def _accrue_batch(
        self, server_id: str, limit: int, reasons: Counter[str], *, check: bool
    ) -> _Batch:
        async with transaction(self._sessions) as session:
            cursor = await session.get(IbAccrualCursor, server_id, with_for_update=True)
            if cursor is None:
                cursor = IbAccrualCursor(server_id=server_id, upto_deal_pk=0)
                session.add(cursor)
                await session.flush()
            start = cursor.upto_deal_pk
            deals = (
                await session.execute(
                    select(*DEAL_COLUMNS)
                    .where(IngestedDeal.server_id == server_id, IngestedDeal.id > start)
                    .order_by(IngestedDeal.id)
                    .limit(limit)
                )
            ).all()
            if not deals:
                return _Batch(upto=start)
            context = await self._context(session, server_id, check)
            # Under the brand's shared period lock: a close waits for this batch, or this batch
            # sees the close and puts late deals into the next open period.
            await lock_periods(session, context.brand_id, exclusive=False)
            latest_closed = await closed_through(session, context.brand_id)
            unpaid: list[dict[str, Any]] = []
            rows, excluded = await accrual_rows(
                session, context, deals, latest_closed, reasons, unpaid
            )
            accrued = await insert_ignoring_duplicates(
                session,
                IbAccrual.__table__,  # type: ignore[arg-type]
                rows,
                ACCRUAL_UNIQUE,
            )
            # Why the others paid nothing: once per deal, with the cursor, like the accruals.
            await insert_ignoring_duplicates(
                session,
                IbUnpaidDeal.__table__,  # type: ignore[arg-type]
                unpaid,
                UNPAID_UNIQUE,
            )
            cursor.upto_deal_pk = deals[-1].id
            cursor.updated_at = datetime.now(UTC)
        return _Batch(
            read=len(deals),
            accrued=accrued,
            excluded=excluded,
            upto=deals[-1].id,
            caught_up=len(deals) < limit,
        )

    async def _context(self, session: AsyncSession, server_id: str, check: bool) -> IbContext:
        cached = self._contexts.get(server_id)
        now = time.monotonic()
        if cached is not None and not check:
            return cached.context
        fingerprint = await context_fingerprint(session, server_id)
        if (
            cached is not None
            and cached.fingerprint == fingerprint
            and now - cached.loaded_at < self._max_age
        ):
            return cached.context
        began = time.perf_counter()
        context = await IbContext.load(session, server_id)
        self._contexts[server_id] = _Cached(fingerprint, now, context)
        log.info(
            "IB context loaded",
            server_id=server_id,
            seconds=round(time.perf_counter() - began, 3),
        )
        return context
