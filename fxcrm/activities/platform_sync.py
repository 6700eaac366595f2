"""Platform sync activities: closed-deal ingestion, account mirrors and alerts, account changes.

Ingestion streams deals from the platform and upserts them in batches by (server, deal id): a
restart, an overlapping window or a replay inserts nothing twice, and memory does not grow with
the backlog.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from fxcrm.activities.trading_pnl import ledger_mirrors, post_to_mirror
from fxcrm.adapters.platforms.base import (
    ALL_GROUPS,
    AccessLevel,
    AccountState,
    ClosedDeal,
    PlatformBalanceOp,
    PlatformError,
    PlatformErrorKind,
    TradingPlatformGateway,
)
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.db import insert_ignoring_duplicates, transaction
from fxcrm.domain.alerts import ALERT_KINDS, balance_drift, breaches
from fxcrm.domain.bounds import MAX_INT64
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.ledger import TransferKind
from fxcrm.ledger.schemas import AccountView
from fxcrm.models import (
    AccountMirror,
    Brand,
    IngestedBalanceOp,
    IngestedDeal,
    LedgerAccount,
    PlatformServer,
    RiskAlert,
    SyncCursor,
)
from fxcrm.models.base import utcnow
from fxcrm.workflows.platform_sync_types import (
    AccountChange,
    AccountChangeResult,
    AccountsSynced,
    IngestInput,
    IngestResult,
    ServerRef,
)

log = structlog.get_logger(__name__)
DEALS_TABLE: Table = IngestedDeal.__table__  # type: ignore[assignment]
OPS_TABLE: Table = IngestedBalanceOp.__table__  # type: ignore[assignment]

BATCH = 2_000
# A server never synced before starts this far back.
FIRST_SYNC_LOOKBACK = timedelta(days=30)
# Business refusals: retrying cannot help, the caller gets a typed error.
PERMANENT = {
    PlatformErrorKind.NOT_FOUND,
    PlatformErrorKind.UNKNOWN_GROUP,
    PlatformErrorKind.INVALID_LEVERAGE,
    PlatformErrorKind.INSUFFICIENT_FUNDS,
    PlatformErrorKind.INVALID_REQUEST,
    PlatformErrorKind.CONFLICT,
    PlatformErrorKind.PERMISSION,
}


def platform_failure(exc: PlatformError) -> ApplicationError:
    permanent = exc.kind in PERMANENT or not exc.retryable
    return ApplicationError(
        str(exc), exc.kind.value, type=f"Platform.{exc.kind.value}", non_retryable=permanent
    )


async def _store_ops(session: AsyncSession, server_id: str, ops: list[PlatformBalanceOp]) -> int:
    known = set(
        (
            await session.scalars(
                select(IngestedBalanceOp.ticket).where(
                    IngestedBalanceOp.server_id == server_id,
                    IngestedBalanceOp.ticket.in_({op.ticket for op in ops}),
                )
            )
        ).all()
    )
    now = utcnow()
    rows = [
        {
            "server_id": server_id,
            "ticket": op.ticket,
            "login": op.login,
            "kind": op.kind,
            "amount": op.amount,
            "comment": op.comment[:100],
            "booked_at": op.time,
            "raw": json.loads(json.dumps(op.raw, default=str)),
            "ingested_at": now,
        }
        for op in {op.ticket: op for op in ops if op.ticket not in known}.values()
    ]
    return await insert_ignoring_duplicates(session, OPS_TABLE, rows, ["server_id", "ticket"])


def _deal_row(server_id: str, deal: ClosedDeal) -> dict[str, Any]:
    return {
        "server_id": server_id,
        "deal_id": deal.deal_id,
        "login": deal.login,
        "position_id": deal.position_id,
        "symbol": deal.symbol,
        "side": deal.side,
        "entry": deal.entry,
        "volume_lots": deal.volume_lots,
        "price": deal.price,
        "profit": deal.profit,
        "commission": deal.commission,
        "swap": deal.swap,
        "closed_at": deal.time,
        "opened_at": deal.opened_at,
        # Kept as the platform sent it; some clients hand over Decimals, JSON wants strings.
        "raw": json.loads(json.dumps(deal.raw, default=str)),
        "ingested_at": utcnow(),
    }


class PlatformSyncActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], platforms: PlatformRegistry
    ) -> None:
        self._sessions = sessions
        self._platforms = platforms

    @activity.defn
    async def ingest_deals(self, inp: IngestInput) -> IngestResult:
        """Reads [cursor - overlap, now) window by window; the cursor moves only past whole windows."""
        async with self._sessions() as session:
            cursor = await session.get(SyncCursor, inp.server_id)
            since = cursor.deals_until if cursor else utcnow() - FIRST_SYNC_LOOKBACK
        start = since - timedelta(seconds=inp.overlap_seconds)
        until = utcnow()
        window = timedelta(seconds=inp.window_seconds)
        gateway = await self._platforms.get(inp.server_id, "sync")
        read = inserted = 0
        while start < until:
            end = min(start + window, until)
            read_before = read
            batch: list[ClosedDeal] = []
            try:
                # Opening deals too: the commission some platforms charge on them is money.
                async for deal in gateway.iter_closed_deals(
                    None, ALL_GROUPS, start, end, openings=True
                ):
                    batch.append(deal)
                    read += 1
                    if len(batch) >= BATCH:
                        inserted += await self._store(inp.server_id, batch, None)
                        batch = []
                        activity.heartbeat(read)
                ops = [op async for op in gateway.iter_balance_ops(None, ALL_GROUPS, start, end)]
            except PlatformError as exc:
                raise platform_failure(exc) from exc
            inserted += await self._store(inp.server_id, batch, end, ops)
            activity.heartbeat(read)
            window = _next_window(window, read - read_before)
            start = end
            if read >= inp.max_deals and start < until:
                break
        if inserted:
            log.info("deals ingested", server_id=inp.server_id, read=read, inserted=inserted)
        return IngestResult(read=read, inserted=inserted, until=start, caught_up=start >= until)

    async def _store(
        self,
        server_id: str,
        deals: list[ClosedDeal],
        until: datetime | None,
        ops: list[PlatformBalanceOp] | None = None,
    ) -> int:
        """One transaction: the batch and the cursor move together. Most of a re-read overlap is
        stored already: those deals are looked up by id and skipped, only the new ones are
        written (the upsert still ignores a duplicate that slips in between). The window's
        balance operations are stored the same way, by ticket."""
        async with transaction(self._sessions) as session:
            if ops:
                await _store_ops(session, server_id, ops)
            inserted = 0
            if deals:
                known = set(
                    (
                        await session.scalars(
                            select(IngestedDeal.deal_id).where(
                                IngestedDeal.server_id == server_id,
                                IngestedDeal.deal_id.in_({deal.deal_id for deal in deals}),
                            )
                        )
                    ).all()
                )
                rows = [_deal_row(server_id, d) for d in deals if d.deal_id not in known]
                inserted = await insert_ignoring_duplicates(
                    session, DEALS_TABLE, rows, ["server_id", "deal_id"]
                )
            if until is not None:
                cursor = await session.get(SyncCursor, server_id)
                if cursor is None:
                    session.add(
                        SyncCursor(
                            server_id=server_id,
                            deals_until=until,
                            deals_ingested=inserted,
                            updated_at=utcnow(),
                        )
                    )
                else:
                    cursor.deals_until = max(cursor.deals_until, until)
                    cursor.deals_ingested += inserted
                    cursor.updated_at = utcnow()
            return inserted

    @activity.defn
    async def sync_accounts(self, ref: ServerRef) -> AccountsSynced:
        gateway = await self._platforms.get(ref.server_id, "sync")
        try:
            commissions = await _open_commission(gateway)
            accounts = await gateway.list_accounts(None)
        except PlatformError as exc:
            raise platform_failure(exc) from exc
        activity.heartbeat(len(accounts))
        async with self._sessions() as session:
            brand = await self._brand_of(session, ref.server_id)
            stored = {
                login: value
                for login, value in await session.execute(
                    select(AccountMirror.login, AccountMirror.open_commission).where(
                        AccountMirror.server_id == ref.server_id
                    )
                )
            }
            open_alerts = {
                (a.login, a.kind): a
                for a in (
                    await session.scalars(
                        select(RiskAlert).where(
                            RiskAlert.server_id == ref.server_id,
                            RiskAlert.status.in_(("open", "pending")),
                        )
                    )
                ).all()
            }
        raised = cleared = 0
        now = utcnow()
        for start in range(0, len(accounts), BATCH):
            async with transaction(self._sessions) as session:
                mirrors = await ledger_mirrors(session, ref.server_id)
                for account in accounts[start : start + BATCH]:
                    login = account.login
                    charged = stored.get(login, Decimal(0))
                    if commissions is not None:
                        charged = await _mirror_open_commission(
                            session,
                            ref.server_id,
                            mirrors.get(login),
                            account,
                            charged,
                            commissions.get(login, Decimal(0)),
                            now,
                        )
                    await session.merge(_mirror(ref.server_id, account, now, charged))
                    found = {
                        b.kind: b
                        for b in breaches(
                            equity=account.equity,
                            margin=account.margin,
                            margin_level=account.margin_level,
                            thresholds=brand.thresholds_for(account.group),
                        )
                    }
                    ledger = mirrors.get(login)
                    drift = balance_drift(
                        account.balance,
                        None
                        if ledger is None
                        else AccountView.model_validate(ledger).posted.amount,
                    )
                    if drift is not None:
                        found[drift.kind] = drift
                    for kind, breach in found.items():
                        known = open_alerts.get((login, kind))
                        if known is None:
                            session.add(
                                RiskAlert(
                                    alert_key=f"{ref.server_id}:{login}:{kind}:{now.isoformat()}",
                                    server_id=ref.server_id,
                                    login=login,
                                    kind=kind,
                                    value=breach.value,
                                    threshold=breach.threshold,
                                    status=_first_status(kind),
                                )
                            )
                            raised += kind not in CONFIRMED_ON_SECOND_SIGHT
                            continue
                        stored_alert = await session.get(RiskAlert, known.id)
                        if stored_alert is None:
                            continue
                        if known.status == "pending":
                            stored_alert.status = "open"
                            raised += 1
                        # An alert carries the current value: the gap of now, not of when it opened.
                        stored_alert.value, stored_alert.threshold = breach.value, breach.threshold
                    for kind in ALERT_KINDS:
                        alert = open_alerts.get((login, kind))
                        if alert is not None and kind not in found:
                            stored_alert = await session.get(RiskAlert, alert.id)
                            if stored_alert is not None:
                                stored_alert.status, stored_alert.cleared_at = "cleared", now
                                cleared += 1
        return AccountsSynced(accounts=len(accounts), alerts_raised=raised, alerts_cleared=cleared)

    async def _brand_of(self, session: AsyncSession, server_id: str) -> BrandConfig:
        server = await session.get(PlatformServer, server_id)
        if server is None:
            raise ApplicationError(
                f"unknown server {server_id}", type="NotFound", non_retryable=True
            )
        brand = await session.get(Brand, server.brand_id)
        assert brand is not None
        return BrandConfig.model_validate(brand.config)

    @activity.defn
    async def change_account(self, change: AccountChange) -> AccountChangeResult:
        """One dealer change: platform first, then the mirror and the audit log from what it reads back."""
        if not 1 <= change.login <= MAX_INT64:
            raise ApplicationError(
                f"login {change.login} is out of range",
                "invalid_request",
                type="Platform.invalid_request",
                non_retryable=True,
            )
        async with self._sessions() as session:
            server = await session.get(PlatformServer, change.server_id)
            if server is None or server.brand_id not in change.brand_ids:
                raise ApplicationError(
                    "unknown server", "not_found", type="Platform.not_found", non_retryable=True
                )
            mirror = await session.get(AccountMirror, (change.server_id, change.login))
            before = _mirror_view(mirror)
            brand_id = server.brand_id
        gateway = await self._platforms.get(change.server_id)
        try:
            if change.group is not None:
                await gateway.set_group(change.login, change.group)
            if change.leverage is not None:
                await gateway.set_leverage(change.login, change.leverage)
            if change.access is not None:
                await gateway.set_access(change.login, AccessLevel(change.access))
            state = await gateway.get_account(change.login)
        except PlatformError as exc:
            raise platform_failure(exc) from exc
        now = datetime.now(UTC)
        async with transaction(self._sessions) as session:
            await session.merge(_mirror(change.server_id, state, now))
            await append_audit(
                session,
                actor=Actor(type="staff", id=change.actor_id, role=change.actor_role),
                action="trading_account.changed",
                entity_type="trading_account",
                entity_id=f"{change.server_id}:{change.login}",
                brand_id=brand_id,
                before=before,
                after={
                    "group": state.group,
                    "leverage": state.leverage,
                    "access": state.access.value,
                    "reason": change.reason,
                },
                workflow_id=activity.info().workflow_id,
                event_key=f"account-change:{activity.info().workflow_id}",
            )
        return AccountChangeResult(
            server_id=change.server_id,
            login=change.login,
            group=state.group,
            leverage=state.leverage,
            access=state.access.value,
        )


async def _open_commission(gateway: TradingPlatformGateway) -> dict[int, Decimal] | None:
    """The commission of each account's open positions, where the platform takes it off the
    balance at the opening but reports it again on the closing record; None elsewhere."""
    if not gateway.open_commission_reported_on_close:
        return None
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for position in await gateway.list_open_positions(None, None):
        totals[position.login] += position.commission
    return totals


async def _mirror_open_commission(
    session: AsyncSession,
    server_id: str,
    ledger: LedgerAccount | None,
    account: AccountState,
    charged: Decimal,
    now_open: Decimal,
    now: datetime,
) -> Decimal:
    """Posts the change in the open positions' commission since the last sync: a new position's
    commission leaves the balance at once; a closing record reports it again (the deal P/L posts
    it), so it is given back here as the position closes. Returns the figure now mirrored. An
    account without a ledger mirror keeps the platform's figure: only later changes are its."""
    if now_open == charged or ledger is None:
        return now_open
    await post_to_mirror(
        session,
        ledger,
        now_open - charged,
        kind=TransferKind.TRADING_PNL,
        idempotency_key=f"opencomm:{server_id}:{account.login}:{now.isoformat()}",
        reference=f"{server_id}:{account.login}",
        details={"open_commission": str(now_open), "before": str(charged)},
    )
    return now_open


