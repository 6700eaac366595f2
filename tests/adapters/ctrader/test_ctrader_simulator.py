"""The cTrader Web Services simulator on the wire: auth, units, enums, money, CSV reports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from fxcrm.adapters.platforms.ctrader import (
    CLOSED_POSITION_HEADERS,
    OPEN_POSITION_HEADERS,
    format_time,
    hash_password,
)
from fxcrm.adapters.simulators.ctrader import (
    CTraderSimConfig,
    CTraderSimState,
    CTraderSimulatorThread,
)
from fxcrm.adapters.simulators.market.contract import SimFill
from tests.adapters.ctrader.conftest import BROKER, MANAGER, MANAGER_PASSWORD

API = "/v2/webserv"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def http(ctrader_sim: CTraderSimulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ctrader_sim.base_url, timeout=5.0) as client:
        yield client


def token(http: httpx.Client) -> str:
    answer = http.post(
        f"{API}/managers/token",
        json={"login": MANAGER, "hashedPassword": hash_password(MANAGER_PASSWORD)},
    )
    assert answer.status_code == 200
    return str(answer.json()["webservToken"])


def trader_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accessRights": "FULL_ACCESS",
        "accountType": "HEDGED",
        "balance": 0,
        "brokerName": BROKER,
        "depositCurrency": "USD",
        "groupName": "real\\retail\\std",
        "hashedPassword": hash_password("Trader#2026"),
        "leverageInCents": 3000,
        "totalMarginCalculationType": "MAX",
        "contactDetails": {"documentId": "client-1", "email": "ada@example.com"},
    }
    body.update(changes)
    return body


def create(http: httpx.Client, tok: str, **changes: Any) -> httpx.Response:
    return http.post(f"{API}/traders", params={"token": tok}, json=trader_body(**changes))


def fill(
    login: int, position: int, entry: str, side: str, lots: str, price: str, **kw: Any
) -> SimFill:
    return SimFill(
        login=login,
        position_id=position,
        symbol=kw.pop("symbol", "EURUSD"),
        side=side,  # type: ignore[arg-type]
        entry=entry,  # type: ignore[arg-type]
        lots=Decimal(lots),
        price=Decimal(price),
        time=kw.pop("time", T0),
        contract_size=kw.pop("contract_size", Decimal(100_000)),
        **kw,
    )


# --- auth -----------------------------------------------------------------------------------------


def test_token_requires_the_md5_of_the_password(http: httpx.Client) -> None:
    wrong = http.post(
        f"{API}/managers/token", json={"login": MANAGER, "hashedPassword": hash_password("x")}
    )
    assert wrong.status_code == 401
    plain = http.post(
        f"{API}/managers/token", json={"login": MANAGER, "hashedPassword": MANAGER_PASSWORD}
    )
    assert plain.status_code == 401
    assert token(http)


def test_every_call_needs_a_live_token(
    http: httpx.Client, ctrader_sim: CTraderSimulatorThread
) -> None:
    assert http.get(f"{API}/tradergroups").status_code == 401
    assert http.get(f"{API}/tradergroups", params={"token": "nope"}).status_code == 401
    tok = token(http)
    assert http.get(f"{API}/tradergroups", params={"token": tok}).status_code == 200
    ctrader_sim.state.expire_tokens()
    assert http.get(f"{API}/tradergroups", params={"token": tok}).status_code == 401


def test_groups_are_listed_with_ids(http: httpx.Client) -> None:
    groups = http.get(f"{API}/tradergroups", params={"token": token(http)}).json()["traderGroup"]
    names = {g["name"] for g in groups}
    assert {"real\\retail\\std", "real\\retail\\highrisk", "real\\pro\\std"} <= names
    assert all(isinstance(g["id"], int) for g in groups)


# --- traders --------------------------------------------------------------------------------------


def test_trader_money_is_ints_with_money_digits(http: httpx.Client) -> None:
    tok = token(http)
    created = create(http, tok, balance=1234512)
    assert created.status_code == 201
    trader = http.get(f"{API}/traders/{created.json()['login']}", params={"token": tok}).json()
    assert trader["moneyDigits"] == 2
    assert trader["balance"] == 1234512  # 12345.12 USD
    assert trader["equity"] == trader["freeMargin"] == 1234512
    assert trader["leverageInCents"] == 3000
    assert trader["contactDetails"]["documentId"] == "client-1"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"accessRights": "EVERYTHING"}, "INVALID_REQUEST"),
        ({"accountType": "HEDGING"}, "INVALID_REQUEST"),
        ({"totalMarginCalculationType": "AVG"}, "INVALID_REQUEST"),
        ({"groupName": "no\\such\\group"}, "GROUP_NOT_FOUND"),
        ({"groupName": "real\\retail\\highrisk", "leverageInCents": 20000}, "INVALID_LEVERAGE"),
        ({"brokerName": "someone-else"}, "INVALID_BROKER_NAME"),
        ({"hashedPassword": "Trader#2026"}, "INVALID_REQUEST"),
    ],
)
def test_bad_traders_are_refused(http: httpx.Client, changes: dict[str, Any], code: str) -> None:
    answer = create(http, token(http), **changes)
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == code


def test_unknown_trader_is_404(http: httpx.Client) -> None:
    answer = http.get(f"{API}/traders/1", params={"token": token(http)})
    assert (answer.status_code, answer.json()["errorCode"]) == (404, "TRADER_NOT_FOUND")


# --- money ----------------------------------------------------------------------------------------


def test_changebalance_types_and_external_ids(http: httpx.Client) -> None:
    tok = token(http)
    login = create(http, tok).json()["login"]
    path = f"{API}/traders/{login}/changebalance"
    ids = []
    for kind, amount, ext in [
        ("DEPOSIT", 1000.5, "dep-1"),
        ("WITHDRAW", 200, "wd-1"),
        ("DEPOSIT_NONWITHDRAWABLE_BONUS", 50, "bon-1"),
        ("WITHDRAW_NONWITHDRAWABLE_BONUS", 20, "bon-2"),
    ]:
        answer = http.post(
            path,
            params={"token": tok},
            json={"login": login, "preciseAmount": amount, "type": kind, "externalId": ext},
        )
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["balanceHistoryId"])
    assert len(set(ids)) == 4
    trader = http.get(f"{API}/traders/{login}", params={"token": tok}).json()
    assert (trader["balance"], trader["nonWithdrawableBonus"]) == (80050, 3000)

    # The externalId is stored and searchable; a replay returns the first change.
    window = {
        "token": tok,
        "from": format_time(datetime.now(UTC) - timedelta(hours=1)),
        "to": format_time(datetime.now(UTC) + timedelta(hours=1)),
    }
    history = http.get(
        f"{API}/traders/{login}/balancehistory", params={**window, "externalId": "wd-1"}
    ).json()["balanceHistory"]
    assert [(h["balanceHistoryId"], h["delta"]) for h in history] == [(ids[1], -20000)]
    replay = http.post(
        path,
        params={"token": tok},
        json={"login": login, "preciseAmount": 200, "type": "WITHDRAW", "externalId": "wd-1"},
    )
    assert replay.json()["balanceHistoryId"] == ids[1]
    conflict = http.post(
        path,
        params={"token": tok},
        json={"login": login, "preciseAmount": 201, "type": "WITHDRAW", "externalId": "wd-1"},
    )
    assert conflict.status_code == 409
    bad_type = http.post(
        path, params={"token": tok}, json={"login": login, "preciseAmount": 1, "type": "CREDIT"}
    )
    assert bad_type.status_code == 400
    assert http.get(f"{API}/traders/{login}", params={"token": tok}).json()["balance"] == 80050


def test_withdrawal_beyond_free_margin_is_refused(
    http: httpx.Client, ctrader_sim: CTraderSimulatorThread
) -> None:
    tok = token(http)
    login = create(http, tok, balance=100000).json()["login"]  # 1000.00 USD at 1:30
    # 0.1 lot EURUSD at 1.2 holds 400 USD of margin.
    ctrader_sim.state.sim_apply_fill(fill(login, 1, "in", "buy", "0.1", "1.2"))
    answer = http.post(
        f"{API}/traders/{login}/changebalance",
        params={"token": tok},
        json={"login": login, "preciseAmount": 700, "type": "WITHDRAW"},
    )
    assert (answer.status_code, answer.json()["errorCode"]) == (400, "NOT_ENOUGH_MONEY")


# --- reports --------------------------------------------------------------------------------------


def test_closed_positions_csv_and_the_two_day_limit(
    http: httpx.Client, ctrader_sim: CTraderSimulatorThread
) -> None:
    tok = token(http)
    login = create(http, tok, balance=1000000).json()["login"]
    state = ctrader_sim.state
    state.sim_apply_fill(fill(login, 77, "in", "buy", "1", "1.1000"))
    half = T0 + timedelta(hours=1)
    state.sim_apply_fill(
        fill(login, 77, "out", "sell", "0.4", "1.1010", time=half, profit=Decimal(40))
    )
    state.sim_apply_fill(
        fill(login, 77, "out", "sell", "0.6", "1.1020", time=half, profit=Decimal(120))
    )
    params = {
        "token": tok,
        "from": format_time(T0),
        "to": format_time(T0 + timedelta(days=2)),
    }
    answer = http.get(f"{API}/closedPositions", params=params)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(answer.text))
    assert reader.fieldnames == CLOSED_POSITION_HEADERS
    rows = list(reader)
    assert [r["positionId"] for r in rows] == ["77", "77"]
    assert len({r["dealId"] for r in rows}) == 2
    assert [r["volume"] for r in rows] == ["40000.00", "60000.00"]
    assert [r["pnl"] for r in rows] == ["40.00", "120.00"]
    assert rows[0]["direction"] == "BUY"
    assert rows[0]["closeTimestamp"] == "2026-03-02T10:00:00.000"

    too_wide = {**params, "to": format_time(T0 + timedelta(days=3))}
    assert http.get(f"{API}/closedPositions", params=too_wide).status_code == 400
    assert http.get(f"{API}/closedPositions", params={"token": tok}).status_code == 400


def test_fills_move_balance_equity_and_open_positions(
    http: httpx.Client, ctrader_sim: CTraderSimulatorThread
) -> None:
    tok = token(http)
    login = create(http, tok, balance=1000000).json()["login"]  # 10000.00
    state = ctrader_sim.state
    assert [a.login for a in state.sim_accounts()] == [login]
    deal = state.sim_apply_fill(
        fill(
            login,
            5,
            "in",
            "sell",
            "2",
            "2000",
            symbol="XAUUSD",
            contract_size=Decimal(100),
            commission=Decimal("-7"),
        )
    )
    assert deal.isdigit()
    state.sim_mark_prices({"XAUUSD": Decimal("1990")})
    trader = http.get(f"{API}/traders/{login}", params={"token": tok}).json()
    # Balance pays the commission; 200 oz short gains 10 each: +2000 floating.
    assert trader["balance"] == 999300
    assert trader["equity"] == 1199300
    assert trader["usedMargin"] == 1333333  # 200 * 2000 / 30
    assert trader["freeMargin"] == 1199300 - 1333333

    answer = http.get(f"{API}/openPositions", params={"token": tok, "login": login})
    reader = csv.DictReader(io.StringIO(answer.text))
    assert reader.fieldnames == OPEN_POSITION_HEADERS
    (row,) = list(reader)
    assert (row["positionId"], row["direction"], row["volume"]) == ("5", "SELL", "200.00")

    state.sim_apply_fill(
        fill(
            login,
            5,
            "out",
            "buy",
            "2",
            "1990",
            symbol="XAUUSD",
            contract_size=Decimal(100),
            profit=Decimal(2000),
            commission=Decimal("-7"),
            swap=Decimal("-1.5"),
        )
    )
    trader = http.get(f"{API}/traders/{login}", params={"token": tok}).json()
    assert trader["balance"] == trader["equity"] == 1000000 - 700 + 200000 - 700 - 150
    assert trader["usedMargin"] == 0
    assert http.get(f"{API}/openPositions", params={"token": tok}).text.strip() == ",".join(
        OPEN_POSITION_HEADERS
    )

    http.patch(f"{API}/traders/{login}", params={"token": tok}, json={"accessRights": "NO_TRADING"})
    assert state.sim_accounts() == []


def test_state_file_keeps_traders_and_deals(tmp_path: Path) -> None:
    config = CTraderSimConfig(state_file=tmp_path / "ctrader.json")
    state = CTraderSimState(config)
    trader = state.create_trader(
        group="real\\pro\\std",
        leverage_in_cents=10000,
        access_rights="FULL_ACCESS",
        account_type="NETTED",
        currency="EUR",
        broker_name=BROKER,
        hashed_password=hash_password("x"),
        margin_calculation="NET",
    )
    state.change_balance(trader.login, "DEPOSIT", Decimal("10.25"), external_id="e1")
    state.sim_apply_fill(fill(trader.login, 9, "in", "buy", "1", "1.1"))
    again = CTraderSimState(config)
    assert again.trader(trader.login).balance == Decimal("10.25")
    assert again.history(trader.login, 0, 2**62, "e1")[0].delta == Decimal("10.25")
    assert again.open_positions(trader.login)[0].volume == Decimal(100_000)
    assert again.sim_accounts()[0].hedging is False


def test_netting_reversal_closes_then_opens_the_other_way() -> None:
    state = CTraderSimState()
    trader = state.create_trader(
        group="real\\pro\\std",
        leverage_in_cents=10000,
        access_rights="FULL_ACCESS",
        account_type="NETTED",
        currency="USD",
        broker_name=BROKER,
        hashed_password=hash_password("x"),
        margin_calculation="NET",
        balance=100000,
    )
    state.sim_apply_fill(fill(trader.login, 3, "in", "buy", "1", "1.1"))
    later = T0 + timedelta(minutes=5)
    state.sim_apply_fill(fill(trader.login, 3, "inout", "sell", "1.5", "1.2", time=later))
    (row,) = state.closed_between(0, 2**62)
    assert (row.direction, row.volume, row.close_price) == ("BUY", Decimal(100_000), Decimal("1.2"))
    (position,) = state.open_positions(trader.login)
    assert (position.direction, position.volume) == ("SELL", Decimal(50_000))
