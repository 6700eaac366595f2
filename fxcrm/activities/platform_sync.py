"""Platform sync activities: closed-deal ingestion, account mirrors and alerts, account changes.

Ingestion streams deals from the platform and upserts them in batches by (server, deal id): a
restart, an overlapping window or a replay inserts nothing twice, and memory does not grow with
the backlog.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from fxcrm.adapters.platforms.base import (
    ALL_GROUPS,
    AccessLevel,
    AccountState,
    ClosedDeal,
    PlatformError,
    PlatformErrorKind,
)
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.db import insert_ignoring_duplicates, transaction
from fxcrm.domain.alerts import ALERT_KINDS, balance_drift, breaches
from fxcrm.domain.bounds import MAX_INT64
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.ledger import client_trading_code
from fxcrm.ledger.schemas import AccountView
from fxcrm.models import (
    AccountMirror,
    Brand,
    IngestedDeal,
    LedgerAccount,
    PlatformServer,
    RiskAlert,
    SyncCursor,
    TradingAccount,
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
                async for deal in gateway.iter_closed_deals(None, ALL_GROUPS, start, end):
                    batch.append(deal)
                    read += 1
                    if len(batch) >= BATCH:
                        inserted += await self._store(inp.server_id, batch, None)
                        batch = []
                        activity.heartbeat(read)
            except PlatformError as exc:
                raise platform_failure(exc) from exc
            inserted += await self._store(inp.server_id, batch, end)
            activity.heartbeat(read)
            window = _next_window(window, read - read_before)
            start = end
            if read >= inp.max_deals and start < until:
                break
        if inserted:
            log.info("deals ingested", server_id=inp.server_id, read=read, inserted=inserted)
        return IngestResult(read=read, inserted=inserted, until=start, caught_up=start >= until)

    async def _store(self, server_id: str, deals: list[ClosedDeal], until: datetime | None) -> int:
        """One transaction: the batch and the cursor move together. Most of a re-read overlap is
        stored already: those deals are looked up by id and skipped, only the new ones are
        written (the upsert still ignores a duplicate that slips in between)."""
        async with transaction(self._sessions) as session:
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
            accounts = await gateway.list_accounts(None)
        except PlatformError as exc:
            raise platform_failure(exc) from exc
        activity.heartbeat(len(accounts))
        async with self._sessions() as session:
            brand = await self._brand_of(session, ref.server_id)
            ledger_balances = await _ledger_mirrors(session, ref.server_id)
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
                for account in accounts[start : start + BATCH]:
                    await session.merge(_mirror(ref.server_id, account, now))
                    found = {
                        b.kind: b
                        for b in breaches(
                            equity=account.equity,
                            margin=account.margin,
                            margin_level=account.margin_level,
                            thresholds=brand.thresholds_for(account.group),
                        )
                    }
                    drift = balance_drift(account.balance, ledger_balances.get(account.login))
                    if drift is not None:
                        found[drift.kind] = drift
                    for kind, breach in found.items():
                        known = open_alerts.get((account.login, kind))
                        if known is None:
                            session.add(
                                RiskAlert(
                                    alert_key=f"{ref.server_id}:{account.login}:{kind}:{now.isoformat()}",
                                    server_id=ref.server_id,
                                    login=account.login,
                                    kind=kind,
                                    value=breach.value,
                                    threshold=breach.threshold,
                                    status=_first_status(kind),
                                )
                            )
                            raised += kind not in CONFIRMED_ON_SECOND_SIGHT
                        elif known.status == "pending":
                            stored = await session.get(RiskAlert, known.id)
                            if stored is not None:
                                stored.status, stored.value = "open", breach.value
                                raised += 1
                    for kind in ALERT_KINDS:
                        alert = open_alerts.get((account.login, kind))
                        if alert is not None and kind not in found:
                            stored = await session.get(RiskAlert, alert.id)
                            if stored is not None:
                                stored.status, stored.cleared_at = "cleared", now
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


async def _ledger_mirrors(session: AsyncSession, server_id: str) -> dict[int, Decimal]:
    """fxcrm's ledger mirror of each account's platform balance, for accounts that have one (money
    fxcrm moved to or from them); the platform is compared with it on every sync."""
    links = (
        await session.execute(
            select(TradingAccount.login, TradingAccount.trader_id, TradingAccount.brand_id).where(
                TradingAccount.server_id == server_id, TradingAccount.login.is_not(None)
            )
        )
    ).all()
    if not links:
        return {}
    codes = {
        client_trading_code(trader, server_id, login): int(login)
        for login, trader, _ in links
        if login is not None
    }
    rows = (
        await session.scalars(
            select(LedgerAccount).where(
                LedgerAccount.brand_id.in_({brand for _, _, brand in links}),
                LedgerAccount.code.in_(codes),
            )
        )
    ).all()
    return {codes[row.code]: AccountView.model_validate(row).posted.amount for row in rows}


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


def _mirror(server_id: str, account: AccountState, now: datetime) -> AccountMirror:
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
    )


def _mirror_view(mirror: AccountMirror | None) -> dict[str, Any] | None:
    if mirror is None:
        return None
    return {"group": mirror.group, "leverage": mirror.leverage, "access": mirror.access}
