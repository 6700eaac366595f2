"""Monthly settlement of IB commissions: one IB's period, from its inputs to what is paid.

Pure: the activity (fxcrm.activities.ib_settlement) gathers the inputs with a few aggregate
queries and writes the results. The rules, each tested (tests/domain/test_ib_settlement.py):

- Periods are calendar months in UTC ("YYYY-MM"). A period can be settled once it has ended and
  GRACE has passed (late deals: the platform sync sweeps back 300 s, accrual follows within
  seconds; two hours is a wide margin, and the schedule runs at 03:00 UTC). Deals that reach the
  accrual side after the period was closed fall into the next open period.
- The total of a period is: per-deal accruals (8 decimals, all depths, adjustments included)
  + period rules (below) + what was carried in from the IB's previous settlement.
- Rounding, once: the payable is the total rounded DOWN to the currency's minor unit; the
  sub-unit remainder (0 <= r < 1 minor unit) is carried to the next period. So over any sequence
  of periods, paid + carried == accrued, exactly; nothing is lost and the IB is never overpaid.
- Minimum payout: a rounded payable below the brand's minimum (or not positive) is not paid:
  the whole total is carried. A negative total (clawbacks, negative adjustments) is carried too
  and offsets later earnings.
- A suspended IB is held: nothing paid, the whole total carried (paid once reactivated).
- Revenue share on net deposits: pct x (deposits - withdrawals - reversed deposits) of the IB's
  attributed clients in the period. Revenue share on client net losses: pct x -(profit +
  commission + swap) of its direct clients' deals. Negative bases pay 0 and are carried forward
  (a "negative carry-forward", not a ringfence): a later positive base first fills the deficit.
- CPA: paid once per client, to the IB the client was attributed to at its first deposit, when
  the first deposit >= min_first_deposit and the client's closed lots within `within_days` of it
  reach min_lots; a chargeback of the client's deposits within `clawback_days` of the first
  deposit claws the CPA back (once), or stops a client who was not paid from qualifying.
- Tiers: the plan's multiplier for the period measure (downline lots or active direct clients)
  applies to the IB's DIRECT-client per-deal accruals only (depth 1, adjustments excluded): the
  bonus is (multiplier - 1) x that amount. Overrides earned on a downline are rate differences
  or pool shares the plan already capped; multiplying them would let the total exceed the pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from fxcrm.domain.ib.plans import HUNDRED, CpaRule, PlanRules, TierBasis
from fxcrm.domain.money import CURRENCY_SCALE
from fxcrm.domain.money_text import amount_text

PRECISION = Decimal("0.00000001")  # accruals and carried amounts keep 8 decimals
ZERO = Decimal(0)
GRACE = timedelta(hours=2)
_PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")  # fullmatch: `$` accepts a trailing newline


class PeriodError(ValueError):
    """A period that cannot be settled; `code` is machine-readable (the API answers 422)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- periods


def parse_period(text: str) -> tuple[int, int]:
    match = _PERIOD.fullmatch(text or "")
    if match is None:
        raise PeriodError("invalid_period", f"period {text!r} is not YYYY-MM")
    return int(match.group(1)), int(match.group(2))


def period_of(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def period_start(period: str) -> datetime:
    year, month = parse_period(period)
    return datetime(year, month, 1, tzinfo=UTC)


def next_period(period: str) -> str:
    year, month = parse_period(period)
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def previous_period(period: str) -> str:
    year, month = parse_period(period)
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def period_end(period: str) -> datetime:
    """Exclusive end: the first instant of the next month."""
    return period_start(next_period(period))


def check_settleable(period: str, now: datetime) -> None:
    """Refuses an invalid, future or still open period (or one inside its grace)."""
    start = period_start(period)
    if now < start:
        raise PeriodError("period_future", f"{period} has not started")
    if now < period_end(period) + GRACE:
        raise PeriodError(
            "period_open",
            f"{period} can be settled from {(period_end(period) + GRACE).isoformat()} "
            "(its end plus a grace for late deals)",
        )


# ---------------------------------------------------------------- amounts


def q8(value: Decimal) -> Decimal:
    return value.quantize(PRECISION, ROUND_HALF_EVEN)


def minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-CURRENCY_SCALE[currency.upper()])


