"""The proof that the ledger mirror follows the platform balance to the cent, on all five platforms.

A simulated trading day (the market engine, in simulated time) on the MT5, MT4, cTrader,
Match-Trader and Sirix simulators, with fxcrm's own deposits, withdrawals and transfers and a
dealer's balance, bonus and credit operations mixed in; then the platform sync's activities run
(ingestion, P/L and operations posting, account mirror), and every account's ledger mirror must
equal its platform balance exactly. A second sync changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from fxcrm.activities.money import platform_ref
from fxcrm.activities.platform_sync import PlatformSyncActivities
from fxcrm.activities.trading_pnl import TradingPnlActivities
from fxcrm.adapters.platforms.base import (
    BalanceOpKind,
    NewAccountSpec,
    PlatformError,
    TradingPlatformGateway,
)
from fxcrm.adapters.platforms.factory import build_gateway
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.adapters.simulators.ctrader import CTraderSimulatorThread
from fxcrm.adapters.simulators.market import generate
from fxcrm.adapters.simulators.matchtrader import MatchTraderSimulatorThread
from fxcrm.adapters.simulators.mt4 import Mt4SimulatorThread
from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread
from fxcrm.adapters.simulators.serving import SimulatorThread
from fxcrm.adapters.simulators.sirix import SirixSimulatorThread
from fxcrm.core.config import Settings
from fxcrm.domain.ledger import AccountKind, TransferKind, client_trading_code
from fxcrm.domain.money import Money
from fxcrm.ledger import AccountSpec, TransferRequest, check_invariants, open_account, transfer
from fxcrm.ledger.schemas import AccountView
from fxcrm.models import (
    AccountMirror,
    Brand,
    IbAccrual,
    IbUnpaidDeal,
    IngestedBalanceOp,
    IngestedDeal,
    LedgerAccount,
    PlatformServer,
    RiskAlert,
    SyncCursor,
    TradingAccount,
)
from fxcrm.seed import DEMO_SERVER, MT5_CONFIG, OTHER_SERVERS, seed_demo
from fxcrm.workflows.platform_sync_types import IngestInput, ServerRef
from tests.e2e.money import new_account, new_trader

ACCOUNTS = 5  # per platform
GROUP = "real\\retail\\std"


@dataclass
class Platform:
    name: str
    seeded_server: str  # the demo server this test's own server copies
    sim: SimulatorThread
    config: dict[str, object]

    @property
    def server_id(self) -> str:
        # A server of its own: these fresh simulators hand out the logins that the session's
        # end-to-end MT5 simulator hands out too, on a database the tests share.
        return f"proof-{self.name}"


@pytest.fixture
def simulators() -> Iterator[dict[str, Platform]]:
    """The five simulators over plain HTTP, each with a fresh state."""
    threads: dict[str, tuple[str, SimulatorThread, dict[str, object]]] = {
        "mt5": (DEMO_SERVER, Mt5SimulatorThread(), dict(MT5_CONFIG)),
        "mt4": ("mt4-demo", Mt4SimulatorThread(), {}),
        "ctrader": ("ctrader-demo", CTraderSimulatorThread(), {}),
        "matchtrader": ("matchtrader-demo", MatchTraderSimulatorThread(), {}),
        "sirix": ("sirix-demo", SirixSimulatorThread(), {}),
    }
    started: list[SimulatorThread] = []
    try:
        platforms = {}
        for name, (server_id, sim, config) in threads.items():
            sim.start()
            started.append(sim)
            config = {**dict(OTHER_SERVERS.get(server_id, ("", "", "", {}))[3]), **config}
            platforms[name] = Platform(name, server_id, sim, config)
        yield platforms
    finally:
        for sim in started:
            sim.stop()


@pytest.fixture
async def registry(
    simulators: dict[str, Platform], sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[PlatformRegistry]:
    await seed_demo(sessions)
    settings = Settings(env="test")
    by_server = {p.server_id: p for p in simulators.values()}
    async with sessions() as session, session.begin():
        for p in simulators.values():
            if await session.get(PlatformServer, p.server_id) is None:
                seeded = await session.get(PlatformServer, p.seeded_server)
                assert seeded is not None
                session.add(
                    PlatformServer(
                        id=p.server_id,
                        brand_id=seeded.brand_id,
                        platform=seeded.platform,
                        name=f"proof {seeded.name}",
                        base_url=p.sim.base_url,
                        config=dict(seeded.config),
                    )
                )

    async def factory(server_id: str) -> TradingPlatformGateway:
        p = by_server[server_id]
        return build_gateway(p.name, p.sim.base_url, dict(p.config), settings)

    async with sessions() as session, session.begin():
        servers = list(by_server)
        # An earlier run's rows on these servers would be read by this one.
        deals = select(IngestedDeal.id).where(IngestedDeal.server_id.in_(servers))
        await session.execute(delete(IbAccrual).where(IbAccrual.deal_pk.in_(deals)))
        await session.execute(delete(IbUnpaidDeal).where(IbUnpaidDeal.deal_pk.in_(deals)))
        for model in (IngestedDeal, IngestedBalanceOp, SyncCursor, RiskAlert, AccountMirror):
            await session.execute(delete(model).where(model.server_id.in_(servers)))  # type: ignore[attr-defined]
    platforms = PlatformRegistry(factory)
    yield platforms
    await platforms.close()


@dataclass
class Account:
    platform: str
    server_id: str
    login: int
    mirror_id: str


async def _open_accounts(
    sessions: async_sessionmaker[AsyncSession],
    registry: PlatformRegistry,
    platform: Platform,
    opened_at: datetime,
) -> list[Account]:
    """Accounts opened and funded through fxcrm: a `dep:` operation on the platform and the same
    deposit in the ledger mirror, as the deposit workflow does."""
    gateway = await registry.get(platform.server_id)
    accounts = []
    for n in range(ACCOUNTS):
        ref = await gateway.create_account(
            NewAccountSpec(
                group=GROUP,
                leverage=100,
                first_name="Proof",
                last_name=f"Trader {n}",
                email=f"proof{n}.{uuid.uuid4().hex[:6]}@example.com",
                country="CY",
                client_id=uuid.uuid4().hex,
                main_password="Proof#Pass2026",
                investor_password="Proof#View2026",
            )
        )
        state = await gateway.get_account(ref.login)
        amount = Decimal(5_000 + 2_500 * n)
        payment = uuid.uuid4().hex
        await gateway.balance_op(
            ref.login, BalanceOpKind.DEPOSIT, amount, platform_ref("dep", payment)
        )
        mirror_id = await _fund_mirror(
            sessions, platform.server_id, platform.name, ref.login, state.currency, amount, payment
        )
        accounts.append(Account(platform.name, platform.server_id, ref.login, mirror_id))
    async with sessions() as session, session.begin():
        # Funded before the day began: the day's deals change the mirrored balance.
        await session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id.in_([a.mirror_id for a in accounts]))
            .values(created_at=opened_at)
        )
    return accounts


async def _fund_mirror(
    sessions: async_sessionmaker[AsyncSession],
    server_id: str,
    platform: str,
    login: int,
    currency: str,
    amount: Decimal,
    payment: str,
) -> str:
    async with sessions() as session, session.begin():
        brand_id = (await session.scalars(select(Brand.id).where(Brand.code == "demo"))).one()
        await session.execute(
            delete(TradingAccount).where(
                TradingAccount.server_id == server_id, TradingAccount.login == login
            )
        )
        trader = new_trader(brand_id, email=f"proof-{payment[:12]}@example.com")
        session.add(trader)
        await session.flush()
        session.add(
            new_account(
                trader.id,
                brand_id,
                login,
                server_id=server_id,
                platform=platform,
                currency=currency,
                group=GROUP,
                leverage=100,
            )
        )
        mirror = await open_account(
            session,
            AccountSpec(
                brand_id=brand_id,
                code=client_trading_code(trader.id, server_id, login),
                kind=AccountKind.CLIENT_TRADING,
                currency=currency,
                owner_id=trader.id,
            ),
        )
        clearing = await open_account(
            session,
            AccountSpec(
                brand_id=brand_id,
                code=f"psp:proof:clearing:{currency}",
                kind=AccountKind.PSP_CLEARING,
                currency=currency,
            ),
        )
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"proof-dep-{payment}",
                debit_account_id=clearing.id,
                credit_account_id=mirror.id,
                amount=Money(amount=amount, currency=currency),
                kind=TransferKind.DEPOSIT,
            ),
        )
        return mirror.id


async def _withdraw_through_fxcrm(
    sessions: async_sessionmaker[AsyncSession],
    gateway: TradingPlatformGateway,
    accounts: list[Account],
    amount: Decimal,
) -> None:
    """A `wd:` operation on the platform and the same amount out of the ledger mirror, from the
    first account whose free margin allows it."""
    payment = uuid.uuid4().hex
    account = await _withdraw_from_one(gateway, accounts, amount, platform_ref("wd", payment))
    async with sessions() as session, session.begin():
        mirror = await session.get(LedgerAccount, account.mirror_id)
        assert mirror is not None
        clearing = await open_account(
            session,
            AccountSpec(
                brand_id=mirror.brand_id,
                code=f"psp:proof:clearing:{mirror.currency}",
                kind=AccountKind.PSP_CLEARING,
                currency=mirror.currency,
            ),
        )
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"proof-wd-{payment}",
                debit_account_id=account.mirror_id,
                credit_account_id=clearing.id,
                amount=Money(amount=amount, currency=mirror.currency),
                kind=TransferKind.WITHDRAWAL,
            ),
        )


async def _withdraw_from_one(
    gateway: TradingPlatformGateway, accounts: list[Account], amount: Decimal, ref: str
) -> Account:
    for account in accounts:
        try:
            await gateway.balance_op(account.login, BalanceOpKind.WITHDRAW, amount, ref)
        except PlatformError:
            continue  # margin in use: the next one
        return account
    raise AssertionError("no account could pay a withdrawal")


async def _dealer_operations(gateway: TradingPlatformGateway, accounts: list[Account]) -> int:
    """What a dealer does on the platform, outside fxcrm: a deposit, a fee taken, a bonus and
    credit (where the platform has them: cTrader has no credit). Returns how many were made."""
    made = 0
    first, third = accounts[0], accounts[2]
    await _withdraw_from_one(gateway, accounts[1:], Decimal("40.13"), "dealer fee")
    operations: list[tuple[Account, BalanceOpKind, str]] = [
        (first, BalanceOpKind.DEPOSIT, "250.75"),
        (third, BalanceOpKind.BONUS, "100"),
        (first, BalanceOpKind.CREDIT_IN, "500"),
    ]
    made += 1
    for account, kind, amount in operations:
        try:
            await gateway.balance_op(
                account.login, kind, Decimal(amount), f"dealer {kind.value} {made}"
            )
        except PlatformError:
            if kind is BalanceOpKind.CREDIT_IN:
                continue  # no credit on this platform
            raise
        made += 1
    return made


async def _sync(sessions: async_sessionmaker[AsyncSession], registry: PlatformRegistry) -> None:
    """One sync round per server, as the workflow runs it: deals and operations in, then P/L and
    operations into the mirrors, then the accounts mirrored and compared."""
    sync = PlatformSyncActivities(sessions, registry)
    pnl = TradingPnlActivities(sessions)
    env = ActivityEnvironment()
    for server_id in [
        f"proof-{name}" for name in ("mt5", "mt4", "ctrader", "matchtrader", "sirix")
    ]:
        while not (
            await env.run(
                sync.ingest_deals,
                IngestInput(server_id=server_id, overlap_seconds=300, max_deals=100_000),
            )
        ).caught_up:
            pass
        while not (await env.run(pnl.post_trading_pnl, ServerRef(server_id=server_id))).caught_up:
            pass
        await env.run(sync.sync_accounts, ServerRef(server_id=server_id))


async def _gaps(
    sessions: async_sessionmaker[AsyncSession],
    registry: PlatformRegistry,
    accounts: list[Account],
) -> dict[tuple[str, int], tuple[Decimal, Decimal]]:
    """(platform, login) -> (platform balance, ledger mirror), where they differ."""
    gaps = {}
    async with sessions() as session:
        for account in accounts:
            state = await (await registry.get(account.server_id)).get_account(account.login)
            row = await session.get(LedgerAccount, account.mirror_id, populate_existing=True)
            assert row is not None
            mirrored = AccountView.model_validate(row).posted.amount
            if state.balance != mirrored:
                gaps[(account.platform, account.login)] = (state.balance, mirrored)
    return gaps


async def test_a_simulated_day_leaves_every_mirror_equal_to_its_platform_balance(
    sessions: async_sessionmaker[AsyncSession],
    simulators: dict[str, Platform],
    registry: PlatformRegistry,
) -> None:
    day_end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    day_start = day_end - timedelta(days=1)
    accounts: list[Account] = []
    for platform in simulators.values():
        accounts += await _open_accounts(
            sessions, registry, platform, day_start - timedelta(hours=1)
        )
    states: list[Any] = [p.sim.state for p in simulators.values()]  # type: ignore[attr-defined]
    # Morning: trading; then fxcrm's and a dealer's money moves; afternoon: trading again.
    noon = day_start + timedelta(hours=12)
    # Two engines: the second numbers its positions apart (the first one's stay open).
    morning = generate(states, day_start, noon, 1_000, seed=9, first_position_id=10_000_000)
    dealer_ops = 0
    for platform in simulators.values():
        gateway = await registry.get(platform.server_id)
        mine = [a for a in accounts if a.platform == platform.name]
        dealer_ops += await _dealer_operations(gateway, mine)
        await _withdraw_through_fxcrm(sessions, gateway, mine[::-1], Decimal("123.45"))
    afternoon = generate(states, noon, day_end, 1_000, seed=10, first_position_id=20_000_000)
    assert morning.deals + afternoon.deals > 1_000
    assert dealer_ops >= 15

    await _sync(sessions, registry)
    assert await _gaps(sessions, registry, accounts) == {}
    async with sessions() as session:
        openings = await session.scalar(
            select(IngestedDeal.id).where(IngestedDeal.entry == "in").limit(1)
        )
        assert openings is not None  # MT5 and Match-Trader opening deals were read
        assert (await check_invariants(session)).ok

    # Exactly once: a second round (its overlap re-reads the same rows) posts nothing.
    async with sessions() as session:
        before = {
            a.mirror_id: (await session.get(LedgerAccount, a.mirror_id)).credits_posted  # type: ignore[union-attr]
            for a in accounts
        }
    await _sync(sessions, registry)
    async with sessions() as session:
        for account in accounts:
            row = await session.get(LedgerAccount, account.mirror_id, populate_existing=True)
            assert row is not None and row.credits_posted == before[account.mirror_id]
        drifts = await session.scalars(select(RiskAlert).where(RiskAlert.kind == "balance_drift"))
        assert drifts.all() == []
    assert await _gaps(sessions, registry, accounts) == {}
