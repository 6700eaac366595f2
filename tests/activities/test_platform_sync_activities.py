"""Deal ingestion and account mirroring against a fake platform, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from fxcrm.activities.platform_sync import PlatformSyncActivities
from fxcrm.adapters.platforms.base import (
    AccessLevel,
    AccountState,
    ClosedDeal,
    OpenPosition,
    PlatformBalanceOp,
    PlatformError,
    PlatformErrorKind,
)
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.models import (
    AccountMirror,
    IbAccrual,
    IbUnpaidDeal,
    IngestedBalanceOp,
    IngestedDeal,
    RiskAlert,
    SyncCursor,
)
from fxcrm.seed import DEMO_SERVER, seed_demo
from fxcrm.workflows.platform_sync_types import IngestInput, ServerRef


class FakePlatform:
    """Just enough of a gateway: deals and balance operations by time window, account states,
    and (where the platform reports an opening commission again at the close) open positions."""

    platform = "fake"

    def __init__(self, *, open_commission_reported_on_close: bool = False) -> None:
        self.deals: list[ClosedDeal] = []
        self.ops: list[PlatformBalanceOp] = []
        self.positions: list[OpenPosition] = []
        self.accounts: list[AccountState] = []
        self.windows: list[tuple[datetime, datetime]] = []
        self.open_commission_reported_on_close = open_commission_reported_on_close

    async def iter_closed_deals(
        self,
        logins: list[int] | None,
        group: str | None,
        since: datetime,
        until: datetime,
        *,
        openings: bool = False,
    ) -> AsyncIterator[ClosedDeal]:
        self.windows.append((since, until))
        for deal in self.deals:
            if since <= deal.time < until and (openings or deal.entry != "in"):
                yield deal

    async def iter_balance_ops(
        self, logins: list[int] | None, group: str | None, since: datetime, until: datetime
    ) -> AsyncIterator[PlatformBalanceOp]:
        for op in self.ops:
            if since <= op.time < until:
                yield op

    async def list_open_positions(
        self, logins: list[int] | None, group: str | None
    ) -> list[OpenPosition]:
        return list(self.positions)

    async def list_accounts(self, group: str | None) -> list[AccountState]:
        return list(self.accounts)

    async def close(self) -> None:
        return None


def deal(n: int, at: datetime) -> ClosedDeal:
    return ClosedDeal(
        deal_id=str(n),
        login=500000 + n % 7,
        position_id=str(n),
        symbol="EURUSD",
        side="sell",
        entry="out",
        volume_lots=Decimal("0.10"),
        price=Decimal("1.08345"),
        profit=Decimal("12.34"),
        commission=Decimal("-0.70"),
        swap=Decimal("-0.12"),
        time=at,
        raw={"Deal": str(n), "profit": Decimal("12.34")},  # some clients keep Decimals here
    )


def account(login: int, *, margin_level: str | None, margin: str = "100") -> AccountState:
    return AccountState(
        login=login,
        group="real\\retail\\std",
        leverage=30,
        currency="USD",
        balance=Decimal("1000"),
        credit=Decimal(0),
        equity=Decimal("950.50"),
        margin=Decimal(margin),
        free_margin=Decimal("850.50"),
        margin_level=Decimal(margin_level) if margin_level else None,
        access=AccessLevel.FULL,
    )


@pytest.fixture
async def server(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[str]:
    """The demo server, with no cursor, deals, mirrors or alerts left by another test."""
    await seed_demo(sessions)
    async with sessions() as session, session.begin():
        # Accruals of other tests point at deals: they go first.
        for model in (
            IbAccrual,
            IbUnpaidDeal,
            IngestedDeal,
            IngestedBalanceOp,
            SyncCursor,
            RiskAlert,
            AccountMirror,
        ):
            await session.execute(model.__table__.delete())  # type: ignore[attr-defined]
    yield DEMO_SERVER


def activities(
    sessions: async_sessionmaker[AsyncSession], fake: FakePlatform
) -> PlatformSyncActivities:
    async def factory(server_id: str) -> FakePlatform:
        return fake

    return PlatformSyncActivities(sessions, PlatformRegistry(factory))  # type: ignore[arg-type]


async def _count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(IngestedDeal)) or 0)


async def test_ingestion_is_idempotent_across_overlaps_and_reruns(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    fake = FakePlatform()
    now = datetime.now(UTC)
    fake.deals = [deal(n, now - timedelta(hours=5) + timedelta(seconds=30 * n)) for n in range(300)]
    opened = now - timedelta(hours=6)
    fake.deals[7] = fake.deals[7].model_copy(update={"opened_at": opened})
    acts = activities(sessions, fake)
    env = ActivityEnvironment()
    first = await env.run(
        acts.ingest_deals, IngestInput(server_id=server, overlap_seconds=600, max_deals=10_000)
    )
    assert (first.read, first.inserted, first.caught_up) == (300, 300, True)
    # Re-run with a big overlap: everything is read again, nothing is inserted twice.
    again = await env.run(
        acts.ingest_deals, IngestInput(server_id=server, overlap_seconds=6 * 3600, max_deals=10_000)
    )
    assert again.read == 300 and again.inserted == 0
    assert await _count(sessions) == 300
    async with sessions() as session:
        row = await session.scalar(select(IngestedDeal).where(IngestedDeal.deal_id == "7"))
    assert row is not None and row.profit == Decimal("12.34") and row.volume_lots == Decimal("0.1")
    assert row.closed_at.tzinfo is not None
    assert row.opened_at == opened


async def test_a_big_backlog_is_read_in_bounded_steps(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    fake = FakePlatform()
    now = datetime.now(UTC)
    fake.deals = [deal(n, now - timedelta(days=2) + timedelta(minutes=n)) for n in range(2400)]
    async with sessions() as session, session.begin():
        session.add(
            SyncCursor(
                server_id=server,
                deals_until=now - timedelta(days=3),
                deals_ingested=0,
                updated_at=now,
            )
        )
    acts = activities(sessions, fake)
    env = ActivityEnvironment()
    steps = 0
    while True:
        steps += 1
        result = await env.run(
            acts.ingest_deals, IngestInput(server_id=server, overlap_seconds=60, max_deals=500)
        )
        # It stops after the window that crossed the limit; windows grow only while quiet.
        assert result.read < 500 + 2 * 1000
        if result.caught_up:
            break
    assert steps >= 2
    assert await _count(sessions) == 2400


async def test_accounts_are_mirrored_and_alerts_raised_once_then_cleared(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    fake = FakePlatform()
    fake.accounts = [
        account(1, margin_level="80.5"),
        account(2, margin_level="950"),
        account(3, margin_level=None, margin="0"),
    ]
    acts = activities(sessions, fake)
    env = ActivityEnvironment()
    synced = await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert (synced.accounts, synced.alerts_raised, synced.alerts_cleared) == (3, 1, 0)
    again = await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert again.alerts_raised == 0  # still breached: the open alert stays, no duplicate
    fake.accounts[0] = account(1, margin_level="300")
    recovered = await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert recovered.alerts_cleared == 1
    async with sessions() as session:
        mirror = await session.get(AccountMirror, (server, 1))
        alerts = (await session.scalars(select(RiskAlert).where(RiskAlert.login == 1))).all()
    assert (
        mirror is not None
        and mirror.margin_level == Decimal("300")
        and mirror.equity == Decimal("950.5")
    )
    assert [(a.kind, a.status, a.value) for a in alerts] == [
        ("margin_level", "cleared", Decimal("80.5"))
    ]


class FlakyPlatform(FakePlatform):
    """Down for the first `failures` reads, like a server being restarted."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def iter_closed_deals(
        self,
        logins: list[int] | None,
        group: str | None,
        since: datetime,
        until: datetime,
        *,
        openings: bool = False,
    ) -> AsyncIterator[ClosedDeal]:
        if self.failures:
            self.failures -= 1
            raise PlatformError("connection refused", kind=PlatformErrorKind.UNAVAILABLE)
        async for deal in super().iter_closed_deals(logins, group, since, until, openings=openings):
            yield deal


