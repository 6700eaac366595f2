"""`make dev`'s demo book becomes fxcrm clients of the demo IBs (fxcrm.demo_book): each account
the simulators opened is adopted once, as an active client with its trading account, attributed
to a demo IB from the brand's start, so that its deals resolve to a paying IB chain."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm import demo_book
from fxcrm.adapters.platforms.base import AccessLevel, AccountState, PlatformAccountRef
from fxcrm.core.config import Settings
from fxcrm.demo_book import DEMO_BOOK_SIZE, adopt_demo_book, demo_book_client_id
from fxcrm.domain.ib.engine import DealFacts, accrue
from fxcrm.ib.context import IbContext
from fxcrm.models import AuditEvent, Brand, IbAttribution, IbPartner, Trader, TradingAccount
from fxcrm.seed import DEMO_BRAND, DEMO_SERVER, seed_demo

Sessions = async_sessionmaker[AsyncSession]
# Platforms with a book here, and their first login: out of the ranges other tests draw from.
BOOKED = {"mt5": 3_100_000_000, "ctrader": 3_200_000_000}


class FakeBookGateway:
    """What the simulators' platform APIs answer about the book, for one platform."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        first = BOOKED.get(platform)
        self.accounts = (
            {demo_book_client_id(platform, n): first + n for n in range(DEMO_BOOK_SIZE)}
            if first
            else {}
        )

    async def find_accounts_by_client(self, client_id: str) -> list[PlatformAccountRef]:
        login = self.accounts.get(client_id)
        group = "real\\pro\\std" if login and login % 4 == 0 else "real\\retail\\std"
        return [PlatformAccountRef(login=login, group=group, leverage=100)] if login else []

    async def get_account(self, login: int) -> AccountState:
        return AccountState(
            login=login,
            group="real\\pro\\std" if login % 4 == 0 else "real\\retail\\std",
            leverage=100,
            currency="USD",
            balance=Decimal(1000),
            credit=Decimal(0),
            equity=Decimal(1000),
            margin=Decimal(0),
            free_margin=Decimal(1000),
            margin_level=None,
            access=AccessLevel.FULL,
        )

    async def close(self) -> None:
        pass


@pytest.fixture
def fake_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(platform: str, *_: Any) -> FakeBookGateway:
        return FakeBookGateway(platform)

    monkeypatch.setattr(demo_book, "build_gateway", build)


async def test_demo_book_accounts_become_clients_of_the_demo_ibs(
    sessions: Sessions, fake_platforms: None
) -> None:
    await seed_demo(sessions)
    settings = Settings(env="test")
    adopted = await adopt_demo_book(sessions, settings, wait_seconds=0)
    assert adopted == 2 * DEMO_BOOK_SIZE
    # Idempotent: a second run (the next `make dev`) adopts nothing and duplicates nothing.
    assert await adopt_demo_book(sessions, settings, wait_seconds=0) == 0

    async with sessions() as session:
        brand = await session.scalar(select(Brand).where(Brand.code == DEMO_BRAND))
        assert brand is not None
        accounts = (
            await session.scalars(
                select(TradingAccount).where(
                    TradingAccount.login.between(3_100_000_000, 3_299_999_999)
                )
            )
        ).all()
        assert len(accounts) == 2 * DEMO_BOOK_SIZE
        assert {a.status for a in accounts} == {"open"}
        first = next(a for a in accounts if a.login == 3_100_000_000)
        trader = await session.get(Trader, first.trader_id)
        assert trader is not None
        assert (trader.email, trader.status, trader.brand_id) == (
            "demo00.mt5@example.com",
            "active",
            brand.id,
        )
        assert first.group == "real\\pro\\std" and trader.account_type == "pro"
        ibs = dict(
            (
                await session.execute(
                    select(IbPartner.id, IbPartner.referral_code).where(
                        IbPartner.brand_id == brand.id
                    )
                )
            ).all()
        )
        trader_ids = [a.trader_id for a in accounts]
        attributions = (
            await session.scalars(
                select(IbAttribution).where(IbAttribution.trader_id.in_(trader_ids))
            )
        ).all()
        assert len(attributions) == len(accounts)  # one each, not one per run
        assert {ibs[a.ib_id] for a in attributions} == {"SUBIB2", "SUBIB1", "MASTERIB"}
        assert all(
            a.excluded is None and a.effective_from == brand.created_at for a in attributions
        )
        adopted_events = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "seed.demo_account_adopted")
        )
        assert adopted_events == 2 * DEMO_BOOK_SIZE

        # A deal of the book's first client pays the whole demo tree (SUBIB2 < SUBIB1 < MASTERIB).
        context = await IbContext.load(session, DEMO_SERVER)
    deal = DealFacts(
        deal_key=1,
        trader_id=first.trader_id,
        symbol="EURUSD",
        side="sell",
        entry="out",
        volume_lots=Decimal(1),
        commission=Decimal(0),
        closed_at=brand.created_at + timedelta(hours=1),
        account_group=first.group,
    )
    resolution = context.resolve(deal)
    assert resolution.reason is None
    accruals, reason = accrue(deal, list(resolution.chain))
    assert reason is None
    assert {ibs[a.beneficiary]: a.amount for a in accruals} == {
        "SUBIB2": Decimal(5),
        "SUBIB1": Decimal(2),
        "MASTERIB": Decimal(3),
    }


async def test_adopted_accounts_open_their_ledger_mirror_with_the_platform_balance(
    sessions: Sessions, fake_platforms: None
) -> None:
    """Real clients' money is in the ledger: the sync posts the book's P/L to these mirrors and
    the drift check compares them with the platform, like any client's."""
    from fxcrm.activities.trading_pnl import ledger_mirrors
    from fxcrm.ledger import AccountView
    from fxcrm.models import LedgerTransfer

    await seed_demo(sessions)
    settings = Settings(env="test")
    await adopt_demo_book(sessions, settings, wait_seconds=0)
    await adopt_demo_book(sessions, settings, wait_seconds=0)  # a second start posts nothing
    async with sessions() as session:
        mirrors = await ledger_mirrors(session, DEMO_SERVER)
        book = {login: m for login, m in mirrors.items() if login >= BOOKED["mt5"]}
        assert len(book) == DEMO_BOOK_SIZE
        assert {AccountView.model_validate(m).posted.amount for m in book.values()} == {
            Decimal(1000)
        }
        openings = await session.scalar(
            select(func.count())
            .select_from(LedgerTransfer)
            .where(LedgerTransfer.idempotency_key.like(f"demo-book:{DEMO_SERVER}:%"))
        )
        assert openings == DEMO_BOOK_SIZE
