"""PSP reconciliation activities: fetch a day's settlement report, compare it with the ledger, book
the PSP's fees and store the run and its breaks.

What the ledger side is (`_ledger_entries`): transfers on the PSP's clearing accounts, classified by
their idempotency keys: `deposit:{payment}` (a deposit credited), `refund:{refund}` posted (a
refund paid), `chargeback:{payment}:*` (a chargeback, wallet and receivable parts summed); and
withdrawals by their Payment rows (status paid), since their ledger keys belong to the withdrawal
flow; a withdrawal's refunds to the card (PSP refund lines `wd-{withdrawal}-{deposit}`) count as
part of its payout. The platform side is checked through the ledger: a deposit to a trading account must have
a transfer into that account's ledger mirror (a key naming the payment). The mirror is kept equal
to the platform balance by the platform sync (balance_drift alerts), so this avoids a platform call
per payment; a deposit whose platform credit failed on purpose (credit_failed: money kept in the
wallet and alerted) is not a break.

Exactly once: the run is unique per (psp, day) and updated in place; breaks are upserted by key;
fee postings carry an idempotency key per (flow, payment or refund, day). A re-run after a crash or
by finance changes only what changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from fxcrm.activities.money import house_account, psp_clearing_account
from fxcrm.adapters.psp.base import PspError, SettlementLine
from fxcrm.adapters.psp.registry import PspRegistry, UnknownProvider
from fxcrm.core.db import transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import AccountKind, IdempotencyConflict, TransferKind, TransferPhase
from fxcrm.domain.money import Money
from fxcrm.domain.reconciliation import (
    LINE_FLOWS,
    Break,
    FeeDue,
    Flow,
    LedgerEntry,
    PspLine,
    match_day,
)
from fxcrm.ledger import TransferRequest, transfer
from fxcrm.models import LedgerAccount, LedgerTransfer, Payment
from fxcrm.models.base import utcnow
from fxcrm.models.payments import ReconciliationBreak, ReconciliationRun
from fxcrm.workflows.reconciliation_types import (
    ReconcileInput,
    ReconciliationResult,
    ReportRequest,
    SettlementReport,
)

log = structlog.get_logger(__name__)

POSTED = (TransferPhase.SINGLE.value, TransferPhase.POST.value)
WITHDRAWAL_REFUND = "wd-"
CLEARED_ON_RERUN = "no longer found when the day was reconciled again"


def _psp_lines(lines: Iterable[SettlementLine]) -> tuple[list[PspLine], int]:
    matched, ignored = [], 0
    for line in lines:
        flow = LINE_FLOWS.get(line.type.value)
        if flow is None:
            ignored += 1
            continue
        our_id = line.our_id
        if flow is Flow.REFUND and our_id and our_id.startswith(WITHDRAWAL_REFUND):
            # A withdrawal paid back to a deposit's card (`wd-{withdrawal}-{deposit}`): part of
            # that withdrawal's payout, which the ledger books as one amount.
            flow, our_id = Flow.PAYOUT, our_id.split("-")[1]
        matched.append(
            PspLine(
                flow=flow,
                provider_ref=line.provider_ref,
                our_id=our_id,
                gross=line.gross.to_minor(),
                fee=line.fee.to_minor(),
                currency=line.currency.upper(),
                booked_at=line.booked_at.astimezone(UTC),
            )
        )
    return matched, ignored


class ReconciliationActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], psps: PspRegistry) -> None:
        self._sessions = sessions
        self._psps = psps

    @activity.defn
    async def fetch_settlement_report(self, request: ReportRequest) -> SettlementReport:
        """Every movement the provider booked on the day; outages are retried by Temporal."""
        try:
            provider = self._psps.get(request.psp)
        except UnknownProvider as exc:
            raise ApplicationError(str(exc), type="UnknownPsp", non_retryable=True) from exc
        try:
            lines = await provider.settlement_report(request.day)
        except PspError as exc:
            raise ApplicationError(
                str(exc), type=f"Psp.{exc.code or 'error'}", non_retryable=not exc.retryable
            ) from exc
        return SettlementReport(psp=request.psp, day=request.day, lines=lines)

    @activity.defn
    async def reconcile_day(self, inp: ReconcileInput) -> ReconciliationResult:
        lines, ignored = _psp_lines(inp.report.lines)
        nearby, _ = _psp_lines(inp.nearby)
        tolerance = timedelta(seconds=inp.tolerance_seconds)
        async with transaction(self._sessions) as session:
            run = await _upsert_run(session, inp.psp, inp.day)
            entries = await _ledger_entries(session, inp.psp, inp.day, tolerance, lines)
            result = match_day(
                inp.day,
                lines,
                entries,
                nearby=nearby,
                ignored=ignored,
                tolerance=tolerance,
                fee_key_prefix=f"psp-fee:{inp.psp}",
            )
            fees_booked = 0
            for fee in result.fees:
                fees_booked += await _book_fee(session, inp.psp, fee)
            open_breaks = await _store_breaks(session, run, result.breaks)
            run.lines = result.lines + result.ignored
            run.matched = result.matched
            run.breaks = open_breaks
            run.status = "breaks" if open_breaks else "clean"
            run.finished_at = utcnow()
            log.info(
                "psp reconciliation",
                psp=inp.psp,
                day=inp.day.isoformat(),
                lines=run.lines,
                matched=run.matched,
                breaks=open_breaks,
                deferred=result.deferred,
                fees_booked=fees_booked,
            )
            return ReconciliationResult(
                run_id=run.id,
                psp=inp.psp,
                day=inp.day,
                status=run.status,
                lines=run.lines,
                matched=run.matched,
                breaks=open_breaks,
                fees_booked=fees_booked,
            )


# ---------------------------------------------------------------- run and breaks


async def _upsert_run(session: AsyncSession, psp: str, day: date) -> ReconciliationRun:
    run = await session.scalar(
        select(ReconciliationRun)
        .where(ReconciliationRun.psp == psp, ReconciliationRun.day == day)
        .with_for_update()
    )
    if run is None:
        run = ReconciliationRun(psp=psp, day=day, status="running")
        session.add(run)
        await session.flush()
    else:
        run.status = "running"
    return run


def _plain(side: dict[str, object] | None) -> dict[str, Any] | None:
    return None if side is None else dict(side)


async def _store_breaks(session: AsyncSession, run: ReconciliationRun, found: list[Break]) -> int:
    """Upsert breaks by key; an open break this run no longer finds is closed as cleared."""
    existing = {
        row.break_key: row
        for row in await session.scalars(
            select(ReconciliationBreak).where(ReconciliationBreak.run_id == run.id)
        )
    }
    rows: dict[str, ReconciliationBreak] = {}
    for item in found:
        key = item.key[:200]
        row = existing.get(key)
        if row is None:
            row = ReconciliationBreak(
                run_id=run.id,
                break_key=key,
                psp=run.psp,
                kind=item.kind.value,
                provider_ref=item.provider_ref,
                payment_id=item.payment_id,
                expected=_plain(item.expected),
                actual=_plain(item.actual),
                status="open",
            )
            session.add(row)
        elif row.status == "open":
            row.expected, row.actual = _plain(item.expected), _plain(item.actual)
        rows[key] = row
    now = utcnow()
    for key, row in existing.items():
        if key not in rows and row.status == "open":
            row.status, row.resolution = "resolved", CLEARED_ON_RERUN
            row.resolved_by, row.resolved_at = "system", now
    await session.flush()
    return sum(1 for row in rows.values() if row.status == "open")


async def _book_fee(session: AsyncSession, psp: str, fee: FeeDue) -> int:
    """debit broker_expense / credit psp_clearing (the other way for a fee given back), once per
    key; returns 1 if posted now. A different amount under a used key is left for finance."""
    key = fee.key[:200]
    if await session.scalar(select(LedgerTransfer.id).where(LedgerTransfer.idempotency_key == key)):
        return 0
    payment = await session.get(Payment, fee.payment_id)
    if payment is None:
        return 0
    clearing = await psp_clearing_account(session, payment.brand_id, psp, fee.currency)
    expense = await house_account(
        session,
        payment.brand_id,
        AccountKind.BROKER_EXPENSE,
        rules.broker_expense_code(fee.currency),
        fee.currency,
    )
    debit, credit = (expense, clearing) if fee.amount > 0 else (clearing, expense)
    try:
        await transfer(
            session,
            TransferRequest(
                idempotency_key=key,
                debit_account_id=debit,
                credit_account_id=credit,
                amount=Money.from_minor(abs(fee.amount), fee.currency),
                kind=TransferKind.FEE,
                reference=fee.provider_ref[:200],
                details={"psp": psp, "payment_id": fee.payment_id, "psp_fee": True},
            ),
        )
    except IdempotencyConflict:
        log.warning("psp fee key reused with another amount", key=key)
        return 0
    return 1


# ---------------------------------------------------------------- the ledger side


def _payment_key(key: str, prefix: str) -> str | None:
    return key[len(prefix) :].split(":", 1)[0] if key.startswith(prefix) else None


async def _ledger_entries(
    session: AsyncSession, psp: str, day: date, tolerance: timedelta, lines: list[PspLine]
) -> list[LedgerEntry]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    since, until = start - tolerance, start + timedelta(days=1) + tolerance
    clearing_ids = list(
        await session.scalars(
            select(LedgerAccount.id).where(LedgerAccount.code.like(f"psp:{psp}:clearing:%"))
        )
    )
    # Our ids and references the PSP's lines name: their entries count whenever they were posted.
    our_ids = {line.our_id for line in lines if line.our_id}
    refs = {line.provider_ref for line in lines}
    by_ref = set(
        await session.scalars(
            select(Payment.id).where(Payment.psp == psp, Payment.provider_ref.in_(refs))
        )
    )
    named = our_ids | by_ref
    keys = {f"deposit:{pid}" for pid in named} | {f"refund:{rid}" for rid in our_ids}
    touches = or_(
        LedgerTransfer.debit_account_id.in_(clearing_ids),
        LedgerTransfer.credit_account_id.in_(clearing_ids),
    )
    rows = list(
        await session.scalars(
            select(LedgerTransfer).where(
                touches,
                or_(
                    (LedgerTransfer.created_at >= since) & (LedgerTransfer.created_at < until),
                    LedgerTransfer.idempotency_key.in_(keys),
                    LedgerTransfer.group_id.in_([f"chargeback:{pid}" for pid in named]),
                    LedgerTransfer.pending_id.in_(
                        select(LedgerTransfer.id).where(LedgerTransfer.idempotency_key.in_(keys))
                    ),
                ),
            )
        )
    )
    entries: list[LedgerEntry] = []
    chargebacks: dict[str, list[LedgerTransfer]] = {}
    payments = await _payments(session, rows)
    for row in rows:
        if row.phase not in POSTED:
            continue
        if (pid := _payment_key(row.idempotency_key, "deposit:")) and row.idempotency_key == (
            f"deposit:{pid}"
        ):
            payment = payments.get(pid)
            if payment is not None:
                entries.append(await _deposit_entry(session, row, payment))
        elif row.idempotency_key.startswith("chargeback:"):
            pid = str(
                row.details.get("payment_id") or _payment_key(row.idempotency_key, "chargeback:")
            )
            chargebacks.setdefault(pid, []).append(row)
        elif row.phase == TransferPhase.POST.value and row.pending_id:
            hold = await session.get(LedgerTransfer, row.pending_id)
            if hold is not None and hold.idempotency_key.startswith("refund:"):
                payment = payments.get(str(hold.details.get("payment_id")))
                entries.append(
                    LedgerEntry(
                        flow=Flow.REFUND,
                        our_id=str(hold.details.get("refund_id")),
                        payment_id=str(hold.details.get("payment_id")),
                        provider_ref=payment.provider_ref if payment else None,
                        amount=-row.amount,
                        currency=row.currency,
                        at=row.created_at,
                    )
                )
    for pid, parts in chargebacks.items():
        payment = payments.get(pid) or await session.get(Payment, pid)
        entries.append(
            LedgerEntry(
                flow=Flow.CHARGEBACK,
                our_id=pid,
                payment_id=pid,
                provider_ref=payment.provider_ref if payment else None,
                amount=-sum(part.amount for part in parts),
                currency=parts[0].currency,
                at=max(part.created_at for part in parts),
            )
        )
    entries.extend(await _payout_entries(session, psp, since, until, named))
    return entries


async def _payments(session: AsyncSession, rows: list[LedgerTransfer]) -> dict[str, Payment]:
    ids: set[str] = set()
    for row in rows:
        if pid := _payment_key(row.idempotency_key, "deposit:"):
            ids.add(pid)
        if row.details and row.details.get("payment_id"):
            ids.add(str(row.details["payment_id"]))
    holds = [row.pending_id for row in rows if row.pending_id]
    if holds:
        for hold in await session.scalars(
            select(LedgerTransfer).where(LedgerTransfer.id.in_(holds))
        ):
            if hold.details and hold.details.get("payment_id"):
                ids.add(str(hold.details["payment_id"]))
    if not ids:
        return {}
    found = await session.scalars(select(Payment).where(Payment.id.in_(ids)))
    return {payment.id: payment for payment in found}


async def _deposit_entry(
    session: AsyncSession, row: LedgerTransfer, payment: Payment
) -> LedgerEntry:
    expected = payment.target_kind == "account" and payment.status != "credit_failed"
    done = False
    if expected:
        # The platform credit's ledger leg: into the trading account's mirror, keyed on the payment.
        mirror = await session.scalar(
            select(LedgerTransfer.id)
            .join(LedgerAccount, LedgerAccount.id == LedgerTransfer.credit_account_id)
            .where(
                LedgerTransfer.idempotency_key.like(f"%{payment.id}%"),
                LedgerTransfer.idempotency_key != row.idempotency_key,
                LedgerTransfer.phase.in_(POSTED),
                LedgerAccount.kind == AccountKind.CLIENT_TRADING.value,
            )
            .limit(1)
        )
        done = mirror is not None
    return LedgerEntry(
        flow=Flow.PAYMENT,
        our_id=payment.id,
        payment_id=payment.id,
        provider_ref=payment.provider_ref,
        amount=row.amount,
        currency=row.currency,
        at=row.created_at,
        platform_expected=expected,
        platform_done=done,
    )


async def _payout_entries(
    session: AsyncSession, psp: str, since: datetime, until: datetime, named: set[str]
) -> list[LedgerEntry]:
    paid = await session.scalars(
        select(Payment).where(
            Payment.psp == psp,
            Payment.kind == "withdrawal",
            Payment.status == "paid",
            or_(
                (Payment.completed_at >= since) & (Payment.completed_at < until),
                Payment.id.in_(named),
            ),
        )
    )
    return [
        LedgerEntry(
            flow=Flow.PAYOUT,
            our_id=payment.id,
            payment_id=payment.id,
            provider_ref=payment.provider_ref,
            amount=-payment.amount,
            currency=payment.currency,
            at=payment.completed_at or payment.updated_at,
        )
        for payment in paid
    ]
