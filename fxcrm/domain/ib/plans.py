"""Commission plans: versioned, effective-dated rule sets assigned to IBs (with per-link overrides).

A plan version holds every rule a broker combines ("hybrid" is simply more than one rule set):
- per-lot rebate, by symbol group x client account group (a matrix; "*" is the fallback row or
  column; resolution: exact cell → symbol group row's "*" → "*" row's account group → "*" x "*");
- share of the spread: a percentage of the broker's markup per lot by symbol group;
- share of the platform commission the client paid on the deal;
- period rules, applied at settlement: revenue share on net deposits and on client net losses,
  CPA when a referred client qualifies, tiers that raise every per-deal amount with volume or
  active clients;
- a minimum holding time below which a trade pays nothing (scalping);
- how the amount is distributed up the hierarchy (see `Distribution`).
Validation refuses what could never be right: negative rates, a split over 100 %, an unknown
symbol group, tiers that go down.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from fxcrm.domain.money import CURRENCY_SCALE

WILDCARD = "*"
HUNDRED = Decimal(100)


class PlanError(ValueError):
    """An invalid plan: the API answers 422 with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DistributionModel(StrEnum):
    # One pool (computed with the direct IB's plan) shared by percentages across levels.
    SPLIT = "split"
    # Each level earns its own plan's amount minus the amount of the level below it.
    DIFFERENTIAL = "differential"


class Distribution(BaseModel):
    model: DistributionModel = DistributionModel.DIFFERENTIAL
    # SPLIT: share of the pool per level, level 1 being the client's direct IB. Must not exceed
    # 100 % in total; what is left is the broker's.
    split_pct: list[Decimal] = Field(default_factory=lambda: [Decimal(100)])
    # Both models: levels above this depth earn nothing (None: unlimited).
    max_levels: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _split_within_pool(self) -> Distribution:
        if any(p < 0 for p in self.split_pct):
            raise PydanticCustomError("negative_rate", "a split percentage is negative")
        if sum(self.split_pct, Decimal(0)) > HUNDRED:
            raise PydanticCustomError(
                "pool_exceeded", "the split across levels would pay more than the whole pool"
            )
        return self


class CpaRule(BaseModel):
    amount: Decimal = Field(ge=0)  # paid once per qualifying client
    min_first_deposit: Decimal = Field(default=Decimal(0), ge=0)
    min_lots: Decimal = Field(default=Decimal(0), ge=0)
    within_days: int = Field(default=60, ge=1)  # of the first deposit, to reach min_lots
    clawback_days: int = Field(default=90, ge=0)  # a chargeback within this window claws it back


class TierBasis(StrEnum):
    LOTS = "lots"  # the IB's downline lots in the period
    ACTIVE_CLIENTS = "active_clients"  # direct clients who traded in the period


class Tier(BaseModel):
    threshold: Decimal = Field(ge=0)
    multiplier: Decimal = Field(ge=1)  # applied to the period's per-deal amounts


class PlanRules(BaseModel):
    currency: str = "USD"
    # Known symbol groups: symbol → group (EURUSD → "fx_major"); a symbol not listed is "other".
    symbol_groups: dict[str, str] = Field(default_factory=dict)
    per_lot: dict[str, dict[str, Decimal]] = Field(default_factory=dict)  # group → acct group → $
    spread_markup_per_lot: dict[str, Decimal] = Field(default_factory=dict)  # group → $ per lot
    spread_share_pct: Decimal = Field(default=Decimal(0), ge=0, le=100)
    commission_share_pct: Decimal = Field(default=Decimal(0), ge=0, le=100)
    revshare_net_deposits_pct: Decimal = Field(default=Decimal(0), ge=0, le=100)
    revshare_net_loss_pct: Decimal = Field(default=Decimal(0), ge=0, le=100)
    cpa: CpaRule | None = None
    tier_basis: TierBasis = TierBasis.LOTS
    tiers: list[Tier] = Field(default_factory=list)
    min_hold_seconds: int = Field(default=0, ge=0)
    distribution: Distribution = Field(default_factory=Distribution)

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value.upper() not in CURRENCY_SCALE:
            raise PydanticCustomError(
                "unsupported_currency", f"currency {value!r} is not supported"
            )
        return value.upper()

    @model_validator(mode="after")
    def _consistent(self) -> PlanRules:
        groups = set(self.symbol_groups.values()) | {"other", WILDCARD}
        for group, row in self.per_lot.items():
            if group not in groups:
                raise PydanticCustomError(
                    "unknown_symbol_group", f"per-lot rates name unknown group {group!r}"
                )
            if any(rate < 0 for rate in row.values()):
                raise PydanticCustomError(
                    "negative_rate", f"a per-lot rate of {group!r} is negative"
                )
        for group, markup in self.spread_markup_per_lot.items():
            if group not in groups:
                raise PydanticCustomError(
                    "unknown_symbol_group", f"spread markup names unknown group {group!r}"
                )
            if markup < 0:
                raise PydanticCustomError(
                    "negative_rate", f"the spread markup of {group!r} is negative"
                )
        thresholds = [t.threshold for t in self.tiers]
        multipliers = [t.multiplier for t in self.tiers]
        if thresholds != sorted(thresholds) or multipliers != sorted(multipliers):
            raise PydanticCustomError(
                "tiers_not_increasing", "tiers must raise rates as thresholds rise"
            )
        return self

    def symbol_group(self, symbol: str) -> str:
        return self.symbol_groups.get(symbol.upper(), "other")

    def lot_rate(self, symbol: str, account_group: str) -> tuple[Decimal, str] | None:
        """The per-lot rate for a deal and the matrix cell it came from (for the explanation)."""
        group = self.symbol_group(symbol)
        for row_key, col_key in (
            (group, account_group),
            (group, WILDCARD),
            (WILDCARD, account_group),
            (WILDCARD, WILDCARD),
        ):
            row = self.per_lot.get(row_key)
            if row is not None and col_key in row:
                return row[col_key], f"{row_key}x{col_key}"
        return None

    def markup(self, symbol: str) -> Decimal:
        group = self.symbol_group(symbol)
        return self.spread_markup_per_lot.get(
            group, self.spread_markup_per_lot.get(WILDCARD, Decimal(0))
        )

    def tier_multiplier(self, measure: Decimal) -> Decimal:
        multiplier = Decimal(1)
        for tier in self.tiers:
            if measure >= tier.threshold:
                multiplier = tier.multiplier
        return multiplier


def parse_plan(data: object) -> PlanRules:
    """A plan from the API or the database; PlanError with a machine-readable code if invalid."""
    try:
        return PlanRules.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        code = first["type"]
        if code in {"greater_than_equal", "greater_than"}:
            code = "negative_rate"
        elif code not in PLAN_CODES:
            code = "invalid_plan"
        raise PlanError(code, f"{where}: {first['msg']}" if where else first["msg"]) from exc


PLAN_CODES = {
    "negative_rate",
    "pool_exceeded",
    "unknown_symbol_group",
    "unsupported_currency",
    "tiers_not_increasing",
}
