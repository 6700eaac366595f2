"""The pure PSP matcher: every break kind, fees, the midnight tolerance, duplicates; corrections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fxcrm.domain.reconciliation import (
    BreakKind,
    CorrectionError,
    Counterparty,
    Flow,
    LedgerEntry,
    PspLine,
    Resolution,
    correction_legs,
    match_day,
)

DAY = date(2025, 3, 10)
NOON = datetime(2025, 3, 10, 12, tzinfo=UTC)


def line(
    ref: str,
    gross: int,
    *,
    our_id: str | None = None,
    flow: Flow = Flow.PAYMENT,
    fee: int = 0,
    currency: str = "USD",
    at: datetime = NOON,
) -> PspLine:
    return PspLine(flow, ref, our_id, gross, fee, currency, at)


def entry(
    our_id: str,
    amount: int,
    *,
    ref: str | None = None,
    flow: Flow = Flow.PAYMENT,
    currency: str = "USD",
    at: datetime = NOON,
    payment_id: str | None = None,
    platform_expected: bool = False,
    platform_done: bool = False,
) -> LedgerEntry:
    return LedgerEntry(
        flow,
        our_id,
        payment_id or our_id,
        ref,
        amount,
        currency,
        at,
        platform_expected,
        platform_done,
    )


def kinds(result) -> list[tuple[BreakKind, str]]:  # type: ignore[no-untyped-def]
    return sorted((b.kind, b.key) for b in result.breaks)


def test_everything_matches_and_fees_are_due() -> None:
    lines = [
        line("pi_1", 10_000, our_id="p1", fee=290),
        line("pi_2", -2_000, our_id="r1", flow=Flow.REFUND),
        line("po_1", -5_000, our_id="w1", flow=Flow.PAYOUT, fee=25),
    ]
    entries = [
        entry("p1", 10_000, ref="pi_1"),
        entry("r1", -2_000, ref="pi_2", flow=Flow.REFUND, payment_id="p2"),
        entry("w1", -5_000, ref="po_1", flow=Flow.PAYOUT),
    ]
    result = match_day(DAY, lines, entries)
    assert result.breaks == []
    assert result.matched == 3
    assert sorted((f.payment_id, f.amount) for f in result.fees) == [("p1", 290), ("w1", 25)]
    assert all(f.key.endswith(DAY.isoformat()) for f in result.fees)


def test_matches_by_reference_when_the_psp_does_not_know_our_id() -> None:
    result = match_day(DAY, [line("pi_1", 500)], [entry("p1", 500, ref="pi_1")])
    assert result.breaks == [] and result.matched == 1


def test_split_bookings_of_one_payment_match_their_total() -> None:
    # A crypto payment underpaid, then topped up: two lines, one credit for the total.
    lines = [line("pi_1", 700, our_id="p1", fee=7), line("pi_1", 300, our_id="p1", fee=3)]
    result = match_day(DAY, lines, [entry("p1", 1_000, ref="pi_1")])
    assert result.breaks == []
    assert [f.amount for f in result.fees] == [10]


def test_missing_in_ledger_and_missing_at_psp() -> None:
    result = match_day(
        DAY,
        [line("pi_x", 1_000, our_id="ghost")],
        [entry("p1", 2_000, ref="pi_1")],
    )
    assert kinds(result) == [
        (BreakKind.MISSING_AT_PSP, "missing_at_psp:payment:p1"),
        (BreakKind.MISSING_IN_LEDGER, "missing_in_ledger:payment:ghost"),
    ]
    missing = next(b for b in result.breaks if b.kind is BreakKind.MISSING_IN_LEDGER)
    assert missing.payment_id is None and missing.expected is None
    assert missing.actual is not None and missing.actual["amount"] == 1_000
    assert result.fees == []  # no payment: no brand to book a fee on


def test_amount_and_currency_mismatch() -> None:
    result = match_day(
        DAY,
        [line("pi_1", 990, our_id="p1"), line("pi_2", 1_000, our_id="p2", currency="EUR")],
        [entry("p1", 1_000, ref="pi_1"), entry("p2", 1_000, ref="pi_2")],
    )
    assert kinds(result) == [
        (BreakKind.AMOUNT_MISMATCH, "amount_mismatch:payment:p1"),
        (BreakKind.CURRENCY_MISMATCH, "currency_mismatch:payment:p2"),
    ]
    amount = next(b for b in result.breaks if b.kind is BreakKind.AMOUNT_MISMATCH)
    assert amount.expected is not None and amount.expected["amount"] == 1_000
    assert amount.actual is not None and amount.actual["amount"] == 990


def test_duplicates_on_either_side() -> None:
    # The PSP booked one payment twice; we credited one PSP payment under two payments.
    result = match_day(
        DAY,
        [line("pi_1", 1_000, our_id="p1"), line("pi_1", 1_000, our_id="p1"), line("pi_2", 500)],
        [
            entry("p1", 1_000, ref="pi_1"),
            entry("p2", 500, ref="pi_2"),
            entry("p3", 500, ref="pi_2"),
        ],
    )
    assert [b.kind for b in result.breaks] == [BreakKind.DUPLICATE, BreakKind.DUPLICATE]
    assert result.matched == 0


def test_platform_mismatch_beside_a_matching_amount() -> None:
    result = match_day(
        DAY,
        [line("pi_1", 1_000, our_id="p1"), line("pi_2", 1_000, our_id="p2")],
        [
            entry("p1", 1_000, ref="pi_1", platform_expected=True, platform_done=False),
            entry("p2", 1_000, ref="pi_2", platform_expected=True, platform_done=True),
        ],
    )
    assert kinds(result) == [(BreakKind.PLATFORM_MISMATCH, "platform_mismatch:payment:p1")]
    assert result.matched == 2


def test_a_payment_credited_before_midnight_and_booked_after_is_not_a_break() -> None:
    late = datetime(2025, 3, 10, 23, 58, tzinfo=UTC)
    booked = datetime(2025, 3, 11, 0, 3, tzinfo=UTC)
    credited = entry("p1", 1_000, ref="pi_1", at=late)
    # Day 10: no line that day, but the next day's line is within the tolerance.
    day10 = match_day(DAY, [], [credited], nearby=[line("pi_1", 1_000, our_id="p1", at=booked)])
    assert day10.breaks == [] and day10.deferred == 1
    # Day 11: the line matches the credit of the day before.
    day11 = match_day(
        DAY + timedelta(days=1), [line("pi_1", 1_000, our_id="p1", at=booked)], [credited]
    )
    assert day11.breaks == [] and day11.matched == 1
    # Outside the tolerance it is missing at the PSP.
    far = match_day(
        DAY,
        [],
        [credited],
        nearby=[line("pi_1", 1_000, our_id="p1", at=booked)],
        tolerance=timedelta(minutes=1),
    )
    assert [b.kind for b in far.breaks] == [BreakKind.MISSING_AT_PSP]


def test_entries_of_other_days_are_not_this_runs_business() -> None:
    yesterday = entry("p1", 1_000, ref="pi_1", at=NOON - timedelta(days=1))
    assert match_day(DAY, [], [yesterday]).breaks == []


def test_keys_are_deterministic() -> None:
    lines = [line("pi_1", 990, our_id="p1"), line("pi_x", 5, our_id="ghost")]
    entries = [entry("p1", 1_000, ref="pi_1"), entry("p9", 7, ref="pi_9")]
    assert kinds(match_day(DAY, lines, entries)) == kinds(
        match_day(DAY, list(reversed(lines)), list(reversed(entries)))
    )


# ---------------------------------------------------------------- corrections


def side(amount: int, currency: str = "USD") -> dict[str, object]:
    return {"currency": currency, "amount": amount, "count": 1}


def test_under_credited_deposit_is_owed_to_the_client() -> None:
    legs = correction_legs(
        BreakKind.AMOUNT_MISMATCH,
        Flow.PAYMENT,
        side(900),
        side(1_000),
        Resolution.POST_CORRECTION,
        client_known=True,
    )
    assert [(g.amount, g.into_clearing, g.counterparty) for g in legs] == [
        (100, True, Counterparty.WALLET)
    ]


def test_missing_at_psp_goes_to_suspense_and_write_off_to_expense() -> None:
    args = (BreakKind.MISSING_AT_PSP, Flow.PAYMENT, side(1_000), None)
    (leg,) = correction_legs(*args, Resolution.POST_CORRECTION, client_known=True)
    assert (leg.amount, leg.into_clearing, leg.counterparty) == (
        1_000,
        False,
        Counterparty.SUSPENSE,
    )
    (leg,) = correction_legs(*args, Resolution.WRITE_OFF)
    assert leg.counterparty is Counterparty.EXPENSE
    assert correction_legs(*args, Resolution.NO_ACTION) == []


def test_currency_mismatch_corrects_both_currencies() -> None:
    legs = correction_legs(
        BreakKind.CURRENCY_MISMATCH,
        Flow.PAYMENT,
        side(1_000, "USD"),
        side(900, "EUR"),
        Resolution.POST_CORRECTION,
    )
    assert sorted((g.currency, g.amount, g.into_clearing) for g in legs) == [
        ("EUR", 900, True),
        ("USD", 1_000, False),
    ]


def test_corrections_refused() -> None:
    with pytest.raises(CorrectionError):
        correction_legs(
            BreakKind.PLATFORM_MISMATCH, Flow.PAYMENT, side(1), side(1), Resolution.WRITE_OFF
        )
    with pytest.raises(CorrectionError):  # nothing to correct
        correction_legs(
            BreakKind.DUPLICATE, Flow.PAYMENT, side(5), side(5), Resolution.POST_CORRECTION
        )
    with pytest.raises(CorrectionError):  # an amount needs one currency
        correction_legs(
            BreakKind.CURRENCY_MISMATCH,
            Flow.PAYMENT,
            side(1, "USD"),
            side(1, "EUR"),
            Resolution.POST_CORRECTION,
            amount=1,
        )
    (leg,) = correction_legs(
        BreakKind.AMOUNT_MISMATCH, Flow.PAYMENT, side(10), side(4), Resolution.WRITE_OFF, amount=2
    )
    assert (leg.amount, leg.into_clearing) == (2, False)