def round_down(amount: Decimal, currency: str) -> Decimal:
    """The settlement rounding rule: down to the currency's minor unit (towards -infinity)."""
    return amount.quantize(minor_unit(currency), ROUND_FLOOR)


class Status(StrEnum):
    PAID = "paid"
    CARRIED = "carried"  # below the minimum payout, or not positive
    HELD = "held"  # suspended IB


@dataclass(frozen=True)
class Carry:
    """What one settlement hands to the next one of the same IB."""

    amount: Decimal = ZERO  # money not paid yet (8 decimals; may be negative)
    net_deposits_deficit: Decimal = ZERO  # <= 0: revshare bases still to be filled
    net_loss_deficit: Decimal = ZERO

    def as_json(self) -> dict[str, str]:
        return {
            "amount": amount_text(self.amount),
            "net_deposits_deficit": amount_text(self.net_deposits_deficit),
            "net_loss_deficit": amount_text(self.net_loss_deficit),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, amount: Decimal) -> Carry:
        data = data or {}
        return cls(
            amount=amount,
            net_deposits_deficit=Decimal(data.get("net_deposits_deficit", "0")),
            net_loss_deficit=Decimal(data.get("net_loss_deficit", "0")),
        )


@dataclass(frozen=True)
class PeriodLine:
    """One period-rule amount of a statement: revshare, CPA, clawback, tier bonus."""

    rule: str
    amount: Decimal
    explanation: dict[str, str]
    trader_id: str | None = None


# ---------------------------------------------------------------- CPA


@dataclass(frozen=True)
class CpaFacts:
    """One client the IB acquired, as far as CPA is concerned."""

    trader_id: str
    first_deposit: Decimal | None  # in the settlement currency; None: none (or another currency)
    first_deposit_at: datetime | None
    lots_in_window: Decimal  # closed lots within `within_days` of the first deposit, so far
    charged_back_at: datetime | None = None  # the first chargeback of the client's deposits
    paid_amount: Decimal | None = None  # the CPA already paid for this client, if any
    clawed_back: bool = False


def cpa_line(rule: CpaRule, facts: CpaFacts, until: datetime) -> PeriodLine | None:
    """What this settlement (covering events before `until`) pays or claws back for a client."""
    ftd_at = facts.first_deposit_at
    if ftd_at is None or facts.first_deposit is None:
        return None
    window_end = ftd_at + timedelta(days=rule.clawback_days)
    charged_back = (
        facts.charged_back_at is not None
        and facts.charged_back_at < until
        and facts.charged_back_at <= window_end
    )
    if facts.paid_amount is not None:
        if charged_back and not facts.clawed_back:
            return PeriodLine(
                "cpa_clawback",
                -facts.paid_amount,
                {
                    "first_deposit_at": ftd_at.isoformat(),
                    "charged_back_at": str(facts.charged_back_at),
                    "clawback_days": str(rule.clawback_days),
                },
                facts.trader_id,
            )
        return None
    if facts.charged_back_at is not None and facts.charged_back_at < until:
        return None  # a client with a disputed deposit never qualifies
    if facts.first_deposit < rule.min_first_deposit or facts.lots_in_window < rule.min_lots:
        return None
    return PeriodLine(
        "cpa",
        q8(rule.amount),
        {
            "first_deposit": amount_text(facts.first_deposit),
            "min_first_deposit": amount_text(rule.min_first_deposit),
            "lots": amount_text(facts.lots_in_window),
            "min_lots": amount_text(rule.min_lots),
            "within_days": str(rule.within_days),
        },
        facts.trader_id,
    )


# ---------------------------------------------------------------- one IB's period


@dataclass(frozen=True)
class IbPeriod:
    ib_id: str
    currency: str
    accrued: Decimal = ZERO  # every per-deal accrual of the period
    direct_accrued: Decimal = ZERO  # depth 1, adjustments excluded: what tiers multiply
    downline_lots: Decimal = ZERO  # lots of the deals that paid the IB
    active_clients: int = 0  # direct clients with a paying deal
    net_deposits: Decimal = ZERO
    client_pnl: Decimal = ZERO  # profit + commission + swap of direct clients' deals
    cpa: tuple[CpaFacts, ...] = ()
    rules: PlanRules | None = None  # the plan in force at the period's end
    carried_in: Carry = field(default_factory=Carry)
    suspended: bool = False


