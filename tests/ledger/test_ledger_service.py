"""The ledger on SQLite and PostgreSQL: idempotency, holds, linked FX, reversals, invariants."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Executable

from fxcrm.core.db import transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import (
    AccountKind,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    NotReversible,
    PendingExpired,
    TransferKind,
    TransferNotPending,
    UnknownAccount,
)
from fxcrm.domain.money import Money
from fxcrm.ledger import (
    AccountSpec,
    FxRequest,
    LedgerService,
    TransferRequest,
    post_pending,
    transfer_linked,
    void_expired,
)
from fxcrm.models import Brand, LedgerAccount, LedgerTransfer

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class Book:
    """One brand with a trader's USD and EUR wallets and a USD PSP clearing account."""

    ledger: LedgerService
    brand_id: str
    wallet_usd: str
    wallet_eur: str
    psp_usd: str
    trader: str

    def key(self, name: str) -> str:
        return f"{self.brand_id}:{name}"

    def deposit(self, usd: str, key: str, **extra: object) -> TransferRequest:
        return TransferRequest(
            idempotency_key=self.key(key),
            debit_account_id=self.psp_usd,
            credit_account_id=self.wallet_usd,
            amount=Money.of(usd, "USD"),
            kind=TransferKind.DEPOSIT,
            **extra,
        )

    def withdrawal(
        self, usd: str, key: str, pending: bool = True, **extra: object
    ) -> TransferRequest:
        return TransferRequest(
            idempotency_key=self.key(key),
            debit_account_id=self.wallet_usd,
            credit_account_id=self.psp_usd,
            amount=Money.of(usd, "USD"),
            kind=TransferKind.WITHDRAWAL,
            pending=pending,
            **extra,
        )

    async def available(self, account_id: str) -> Decimal:
        return (await self.ledger.get_account(account_id)).available.amount

    async def posted(self, account_id: str) -> Decimal:
        return (await self.ledger.get_account(account_id)).posted.amount


@pytest.fixture
async def book(sessions: Sessions) -> Book:
    async with transaction(sessions) as session:
        brand = Brand(code=f"b-{uuid.uuid4().hex[:10]}", name="Test", legal_entity="Test Ltd")
        session.add(brand)
    ledger = LedgerService(sessions)
    trader = uuid.uuid4().hex

    async def account(kind: AccountKind, code: str, currency: str) -> str:
        spec = AccountSpec(
            brand_id=brand.id, code=code, kind=kind, currency=currency, owner_id=trader
        )
        return (await ledger.open_account(spec)).id

    return Book(
        ledger=ledger,
        brand_id=brand.id,
        wallet_usd=await account(
            AccountKind.CLIENT_WALLET, rules.client_wallet_code(trader, "USD"), "USD"
        ),
        wallet_eur=await account(
            AccountKind.CLIENT_WALLET, rules.client_wallet_code(trader, "EUR"), "EUR"
        ),
        psp_usd=await account(
            AccountKind.PSP_CLEARING, rules.psp_clearing_code("sim", "USD"), "USD"
        ),
        trader=trader,
    )


async def _count(sessions: Sessions, brand_id: str) -> int:
    async with sessions() as session:
        total = await session.scalar(
            select(func.count())
            .select_from(LedgerTransfer)
            .where(LedgerTransfer.brand_id == brand_id)
        )
    return int(total or 0)


async def test_open_account_is_idempotent(book: Book) -> None:
    spec = AccountSpec(
        brand_id=book.brand_id,
        code=rules.client_wallet_code(book.trader, "USD"),
        kind=AccountKind.CLIENT_WALLET,
        currency="USD",
        owner_id=book.trader,
    )
    assert (await book.ledger.open_account(spec)).id == book.wallet_usd
    with pytest.raises(IdempotencyConflict):
        await book.ledger.open_account(spec.model_copy(update={"currency": "EUR"}))


async def test_deposit_and_idempotent_replay(book: Book, sessions: Sessions) -> None:
    request = book.deposit("100.25", "dep-1", reference="pay-1", details={"psp": "sim"})
    first = await book.ledger.transfer(request)
    again = await book.ledger.transfer(request)
    assert again.id == first.id
    assert first.amount == 10025 and first.money == Money.of("100.25", "USD")
    assert await book.posted(book.wallet_usd) == Decimal("100.25")
    assert await book.posted(book.psp_usd) == Decimal("100.25")  # debit-normal asset
    assert await _count(sessions, book.brand_id) == 1