async def test_an_outage_is_retryable_and_the_sync_catches_up(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    fake = FlakyPlatform(failures=1)
    now = datetime.now(UTC)
    fake.deals = [
        deal(n, now - timedelta(minutes=50) + timedelta(seconds=20 * n)) for n in range(100)
    ]
    acts = activities(sessions, fake)
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as failure:
        await env.run(
            acts.ingest_deals, IngestInput(server_id=server, overlap_seconds=60, max_deals=10_000)
        )
    assert not failure.value.non_retryable
    async with sessions() as session:
        assert await session.get(SyncCursor, server) is None  # nothing claimed as read
    result = await env.run(
        acts.ingest_deals, IngestInput(server_id=server, overlap_seconds=60, max_deals=10_000)
    )
    assert result.caught_up and await _count(sessions) == 100


async def test_a_refusal_is_not_retried() -> None:
    from fxcrm.activities.platform_sync import platform_failure

    refused = platform_failure(PlatformError("group?", kind=PlatformErrorKind.UNKNOWN_GROUP))
    assert refused.non_retryable and refused.type == "Platform.unknown_group"
    busy = platform_failure(PlatformError("slow down", kind=PlatformErrorKind.RATE_LIMITED))
    assert not busy.non_retryable


async def _mirrored_account(
    sessions: async_sessionmaker[AsyncSession], server: str, login: int, funded: str
) -> tuple[str, str]:
    """A trader's account on `server` whose ledger mirror holds `funded` USD (a deposit through
    fxcrm). Returns (mirror id, PSP clearing id)."""
    from fxcrm.domain.ledger import AccountKind, TransferKind, client_trading_code
    from fxcrm.domain.money import Money
    from fxcrm.ledger import AccountSpec, TransferRequest, open_account, transfer
    from fxcrm.models import Brand
    from tests.e2e.money import new_account, new_trader

    async with sessions() as session, session.begin():
        brand_id = (await session.scalars(select(Brand.id).where(Brand.code == "demo"))).one()
        trader = new_trader(brand_id, email=f"drift{login}@example.com")
        session.add(trader)
        await session.flush()
        session.add(new_account(trader.id, brand_id, login, server_id=server))
        mirror = await open_account(
            session,
            AccountSpec(
                brand_id=brand_id,
                code=client_trading_code(trader.id, server, login),
                kind=AccountKind.CLIENT_TRADING,
                currency="USD",
                owner_id=trader.id,
            ),
        )
        clearing = await open_account(
            session,
            AccountSpec(
                brand_id=brand_id,
                code="psp:test:clearing:USD",
                kind=AccountKind.PSP_CLEARING,
                currency="USD",
            ),
        )
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"drift-{login}-1",
                debit_account_id=clearing.id,
                credit_account_id=mirror.id,
                amount=Money.of(funded, "USD"),
                kind=TransferKind.DEPOSIT,
            ),
        )
    return mirror.id, clearing.id


