"""Pure ledger rules: balances with pendings, posting math, FX rounding, account codes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import (
    AccountState,
    Balances,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    NormalBalance,
    TransferPhase,
)

CREDIT, DEBIT = NormalBalance.CREDIT, NormalBalance.DEBIT


def test_posted_and_available_follow_the_normal_side() -> None:
    wallet = Balances(
        debits_posted=300, credits_posted=1000, debits_pending=200, credits_pending=50
    )
    assert wallet.posted(CREDIT) == 700
    # A hold (pending debit) blocks funds; a pending credit gives nothing until posted.
    assert wallet.available(CREDIT) == 500
    assert wallet.posted(DEBIT) == -700
    assert wallet.available(DEBIT) == -750


def test_single_and_pending_postings() -> None:
    start = Balances()
    assert rules.debit(start, 5, TransferPhase.SINGLE) == Balances(debits_posted=5)
    assert rules.debit(start, 5, TransferPhase.PENDING) == Balances(debits_pending=5)
    assert rules.credit(start, 5, TransferPhase.SINGLE) == Balances(credits_posted=5)
    assert rules.credit(start, 5, TransferPhase.PENDING) == Balances(credits_pending=5)


def test_partial_post_releases_the_rest_and_void_releases_all() -> None:
    held = Balances(credits_posted=1000, debits_pending=400)
    partial = rules.resolve_debit(held, pending=400, posted=250)
    assert partial == Balances(credits_posted=1000, debits_posted=250)
    assert partial.available(CREDIT) == 750
    voided = rules.resolve_debit(held, pending=400, posted=0)
    assert voided.available(CREDIT) == 1000
    assert rules.resolve_credit(Balances(credits_pending=9), 9, 4) == Balances(credits_posted=4)


def test_post_amount_is_at_most_what_was_reserved() -> None:
    assert rules.check_post_amount(400, None) == 400
    assert rules.check_post_amount(400, 399) == 399
    with pytest.raises(InvalidAmount):
        rules.check_post_amount(400, 401)
    with pytest.raises(InvalidAmount):
        rules.check_post_amount(400, 0)


def test_protected_account_cannot_go_below_zero_others_can() -> None:
    wallet = AccountState(CREDIT, True, Balances(credits_posted=100, debits_pending=30))
    ok = rules.debit(wallet.balances, 70, TransferPhase.SINGLE)
    rules.check_not_negative("w", wallet, ok)
    too_much = rules.debit(wallet.balances, 71, TransferPhase.SINGLE)
    with pytest.raises(InsufficientFunds):
        rules.check_not_negative("w", wallet, too_much)
    clearing = AccountState(DEBIT, False, Balances())
    rules.check_not_negative(
        "psp", clearing, rules.credit(clearing.balances, 10**9, TransferPhase.SINGLE)
    )


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_amounts_are_positive_integers(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        rules.check_amount(bad)  # type: ignore[arg-type]


def test_reversal_is_the_mirror_image() -> None:
    # A reversal swaps debit and credit: applying both leaves posted balances equal on each side.
    wallet = rules.credit(Balances(), 500, TransferPhase.SINGLE)
    wallet = rules.debit(wallet, 500, TransferPhase.SINGLE)
    assert wallet.posted(CREDIT) == 0


def test_fx_quote_rounds_half_even_and_loses_nothing() -> None:
    # 100.00 USD at 0.92345 EUR/USD, 1% spread: gross 92.345 -> 92.34 (half-even, 4 is even),
    # net 91.42155 -> 91.42, spread 0.92 = gross - net exactly.
    quote = rules.fx_quote(10_000, "USD", "EUR", Decimal("0.92345"), Decimal("0.01"))
    assert (quote.gross_amount, quote.net_amount, quote.spread_amount) == (9234, 9142, 92)
    assert quote.net_amount + quote.spread_amount == quote.gross_amount


def test_fx_quote_half_even_rounds_to_even_neighbour() -> None:
    # 0.05 USD at 0.5 -> 0.025 EUR -> 0.02 (half to even); 0.07 at 0.5 -> 0.035 -> 0.04.
    assert rules.fx_quote(5, "USD", "EUR", Decimal("0.5"), Decimal(0)).net_amount == 2
    assert rules.fx_quote(7, "USD", "EUR", Decimal("0.5"), Decimal(0)).net_amount == 4


def test_fx_quote_across_scales() -> None:
    # USD (2) -> JPY (0): 12.34 USD at 151.275 = 1866.7335 JPY -> 1867.
    assert rules.fx_quote(1234, "USD", "JPY", Decimal("151.275"), Decimal(0)).net_amount == 1867
    # BTC (8) -> USDT (6): 0.00012345 BTC at 65000.5 = 8.024311725 USDT -> 8.024312.
    quote = rules.fx_quote(12_345, "BTC", "USDT", Decimal("65000.5"), Decimal(0))
    assert quote.net_amount == 8_024_312
    # JPY -> USD: 1 JPY at 0.0066 = 0.0066 USD -> 0.01.
    assert rules.fx_quote(1, "JPY", "USD", Decimal("0.0066"), Decimal(0)).net_amount == 1


def test_fx_quote_refuses_nonsense() -> None:
    with pytest.raises(CurrencyMismatch):
        rules.fx_quote(100, "USD", "USD", Decimal(1), Decimal(0))
    with pytest.raises(InvalidAmount):
        rules.fx_quote(100, "USD", "EUR", Decimal(0), Decimal(0))
    with pytest.raises(InvalidAmount):
        rules.fx_quote(100, "USD", "EUR", Decimal(1), Decimal(1))
    with pytest.raises(InvalidAmount):  # rounds to nothing
        rules.fx_quote(1, "USD", "JPY", Decimal("0.4"), Decimal(0))


def test_account_codes() -> None:
    assert rules.client_wallet_code("t1", "usd") == "client:t1:wallet:USD"
    assert rules.client_trading_code("t1", "mt5-1", 1001) == "client:t1:trading:mt5-1:1001"
    assert rules.psp_clearing_code("stripe", "EUR") == "psp:stripe:clearing:EUR"
    assert rules.ib_payable_code("p1", "USD") == "ib:p1:payable:USD"
    assert rules.broker_revenue_code("USD") == "broker:revenue:USD"
    assert rules.fx_code("JPY") == "fx:JPY"
    with pytest.raises(CurrencyMismatch):
        rules.suspense_code("XYZ")