async def test_same_key_different_fields_conflicts(book: Book, sessions: Sessions) -> None:
    await book.ledger.transfer(book.deposit("10", "dep-c"))
    with pytest.raises(IdempotencyConflict):
        await book.ledger.transfer(book.deposit("11", "dep-c"))
    with pytest.raises(IdempotencyConflict):
        await book.ledger.transfer(book.deposit("10", "dep-c", details={"other": 1}))
    assert await _count(sessions, book.brand_id) == 1
    assert await book.posted(book.wallet_usd) == Decimal(10)


async def test_concurrent_same_key_gives_one_transfer(book: Book, sessions: Sessions) -> None:
    request = book.deposit("5", "dep-race")
    results = await asyncio.gather(*(book.ledger.transfer(request) for _ in range(8)))
    assert len({r.id for r in results}) == 1
    assert await _count(sessions, book.brand_id) == 1
    assert await book.posted(book.wallet_usd) == Decimal(5)


async def test_bad_requests_are_refused(book: Book) -> None:
    with pytest.raises(InvalidAmount):
        await book.ledger.transfer(book.deposit("0", "zero"))
    with pytest.raises(InvalidAmount):
        await book.ledger.transfer(book.deposit("1.001", "too-fine"))
    with pytest.raises(UnknownAccount):
        await book.ledger.transfer(
            book.deposit("1", "nowhere").model_copy(update={"credit_account_id": "missing"})
        )
    with pytest.raises(CurrencyMismatch):
        await book.ledger.transfer(
            book.deposit("1", "ccy").model_copy(update={"credit_account_id": book.wallet_eur})
        )


async def test_insufficient_funds_changes_nothing(book: Book, sessions: Sessions) -> None:
    await book.ledger.transfer(book.deposit("50", "dep"))
    with pytest.raises(InsufficientFunds):
        await book.ledger.transfer(book.withdrawal("50.01", "wd", pending=False))
    with pytest.raises(InsufficientFunds):
        await book.ledger.transfer(book.withdrawal("50.01", "wd-hold"))
    assert await book.available(book.wallet_usd) == Decimal(50)
    assert await _count(sessions, book.brand_id) == 1


async def test_two_phase_post_partial_and_void(book: Book) -> None:
    await book.ledger.transfer(book.deposit("100", "dep"))
    hold = await book.ledger.transfer(book.withdrawal("60", "wd-1"))
    assert hold.state == "pending"
    assert await book.available(book.wallet_usd) == Decimal(40)
    assert await book.posted(book.wallet_usd) == Decimal(100)
    # The hold blocks a second withdrawal larger than what is left.
    with pytest.raises(InsufficientFunds):
        await book.ledger.transfer(book.withdrawal("41", "wd-2"))

    posted = await book.ledger.post_pending(hold.id, book.key("wd-1:post"), Money.of("45", "USD"))
    assert (posted.phase, posted.amount, posted.pending_id) == ("post", 4500, hold.id)
    assert await book.posted(book.wallet_usd) == Decimal(55)
    assert await book.available(book.wallet_usd) == Decimal(55)  # the other 15 released
    # The same post again is a replay; another post or a void is refused.
    assert (
        await book.ledger.post_pending(hold.id, book.key("wd-1:post"), Money.of("45", "USD"))
    ).id == posted.id
    with pytest.raises(IdempotencyConflict):
        await book.ledger.post_pending(hold.id, book.key("wd-1:post"), Money.of("44", "USD"))
    with pytest.raises(TransferNotPending):
        await book.ledger.post_pending(hold.id, book.key("wd-1:post-again"))
    with pytest.raises(TransferNotPending):
        await book.ledger.void_pending(hold.id, book.key("wd-1:void"))

    hold2 = await book.ledger.transfer(book.withdrawal("30", "wd-3"))
    voided = await book.ledger.void_pending(hold2.id, book.key("wd-3:void"))
    assert voided.state == "voided"
    assert await book.available(book.wallet_usd) == Decimal(55)
    with pytest.raises(TransferNotPending):
        await book.ledger.post_pending(hold2.id, book.key("wd-3:post"))
    with pytest.raises(InvalidAmount):
        hold3 = await book.ledger.transfer(book.withdrawal("10", "wd-4"))
        await book.ledger.post_pending(hold3.id, book.key("wd-4:post"), Money.of("10.01", "USD"))
    assert (await book.ledger.check_invariants()).ok