async def _alert(sessions: async_sessionmaker[AsyncSession], login: int) -> RiskAlert | None:
    async with sessions() as session:
        return await session.scalar(select(RiskAlert).where(RiskAlert.login == login))


async def test_balance_drift_against_the_ledger_mirror(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    from fxcrm.domain.ledger import TransferKind
    from fxcrm.domain.money import Money
    from fxcrm.ledger import TransferRequest, transfer

    login = 700_000 + int(datetime.now(UTC).timestamp()) % 100_000
    mirror, clearing = await _mirrored_account(sessions, server, login, "900")
    fake = FakePlatform()
    fake.accounts = [account(login, margin_level="950")]  # the platform says 1000
    acts = activities(sessions, fake)
    env = ActivityEnvironment()
    # Seen once, the drift may be a deal closed after the last ingestion: pending, not raised.
    first = await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert first.alerts_raised == 0
    alert = await _alert(sessions, login)
    assert alert is not None and (alert.kind, alert.status) == ("balance_drift", "pending")
    # Seen again: the desk gets it.
    second = await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert second.alerts_raised == 1
    alert = await _alert(sessions, login)
    assert alert is not None and (alert.kind, alert.value, alert.status) == (
        "balance_drift",
        Decimal(100),
        "open",
    )
    async with sessions() as session, session.begin():
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"drift-{login}-2",
                debit_account_id=clearing,
                credit_account_id=mirror,
                amount=Money.of("100", "USD"),
                kind=TransferKind.DEPOSIT,
            ),
        )
    again = await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert again.alerts_cleared == 1


