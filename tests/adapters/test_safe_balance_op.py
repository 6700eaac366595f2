"""safe_balance_op against the MT5 simulator: a retry after a crash never posts twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from fxcrm.activities.money import MoneyActivities, PlatformMove
from fxcrm.adapters.platforms.balance import safe_balance_op
from fxcrm.adapters.platforms.base import (
    BalanceOpKind,
    NewAccountSpec,
    PlatformError,
    TradingPlatformGateway,
)
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread
from tests.adapters.conftest import make_client


async def test_second_attempt_finds_the_first(
    mt5_sim: Mt5SimulatorThread, mt5_tls: tuple[Path, Path]
) -> None:
    async with make_client(mt5_sim, mt5_tls[0]) as client:
        ref = await client.create_account(
            NewAccountSpec(
                group="real\\retail\\std",
                leverage=100,
                first_name="A",
                last_name="B",
                email="a@example.com",
                country="DE",
                client_id="c0ffee",
                main_password="Main#Pass26",
                investor_password="Inv#Pass26",
            )
        )
        since = datetime.now(UTC) - timedelta(minutes=5)
        first, posted = await safe_balance_op(
            client, ref.login, BalanceOpKind.DEPOSIT, Decimal("250.00"), "dep-0001", since=since
        )
        again, posted_again = await safe_balance_op(
            client, ref.login, BalanceOpKind.DEPOSIT, Decimal("250.00"), "dep-0001", since=since
        )
        account = await client.get_account(ref.login)
    assert posted and not posted_again
    assert again.ticket == first.ticket
    assert account.balance == Decimal("250.00")


async def test_bad_amount_and_long_reference_are_refused(
    mt5_sim: Mt5SimulatorThread, mt5_tls: tuple[Path, Path]
) -> None:
    async with make_client(mt5_sim, mt5_tls[0]) as client:
        since = datetime.now(UTC)
        with pytest.raises(PlatformError):
            await safe_balance_op(client, 1, BalanceOpKind.DEPOSIT, Decimal("0"), "x", since=since)
        with pytest.raises(ValueError):
            await safe_balance_op(
                client, 1, BalanceOpKind.DEPOSIT, Decimal("1"), "r" * 32, since=since
            )


async def test_the_activity_that_only_looks_finds_an_earlier_post(
    mt5_sim: Mt5SimulatorThread, mt5_tls: tuple[Path, Path]
) -> None:
    # What a deposit asks once it gave up on the platform credit: was it posted after all?
    async with make_client(mt5_sim, mt5_tls[0]) as client:

        async def gateway(server_id: str) -> TradingPlatformGateway:
            return client

        money = MoneyActivities(PlatformRegistry(gateway))
        login = mt5_sim.state.add_user(
            group="real\\retail\\std",
            leverage=30,
            password_main="Main-pass-2026",
            password_investor="Invest-pass-2026",
        ).login
        move = PlatformMove(
            server_id="mt5-demo",
            login=login,
            kind=BalanceOpKind.DEPOSIT,
            amount=Decimal("80.00"),
            ref="dep:look-0001",
            since=datetime.now(UTC) - timedelta(minutes=1),
        )
        assert await money.find_platform_balance(move) is None
        moved = await money.move_platform_balance(move)
        found = await money.find_platform_balance(move)
        other = await money.find_platform_balance(move.model_copy(update={"ref": "dep:look-0002"}))
        account = await client.get_account(login)
    assert found is not None and found.ticket == moved.ticket and not found.posted_now
    assert other is None
    assert account.balance == Decimal("80.00")  # looking never posts