async def test_concurrent_posts_of_one_hold_post_once(book: Book, sessions: Sessions) -> None:
    await book.ledger.transfer(book.deposit("100", "dep"))
    hold = await book.ledger.transfer(book.withdrawal("60", "wd"))
    outcomes = await asyncio.gather(
        *(book.ledger.post_pending(hold.id, book.key(f"post-{n}")) for n in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, TransferNotPending) for o in outcomes if isinstance(o, BaseException))
    assert await book.posted(book.wallet_usd) == Decimal(40)


async def test_expired_hold_cannot_post_and_is_voided(book: Book, sessions: Sessions) -> None:
    await book.ledger.transfer(book.deposit("100", "dep"))
    soon = datetime.now(UTC) + timedelta(minutes=5)
    hold = await book.ledger.transfer(book.withdrawal("20", "wd", timeout_at=soon))
    later = soon + timedelta(seconds=1)
    async with transaction(sessions) as session:
        with pytest.raises(PendingExpired):
            await post_pending(session, hold.id, book.key("wd:post"), now=later)
    async with transaction(sessions) as session:
        voided = await void_expired(session, later)
    assert [v.pending_id for v in voided] == [hold.id]
    assert await book.available(book.wallet_usd) == Decimal(100)


async def test_reverse_creates_the_opposite_transfer_once(book: Book) -> None:
    deposit = await book.ledger.transfer(book.deposit("70", "dep"))
    reversal = await book.ledger.reverse(deposit.id, book.key("dep:rev"), {"reason": "duplicate"})
    assert (reversal.debit_account_id, reversal.credit_account_id) == (
        book.wallet_usd,
        book.psp_usd,
    )
    assert reversal.reversal_of == deposit.id and reversal.amount == deposit.amount
    assert await book.posted(book.wallet_usd) == 0
    assert (
        await book.ledger.reverse(deposit.id, book.key("dep:rev"), {"reason": "duplicate"})
    ).id == reversal.id
    with pytest.raises(NotReversible):
        await book.ledger.reverse(deposit.id, book.key("dep:rev2"))
    hold = await book.ledger.transfer(book.deposit("5", "dep2"))
    pending = await book.ledger.transfer(book.withdrawal("5", "wd"))
    with pytest.raises(NotReversible):
        await book.ledger.reverse(pending.id, book.key("wd:rev"))
    # Reversing client money already spent is refused: the wallet cannot go negative.
    await book.ledger.post_pending(pending.id, book.key("wd:post"))
    with pytest.raises(InsufficientFunds):
        await book.ledger.reverse(hold.id, book.key("dep2:rev"))


def _fx(book: Book, key: str, usd: str = "100", to: str | None = None) -> FxRequest:
    return FxRequest(
        idempotency_key=book.key(key),
        brand_id=book.brand_id,
        from_account_id=book.wallet_usd,
        to_account_id=to or book.wallet_eur,
        amount=Money.of(usd, "USD"),
        target_currency="EUR",
        rate=Decimal("0.92345"),
        spread=Decimal("0.01"),
    )


async def test_fx_conversion_posts_linked_legs(book: Book) -> None:
    await book.ledger.transfer(book.deposit("150", "dep"))
    conversion = await book.ledger.convert_currency(_fx(book, "fx-1"))
    assert [t.amount for t in conversion.transfers] == [10000, 9142, 92]
    assert conversion.quote["rate"] == "0.92345"
    assert {t.group_id for t in conversion.transfers} == {book.key("fx-1")}
    assert await book.posted(book.wallet_usd) == Decimal(50)
    assert await book.posted(book.wallet_eur) == Decimal("91.42")
    again = await book.ledger.convert_currency(_fx(book, "fx-1"))
    assert [t.id for t in again.transfers] == [t.id for t in conversion.transfers]
    with pytest.raises(IdempotencyConflict):
        await book.ledger.convert_currency(
            _fx(book, "fx-1").model_copy(update={"rate": Decimal("0.93")})
        )
    assert (await book.ledger.check_invariants()).ok