async def test_a_drift_seen_once_is_dropped_silently(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    login = 600_000 + int(datetime.now(UTC).timestamp()) % 100_000
    await _mirrored_account(sessions, server, login, "1000")
    fake = FakePlatform()
    fake.accounts = [account(login, margin_level=None, margin="0")]
    fake.accounts[0].balance = Decimal("1012.34")  # a deal not yet ingested
    acts = activities(sessions, fake)
    env = ActivityEnvironment()
    assert (await env.run(acts.sync_accounts, ServerRef(server_id=server))).alerts_raised == 0
    fake.accounts[0].balance = Decimal("1000")  # its P/L has reached the ledger by now
    assert (await env.run(acts.sync_accounts, ServerRef(server_id=server))).alerts_raised == 0
    alert = await _alert(sessions, login)
    assert alert is not None and alert.status == "cleared"


async def test_realized_pnl_reaches_the_mirror_once(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    from fxcrm.activities.trading_pnl import TradingPnlActivities
    from fxcrm.ledger import check_invariants, get_account

    login = 800_000 + int(datetime.now(UTC).timestamp()) % 100_000
    mirror, _ = await _mirrored_account(sessions, server, login, "100")
    now = datetime.now(UTC)

    def closed(n: int, profit: str, at: datetime) -> ClosedDeal:
        d = deal(n, at)
        return d.model_copy(update={"login": login, "profit": Decimal(profit)})

    fake = FakePlatform()
    fake.deals = [
        closed(1, "-500.00", now - timedelta(days=2)),  # before the mirror existed: not posted
        closed(2, "25.50", now),  # + 25.50 - 0.70 - 0.12 = 24.68
        closed(3, "-10.00", now),  # - 10.82
    ]
    sync = activities(sessions, fake)
    env = ActivityEnvironment()
    await env.run(
        sync.ingest_deals,
        IngestInput(server_id=server, overlap_seconds=0, window_seconds=86400, max_deals=10_000),
    )
    # The first sync starts 30 days back: the deal two days old is ingested too.
    pnl = TradingPnlActivities(sessions)
    posted = await env.run(pnl.post_trading_pnl, ServerRef(server_id=server))
    assert (posted.deals, posted.transfers, posted.caught_up) == (3, 1, True)
    again = await env.run(pnl.post_trading_pnl, ServerRef(server_id=server))
    assert (again.deals, again.transfers) == (0, 0)
    async with sessions() as session:
        view = await get_account(session, mirror)
        assert str(view.posted.amount) == "113.86"  # 100 + 24.68 - 10.82
        assert (await check_invariants(session)).ok


async def test_a_loss_never_takes_the_mirror_below_zero(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    from fxcrm.activities.trading_pnl import TradingPnlActivities
    from fxcrm.ledger import get_account

    login = 900_000 + int(datetime.now(UTC).timestamp()) % 100_000
    mirror, _ = await _mirrored_account(sessions, server, login, "50")
    fake = FakePlatform()
    big_loss = deal(1, datetime.now(UTC)).model_copy(
        update={"login": login, "profit": Decimal("-400")}
    )
    fake.deals = [big_loss]
    env = ActivityEnvironment()
    await env.run(
        activities(sessions, fake).ingest_deals,
        IngestInput(server_id=server, overlap_seconds=0, window_seconds=86400, max_deals=10_000),
    )
    posted = await env.run(
        TradingPnlActivities(sessions).post_trading_pnl, ServerRef(server_id=server)
    )
    assert posted.transfers == 1
    async with sessions() as session:
        assert (await get_account(session, mirror)).posted.amount == 0


async def test_an_open_drift_alert_carries_the_current_gap_and_clears_when_it_closes(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    login = 650_000 + int(datetime.now(UTC).timestamp()) % 50_000
    await _mirrored_account(sessions, server, login, "1000.52")
    fake = FakePlatform()
    fake.accounts = [account(login, margin_level=None, margin="0")]
    fake.accounts[0].balance = Decimal("1000.41")
    acts = activities(sessions, fake)
    env = ActivityEnvironment()
    await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert (await env.run(acts.sync_accounts, ServerRef(server_id=server))).alerts_raised == 1
    alert = await _alert(sessions, login)
    assert alert is not None and (alert.status, alert.value) == ("open", Decimal("-0.11"))
    # The gap grows: the same alert, with the gap of now.
    fake.accounts[0].balance = Decimal("1000.15")
    again = await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert (again.alerts_raised, again.alerts_cleared) == (0, 0)
    alert = await _alert(sessions, login)
    assert alert is not None and (alert.status, alert.value) == ("open", Decimal("-0.37"))
    # The gap closes: the alert clears.
    fake.accounts[0].balance = Decimal("1000.52")
    closed = await env.run(acts.sync_accounts, ServerRef(server_id=server))
    assert closed.alerts_cleared == 1
    alert = await _alert(sessions, login)
    assert alert is not None and alert.status == "cleared" and alert.cleared_at is not None


def _op(ticket: str, login: int, amount: str, comment: str, at: datetime, kind: str = "balance"):  # type: ignore[no-untyped-def]
    return PlatformBalanceOp(
        ticket=ticket,
        login=login,
        kind=kind,
        amount=Decimal(amount),
        comment=comment,
        time=at,
        raw={"ticket": ticket},
    )


async def _ingest_and_post(
    sessions: async_sessionmaker[AsyncSession], server: str, fake: FakePlatform
) -> int:
    from fxcrm.activities.trading_pnl import TradingPnlActivities

    env = ActivityEnvironment()
    await env.run(
        activities(sessions, fake).ingest_deals,
        IngestInput(server_id=server, overlap_seconds=3600, window_seconds=86400, max_deals=10_000),
    )
    posted = await env.run(
        TradingPnlActivities(sessions).post_trading_pnl, ServerRef(server_id=server)
    )
    return posted.transfers


async def test_a_dealers_operations_reach_the_mirror_once_and_fxcrms_own_are_left_alone(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    from fxcrm.ledger import get_account
    from fxcrm.models import IngestedBalanceOp, LedgerTransfer

    login = 660_000 + int(datetime.now(UTC).timestamp()) % 50_000
    mirror, _ = await _mirrored_account(sessions, server, login, "1000")
    now = datetime.now(UTC)
    fake = FakePlatform()
    fake.ops = [
        _op("1", login, "1000", "dep:0123456789abcdef01234567", now),  # fxcrm's deposit
        _op("2", login, "250.75", "dealer adjustment", now),
        _op("3", login, "-40.13", "dealer fee", now),
        _op("4", login, "500", "dealer credit", now, kind="credit"),  # credit is not balance
        _op("5", login, "-100", "wd:0123456789abcdef01234567", now),  # fxcrm's withdrawal
        _op("6", login, "-5", "to:0123456789abcdef01234567", now),  # fxcrm's transfer out
        _op("7", login, "99", "dealer, before the mirror", now - timedelta(days=3)),
    ]
    assert await _ingest_and_post(sessions, server, fake) == 1
    # Re-read by the next round's overlap: stored once, posted once.
    assert await _ingest_and_post(sessions, server, fake) == 0
    async with sessions() as session:
        assert str((await get_account(session, mirror)).posted.amount) == "1210.62"
        stored = await session.scalar(
            select(func.count())
            .select_from(IngestedBalanceOp)
            .where(IngestedBalanceOp.login == login)
        )
        assert stored == 7
        kinds = (
            await session.scalars(
                select(LedgerTransfer.kind).where(LedgerTransfer.reference == f"{server}:{login}")
            )
        ).all()
        assert kinds == ["platform_operation"]


async def test_commission_of_opening_deals_reaches_the_mirror(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    """The reported case: four opening deals' commission (0.37) was missing from the mirror."""
    from fxcrm.ledger import get_account

    login = 670_000 + int(datetime.now(UTC).timestamp()) % 50_000
    mirror, _ = await _mirrored_account(sessions, server, login, "1000.52")
    now = datetime.now(UTC)
    fake = FakePlatform()
    for n, fee in enumerate(("-0.09", "-0.09", "-0.09", "-0.10")):
        opening = deal(1000 + n, now).model_copy(
            update={
                "login": login,
                "entry": "in",
                "side": "buy",
                "profit": Decimal(0),
                "commission": Decimal(fee),
                "swap": Decimal(0),
            }
        )
        fake.deals.append(opening)
    assert await _ingest_and_post(sessions, server, fake) == 1
    async with sessions() as session:
        assert str((await get_account(session, mirror)).posted.amount) == "1000.15"
    fake.accounts = [account(login, margin_level=None, margin="0")]
    fake.accounts[0].balance = Decimal("1000.15")
    env = ActivityEnvironment()
    await env.run(activities(sessions, fake).sync_accounts, ServerRef(server_id=server))
    assert await _alert(sessions, login) is None  # no drift


async def test_money_in_is_posted_before_money_out(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    """A dealer's deposit and then a loss bigger than the mirror held: the platform never went
    below zero, so the mirror must not be floored on the way."""
    from fxcrm.ledger import get_account

    login = 680_000 + int(datetime.now(UTC).timestamp()) % 50_000
    mirror, _ = await _mirrored_account(sessions, server, login, "50")
    now = datetime.now(UTC)
    fake = FakePlatform()
    fake.ops = [_op("10", login, "500", "dealer top-up", now)]
    fake.deals = [
        deal(2000, now).model_copy(
            update={
                "login": login,
                "profit": Decimal("-519.18"),
                "commission": Decimal("-0.70"),
                "swap": Decimal("-0.12"),
            }
        )
    ]
    assert await _ingest_and_post(sessions, server, fake) == 2
    async with sessions() as session:
        assert (await get_account(session, mirror)).posted.amount == Decimal(30)


async def test_open_commission_charged_at_the_opening_is_mirrored_apart(
    sessions: async_sessionmaker[AsyncSession], server: str
) -> None:
    """MT4, cTrader, Sirix: the opening commission leaves the balance at once, and the closing
    record reports it again; the mirror follows the balance at every step, never twice."""
    from fxcrm.ledger import get_account

    login = 690_000 + int(datetime.now(UTC).timestamp()) % 50_000
    mirror, _ = await _mirrored_account(sessions, server, login, "1000")
    fake = FakePlatform(open_commission_reported_on_close=True)
    fake.accounts = [account(login, margin_level=None, margin="0")]
    env = ActivityEnvironment()
    sync = activities(sessions, fake)

    async def mirrored() -> Decimal:
        async with sessions() as session:
            return (await get_account(session, mirror)).posted.amount

    # A position opens: 7 commission off the balance.
    fake.positions = [
        OpenPosition(
            position_id="77",
            login=login,
            symbol="EURUSD",
            side="buy",
            volume_lots=Decimal(1),
            open_price=Decimal("1.1"),
            current_price=None,
            profit=Decimal(0),
            swap=Decimal(0),
            commission=Decimal(-7),
            opened_at=datetime.now(UTC),
        )
    ]
    fake.accounts[0].balance = Decimal(993)
    await env.run(sync.sync_accounts, ServerRef(server_id=server))
    assert await mirrored() == Decimal(993)
    await env.run(sync.sync_accounts, ServerRef(server_id=server))
    assert await mirrored() == Decimal(993)  # unchanged: nothing posted twice
    # 40% closes: the closed record says commission -2.80 (its share) - 2 (the close), profit 40.
    fake.positions[0] = fake.positions[0].model_copy(
        update={"commission": Decimal("-4.2"), "volume_lots": Decimal("0.6")}
    )
    fake.deals = [
        deal(3000, datetime.now(UTC)).model_copy(
            update={
                "login": login,
                "profit": Decimal(40),
                "commission": Decimal("-4.80"),
                "swap": Decimal(0),
            }
        )
    ]
    fake.accounts[0].balance = Decimal(1031)  # 993 + 40 - 2
    await _ingest_and_post(sessions, server, fake)
    await env.run(sync.sync_accounts, ServerRef(server_id=server))
    assert await mirrored() == Decimal(1031)
    # The rest closes: -4.20 share - 3 close fee, profit 10; no open position left.
    fake.positions = []
    fake.deals.append(
        deal(3001, datetime.now(UTC)).model_copy(
            update={
                "login": login,
                "profit": Decimal(10),
                "commission": Decimal("-7.20"),
                "swap": Decimal(0),
            }
        )
    )
    fake.accounts[0].balance = Decimal(1038)  # 1031 + 10 - 3
    await _ingest_and_post(sessions, server, fake)
    await env.run(sync.sync_accounts, ServerRef(server_id=server))
    assert await mirrored() == Decimal(1038)
    assert await _alert(sessions, login) is None


async def test_a_login_past_64_bits_is_refused_without_a_retry() -> None:
    from fxcrm.workflows.platform_sync_types import AccountChange

    acts = activities(None, FakePlatform())  # type: ignore[arg-type]  (refused before any query)
    change = AccountChange(
        server_id=DEMO_SERVER,
        login=2**64,
        leverage=100,
        actor_id="staff-1",
        actor_role="dealer",
        reason="test",
        brand_ids=[],
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(acts.change_account, change)
    assert refused.value.non_retryable and refused.value.type == "Platform.invalid_request"
