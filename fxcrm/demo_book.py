"""The demo book as fxcrm clients: `make dev`'s platform simulators open a book of funded accounts
the market engine trades on (fxcrm.adapters.simulators.host), the way a broker's other systems
would; here fxcrm adopts them, like a broker importing an existing book: each account becomes an
active client of the demo brand with its trading account, attributed to one of the demo IBs, so
their deals pay IB commissions as soon as they are ingested.

Idempotent: an account fxcrm already knows (server, login) is left alone. The accounts are found
by the client id the book gives them on the platform (`demo_book_client_id`).
"""

from __future__ import annotations

import asyncio
import json
import time

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.activities.money import trading_mirror_account
from fxcrm.activities.trading_pnl import post_to_mirror
from fxcrm.adapters.platforms.base import (
    AccountState,
    PlatformError,
    TradingPlatformGateway,
)
from fxcrm.adapters.platforms.factory import build_gateway
from fxcrm.core.audit import SYSTEM, append_audit
from fxcrm.core.config import Settings
from fxcrm.core.db import transaction
from fxcrm.core.security import hash_password
from fxcrm.domain.ledger import TransferKind
from fxcrm.ib.attribution import Referrer, attribute
from fxcrm.models import (
    Brand,
    IbPartner,
    LedgerAccount,
    PlatformServer,
    Trader,
    TradingAccount,
)
from fxcrm.seed import DEMO_BRAND, DEMO_PASSWORD_SUFFIX

log = structlog.get_logger(__name__)

DEMO_BOOK_SIZE = 20  # accounts per platform
# The book's clients, in turn: the deepest IB first, so every level of the tree earns.
DEMO_BOOK_IBS = ("SUBIB2", "SUBIB1", "MASTERIB")
DEMO_TRADER_PASSWORD = f"trader{DEMO_PASSWORD_SUFFIX}"


def demo_book_client_id(platform: str, n: int) -> str:
    return f"demo-{platform}-{n:02d}"


def demo_book_email(platform: str, n: int) -> str:
    return f"demo{n:02d}.{platform}@example.com"


async def adopt_demo_book(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, wait_seconds: float = 60.0
) -> int:
    """Adopts every account of the demo book on the demo brand's servers; returns how many were
    new. Waits up to `wait_seconds` for the simulators to have opened the book."""
    async with sessions() as session:
        brand = await session.scalar(select(Brand).where(Brand.code == DEMO_BRAND))
        if brand is None:
            raise LookupError("no demo brand: run the seed first")
        servers = (
            await session.scalars(select(PlatformServer).where(PlatformServer.brand_id == brand.id))
        ).all()
    password_hash = await asyncio.to_thread(hash_password, DEMO_TRADER_PASSWORD)
    deadline = time.monotonic() + wait_seconds
    adopted = 0
    for server in servers:
        gateway = build_gateway(server.platform, server.base_url, server.config, settings)
        try:
            book = await _book(gateway, server.platform, deadline)
            adopted += await _adopt(sessions, brand.id, server, book, password_hash, gateway)
        finally:
            await gateway.close()
    return adopted


async def _book(
    gateway: TradingPlatformGateway, platform: str, deadline: float
) -> dict[int, AccountState]:
    """The book's accounts by number; the simulators open them in order, so the last one found
    means the whole book is there (or the wait is over: whatever is there)."""
    last = demo_book_client_id(platform, DEMO_BOOK_SIZE - 1)
    while True:
        try:
            if await gateway.find_accounts_by_client(last) or time.monotonic() > deadline:
                break
        except PlatformError as exc:  # not listening yet
            if time.monotonic() > deadline:
                log.warning("demo book not reachable", platform=platform, error=str(exc))
                return {}
        await asyncio.sleep(0.5)
    book: dict[int, AccountState] = {}
    for n in range(DEMO_BOOK_SIZE):
        refs = await gateway.find_accounts_by_client(demo_book_client_id(platform, n))
        if refs:
            book[n] = await gateway.get_account(refs[0].login)
    return book


