"""The Sirix simulator on the wire (raw HTTP) and as the market engine's `SimulatedPlatform`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from fxcrm.adapters.simulators.market.contract import SimulatedPlatform
from fxcrm.adapters.simulators.sirix import (
    SirixSimConfig,
    SirixSimState,
    SirixSimulatorThread,
)
from fxcrm.adapters.simulators.sirix.protocol import (
    VERIFY_INVESTOR,
    VERIFY_OK,
    VERIFY_UNKNOWN_USER,
    VERIFY_USER_DISABLED,
    VERIFY_WRONG_PASSWORD,
)
from tests.adapters.sirix.conftest import TOKEN, fill

MS = "/api/ManagementService"


@pytest.fixture
def http(sirix_sim: SirixSimulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sirix_sim.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ) as client:
        yield client


def create_user(http: httpx.Client, **changes: Any) -> int:
    body: dict[str, Any] = {
        "GroupName": "real\\retail\\std",
        "FullName": "Ada Lovelace",
        "UserDetails": {"FullName": "Ada Lovelace", "Email": "ada@example.com", "Comment": "x"},
        "TradingState": "Enabled",
        "Tradability": "Tradable",
        "Passwords": {"Password": "Trader2026a", "InvestorPassword": "Invest2026b"},
        "MarginRequirements": {"Leverage": 100, "UseAccountMarginRequirements": True},
        "InitialDepositRequestDetails": {"Balance": 0, "InitialDepositComment": ""},
        **changes,
    }
    response = http.post("/api/UserActions/CreateUser", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["User"]["UserID"])


# --- transport and auth -----------------------------------------------------------------------


def test_requests_without_the_token_are_refused(sirix_sim: SirixSimulatorThread) -> None:
    url = f"{sirix_sim.base_url}{MS}/Ping"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.post(url, json={}, headers=headers)
        assert response.status_code == 401
        assert response.json()["ErrorCode"] == "Unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_only_post_is_allowed(http: httpx.Client) -> None:
    assert http.post(f"{MS}/Ping", json={}).status_code == 200
    for method in ("GET", "PUT", "DELETE"):
        response = http.request(method, f"{MS}/Ping")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"


def test_unknown_methods_and_bad_json(http: httpx.Client) -> None:
    response = http.post(f"{MS}/NoSuchThing", json={})
    assert (response.status_code, response.json()["ErrorCode"]) == (404, "UnknownMethod")
    bad = http.post(f"{MS}/GetUser", content=b"{not json", headers={"content-type": "text/json"})
    assert (bad.status_code, bad.json()["ErrorCode"]) == (400, "InvalidRequest")


def test_platform_time_is_jerusalem_wall_clock(sirix_sim: SirixSimulatorThread) -> None:
    summer = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    sirix_sim.reset(state=SirixSimState(clock=lambda: summer))
    with httpx.Client(base_url=sirix_sim.base_url) as client:
        answer = client.post(
            f"{MS}/GetPlatformTime", json={}, headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
    assert answer == {"PlatformTime": "2025-07-01T12:00:00.000", "TimeZone": "Asia/Jerusalem"}
    assert sirix_sim.state.local(datetime(2025, 1, 15, 9, 0, tzinfo=UTC)).hour == 11  # IST


# --- users ------------------------------------------------------------------------------------


def test_create_user_nested_body_and_get_user(http: httpx.Client) -> None:
    user_id = create_user(http)
    user = http.post(f"{MS}/GetUser", json={"userID": user_id}).json()["User"]
    assert user["UserID"] == user_id
    assert user["GroupName"] == "real\\retail\\std"
    assert user["MarginRequirements"]["Leverage"] == 100
    assert user["UserDetails"]["Email"] == "ada@example.com"
    assert (user["IsEnabled"], user["DisableTrading"], user["IsArchived"]) == (True, False, False)
    assert user["Tradability"] == "Tradable"
    assert "Password" not in str(user)
    # Keys are read case-insensitively, as .NET model binding does.
    assert http.post(f"{MS}/GetUser", json={"UserID": user_id}).status_code == 200
    missing = http.post(f"{MS}/GetUser", json={"userID": 42})
    assert (missing.status_code, missing.json()["ErrorCode"]) == (404, "UserNotFound")


def test_create_user_refusals(http: httpx.Client) -> None:
    body: dict[str, Any] = {"GroupName": "real\\retail\\std", "FullName": "X"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"GroupName": "nope"}, "GroupNotFound"),
        ({"MarginRequirements": {"Leverage": 501}}, "InvalidLeverage"),
        (
            {"Passwords": {"Password": "short", "InvestorPassword": "Invest2026b"}},
            "InvalidPassword",
        ),
    ]
    for changes, code in cases:
        full = {
            **body,
            "Passwords": {"Password": "Trader2026a", "InvestorPassword": "Invest2026b"},
            **changes,
        }
        response = http.post("/api/UserActions/CreateUser", json=full)
        assert (response.status_code, response.json()["ErrorCode"]) == (400, code), changes


def test_update_user_answers_204(http: httpx.Client, sirix_state: SirixSimState) -> None:
    user_id = create_user(http)
    response = http.post(
        "/api/UserActions/UpdateUser",
        json={
            "UserID": user_id,
            "GroupName": "real\\pro\\std",
            "MarginRequirements": {"Leverage": 400},
            "Passwords": {"Password": "NewPass2026"},
        },
    )
    assert (response.status_code, response.content) == (204, b"")
    user = sirix_state.user(user_id)
    assert (user.group, user.leverage, user.passwords["main"]) == (
        "real\\pro\\std",
        400,
        "NewPass2026",
    )
    # A group whose maximum is below the current leverage: refused, nothing changed.
    refused = http.post(
        "/api/UserActions/UpdateUser", json={"UserID": user_id, "GroupName": "real\\pro\\highrisk"}
    )
    assert refused.json()["ErrorCode"] == "InvalidLeverage"
    assert sirix_state.user(user_id).group == "real\\pro\\std"


def test_verify_user_result_codes(http: httpx.Client) -> None:
    user_id = create_user(http)

    def verify(uid: int, password: str) -> int:
        answer = http.post(f"{MS}/VerifyUser", json={"userID": uid, "password": password})
        return int(answer.json()["UserVerificationResult"])

    assert verify(user_id, "Trader2026a") == VERIFY_OK
    assert verify(user_id, "Invest2026b") == VERIFY_INVESTOR
    assert verify(user_id, "wrong") == VERIFY_WRONG_PASSWORD
    assert verify(999, "Trader2026a") == VERIFY_UNKNOWN_USER
    assert http.post(f"{MS}/DisableUser", json={"userID": user_id}).status_code == 204
    assert verify(user_id, "Trader2026a") == VERIFY_USER_DISABLED
    flags = http.post(f"{MS}/GetAllUsers", json={}).json()["Users"][0]
    assert (flags["IsEnabled"], flags["IsArchived"]) == (False, False)


# --- money ------------------------------------------------------------------------------------


def test_deposit_and_withdraw_return_order_ids(http: httpx.Client) -> None:
    user_id = create_user(http)
    deposit = http.post(
        f"{MS}/DepositBalanceWithResult",
        json={"userID": user_id, "amount": 500.5, "comment": "dep-1", "subType": 0},
    ).json()
    withdraw = http.post(
        f"{MS}/WithdrawBalanceWithResult",
        json={"userID": user_id, "amount": 100, "comment": "wd-1", "subType": 0},
    ).json()
    assert isinstance(deposit["OrderID"], int) and withdraw["OrderID"] > deposit["OrderID"]
    credit = http.post(
        f"{MS}/DepositBalanceWithResult",
        json={"userID": user_id, "amount": 50, "comment": "cr", "subType": 1},
    )
    assert credit.status_code == 200
    balance = http.post(f"{MS}/GetAccountBalance", json={"userID": user_id}).json()
    assert balance["AccountBalance"]["Balance"] == 400.5
    assert balance["AccountBalance"]["Credit"] == 50
    too_much = http.post(
        f"{MS}/WithdrawBalanceWithResult", json={"userID": user_id, "amount": 1000, "comment": ""}
    )
    assert (too_much.status_code, too_much.json()["ErrorCode"]) == (400, "InsufficientFunds")
    zero = http.post(f"{MS}/DepositBalanceWithResult", json={"userID": user_id, "amount": 0})
    assert zero.json()["ErrorCode"] == "InvalidAmount"
    rows = http.post(
        "/api/UserStatus/GetUserTransactions",
        json={"UserID": user_id, "GetMonetaryTransactions": True, "GetOpenPositions": False},
    ).json()
    assert [
        (r["Type"], r["Amount"], r["Comment"], r["SubType"]) for r in rows["MonetaryTransactions"]
    ] == [
        ("Deposit", 500.5, "dep-1", 0),
        ("Withdrawal", 100, "wd-1", 0),
        ("Deposit", 50, "cr", 1),
    ]
    assert rows["UserData"]["AccountBalance"]["Balance"] == 400.5
    assert rows["OpenPositions"] == [] and rows["PendingOrders"] == []


# --- positions --------------------------------------------------------------------------------


def test_misspelled_closed_positions_route(http: httpx.Client, sirix_state: SirixSimState) -> None:
    user_id = create_user(http)
    when = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    sirix_state.sim_apply_fill(fill(user_id, 1, "in", "buy", "1", "1.1000", when))
    sirix_state.sim_apply_fill(fill(user_id, 1, "out", "sell", "1", "1.1010", when, profit="100"))
    span = {"startTime": "2025-07-01T00:00:00", "endTime": "2025-07-02T00:00:00"}
    rows = http.post(f"{MS}/GetClosedPoistions", json=span).json()["ClosedPositions"]
    assert len(rows) == 1
    assert rows[0]["CloseTime"] == "2025-07-01T12:00:00.000"  # IDT, UTC+3
    assert rows[0]["Volume"] == 100000
    assert http.post(f"{MS}/GetClosedPositions", json=span).status_code == 404
    # Local times compare on the server's wall clock: 11:59 local is before the close.
    early = {"startTime": "2025-07-01T00:00:00", "endTime": "2025-07-01T11:59:00"}
    assert http.post(f"{MS}/GetClosedPoistions", json=early).json()["ClosedPositions"] == []
    # A time with an offset is converted first.
    utc_span = {"startTime": "2025-07-01T08:59:00Z", "endTime": "2025-07-01T09:01:00Z"}
    assert len(http.post(f"{MS}/GetClosedPoistions", json=utc_span).json()["ClosedPositions"]) == 1


def test_fills_move_positions_and_balance(http: httpx.Client, sirix_state: SirixSimState) -> None:
    platform: SimulatedPlatform = sirix_state  # mypy checks the protocol
    assert platform.platform == "sirix"
    user_id = create_user(http)
    sirix_state.balance_op(user_id, Decimal(10_000))
    when = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    deal_in = sirix_state.sim_apply_fill(
        fill(user_id, 7, "in", "buy", "2", "1.1000", when, commission="-14")
    )
    assert deal_in.isdigit()
    assert sirix_state.user(user_id).balance == Decimal("9986.00")
    sirix_state.sim_mark_prices({"EURUSD": Decimal("1.1050")})
    account = sirix_state.account(user_id)
    assert account["Equity"] == Decimal("10986.00")  # + 0.005 * 2 * 100000 floating
    assert account["Margin"] == Decimal("2210.00")  # 2 lots * 100000 * 1.105 / 100
    opened = http.post(f"{MS}/GetOpenPositionsForUser", json={"userID": user_id}).json()
    assert opened["OpenPositions"][0]["Volume"] == 200000
    assert opened["OpenPositions"][0]["Profit"] == 1000
    # A partial close: a closed row with half the entry commission, the rest stays open.
    later = datetime(2025, 7, 1, 10, 0, tzinfo=UTC)
    sirix_state.sim_apply_fill(
        fill(user_id, 7, "out", "sell", "0.5", "1.1050", later, profit="250", commission="-3.5")
    )
    assert sirix_state.open_positions[7].lots == Decimal("1.5")
    row = sirix_state.closed_positions[-1]
    assert (row.lots, row.commission, row.profit, row.side) == (
        Decimal("0.5"),
        Decimal("-7.00"),
        Decimal("250.00"),
        "buy",
    )
    sirix_state.sim_apply_fill(
        fill(user_id, 7, "out", "sell", "1.5", "1.1040", later, profit="600", swap="-2")
    )
    assert 7 not in sirix_state.open_positions
    assert sirix_state.user(user_id).balance == Decimal("9986") - Decimal("3.5") + 250 + 600 - 2
    groups = http.post(
        f"{MS}/GetOpenPositionsForGroups", json={"groups": ["real\\retail\\std"]}
    ).json()
    assert groups["OpenPositions"] == []
    volume = http.post(f"{MS}/GetUserVolume", json={"userID": user_id}).json()
    assert volume["UserVolume"] == 200000


def test_reversal_and_sim_accounts(http: httpx.Client, sirix_state: SirixSimState) -> None:
    user_id = create_user(http)
    other = create_user(http)
    when = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    sirix_state.sim_apply_fill(fill(user_id, 9, "in", "buy", "1", "1.1", when))
    sirix_state.sim_apply_fill(fill(user_id, 9, "inout", "sell", "3", "1.2", when, profit="10"))
    position = sirix_state.open_positions[9]
    assert (position.side, position.lots) == ("sell", Decimal(2))
    assert sirix_state.closed_positions[-1].lots == Decimal(1)
    assert {a.login for a in sirix_state.sim_accounts()} == {user_id, other}
    http.post(f"{MS}/DisableUser", json={"userID": other})
    http.post("/api/UserActions/UpdateUser", json={"UserID": user_id, "Tradability": "CloseOnly"})
    assert sirix_state.sim_accounts() == []
    info = SirixSimState().sim_accounts()
    assert info == []


def test_state_file_keeps_everything(tmp_path: Path) -> None:
    config = SirixSimConfig(state_file=tmp_path / "sirix.json")
    state = SirixSimState(config)
    user = state.create_user(
        group="real\\pro\\std",
        full_name="Ada",
        password="Trader2026a",
        investor_password="Invest2026b",
        leverage=200,
        details={"Comment": "fxcrm:abc"},
    )
    state.balance_op(user.user_id, Decimal("123.45"), "seed")
    when = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    state.sim_apply_fill(fill(user.user_id, 3, "in", "sell", "0.1", "1.2", when))
    again = SirixSimState(config)
    restored = again.user(user.user_id)
    assert (restored.balance, restored.leverage, restored.details["Comment"]) == (
        Decimal("123.45"),
        200,
        "fxcrm:abc",
    )
    assert again.open_positions[3].open_time == when
    assert again.transactions[0].comment == "seed"
    assert (
        again.create_user(
            group="demo\\retail\\std", full_name="B", password="abc123", investor_password="abc123"
        ).user_id
        == user.user_id + 1
    )
