"""Dealing-desk alerts on an account's margin level and equity, per brand and group."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel


class AlertThresholds(BaseModel):
    # Margin level (equity / margin, %) at or below which the desk is alerted; margin call territory.
    margin_level_pct: Decimal = Decimal(100)
    # Equity at or below which the desk is alerted (None: no equity alert).
    equity_floor: Decimal | None = None


class Breach(BaseModel):
    kind: str  # margin_level | equity | balance_drift
    value: Decimal
    threshold: Decimal


def breaches(
    *, equity: Decimal, margin: Decimal, margin_level: Decimal | None, thresholds: AlertThresholds
) -> list[Breach]:
    found: list[Breach] = []
    # Without open positions (margin 0) there is no margin level to watch.
    if margin > 0 and margin_level is not None and margin_level <= thresholds.margin_level_pct:
        found.append(
            Breach(kind="margin_level", value=margin_level, threshold=thresholds.margin_level_pct)
        )
    if thresholds.equity_floor is not None and equity <= thresholds.equity_floor:
        found.append(Breach(kind="equity", value=equity, threshold=thresholds.equity_floor))
    return found


ALERT_KINDS = ("margin_level", "equity", "balance_drift")


def balance_drift(platform_balance: Decimal, ledger_balance: Decimal | None) -> Breach | None:
    """The platform's balance differs from fxcrm's ledger mirror of it: money moved outside fxcrm,
    or an operation was half done. `value` is platform minus ledger."""
    if ledger_balance is None or platform_balance == ledger_balance:
        return None
    return Breach(
        kind="balance_drift", value=platform_balance - ledger_balance, threshold=Decimal(0)
    )