# A drift seen once may be a deal that closed after the last ingestion and before the balance was
# read: it is kept pending and opened for the desk only when the next mirror still sees it.
CONFIRMED_ON_SECOND_SIGHT = {"balance_drift"}


def _first_status(kind: str) -> str:
    return "pending" if kind in CONFIRMED_ON_SECOND_SIGHT else "open"


MIN_WINDOW = timedelta(minutes=5)
MAX_WINDOW = timedelta(days=2)


def _next_window(window: timedelta, deals_in_last: int) -> timedelta:
    """Quiet history is read in long windows (few calls, no rate limits), busy history in short
    ones (a window's deals arrive in pages, but some platforms answer a window in one piece)."""
    if deals_in_last < BATCH // 4:
        return min(window * 2, MAX_WINDOW)
    if deals_in_last > BATCH * 5:
        return max(window / 2, MIN_WINDOW)
    return window


def _mirror(
    server_id: str, account: AccountState, now: datetime, open_commission: Decimal | None = None
) -> AccountMirror:
    # Without a figure (a dealer's change), the stored open commission is left as it is.
    extra = {} if open_commission is None else {"open_commission": open_commission}
    return AccountMirror(
        server_id=server_id,
        login=account.login,
        group=account.group,
        leverage=account.leverage,
        currency=account.currency,
        access=account.access.value,
        balance=account.balance,
        credit=account.credit,
        equity=account.equity,
        margin=account.margin,
        free_margin=account.free_margin,
        margin_level=account.margin_level,
        synced_at=now,
        **extra,
    )


def _mirror_view(mirror: AccountMirror | None) -> dict[str, Any] | None:
    if mirror is None:
        return None
    return {"group": mirror.group, "leverage": mirror.leverage, "access": mirror.access}