async def test_fx_conversion_is_all_or_nothing(book: Book, sessions: Sessions) -> None:
    await book.ledger.transfer(book.deposit("150", "dep"))
    before = await _count(sessions, book.brand_id)
    # The second leg credits a USD account with EUR: refused, and the first leg is not written.
    with pytest.raises(CurrencyMismatch):
        await book.ledger.convert_currency(_fx(book, "fx-bad", to=book.psp_usd))
    with pytest.raises(InsufficientFunds):
        await book.ledger.convert_currency(_fx(book, "fx-poor", usd="150.01"))
    assert await _count(sessions, book.brand_id) == before
    assert await book.posted(book.wallet_usd) == Decimal(150)


async def test_linked_transfers_fail_together(book: Book, sessions: Sessions) -> None:
    await book.ledger.transfer(book.deposit("10", "dep"))
    legs = [
        book.deposit("5", "link-1"),
        book.withdrawal("100", "link-2", pending=False),  # more than the wallet holds
    ]
    async with transaction(sessions) as session:
        with pytest.raises(InsufficientFunds):
            await transfer_linked(session, legs, group_id=book.key("link"))
        # The savepoint rolled back: the first leg is gone even inside this transaction.
        assert (
            await session.scalar(
                select(LedgerTransfer).where(LedgerTransfer.idempotency_key == book.key("link-1"))
            )
            is None
        )
    assert await book.posted(book.wallet_usd) == Decimal(10)


async def test_invariants_clean_after_a_mix(book: Book) -> None:
    await book.ledger.transfer(book.deposit("500", "dep"))
    hold = await book.ledger.transfer(book.withdrawal("100", "wd"))
    await book.ledger.post_pending(hold.id, book.key("wd:post"), Money.of("80", "USD"))
    await book.ledger.transfer(book.withdrawal("20", "wd2"))  # left pending
    await book.ledger.convert_currency(_fx(book, "fx"))
    deposit = await book.ledger.transfer(book.deposit("7", "dep2"))
    await book.ledger.reverse(deposit.id, book.key("dep2:rev"))
    report = await book.ledger.check_invariants()
    assert report.ok, report
    usd = next(c for c in report.currencies if c.currency == "USD")
    assert usd.debits_posted == usd.credits_posted and usd.debits_pending == usd.credits_pending > 0


async def test_tampered_balance_is_reported(book: Book, sessions: Sessions) -> None:
    await book.ledger.transfer(book.deposit("10", "dep"))
    async with transaction(sessions) as session:
        await session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == book.wallet_usd)
            .values(credits_posted=LedgerAccount.credits_posted + 1)
        )
    report = await book.ledger.check_invariants()
    assert not report.ok
    assert "USD" in report.unbalanced_currencies
    assert [p.account_id for p in report.mismatched_balances] == [book.wallet_usd]
    # Put it back so the shared database stays clean for the other tests.
    async with transaction(sessions) as session:
        await session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == book.wallet_usd)
            .values(credits_posted=LedgerAccount.credits_posted - 1)
        )
    assert (await book.ledger.check_invariants()).ok


async def test_database_refuses_what_the_rules_refuse(book: Book, sessions: Sessions) -> None:
    deposit = await book.ledger.transfer(book.deposit("10", "dep"))
    statements: list[Executable] = [
        # A wallet overdrawn behind the service's back (CHECK available_not_negative).
        update(LedgerAccount).where(LedgerAccount.id == book.wallet_usd).values(debits_posted=5000),
        # A transfer edited or deleted (triggers).
        update(LedgerTransfer).where(LedgerTransfer.id == deposit.id).values(amount=1),
        text("DELETE FROM ledger_transfers WHERE id = :id").bindparams(id=deposit.id),
    ]
    for statement in statements:
        with pytest.raises(DBAPIError):
            async with transaction(sessions) as session:
                await session.execute(statement)
    assert await book.posted(book.wallet_usd) == Decimal(10)