@dataclass(frozen=True)
class Settled:
    ib_id: str
    status: Status
    currency: str
    accrued: Decimal
    period_rules: Decimal
    carried_in: Decimal
    total: Decimal
    payable: Decimal  # at the currency's minor unit
    carried_out: Carry
    lines: list[PeriodLine]
    reason: str


def _revshare(
    rule: str, pct: Decimal, base: Decimal, deficit: Decimal, facts: dict[str, str]
) -> tuple[PeriodLine | None, Decimal]:
    """(line, deficit carried out) of one revenue share with negative carry-forward."""
    if not pct:
        return None, ZERO
    effective = base + deficit
    explanation = {
        **facts,
        "base": amount_text(base),
        "deficit_in": amount_text(deficit),
        "pct": amount_text(pct),
    }
    if effective <= 0:
        explanation["note"] = "negative base carried forward, nothing paid"
        return PeriodLine(rule, ZERO, explanation), min(effective, ZERO)
    return PeriodLine(rule, q8(effective * pct / HUNDRED), explanation), ZERO


def period_lines(inp: IbPeriod, until: datetime) -> tuple[list[PeriodLine], Carry]:
    """The period rules of an IB's plan, and the revshare deficits carried out."""
    rules = inp.rules
    if rules is None:
        return [], replace(inp.carried_in, amount=ZERO)
    lines: list[PeriodLine] = []
    deposits, deposits_deficit = _revshare(
        "revshare_net_deposits",
        rules.revshare_net_deposits_pct,
        inp.net_deposits,
        inp.carried_in.net_deposits_deficit,
        {},
    )
    losses, loss_deficit = _revshare(
        "revshare_net_loss",
        rules.revshare_net_loss_pct,
        -inp.client_pnl,
        inp.carried_in.net_loss_deficit,
        {"client_pnl": amount_text(inp.client_pnl)},
    )
    lines += [line for line in (deposits, losses) if line is not None]
    if rules.cpa is not None:
        for facts in inp.cpa:
            line = cpa_line(rules.cpa, facts, until)
            if line is not None:
                lines.append(line)
    if rules.tiers and inp.direct_accrued > 0:
        measure = (
            inp.downline_lots if rules.tier_basis == TierBasis.LOTS else Decimal(inp.active_clients)
        )
        multiplier = rules.tier_multiplier(measure)
        if multiplier > 1:
            lines.append(
                PeriodLine(
                    "tier_bonus",
                    q8(inp.direct_accrued * (multiplier - 1)),
                    {
                        "basis": rules.tier_basis.value,
                        "measure": amount_text(measure),
                        "multiplier": str(multiplier),
                        "direct_accrued": amount_text(inp.direct_accrued),
                    },
                )
            )
    return lines, Carry(ZERO, deposits_deficit, loss_deficit)


def settle(inp: IbPeriod, minimum_payout: Decimal, until: datetime) -> Settled:
    """One IB's settlement: period rules, one rounding, minimum payout, hold."""
    lines, deficits = period_lines(inp, until)
    rules_total = sum((line.amount for line in lines), ZERO)
    total = inp.accrued + rules_total + inp.carried_in.amount
    rounded = round_down(total, inp.currency)
    if inp.suspended:
        status, payable, reason = Status.HELD, ZERO, "ib_suspended"
    elif rounded <= 0:
        status, payable, reason = Status.CARRIED, ZERO, "nothing_payable"
    elif rounded < minimum_payout:
        status, payable, reason = Status.CARRIED, ZERO, "below_minimum_payout"
    else:
        status, payable, reason = Status.PAID, rounded, "paid"
    return Settled(
        ib_id=inp.ib_id,
        status=status,
        currency=inp.currency,
        accrued=inp.accrued,
        period_rules=rules_total,
        carried_in=inp.carried_in.amount,
        total=total,
        payable=payable,
        carried_out=replace(deficits, amount=total - payable),
        lines=lines,
        reason=reason,
    )
