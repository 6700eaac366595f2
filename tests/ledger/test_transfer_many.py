"""transfer_many: a batch of independent transfers with the rules and idempotency of `transfer`,
written in a few statements. Same invariants as the single-transfer tests."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.core.db import transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import (
    AccountKind,
    BrandMismatch,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransfer,
    TransferKind,
    UnknownAccount,
)
from fxcrm.domain.money import Money
from fxcrm.ledger import (
    AccountSpec,
    LedgerService,
    TransferRequest,
    TransferView,
    get_account,
    service,
    transfer,
    transfer_many,
)
from fxcrm.models import Brand, LedgerTransfer

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class Payouts:
    """A brand's expense account paying IB wallets, and one client's wallet fed by a PSP."""

    ledger: LedgerService
    brand_id: str
    expense: str
    wallets: list[str]
    client: str
    psp: str
    euro_wallet: str

    def key(self, name: str) -> str:
        return f"{self.brand_id}:{name}"

    def pay(self, n: int, usd: str, key: str | None = None, **extra: object) -> TransferRequest:
        return TransferRequest(
            idempotency_key=self.key(key or f"pay-{n}"),
            debit_account_id=self.expense,
            credit_account_id=self.wallets[n],
            amount=Money.of(usd, "USD"),
            kind=TransferKind.COMMISSION,
            reference="ib-settlement:2026-01",
            details={"ib": n},
            **extra,
        )

    def deposit(self, usd: str, key: str) -> TransferRequest:
        return TransferRequest(
            idempotency_key=self.key(key),
            debit_account_id=self.psp,
            credit_account_id=self.client,
            amount=Money.of(usd, "USD"),
            kind=TransferKind.DEPOSIT,
        )

    def withdraw(self, usd: str, key: str) -> TransferRequest:
        return TransferRequest(
            idempotency_key=self.key(key),
            debit_account_id=self.client,
            credit_account_id=self.psp,
            amount=Money.of(usd, "USD"),
            kind=TransferKind.WITHDRAWAL,
        )

    async def posted(self, account_id: str) -> Decimal:
        return (await self.ledger.get_account(account_id)).posted.amount


async def _brand(sessions: Sessions) -> str:
    async with transaction(sessions) as session:
        brand = Brand(code=f"b-{uuid.uuid4().hex[:10]}", name="Test", legal_entity="Test Ltd")
        session.add(brand)
    return brand.id


async def _account(
    ledger: LedgerService, brand_id: str, kind: AccountKind, code: str, currency: str = "USD"
) -> str:
    spec = AccountSpec(brand_id=brand_id, code=code, kind=kind, currency=currency)
    return (await ledger.open_account(spec)).id


@pytest.fixture
async def book(sessions: Sessions) -> Payouts:
    ledger = LedgerService(sessions)
    brand_id = await _brand(sessions)
    trader = uuid.uuid4().hex
    return Payouts(
        ledger=ledger,
        brand_id=brand_id,
        expense=await _account(
            ledger, brand_id, AccountKind.BROKER_EXPENSE, rules.broker_expense_code("USD")
        ),
        wallets=[
            await _account(
                ledger, brand_id, AccountKind.IB_PAYABLE, rules.ib_payable_code(f"ib{n}", "USD")
            )
            for n in range(5)
        ],
        client=await _account(
            ledger, brand_id, AccountKind.CLIENT_WALLET, rules.client_wallet_code(trader, "USD")
        ),
        psp=await _account(
            ledger, brand_id, AccountKind.PSP_CLEARING, rules.psp_clearing_code("sim", "USD")
        ),
        euro_wallet=await _account(
            ledger,
            brand_id,
            AccountKind.CLIENT_WALLET,
            rules.client_wallet_code(trader, "EUR"),
            "EUR",
        ),
    )


async def _count(sessions: Sessions, brand_id: str) -> int:
    async with sessions() as session:
        total = await session.scalar(
            select(func.count())
            .select_from(LedgerTransfer)
            .where(LedgerTransfer.brand_id == brand_id)
        )
    return int(total or 0)


async def _stored(sessions: Sessions, ids: list[str]) -> dict[str, TransferView]:
    async with sessions() as session:
        rows = await session.scalars(select(LedgerTransfer).where(LedgerTransfer.id.in_(ids)))
        return {row.id: TransferView.model_validate(row) for row in rows}


async def test_posts_a_batch_like_single_transfers(book: Payouts, sessions: Sessions) -> None:
    batch = [book.pay(n, f"{n + 1}.25") for n in range(5)] + [book.pay(0, "10", key="pay-0b")]
    views = await book.ledger.transfer_many(batch)
    assert [v.idempotency_key for v in views] == [r.idempotency_key for r in batch]
    assert [v.amount for v in views] == [125, 225, 325, 425, 525, 1000]
    assert {v.state for v in views} == {rules.TransferState.POSTED}
    assert len({v.id for v in views}) == 6
    # What the batch answered is what was stored.
    assert await _stored(sessions, [v.id for v in views]) == {v.id: v for v in views}
    assert await book.posted(book.wallets[0]) == Decimal("11.25")
    assert await book.posted(book.wallets[4]) == Decimal("5.25")
    assert await book.posted(book.expense) == Decimal("26.25")  # debit-normal
    assert (await book.ledger.check_invariants()).ok


async def test_same_totals_as_one_transfer_at_a_time(sessions: Sessions) -> None:
    ledger = LedgerService(sessions)
    totals = []
    for bulk in (False, True):
        brand_id = await _brand(sessions)
        expense = await _account(ledger, brand_id, AccountKind.BROKER_EXPENSE, "expense")
        wallets = [
            await _account(ledger, brand_id, AccountKind.IB_PAYABLE, f"ib{n}") for n in range(3)
        ]
        requests = [
            TransferRequest(
                idempotency_key=f"{brand_id}:{n}",
                debit_account_id=expense if n % 4 else wallets[n % 3],
                credit_account_id=wallets[n % 3] if n % 4 else expense,
                amount=Money.from_minor(100 + n, "USD"),
                kind=TransferKind.COMMISSION,
            )
            for n in range(1, 20)
        ]
        if bulk:
            await ledger.transfer_many(requests)
        else:
            for request in requests:
                await ledger.transfer(request)
        accounts = [await ledger.get_account(a) for a in [expense, *wallets]]
        totals.append(
            [
                (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
                for a in accounts
            ]
        )
    assert totals[0] == totals[1]
    assert (await ledger.check_invariants()).ok


async def test_a_replayed_batch_returns_the_stored_transfers(
    book: Payouts, sessions: Sessions
) -> None:
    batch = [book.pay(n, "7") for n in range(3)]
    first = await book.ledger.transfer_many(batch)
    again = await book.ledger.transfer_many(batch)
    assert [v.id for v in again] == [v.id for v in first]
    assert await _count(sessions, book.brand_id) == 3
    assert await book.posted(book.wallets[1]) == Decimal(7)
    # A single-transfer replay of a batch key answers the same way.
    assert (await book.ledger.transfer(batch[2])).id == first[2].id


async def test_known_keys_are_replayed_and_new_ones_posted(
    book: Payouts, sessions: Sessions
) -> None:
    earlier = await book.ledger.transfer(book.pay(1, "3"))
    views = await book.ledger.transfer_many([book.pay(0, "2"), book.pay(1, "3"), book.pay(2, "4")])
    assert views[1].id == earlier.id
    assert [v.idempotency_key for v in views] == [book.key(f"pay-{n}") for n in range(3)]
    assert await _count(sessions, book.brand_id) == 3
    assert await book.posted(book.wallets[1]) == Decimal(3)  # not paid twice
    assert await book.posted(book.expense) == Decimal(9)
    assert (await book.ledger.check_invariants()).ok


async def test_a_key_used_with_other_fields_conflicts_and_writes_nothing(
    book: Payouts, sessions: Sessions
) -> None:
    await book.ledger.transfer(book.pay(1, "3"))
    for changed in (
        book.pay(1, "3.01"),
        book.pay(2, "3", key="pay-1"),
        book.pay(1, "3", pending=True),
    ):
        with pytest.raises(IdempotencyConflict):
            await book.ledger.transfer_many([book.pay(0, "2"), changed])
    assert await _count(sessions, book.brand_id) == 1
    assert await book.posted(book.wallets[0]) == Decimal(0)


async def test_refusals_write_nothing(book: Payouts, sessions: Sessions) -> None:
    await book.ledger.transfer(book.deposit("50", "dep"))
    refused: list[tuple[type[Exception], list[TransferRequest]]] = [
        (InvalidTransfer, []),
        (InvalidTransfer, [book.pay(0, "1", key="twice"), book.pay(1, "1", key="twice")]),
        (InsufficientFunds, [book.pay(0, "1"), book.withdraw("50.01", "wd")]),
        (
            UnknownAccount,
            [book.pay(0, "1"), book.pay(1, "1").model_copy(update={"credit_account_id": "nope"})],
        ),
        (
            CurrencyMismatch,
            [
                book.pay(0, "1"),
                book.pay(1, "1").model_copy(update={"credit_account_id": book.euro_wallet}),
            ],
        ),
        (
            InvalidTransfer,
            [book.pay(0, "1").model_copy(update={"credit_account_id": book.expense})],
        ),
    ]
    for error, batch in refused:
        with pytest.raises(error):
            await book.ledger.transfer_many(batch)
    assert await _count(sessions, book.brand_id) == 1
    assert await book.posted(book.client) == Decimal(50)
    assert await book.posted(book.wallets[0]) == Decimal(0)
    assert (await book.ledger.check_invariants()).ok


async def test_transfers_between_brands_are_refused(book: Payouts, sessions: Sessions) -> None:
    other_brand = await _brand(sessions)
    elsewhere = await _account(book.ledger, other_brand, AccountKind.IB_PAYABLE, "ib:x")
    with pytest.raises(BrandMismatch):
        await book.ledger.transfer_many(
            [book.pay(0, "1"), book.pay(1, "1").model_copy(update={"credit_account_id": elsewhere})]
        )
    assert await _count(sessions, book.brand_id) == 0


async def test_checks_follow_the_request_order(book: Payouts, sessions: Sessions) -> None:
    # A withdrawal the wallet can pay only after the deposit before it in the same batch.
    with pytest.raises(InsufficientFunds):
        await book.ledger.transfer_many([book.withdraw("30", "wd"), book.deposit("30", "dep")])
    views = await book.ledger.transfer_many(
        [book.deposit("30", "dep"), book.withdraw("30", "wd"), book.deposit("5", "dep2")]
    )
    assert len(views) == 3
    assert await book.posted(book.client) == Decimal(5)
    assert await book.posted(book.psp) == Decimal(5)
    assert (await book.ledger.check_invariants()).ok


async def test_pending_transfers_in_a_batch_can_be_posted(book: Payouts) -> None:
    await book.ledger.transfer(book.deposit("100", "dep"))
    hold, pay = await book.ledger.transfer_many(
        [
            book.withdraw("60", "wd").model_copy(update={"pending": True}),
            book.pay(0, "1"),
        ]
    )
    assert hold.state == rules.TransferState.PENDING and pay.state == rules.TransferState.POSTED
    client = await book.ledger.get_account(book.client)
    assert client.available.amount == Decimal(40) and client.posted.amount == Decimal(100)
    # The hold blocks what it reserves, in a batch as for a single transfer.
    with pytest.raises(InsufficientFunds):
        await book.ledger.transfer_many([book.withdraw("41", "wd-2")])
    await book.ledger.post_pending(hold.id, book.key("wd:post"), Money.of("60", "USD"))
    assert await book.posted(book.client) == Decimal(40)
    assert (await book.ledger.check_invariants()).ok


async def test_mixes_with_orm_writes_in_one_transaction(book: Payouts, sessions: Sessions) -> None:
    """The batch updates balances behind the ORM: single transfers and reads after it in the
    same transaction still see the new balances."""
    async with transaction(sessions) as session:
        await transfer(session, book.pay(0, "5", key="before"))
        await transfer_many(session, [book.pay(0, "7"), book.pay(1, "1")])
        await transfer(session, book.pay(0, "11", key="after"))
        assert (await get_account(session, book.wallets[0])).posted.amount == Decimal(23)
    assert await book.posted(book.wallets[0]) == Decimal(23)
    assert await book.posted(book.expense) == Decimal(24)
    assert (await book.ledger.check_invariants()).ok


async def test_large_batches_lock_and_look_up_in_slices(
    book: Payouts, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "_IN_BATCH", 2)
    first = await book.ledger.transfer_many([book.pay(n, "1") for n in range(5)])
    batch = [book.pay(n, "1") for n in range(5)] + [book.pay(n, "2", key=f"x{n}") for n in range(5)]
    views = await book.ledger.transfer_many(batch)
    assert [v.id for v in views[:5]] == [v.id for v in first]
    assert await _count(sessions, book.brand_id) == 10
    assert await book.posted(book.expense) == Decimal(15)
    assert (await book.ledger.check_invariants()).ok


async def test_concurrent_batches_post_each_key_once(book: Payouts, sessions: Sessions) -> None:
    batches = [
        [book.pay(n, "1") for n in range(5)],
        [book.pay(n, "1") for n in (4, 3, 2)],
        [book.pay(1, "1"), book.pay(0, "3", key="other")],
    ]
    results = await asyncio.gather(
        *(book.ledger.transfer_many(batch) for batch in batches * 3),
        book.ledger.transfer(book.pay(2, "1")),
    )
    by_key: dict[str, set[str]] = {}
    for views in results[:-1]:
        assert isinstance(views, list)
        for view in views:
            by_key.setdefault(view.idempotency_key, set()).add(view.id)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert await _count(sessions, book.brand_id) == 6
    assert await book.posted(book.expense) == Decimal(8)
    assert (await book.ledger.check_invariants()).ok
