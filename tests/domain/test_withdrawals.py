"""The refund-to-card-first split and instrument fingerprints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fxcrm.domain.payments import PaymentError
from fxcrm.domain.withdrawals import (
    CardDeposit,
    RefundPart,
    destination_instrument,
    instrument_fingerprint,
    split_payout,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _deposit(pid: str, refundable: int, days: int) -> CardDeposit:
    return CardDeposit(pid, f"pay_{pid}", refundable, T0 + timedelta(days=days))


def test_no_card_deposits_everything_by_the_chosen_method() -> None:
    split = split_payout(10_000, [])
    assert split.refunds == () and split.payout == 10_000 and split.refunded == 0


def test_card_deposits_are_refunded_first_newest_first() -> None:
    split = split_payout(10_000, [_deposit("old", 3_000, 0), _deposit("new", 4_000, 5)])
    assert split.refunds == (
        RefundPart("new", "pay_new", 4_000),
        RefundPart("old", "pay_old", 3_000),
    )
    assert split.payout == 3_000
    assert split.refunded + split.payout == 10_000


def test_a_withdrawal_smaller_than_the_card_deposits_is_all_refund() -> None:
    split = split_payout(2_500, [_deposit("a", 3_000, 0), _deposit("b", 4_000, 1)])
    assert split.refunds == (RefundPart("b", "pay_b", 2_500),)
    assert split.payout == 0


def test_deposits_already_refunded_are_skipped() -> None:
    split = split_payout(1_000, [_deposit("a", 0, 3), _deposit("b", -5, 2), _deposit("c", 400, 1)])
    assert split.refunds == (RefundPart("c", "pay_c", 400),)
    assert split.payout == 600


def test_amount_must_be_positive() -> None:
    with pytest.raises(ValueError):
        split_payout(0, [])


def test_fingerprint_ignores_spelling_and_needs_the_key() -> None:
    pepper = b"secret"
    a = instrument_fingerprint(pepper, "bank_wire", "DE89 3704 0044 0532 0130 00")
    b = instrument_fingerprint(pepper, "bank_wire", "de89370400440532013000")
    assert a == b and len(a) == 64
    assert a != instrument_fingerprint(b"other", "bank_wire", "DE89370400440532013000")
    card = instrument_fingerprint(pepper, "card", "4242-4242-4242-4242")
    assert card == instrument_fingerprint(pepper, "card", "4242424242424242")
    assert card != instrument_fingerprint(pepper, "local", "4242424242424242")  # method counts
    with pytest.raises(PaymentError):
        instrument_fingerprint(pepper, "card", " - ")
    with pytest.raises(PaymentError):
        instrument_fingerprint(pepper, "paypal", "x@example.com")


def test_destination_instrument_picks_the_identifying_field() -> None:
    assert destination_instrument("card", {"card_token": "4242"}) == "4242"
    assert (
        destination_instrument("crypto", {"crypto_address": "T1", "crypto_network": "TRC20"})
        == "T1"
    )
    assert destination_instrument("bank_wire", {"iban": "DE89", "bic": "X"}) == "DE89"
    assert destination_instrument("local", {"provider_account": "acct_1"}) == "acct_1"
    assert destination_instrument("other", {}) is None
