"""A fake in-memory `SimulatedPlatform` for the market engine's tests."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fxcrm.adapters.simulators.market import SimAccountInfo, SimFill


class FakePlatform:
    """Keeps the fills (or only counts them, for the memory test) and moves balances."""

    platform = "fake"

    def __init__(self, accounts: list[SimAccountInfo], *, keep: bool = True) -> None:
        self.accounts = {a.login: a for a in accounts}
        self.balances = {a.login: a.balance for a in accounts}
        self.fills: list[SimFill] = []
        self.keep = keep
        self.count = 0
        self.marks = 0

    def sim_accounts(self) -> list[SimAccountInfo]:
        return list(self.accounts.values())

    def sim_apply_fill(self, fill: SimFill) -> str:
        self.count += 1
        if self.keep:
            self.fills.append(fill)
        self.balances[fill.login] += fill.profit + fill.commission + fill.swap
        return str(self.count)

    def sim_mark_prices(self, prices: dict[str, Decimal]) -> None:
        self.marks += 1


def accounts(
    count: int,
    *,
    balance: str = "10000",
    leverage: int = 100,
    hedging: bool = True,
    currency: str = "USD",
    first: int = 1000,
) -> list[SimAccountInfo]:
    return [
        SimAccountInfo(
            login=first + n,
            currency=currency,
            balance=Decimal(balance),
            leverage=leverage,
            hedging=hedging,
        )
        for n in range(count)
    ]


@pytest.fixture
def fake() -> FakePlatform:
    return FakePlatform(accounts(20))