async def _adopt(
    sessions: async_sessionmaker[AsyncSession],
    brand_id: str,
    server: PlatformServer,
    book: dict[int, AccountState],
    password_hash: str,
    gateway: TradingPlatformGateway,
) -> int:
    adopted = 0
    async with transaction(sessions) as session:
        brand = await session.get(Brand, brand_id)
        assert brand is not None
        ibs = {
            code: ib_id
            for code, ib_id in (
                await session.execute(
                    select(IbPartner.referral_code, IbPartner.id).where(
                        IbPartner.brand_id == brand_id,
                        IbPartner.referral_code.in_(DEMO_BOOK_IBS),
                    )
                )
            ).all()
        }
        for n, account in sorted(book.items()):
            known = await session.scalar(
                select(TradingAccount.id).where(
                    TradingAccount.server_id == server.id, TradingAccount.login == account.login
                )
            )
            if known is not None:
                continue
            trader = await _trader(session, brand_id, server.platform, n, account, password_hash)
            trading = TradingAccount(
                trader_id=trader.id,
                brand_id=brand_id,
                server_id=server.id,
                platform=server.platform,
                opening_key=f"demo-book:{server.id}:{account.login}",
                status="open",
                login=account.login,
                group=account.group,
                leverage=account.leverage,
                currency=account.currency,
                account_type=trader.account_type,
            )
            session.add(trading)
            await _open_mirror(session, gateway, server.id, trading)
            ib_id = ibs.get(DEMO_BOOK_IBS[n % len(DEMO_BOOK_IBS)])
            if ib_id is not None and trader.ib_partner_id is None:
                # From the brand's start, like the demo IB plans: the book's history pays too.
                await attribute(
                    session,
                    trader,
                    Referrer(ib_id, None, "staff"),
                    brand.created_at,
                    SYSTEM,
                    reason="demo book",
                )
                trader.ib_partner_id = ib_id
            await append_audit(
                session,
                actor=SYSTEM,
                action="seed.demo_account_adopted",
                entity_type="trader",
                entity_id=trader.id,
                brand_id=brand_id,
                after={"server_id": server.id, "login": account.login, "group": account.group},
            )
            adopted += 1
    if adopted:
        log.info("demo book adopted", server_id=server.id, accounts=adopted)
    return adopted


async def _open_mirror(
    session: AsyncSession,
    gateway: TradingPlatformGateway,
    server_id: str,
    trading: TradingAccount,
) -> None:
    """The account's ledger mirror, opened with the balance the platform holds now, so that the
    sync posts its later P/L and the drift check watches it like any client's. The balance is
    read again just before the mirror opens: deals that close in between (milliseconds) show as
    a drift, which is what the drift alert is for. The opening money came from outside fxcrm,
    so it is booked against suspense, like a dealer's operation."""
    assert trading.login is not None
    balance = (await gateway.get_account(trading.login)).balance
    await session.flush()
    mirror_id = await trading_mirror_account(session, trading)
    mirror = await session.get(LedgerAccount, mirror_id)
    assert mirror is not None
    await post_to_mirror(
        session,
        mirror,
        balance,
        kind=TransferKind.PLATFORM_OPERATION,
        idempotency_key=f"demo-book:{server_id}:{trading.login}",
        reference=f"{server_id}:{trading.login}",
        details={"reason": "demo book adopted: the platform balance at adoption"},
    )


async def _trader(
    session: AsyncSession,
    brand_id: str,
    platform: str,
    n: int,
    account: AccountState,
    password_hash: str,
) -> Trader:
    email = demo_book_email(platform, n)
    trader = await session.scalar(
        select(Trader).where(Trader.brand_id == brand_id, Trader.email == email)
    )
    if trader is not None:
        return trader
    trader = Trader(
        brand_id=brand_id,
        email=email,
        password_hash=password_hash,
        first_name="Demo",
        last_name=f"Trader {n:02d}",
        date_of_birth="1985-01-01",
        phone=f"+3579900{n:04d}",
        address=json.dumps({"line1": "1 Demo Street", "city": "Limassol", "postal_code": "3000"}),
        country="CY",
        account_type="pro" if "\\pro\\" in account.group else "retail",
        status="active",
        stage="active",
        kyc_status="APPROVED",
        risk_category="low",
    )
    session.add(trader)
    await session.flush()
    return trader


async def adopt_with_settings(settings: Settings) -> int:
    from fxcrm.core.db import create_engine, session_factory
    from fxcrm.core.fields import configure_field_cipher

    configure_field_cipher(settings.field_encryption_keys)
    engine = create_engine(settings.database_url)
    try:
        return await adopt_demo_book(session_factory(engine), settings)
    finally:
        await engine.dispose()
