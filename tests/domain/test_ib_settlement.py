"""Settlement rules of one IB's period: rounding once with nothing lost, minimum payout, hold,
revenue shares with negative carry-forward, CPA and its clawback, tiers; periods; statements."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fxcrm.domain.ib.plans import CpaRule, PlanRules, Tier, TierBasis
from fxcrm.domain.ib.settlement import (
    Carry,
    CpaFacts,
    IbPeriod,
    PeriodError,
    PeriodLine,
    Settled,
    Status,
    check_settleable,
    next_period,
    period_end,
    previous_period,
    settle,
)
from fxcrm.domain.ib.statements import (
    StatementHead,
    TradeLine,
    render_csv,
    render_pdf,
    statement_rows,
    text_lines,
)

D = Decimal
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)


def run(inp: IbPeriod, minimum: str = "50") -> Settled:
    return settle(inp, D(minimum), UNTIL)


# ---------------------------------------------------------------- rounding and carry


@pytest.mark.parametrize("currency", ["USD", "JPY", "BTC"])
def test_paid_plus_carried_equals_accrued_over_random_periods(currency: str) -> None:
    rng = random.Random(f"settle-{currency}")
    for _ in range(200):
        carry = Carry()
        accrued_total = paid_total = D(0)
        minimum = D(rng.choice(["0", "0.01", "1", "50", "1000"]))
        for _period in range(rng.randint(1, 12)):
            accrued = D(rng.randint(-2_000_000_000, 20_000_000_000)).scaleb(-8)
            suspended = rng.random() < 0.15
            result = settle(
                IbPeriod(
                    ib_id="ib",
                    currency=currency,
                    accrued=accrued,
                    carried_in=carry,
                    suspended=suspended,
                ),
                minimum,
                UNTIL,
            )
            accrued_total += accrued
            paid_total += result.payable
            # Rounded once, down, to the minor unit; never more than is owed.
            assert result.payable == result.payable.quantize(
                D(1).scaleb(-{"USD": 2, "JPY": 0, "BTC": 8}[currency])
            )
            assert result.payable <= max(result.total, D(0))
            if result.status is Status.PAID:
                assert result.payable >= minimum and result.payable > 0
            if suspended:
                assert result.status is Status.HELD and result.payable == 0
            carry = result.carried_out
        assert paid_total + carry.amount == accrued_total


def test_sub_cent_remainder_is_carried_and_paid_later() -> None:
    first = run(IbPeriod(ib_id="ib", currency="USD", accrued=D("100.12999999")), "0")
    assert (first.status, first.payable, first.carried_out.amount) == (
        Status.PAID,
        D("100.12"),
        D("0.00999999"),
    )
    second = run(
        IbPeriod(ib_id="ib", currency="USD", accrued=D("0.00000001"), carried_in=first.carried_out),
        "0",
    )
    assert (second.payable, second.carried_out.amount) == (D("0.01"), D("0"))


def test_below_minimum_is_carried_until_it_is_reached() -> None:
    first = run(IbPeriod(ib_id="ib", currency="USD", accrued=D("30.555")))
    assert (first.status, first.payable, first.reason) == (
        Status.CARRIED,
        0,
        "below_minimum_payout",
    )
    assert first.carried_out.amount == D("30.555")
    second = run(
        IbPeriod(ib_id="ib", currency="USD", accrued=D("20"), carried_in=first.carried_out)
    )
    assert (second.status, second.payable, second.carried_out.amount) == (
        Status.PAID,
        D("50.55"),
        D("0.005"),
    )


def test_negative_total_is_carried_not_paid() -> None:
    result = run(IbPeriod(ib_id="ib", currency="USD", accrued=D("-12.5")), "0")
    assert (result.status, result.payable, result.carried_out.amount) == (
        Status.CARRIED,
        0,
        D("-12.5"),
    )


def test_suspended_ib_is_held_with_everything_carried() -> None:
    held = run(IbPeriod(ib_id="ib", currency="USD", accrued=D("900"), suspended=True))
    assert (held.status, held.payable, held.carried_out.amount) == (Status.HELD, 0, D("900"))
    back = run(IbPeriod(ib_id="ib", currency="USD", carried_in=held.carried_out))
    assert (back.status, back.payable) == (Status.PAID, D("900"))


# ---------------------------------------------------------------- revenue shares


def test_revshare_on_net_deposits() -> None:
    plan = PlanRules(revshare_net_deposits_pct=D(25))
    result = run(IbPeriod(ib_id="ib", currency="USD", net_deposits=D("1000.10"), rules=plan), "0")
    assert [(line.rule, line.amount) for line in result.lines] == [
        ("revshare_net_deposits", D("250.025"))
    ]
    assert (result.payable, result.carried_out.amount) == (D("250.02"), D("0.005"))


def test_revshare_on_net_loss_carries_a_negative_period_forward() -> None:
    plan = PlanRules(revshare_net_loss_pct=D(30))
    # Clients won 400 (P/L +400): nothing paid, -400 carried forward.
    won = run(IbPeriod(ib_id="ib", currency="USD", client_pnl=D("400"), rules=plan), "0")
    assert won.lines[0].amount == 0 and won.payable == 0
    assert won.carried_out.net_loss_deficit == D("-400")
    # Clients lose 1000 next month: 30 % of (1000 - 400).
    lost = run(
        IbPeriod(
            ib_id="ib",
            currency="USD",
            client_pnl=D("-1000"),
            rules=plan,
            carried_in=won.carried_out,
        ),
        "0",
    )
    assert lost.lines[0].amount == D("180") and lost.payable == D("180")
    assert lost.carried_out.net_loss_deficit == 0


# ---------------------------------------------------------------- CPA


FTD_AT = datetime(2026, 3, 2, tzinfo=UTC)
CPA = PlanRules(
    cpa=CpaRule(
        amount=D(300), min_first_deposit=D(200), min_lots=D(2), within_days=30, clawback_days=90
    )
)


def cpa(**fields: object) -> CpaFacts:
    values: dict[str, object] = {
        "trader_id": "t1",
        "first_deposit": D(250),
        "first_deposit_at": FTD_AT,
        "lots_in_window": D("2.5"),
    }
    return CpaFacts(**{**values, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "paid"),
    [
        (cpa(), D(300)),
        (cpa(first_deposit=D("199.99")), D(0)),  # first deposit too small
        (cpa(lots_in_window=D("1.99")), D(0)),  # not enough lots within the window
        (cpa(first_deposit=None), D(0)),  # no first deposit in the settlement currency
        (cpa(paid_amount=D(300)), D(0)),  # paid once only
        (cpa(charged_back_at=FTD_AT + timedelta(days=3)), D(0)),  # disputed: never qualifies
    ],
)
def test_cpa_qualification(facts: CpaFacts, paid: Decimal) -> None:
    result = run(IbPeriod(ib_id="ib", currency="USD", cpa=(facts,), rules=CPA), "0")
    assert sum((line.amount for line in result.lines), D(0)) == paid


def test_cpa_clawed_back_once_on_a_chargeback_within_the_window() -> None:
    charged = cpa(paid_amount=D(300), charged_back_at=FTD_AT + timedelta(days=20))
    result = run(IbPeriod(ib_id="ib", currency="USD", cpa=(charged,), rules=CPA), "0")
    assert [(line.rule, line.amount) for line in result.lines] == [("cpa_clawback", D(-300))]
    assert result.status is Status.CARRIED and result.carried_out.amount == D(-300)
    again = cpa(paid_amount=D(300), charged_back_at=FTD_AT + timedelta(days=20), clawed_back=True)
    assert run(IbPeriod(ib_id="ib", currency="USD", cpa=(again,), rules=CPA), "0").lines == []
    late = cpa(paid_amount=D(300), charged_back_at=FTD_AT + timedelta(days=91))
    assert run(IbPeriod(ib_id="ib", currency="USD", cpa=(late,), rules=CPA), "0").lines == []


# ---------------------------------------------------------------- tiers


def test_tier_multiplier_applies_to_direct_accruals_only() -> None:
    plan = PlanRules(
        tiers=[
            Tier(threshold=D(100), multiplier=D("1.2")),
            Tier(threshold=D(500), multiplier=D("1.5")),
        ]
    )
    base = {
        "ib_id": "ib",
        "currency": "USD",
        "accrued": D(1000),
        "direct_accrued": D(600),
        "rules": plan,
    }
    below = run(IbPeriod(**base, downline_lots=D(99)), "0")  # type: ignore[arg-type]
    assert below.lines == [] and below.payable == D(1000)
    mid = run(IbPeriod(**base, downline_lots=D(100)), "0")  # type: ignore[arg-type]
    assert [(line.rule, line.amount) for line in mid.lines] == [("tier_bonus", D(120))]
    top = run(IbPeriod(**base, downline_lots=D(750)), "0")  # type: ignore[arg-type]
    assert top.payable == D(1300)
    by_clients = plan.model_copy(update={"tier_basis": TierBasis.ACTIVE_CLIENTS})
    clients = run(
        IbPeriod(**{**base, "rules": by_clients}, downline_lots=D(9999), active_clients=120),  # type: ignore[arg-type]
        "0",
    )
    assert clients.payable == D(1120)


# ---------------------------------------------------------------- periods


def test_periods_and_refusals() -> None:
    assert (next_period("2026-12"), previous_period("2026-01")) == ("2027-01", "2025-12")
    assert period_end("2026-02") == datetime(2026, 3, 1, tzinfo=UTC)
    check_settleable("2026-02", datetime(2026, 3, 1, 2, 0, tzinfo=UTC))  # end + 2 h grace
    for period, now, code in [
        ("2026-13", UNTIL, "invalid_period"),
        ("2026-03", datetime(2026, 3, 31, tzinfo=UTC), "period_open"),
        ("2026-02", datetime(2026, 3, 1, 1, 59, tzinfo=UTC), "period_open"),
        ("2026-05", UNTIL, "period_future"),
    ]:
        with pytest.raises(PeriodError) as caught:
            check_settleable(period, now)
        assert caught.value.code == code


# ---------------------------------------------------------------- statements


def test_statement_totals_are_the_sums_of_its_lines_and_the_pdf_is_valid() -> None:
    trades = [
        TradeLine(
            f"mt5:{n}",
            "j***@x.com",
            "EURUSD",
            D("0.37"),
            "per_lot",
            1 + n % 3,
            D("1.23456789") * n,
            {"lots": "0.37"},
        )
        for n in range(400)
    ]
    period = [PeriodLine("tier_bonus", D("12.5"), {"multiplier": "1.1"})]
    total = sum((t.amount for t in trades), D(0)) + D("12.5") + D("3.1")
    head = StatementHead(
        "demo",
        "ib1",
        "Demo (IB)",
        "2026-03",
        "USD",
        "paid",
        D("3.1"),
        total.quantize(D("0.01"), "ROUND_FLOOR"),
        total - total.quantize(D("0.01"), "ROUND_FLOOR"),
        {"tiers": []},
    )
    rows = list(csv.reader(io.StringIO(render_csv(statement_rows(head, trades, period)))))
    totals = {row[5].split(" ")[0]: D(row[7]) for row in rows if row[0] == "total"}
    assert totals["trades_total"] == sum((D(r[7]) for r in rows if r[0] == "trade"), D(0))
    assert totals["period_rules_total"] == D("12.5")
    assert totals["total"] == total == totals["payable"] + totals["carried_out"]
    pdf = render_pdf("Statement (demo)", text_lines(statement_rows(head, trades, period)))
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    assert pdf.count(b"/Type /Page ") >= 5  # paginated
    # The xref offsets point at the objects.
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    entries = pdf[xref:].split(b"\n")[3:]
    first = int(entries[0][:10])
    assert pdf[first : first + 7] == b"1 0 obj"
