"""The simulator on its own: auth, rate limit, offers, gateways, lifecycle, ledgers, fills."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from fxcrm.adapters.simulators.matchtrader import (
    SIM_SYSTEM_UUID,
    MatchTraderSimConfig,
    MatchTraderSimState,
    MatchTraderSimulatorThread,
    MtrError,
)
from fxcrm.adapters.simulators.matchtrader.config import stable_uuid
from tests.adapters.matchtrader.conftest import API_KEY, EU, HIGHRISK, RETAIL, T0, fill

TRADING_DATA = "/v1/trading-accounts/trading-data"


@pytest.fixture
def http(mtr_sim: MatchTraderSimulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mtr_sim.base_url, headers={"Authorization": API_KEY}) as client:
        yield client


def offer_uuid(state: MatchTraderSimState, group: str) -> str:
    return next(o.uuid for o in state.offers() if o.group_name == group)


def new_login(state: MatchTraderSimState, group: str = RETAIL, email: str = "x@example.com") -> int:
    _, trading = state.create_account(
        email=email, password="secret1", offer_uuid=offer_uuid(state, group)
    )
    return trading.login


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_auth_bare_bearer_and_401(mtr_sim: MatchTraderSimulatorThread) -> None:
    url = f"{mtr_sim.base_url}/service-info"
    assert httpx.get(url, headers={"Authorization": API_KEY}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {API_KEY}"}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHORIZED"


def test_rate_limit_answers_429_with_retry_after(mtr_server: MatchTraderSimulatorThread) -> None:
    mtr_server.reset(MatchTraderSimConfig(rate_limit_per_minute=3))
    with httpx.Client(base_url=mtr_server.base_url, headers={"Authorization": API_KEY}) as http:
        assert [http.get("/v1/offers").status_code for _ in range(3)] == [200] * 3
        limited = http.get("/v1/offers")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_offers_are_paged_with_system_uuid_and_max_leverage(http: httpx.Client) -> None:
    page = http.get("/v1/offers", params={"size": 2}).json()
    assert page["totalElements"] == 6 and page["totalPages"] == 3 and len(page["content"]) == 2
    offers = http.get("/v1/offers").json()["content"]
    groups = {o["groupName"]: o for o in offers}
    assert {RETAIL, HIGHRISK, "real\\pro\\std", "real\\pro\\highrisk"} <= set(groups)
    assert any(o["accountType"] == "DEMO" for o in offers)
    assert all(o["systemUuid"] == SIM_SYSTEM_UUID for o in offers)
    assert groups[HIGHRISK]["maxLeverage"] == 100


def test_account_and_trading_account_split(http: httpx.Client) -> None:
    offers = {o["groupName"]: o["offerUuid"] for o in http.get("/v1/offers").json()["content"]}
    body = {"email": "bo@example.com", "password": "secret1", "offerUuid": offers[RETAIL]}
    created = http.post("/v1/accounts", json=body).json()
    assert created["tradingAccount"]["accountInfo"]["group"] == RETAIL
    assert created["created"].endswith("Z")
    assert http.post("/v1/accounts", json=body).status_code == 409
    second = http.post(
        f"/v1/accounts/{created['uuid']}/trading-accounts", json={"offerUuid": offers[HIGHRISK]}
    ).json()
    assert second["accountUuid"] == created["uuid"]
    account = http.get("/v1/accounts/by-email/bo@example.com").json()
    assert [t["login"] for t in account["tradingAccounts"]] == [
        created["tradingAccount"]["login"],
        second["login"],
    ]
    assert http.get("/v1/accounts/by-email/nobody@example.com").status_code == 404


def test_gateway_currency_must_match_the_account(
    http: httpx.Client, mtr_sim: MatchTraderSimulatorThread
) -> None:
    login = new_login(mtr_sim.state)
    body = {
        "systemUuid": SIM_SYSTEM_UUID,
        "login": login,
        "amount": 100,
        "comment": "x",
        "paymentGatewayUuid": stable_uuid("gateway:EUR"),
    }
    refused = http.post("/v1/deposits/manual", json=body)
    assert refused.status_code == 400 and refused.json()["code"] == "CURRENCY_MISMATCH"
    body["paymentGatewayUuid"] = stable_uuid("gateway:USD")
    done = http.post("/v1/deposits/manual", json=body).json()
    assert done["status"] == "DONE"
    eu_login = new_login(mtr_sim.state, EU, "eu@example.com")
    assert mtr_sim.state.trading_account(eu_login).currency == "EUR"


def test_deposit_status_lifecycle() -> None:
    clock = Clock()
    state = MatchTraderSimState(MatchTraderSimConfig(settle_seconds=10), clock=clock)
    login = new_login(state)
    op = state.create_manual(
        "DEPOSIT",
        login=login,
        gateway_uuid=stable_uuid("gateway:USD"),
        amount=Decimal(250),
        comment="r1",
    )
    assert op.status == "NEW"
    clock.now += timedelta(seconds=6)
    state.settle()
    assert op.status == "PROCESSING" and state.trading_account(login).balance == 0
    clock.now += timedelta(seconds=5)
    state.settle()
    assert op.status == "DONE" and state.trading_account(login).balance == 250
    rejected = state.create_manual(
        "DEPOSIT",
        login=login,
        gateway_uuid=stable_uuid("gateway:USD"),
        amount=Decimal(5),
        comment="r2",
    )
    state.set_manual_status(rejected.uuid, "REJECTED")
    clock.now += timedelta(seconds=20)
    state.settle()
    assert rejected.status == "REJECTED" and state.trading_account(login).balance == 250
    with pytest.raises(MtrError):
        state.set_manual_status(rejected.uuid, "DONE")


def test_withdrawal_that_lost_its_margin_fails_on_booking() -> None:
    clock = Clock()
    state = MatchTraderSimState(MatchTraderSimConfig(settle_seconds=10), clock=clock)
    login = new_login(state)
    state.trading_account(login).balance = Decimal(1000)
    op = state.create_manual(
        "WITHDRAWAL",
        login=login,
        gateway_uuid=stable_uuid("gateway:USD"),
        amount=Decimal(900),
        comment="w",
    )
    state.sim_apply_fill(fill(login, 1, "in", lots="0.1", price="1.1"))  # margin 110
    clock.now += timedelta(seconds=11)
    state.settle()
    assert op.status == "FAILED" and state.trading_account(login).balance == 1000


def test_ledgers_filter_by_type_login_window_and_limit(
    http: httpx.Client, mtr_sim: MatchTraderSimulatorThread
) -> None:
    state = mtr_sim.state
    a, b = new_login(state), new_login(state, email="b@example.com")
    for login in (a, b):
        state.create_manual(
            "DEPOSIT",
            login=login,
            gateway_uuid=stable_uuid("gateway:USD"),
            amount=Decimal(100),
            comment="d",
        )
    state.credit("CREDIT_IN", login=a, amount=Decimal(10), comment="c")
    state.credit("CREDIT_OUT", login=a, amount=Decimal(4), comment="c2")

    def ledgers(**body: object) -> list[dict[str, object]]:
        response = http.post(
            f"{TRADING_DATA}/ledgers", json={"systemUuid": SIM_SYSTEM_UUID, **body}
        )
        assert response.status_code == 200, response.text
        return response.json()["content"]

    assert len(ledgers()) == 4
    assert [e["login"] for e in ledgers(logins=[b])] == [b]
    assert [e["amount"] for e in ledgers(types=["CREDIT_IN", "CREDIT_OUT"])] == [10.0, -4.0]
    assert len(ledgers(limit=2)) == 2
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ledgers(**{"from": future}) == []
    entry = ledgers()[0]
    assert str(entry["time"]).endswith("Z") and entry["type"] == "DEPOSIT"
    assert http.post(f"{TRADING_DATA}/ledgers", json={"systemUuid": "other"}).status_code == 404


def test_sim_apply_fill_moves_positions_closed_rows_ledger_and_balance() -> None:
    state = MatchTraderSimState()
    login = new_login(state)
    trading = state.trading_account(login)
    trading.balance = Decimal(10_000)
    state.sim_apply_fill(fill(login, 7, "in", lots="2", price="1.10000", commission="-7"))
    assert trading.balance == Decimal("9993.00")
    state.sim_mark_prices({"EURUSD": Decimal("1.10100")})
    finance = state.finance(trading)
    assert finance["profit"] == Decimal("200.00")
    assert finance["equity"] == Decimal("10193.00")
    assert finance["margin"] == Decimal("2202.00")  # 2 lots x 100k x 1.101 / 100
    deal = state.sim_apply_fill(
        fill(
            login,
            7,
            "out",
            side="sell",
            lots="0.5",
            price="1.10100",
            minutes=5,
            profit="50",
            commission="-1.75",
            swap="-0.5",
        )
    )
    assert trading.balance == Decimal("10040.75")
    (row,) = state.closed_positions
    assert (row.id, row.position_id, row.side, row.volume) == (deal, "7", "BUY", Decimal("0.5"))
    assert row.close_time == T0 + timedelta(minutes=5)
    assert state.positions[(login, "7")].volume == Decimal("1.5")
    types = [e.type for e in state.ledgers]
    assert types == ["COMMISSION", "CLOSED_POSITION", "COMMISSION", "SWAP"]
    state.sim_apply_fill(
        fill(login, 7, "out", side="sell", lots="1.5", price="1.102", minutes=6, profit="300")
    )
    assert state.positions == {} and len(state.closed_positions) == 2
    accounts = state.sim_accounts()
    assert [(a.login, a.hedging, a.balance) for a in accounts] == [(login, True, trading.balance)]
    state.update_trading_account(trading.account_uuid, login, access="READ_ONLY", group=None)
    assert state.sim_accounts() == []


def test_state_file_keeps_everything(tmp_path: Path) -> None:
    config = MatchTraderSimConfig(state_file=tmp_path / "mtr.json")
    state = MatchTraderSimState(config)
    login = new_login(state)
    state.credit("CREDIT_IN", login=login, amount=Decimal("12.5"), comment="keep")
    state.sim_apply_fill(fill(login, 3, "in"))
    again = MatchTraderSimState(config)
    assert again.trading_account(login).credit == Decimal("12.50")
    assert again.ledgers[0].comment == "keep" and again.ledgers[0].time == state.ledgers[0].time
    assert (login, "3") in again.positions
    assert new_login(again, email="y@example.com") == login + 1
