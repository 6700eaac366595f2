"""Portal balances and history, and the back office's ledger views, read from the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fxcrm.core.db import transaction
from fxcrm.domain.ledger import AccountKind, TransferKind
from fxcrm.domain.money import Money
from fxcrm.ledger import AccountSpec, TransferRequest, open_account, post_pending, transfer
from fxcrm.ledger.service import void_pending
from fxcrm.models import Trader
from tests.e2e.portal import bearer, register, staff_token
from tests.e2e.stack import Stack


async def _fund(stack: Stack, trader_id: str) -> dict[str, str]:
    """A 500 USD deposit, a 120 USD withdrawal hold that is posted, a 30 USD hold that is voided."""
    async with transaction(stack.sessions) as session:
        trader = await session.get(Trader, trader_id)
        assert trader is not None
        brand = trader.brand_id
        wallet = await open_account(
            session,
            AccountSpec(
                brand_id=brand,
                code=f"client:{trader_id}:wallet:USD",
                kind=AccountKind.CLIENT_WALLET,
                currency="USD",
                owner_id=trader_id,
            ),
        )
        clearing = await open_account(
            session,
            AccountSpec(
                brand_id=brand,
                code="psp:sim:clearing:USD",
                kind=AccountKind.PSP_CLEARING,
                currency="USD",
            ),
        )

        def move(key: str, debit: str, credit: str, amount: str, pending: bool = False):  # type: ignore[no-untyped-def]
            return TransferRequest(
                idempotency_key=f"{key}:{trader_id}",
                debit_account_id=debit,
                credit_account_id=credit,
                amount=Money.of(amount, "USD"),
                kind=TransferKind.DEPOSIT if key == "dep" else TransferKind.WITHDRAWAL,
                pending=pending,
            )

        await transfer(session, move("dep", clearing.id, wallet.id, "500.00"))
        hold = await transfer(session, move("wd1", wallet.id, clearing.id, "120.00", True))
        await post_pending(session, hold.id, f"wd1-post:{trader_id}")
        second = await transfer(session, move("wd2", wallet.id, clearing.id, "30.00", True))
        await void_pending(session, second.id, f"wd2-void:{trader_id}")
        third = await transfer(session, move("wd3", wallet.id, clearing.id, "50.00", True))
    return {"wallet": wallet.id, "held": third.id}


async def test_balances_and_history(stack: Stack) -> None:
    trader_id, token = await register(stack.http)
    ids = await _fund(stack, trader_id)

    balances = (await stack.http.get("/portal/me/balances", headers=bearer(token))).json()
    assert balances == [
        {
            "account_id": ids["wallet"],
            "kind": "client_wallet",
            "code": f"client:{trader_id}:wallet:USD",
            "currency": "USD",
            "balance": "380.00",  # 500 - 120 posted
            "available": "330.00",  # and 50 held
        }
    ]

    page = (await stack.http.get("/portal/me/history?limit=2", headers=bearer(token))).json()
    assert [(e["amount"], e["state"]) for e in page["entries"]] == [
        ("-50.00", "pending"),
        ("-30.00", "voided"),
    ]
    rest = (
        await stack.http.get(
            "/portal/me/history", params={"before": page["next_cursor"]}, headers=bearer(token)
        )
    ).json()
    assert [(e["amount"], e["state"]) for e in rest["entries"]] == [
        ("-120.00", "posted"),
        ("500.00", "posted"),
    ]
    assert rest["next_cursor"] is None


async def test_history_refuses_a_forged_cursor_and_shows_nothing_of_others(stack: Stack) -> None:
    trader_id, token = await register(stack.http)
    await _fund(stack, trader_id)
    bad = await stack.http.get("/portal/me/history?before=yesterday", headers=bearer(token))
    assert bad.status_code == 422
    _, other = await register(stack.http)
    assert (await stack.http.get("/portal/me/balances", headers=bearer(other))).json() == []
    empty = (await stack.http.get("/portal/me/history", headers=bearer(other))).json()
    assert empty == {"entries": [], "next_cursor": None}


async def test_ledger_views_for_finance_only(stack: Stack) -> None:
    trader_id, _ = await register(stack.http)
    ids = await _fund(stack, trader_id)
    finance = await staff_token(stack.http, "finance")
    report = await stack.http.get("/backoffice/ledger/invariants", headers=bearer(finance))
    assert report.status_code == 200 and report.json()["ok"] is True

    dealer = await staff_token(stack.http, "dealer")
    assert (
        await stack.http.get("/backoffice/ledger/invariants", headers=bearer(dealer))
    ).status_code == 403

    rows = (
        await stack.http.get(
            "/backoffice/ledger/accounts", params={"owner_id": trader_id}, headers=bearer(finance)
        )
    ).json()
    assert [(r["code"], r["balance"]) for r in rows] == [
        (f"client:{trader_id}:wallet:USD", "380.00")
    ]
    lines = (
        await stack.http.get(
            f"/backoffice/ledger/accounts/{ids['wallet']}/statement", headers=bearer(finance)
        )
    ).json()
    assert [(line["phase"], line["debit"], line["credit"]) for line in lines][-1] == (
        "single",
        None,
        "500.00",
    )
    assert (
        await stack.http.get("/backoffice/ledger/accounts/nope/statement", headers=bearer(finance))
    ).status_code == 404


async def test_invariants_compare_every_mirror_with_its_platform_balance(stack: Stack) -> None:
    """The reported case: the portal (ledger mirror) said 1000.52, the platform 1000.15."""
    import uuid
    from datetime import UTC, datetime

    from fxcrm.domain.ledger import client_trading_code
    from fxcrm.models import AccountMirror, TradingAccount
    from fxcrm.seed import DEMO_SERVER

    trader_id, _ = await register(stack.http)
    login = 400_000_000 + uuid.uuid4().int % 100_000_000
    async with transaction(stack.sessions) as session:
        trader = await session.get(Trader, trader_id)
        assert trader is not None
        session.add(
            TradingAccount(
                trader_id=trader_id,
                brand_id=trader.brand_id,
                server_id=DEMO_SERVER,
                platform="mt5",
                opening_key=f"inv-{login}",
                status="open",
                login=login,
                group="real\\retail\\std",
                leverage=100,
                currency="USD",
                account_type="retail",
            )
        )
        mirror = await open_account(
            session,
            AccountSpec(
                brand_id=trader.brand_id,
                code=client_trading_code(trader_id, DEMO_SERVER, login),
                kind=AccountKind.CLIENT_TRADING,
                currency="USD",
                owner_id=trader_id,
            ),
        )
        clearing = await open_account(
            session,
            AccountSpec(
                brand_id=trader.brand_id,
                code="psp:sim:clearing:USD",
                kind=AccountKind.PSP_CLEARING,
                currency="USD",
            ),
        )
        await transfer(
            session,
            TransferRequest(
                idempotency_key=f"inv-{login}",
                debit_account_id=clearing.id,
                credit_account_id=mirror.id,
                amount=Money.of("1000.52", "USD"),
                kind=TransferKind.DEPOSIT,
            ),
        )
        session.add(
            AccountMirror(
                server_id=DEMO_SERVER,
                login=login,
                group="real\\retail\\std",
                leverage=100,
                currency="USD",
                access="full",
                balance=Decimal("1000.15"),
                credit=Decimal(0),
                equity=Decimal("1000.15"),
                margin=Decimal(0),
                free_margin=Decimal("1000.15"),
                margin_level=None,
                synced_at=datetime.now(UTC),
            )
        )
    finance = await staff_token(stack.http, "finance")

    async def report() -> dict[str, Any]:
        answer = await stack.http.get("/backoffice/ledger/invariants", headers=bearer(finance))
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    first = await report()
    assert first["ok"] is True  # the ledger agrees with itself
    platform = first["platform"]
    assert platform["ok"] is False and platform["accounts_compared"] >= 1
    (gap,) = [g for g in platform["mismatched"] if g["login"] == login]
    assert (gap["server_id"], gap["account_id"], gap["currency"]) == (DEMO_SERVER, mirror.id, "USD")
    assert (gap["platform_balance"], gap["ledger_balance"], gap["gap"]) == (
        "1000.15",
        "1000.52",
        "-0.37",
    )
    # The sync reads the platform again, which now agrees: the account drops out.
    async with transaction(stack.sessions) as session:
        stored = await session.get(AccountMirror, (DEMO_SERVER, login))
        assert stored is not None
        stored.balance = Decimal("1000.52")
    assert [g for g in (await report())["platform"]["mismatched"] if g["login"] == login] == []
