"""The MT4 bridge simulator on the wire, driven by a bare HTTP client (not fxcrm's MT4 client).

The signing is written out again on purpose, so a mistake shared with the client cannot hide.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from fxcrm.adapters.simulators.market.contract import SimFill
from fxcrm.adapters.simulators.mt4 import (
    DEV_MT4_KEY_ID,
    DEV_MT4_READONLY_KEY_ID,
    DEV_MT4_READONLY_SECRET,
    DEV_MT4_SECRET,
    BridgeError,
    Mt4SimConfig,
    Mt4SimState,
    Mt4SimulatorThread,
    group_matches,
)
from tests.adapters.mt4.conftest import SERVER_OFFSET_HOURS, SESSION_TIMEOUT, FakeClock

STD = "real\\retail\\std"
HIGHRISK = "real\\retail\\highrisk"
OFFSET = timedelta(hours=SERVER_OFFSET_HOURS)


class Raw:
    """Signs each request by hand: HMAC-SHA256 over METHOD, target, timestamp and body."""

    def __init__(
        self, sim: Mt4SimulatorThread, key_id: str = DEV_MT4_KEY_ID, secret: str = DEV_MT4_SECRET
    ) -> None:
        self.http = httpx.Client(base_url=sim.base_url, timeout=5)
        self.key_id, self.secret = key_id, secret

    def call(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        content = b"" if body is None else json.dumps(body).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        message = f"{method}\n{target}\n{stamp}\n".encode() + content
        digest = hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
        sent = {
            "X-Bridge-Key": self.key_id,
            "X-Bridge-Timestamp": stamp,
            "X-Bridge-Signature": signature if signature is not None else digest,
            "Content-Type": "application/json",
            **(headers or {}),
        }
        # The target goes out exactly as signed (already percent-encoded).
        return self.http.request(method, target, content=content, headers=sent)

    def ok(self, method: str, target: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.call(method, target, body, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def error(self, method: str, target: str, body: Any = None, **kwargs: Any) -> tuple[int, str]:
        response = self.call(method, target, body, **kwargs)
        assert response.status_code >= 400, response.text
        return response.status_code, response.json()["error"]["code"]

    def login(self) -> dict[str, Any]:
        return self.ok("POST", "/v1/session")

    def new_user(self, group: str = STD, leverage: int = 100, **fields: Any) -> dict[str, Any]:
        body = {"group": group, "leverage": leverage, "password": "Trade2026", **fields}
        return self.ok("POST", "/v1/users", body)

    def deposit(self, login: int, amount: float, key: str, cmd: int = 6) -> httpx.Response:
        body = {"type": 83, "cmd": cmd, "orderby": login, "price": amount, "comment": key}
        return self.call("POST", "/v1/trades/balance", body, headers={"Idempotency-Key": key})


@pytest.fixture
def raw(mt4_sim: Mt4SimulatorThread) -> Raw:
    client = Raw(mt4_sim)
    client.login()
    return client


# --- auth and session ----------------------------------------------------------------------


def test_signed_request_is_served_and_reports_the_server_clock(mt4_sim: Mt4SimulatorThread) -> None:
    info = Raw(mt4_sim).ok("GET", "/v1/server")
    assert info["contract"] == "fxcrm-mt4-bridge/1"
    assert info["utc_offset_seconds"] == int(SERVER_OFFSET_HOURS * 3600)
    assert abs(info["time"] - (time.time() + info["utc_offset_seconds"])) < 5


def test_bad_signature_unknown_key_and_stale_timestamp_are_401(mt4_sim: Mt4SimulatorThread) -> None:
    raw = Raw(mt4_sim)
    assert raw.error("GET", "/v1/server", signature="00" * 32) == (401, "BRIDGE_AUTH")
    assert Raw(mt4_sim, secret="wrong").error("GET", "/v1/server") == (401, "BRIDGE_AUTH")
    assert Raw(mt4_sim, key_id="nobody").error("GET", "/v1/server") == (401, "BRIDGE_AUTH")
    stale = int(time.time()) - 301
    assert raw.error("GET", "/v1/server", timestamp=stale) == (401, "BRIDGE_AUTH")
    assert raw.ok("GET", "/v1/server", timestamp=int(time.time()) - 200)


def test_the_query_and_the_body_are_signed(mt4_sim: Mt4SimulatorThread) -> None:
    raw = Raw(mt4_sim)
    raw.login()
    stamp = str(int(time.time()))
    message = f"GET\n/v1/users?group=real*\n{stamp}\n".encode()
    signature = hmac.new(DEV_MT4_SECRET.encode(), message, hashlib.sha256).hexdigest()
    headers = {
        "X-Bridge-Key": DEV_MT4_KEY_ID,
        "X-Bridge-Timestamp": stamp,
        "X-Bridge-Signature": signature,
    }
    assert raw.http.get("/v1/users?group=real*", headers=headers).status_code == 200
    # The same signature with another query is refused.
    assert raw.http.get("/v1/users?group=demo*", headers=headers).status_code == 401


def test_a_key_without_the_right_gets_403(mt4_sim: Mt4SimulatorThread, raw: Raw) -> None:
    login = raw.new_user()["login"]
    viewer = Raw(mt4_sim, DEV_MT4_READONLY_KEY_ID, DEV_MT4_READONLY_SECRET)
    viewer.login()
    assert viewer.ok("GET", f"/v1/users/{login}")["login"] == login
    status, code = viewer.error("POST", "/v1/users", {"group": STD, "password": "Trade2026"})
    assert (status, code) == (403, "RET_NOT_ENOUGH_RIGHTS")
    response = viewer.deposit(login, 10, "viewer-1")
    assert response.status_code == 403
    assert response.json()["error"]["retcode"] == 7


def test_session_expires_without_ping_and_recovers_by_logging_in(
    mt4_sim: Mt4SimulatorThread, clock: FakeClock
) -> None:
    raw = Raw(mt4_sim)
    assert raw.error("POST", "/v1/ping") == (440, "BRIDGE_SESSION_EXPIRED")
    raw.login()
    # Pings (any request) keep it alive past the timeout ...
    for _ in range(3):
        clock.advance(SESSION_TIMEOUT - 1)
        raw.ok("POST", "/v1/ping")
    # ... silence ends it, and it stays ended until the next login.
    clock.advance(SESSION_TIMEOUT + 1)
    assert raw.error("GET", "/v1/groups") == (440, "BRIDGE_SESSION_EXPIRED")
    assert raw.error("GET", "/v1/groups") == (440, "BRIDGE_SESSION_EXPIRED")
    raw.login()
    assert raw.ok("GET", "/v1/groups")["groups"]
    raw.ok("DELETE", "/v1/session")
    assert raw.error("POST", "/v1/ping")[0] == 440


# --- users ---------------------------------------------------------------------------------


def test_groups_list_the_demo_brand_with_their_leverage_limits(raw: Raw) -> None:
    groups = {g["group"]: g for g in raw.ok("GET", "/v1/groups")["groups"]}
    assert {STD, HIGHRISK, "real\\pro\\std", "real\\pro\\highrisk"} <= set(groups)
    assert any(name.startswith("demo") for name in groups)
    assert groups[HIGHRISK]["max_leverage"] == 100
    assert groups[STD]["currency"] == "USD"


def test_create_and_read_a_user_record(raw: Raw, clock: FakeClock) -> None:
    created = raw.new_user(name="Ada Lovelace", email="ada@example.com", country="GB", id="c-42")
    login = created["login"]
    assert login > 0
    user = raw.ok("GET", f"/v1/users/{login}")
    assert user == created
    assert user["password"] == ""  # never handed back
    assert "password_investor" not in user
    assert (user["group"], user["leverage"], user["enable"], user["enable_read_only"]) == (
        STD,
        100,
        1,
        0,
    )
    assert user["regdate"] == int(clock.now + OFFSET.total_seconds())
    assert user["balance"] == 0 and user["credit"] == 0
    for field in ("name", "country", "email", "id", "comment", "agent_account", "prevbalance"):
        assert field in user
    assert raw.ok("GET", "/v1/users?id=c-42")["users"] == [user]
    assert raw.ok("GET", "/v1/users?id=other")["users"] == []
    assert raw.error("GET", "/v1/users/999") == (404, "BRIDGE_NOT_FOUND")


def test_user_validation(raw: Raw) -> None:
    assert raw.error("POST", "/v1/users", {"group": "nope", "password": "Trade2026"}) == (
        422,
        "BRIDGE_UNKNOWN_GROUP",
    )
    assert raw.error(
        "POST", "/v1/users", {"group": HIGHRISK, "leverage": 200, "password": "Trade2026"}
    ) == (422, "BRIDGE_INVALID_LEVERAGE")
    assert raw.error("POST", "/v1/users", {"group": STD, "password": "short"}) == (
        422,
        "RET_INVALID_DATA",
    )
    too_long = {"group": STD, "password": "Trade2026", "id": "x" * 32}
    assert raw.error("POST", "/v1/users", too_long)[1] == "RET_INVALID_DATA"
    login = raw.new_user(leverage=500)["login"]
    # Moving to a group whose limit excludes the current leverage is refused.
    status, code = raw.error("PATCH", f"/v1/users/{login}", {"group": HIGHRISK})
    assert (status, code) == (422, "BRIDGE_INVALID_LEVERAGE")
    moved = raw.ok("PATCH", f"/v1/users/{login}", {"group": HIGHRISK, "leverage": 50})
    assert (moved["group"], moved["leverage"]) == (HIGHRISK, 50)
    assert raw.error("PATCH", f"/v1/users/{login}", {"balance": 5})[1] == "BRIDGE_BAD_REQUEST"
    assert raw.error("POST", "/v1/users", {"login": login, "group": STD, "password": "Trade2026"})[
        1
    ] == ("BRIDGE_CONFLICT")


def test_enable_and_read_only_round_trip_and_passwords(raw: Raw, mt4_state: Mt4SimState) -> None:
    login = raw.new_user()["login"]
    assert raw.ok("PATCH", f"/v1/users/{login}", {"enable_read_only": 1})["enable_read_only"] == 1
    assert login not in [a.login for a in mt4_state.sim_accounts()]
    assert raw.ok("PATCH", f"/v1/users/{login}", {"enable": 0, "enable_read_only": 0})[
        "enable"
    ] == (0)
    assert login not in [a.login for a in mt4_state.sim_accounts()]
    assert raw.ok("PATCH", f"/v1/users/{login}", {"enable": 1})["enable"] == 1
    assert login in [a.login for a in mt4_state.sim_accounts()]
    assert raw.error("PATCH", f"/v1/users/{login}", {"enable": 2})[1] == "RET_INVALID_DATA"
    raw.ok("POST", f"/v1/users/{login}/password", {"password": "Newpass99", "investor": True})
    assert mt4_state.users[login].password_investor == "Newpass99"
    assert raw.error("POST", f"/v1/users/{login}/password", {"password": "abc"})[0] == 422


# --- money ---------------------------------------------------------------------------------


def test_the_same_idempotency_key_answers_the_original_record(raw: Raw) -> None:
    login = raw.new_user()["login"]
    first = raw.deposit(login, 100.5, "dep-1")
    assert first.status_code == 201
    assert first.headers["Idempotent-Replayed"] == "false"
    again = raw.deposit(login, 100.5, "dep-1")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    record = first.json()
    assert (record["cmd"], record["login"], record["profit"], record["comment"]) == (
        6,
        login,
        100.5,
        "dep-1",
    )
    assert record["open_time"] == record["close_time"] > 0
    assert raw.ok("GET", f"/v1/users/{login}")["balance"] == 100.5
    # Reusing a key for another operation is a conflict, never a second record.
    assert raw.deposit(login, 7, "dep-1").status_code == 409
    history = raw.ok("GET", f"/v1/trades/history?login={login}&from=0&to=9999999999")
    assert history["total"] == 1


def test_balance_transaction_validation(raw: Raw) -> None:
    login = raw.new_user()["login"]
    body = {"type": 83, "cmd": 6, "orderby": login, "price": 10}
    assert raw.error("POST", "/v1/trades/balance", body)[1] == "BRIDGE_BAD_REQUEST"  # no key
    wrong_type = {**body, "type": 64}
    assert (
        raw.error("POST", "/v1/trades/balance", wrong_type, headers={"Idempotency-Key": "k"})[1]
        == "RET_INVALID_DATA"
    )
    assert raw.deposit(999, 10, "k2").json()["error"]["code"] == "BRIDGE_NOT_FOUND"
    long_comment = {**body, "comment": "c" * 40}
    record = raw.ok("POST", "/v1/trades/balance", long_comment, headers={"Idempotency-Key": "k3"})
    assert record["comment"] == "c" * 31


def test_credit_and_insufficient_money(raw: Raw) -> None:
    login = raw.new_user()["login"]
    assert raw.deposit(login, 50, "d1").status_code == 201
    assert raw.deposit(login, 20, "c1", cmd=7).json()["cmd"] == 7
    user = raw.ok("GET", f"/v1/users/{login}")
    assert (user["balance"], user["credit"]) == (50, 20)
    no_money = raw.deposit(login, -60, "w1")
    assert no_money.status_code == 422
    assert no_money.json()["error"] == {
        "code": "RET_TRADE_NO_MONEY",
        "retcode": 134,
        "message": no_money.json()["error"]["message"],
    }
    assert raw.deposit(login, -21, "c2", cmd=7).json()["error"]["code"] == "RET_TRADE_NO_MONEY"
    assert raw.deposit(login, -20, "c3", cmd=7).status_code == 201
    assert raw.deposit(login, -50, "w2").status_code == 201
    user = raw.ok("GET", f"/v1/users/{login}")
    assert (user["balance"], user["credit"]) == (0, 0)


# --- trades --------------------------------------------------------------------------------


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
        time=kw.pop("time", datetime.now(UTC)),
        contract_size=Decimal(100_000),
        **kw,
    )


def test_history_pages_closed_trades_in_server_time(raw: Raw, mt4_state: Mt4SimState) -> None:
    login = raw.new_user()["login"]
    raw.deposit(login, 10_000, "d1")
    base = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for n in range(5):
        opened = base + timedelta(hours=n)
        mt4_state.sim_apply_fill(fill(login, n + 1, "in", "buy", "0.25", "1.1000", time=opened))
        mt4_state.sim_apply_fill(
            fill(
                login,
                n + 1,
                "out",
                "sell",
                "0.25",
                "1.1010",
                time=opened + timedelta(minutes=30),
                profit=Decimal("25"),
            )
        )
    start = int((base + OFFSET).timestamp())
    end = int((base + OFFSET + timedelta(hours=3)).timestamp())
    page = raw.ok("GET", f"/v1/trades/history?login={login}&from={start}&to={end}&limit=2")
    assert (page["total"], len(page["trades"])) == (3, 2)
    rest = raw.ok("GET", f"/v1/trades/history?login={login}&from={start}&to={end}&offset=2&limit=2")
    trades = page["trades"] + rest["trades"]
    assert len(trades) == 3
    first = trades[0]
    assert first["volume"] == 25  # 1/100 lot
    assert first["cmd"] == 0
    assert first["close_time"] == int((base + OFFSET + timedelta(minutes=30)).timestamp())
    assert first["open_time"] == int((base + OFFSET).timestamp())
    assert (first["open_price"], first["close_price"], first["profit"]) == (1.1, 1.101, 25)
    group_page = raw.ok("GET", f"/v1/trades/history?group=real*&from={start}&to={end}")
    assert group_page["total"] == 3
    assert raw.ok("GET", f"/v1/trades/history?group=demo*&from={start}&to={end}")["total"] == 0
    assert raw.error("GET", "/v1/trades/history?login=1")[1] == "BRIDGE_BAD_REQUEST"


def test_partial_close_splits_the_order_as_mt4_does(raw: Raw, mt4_state: Mt4SimState) -> None:
    login = raw.new_user()["login"]
    raw.deposit(login, 10_000, "d1")
    opened = datetime.now(UTC) - timedelta(hours=1)
    ticket = int(
        mt4_state.sim_apply_fill(
            fill(login, 7, "in", "sell", "1", "1.2000", time=opened, commission=Decimal("-7"))
        )
    )
    closed = int(
        mt4_state.sim_apply_fill(
            fill(login, 7, "out", "buy", "0.4", "1.1990", profit=Decimal("40"), swap=Decimal("-1"))
        )
    )
    assert closed == ticket
    open_now = raw.ok("GET", f"/v1/trades/open?login={login}")["trades"]
    assert len(open_now) == 1
    rest = open_now[0]
    assert (rest["volume"], rest["cmd"], rest["comment"]) == (60, 1, f"from #{ticket}")
    assert rest["open_time"] == int((opened + OFFSET).timestamp())
    assert rest["commission"] == -4.2
    history = raw.ok("GET", f"/v1/trades/history?login={login}&from=0&to=9999999999")["trades"]
    part = next(t for t in history if t["cmd"] == 1)
    assert (part["order"], part["volume"], part["comment"]) == (
        ticket,
        40,
        f"to #{rest['order']}",
    )
    assert (part["profit"], part["storage"], part["commission"]) == (40, -1, -2.8)
    # The remainder closes under its own ticket.
    last = int(
        mt4_state.sim_apply_fill(
            fill(login, 7, "out", "buy", "0.6", "1.1995", profit=Decimal("30"))
        )
    )
    assert last == rest["order"]
    assert raw.ok("GET", f"/v1/trades/open?login={login}")["trades"] == []
    # balance: 10000 - 7 (open commission) + 40 - 1 + 30
    assert mt4_state.users[login].balance == Decimal("10062.00")


def test_fills_move_balance_and_marks_move_the_margin_level(
    raw: Raw, mt4_state: Mt4SimState
) -> None:
    login = raw.new_user(leverage=100)["login"]
    raw.deposit(login, 5_000, "d1")
    (account,) = [a for a in mt4_state.sim_accounts() if a.login == login]
    assert (account.balance, account.leverage, account.currency, account.hedging) == (
        Decimal(5000),
        100,
        "USD",
        True,
    )
    mt4_state.sim_apply_fill(fill(login, 1, "in", "buy", "1", "1.1000", commission=Decimal("-5")))
    mt4_state.sim_mark_prices({"EURUSD": Decimal("1.1050")})
    level = raw.ok("GET", f"/v1/users/{login}/margin")
    assert level["balance"] == 4995
    assert level["equity"] == 4995 + 500
    assert level["margin"] == 1100
    assert level["margin_free"] == 5495 - 1100
    assert level["margin_level"] == pytest.approx(5495 / 1100 * 100, abs=0.01)
    assert (level["volume"], level["leverage"], level["level_type"]) == (100, 100, 0)
    (trade,) = raw.ok("GET", f"/v1/trades/open?login={login}")["trades"]
    assert (trade["close_price"], trade["profit"]) == (1.105, 500)
    assert raw.ok("GET", "/v1/margins?group=real*")["margins"] == [level]
    # Withdrawals are limited by the free margin too.
    assert raw.deposit(login, -4500, "w1").json()["error"]["code"] == "RET_TRADE_NO_MONEY"


def test_disabled_or_read_only_accounts_cannot_open_trades(
    raw: Raw, mt4_state: Mt4SimState
) -> None:
    login = raw.new_user()["login"]
    raw.ok("PATCH", f"/v1/users/{login}", {"enable_read_only": 1})
    with pytest.raises(BridgeError) as read_only:
        mt4_state.sim_apply_fill(fill(login, 1, "in", "buy", "0.1", "1.1"))
    assert read_only.value.code == "RET_TRADE_DISABLE"
    raw.ok("PATCH", f"/v1/users/{login}", {"enable": 0, "enable_read_only": 0})
    with pytest.raises(BridgeError) as disabled:
        mt4_state.sim_apply_fill(fill(login, 1, "in", "buy", "0.1", "1.1"))
    assert disabled.value.code == "RET_ACCOUNT_DISABLED"


# --- the state alone -----------------------------------------------------------------------


def test_state_file_keeps_users_trades_and_keys(tmp_path: Path) -> None:
    config = Mt4SimConfig(state_file=tmp_path / "mt4.json")
    state = Mt4SimState(config)
    user = state.create_user({"group": STD, "leverage": 100, "password": "Trade2026", "id": "c1"})
    record, _ = state.balance_transaction(user.login, 6, Decimal(100), "", "key-1")
    state.sim_apply_fill(fill(user.login, 3, "in", "buy", "0.1", "1.1"))
    reloaded = Mt4SimState(Mt4SimConfig(state_file=tmp_path / "mt4.json"))
    assert reloaded.users[user.login].balance == Decimal(100)
    assert reloaded.users[user.login].id == "c1"
    again, replayed = reloaded.balance_transaction(user.login, 6, Decimal(100), "", "key-1")
    assert replayed and again.order == record.order and again.comment == "key-1"
    assert len(reloaded.open_trades(logins=[user.login])) == 1
    assert reloaded.create_user({"group": STD, "password": "Trade2026"}).login == user.login + 1


def test_group_masks() -> None:
    assert group_matches("*", STD)
    assert group_matches("real\\*", STD)
    assert not group_matches("demo*", STD)
    assert not group_matches("real*,!real\\retail\\*", STD)
    assert group_matches("demo*,real\\retail\\std", STD)


def test_a_forgotten_key_is_still_found_in_the_comments() -> None:
    state = Mt4SimState(Mt4SimConfig())
    login = state.create_user({"group": STD, "password": "Trade2026"}).login
    record, _ = state.balance_transaction(login, 6, Decimal(10), "key-9", "key-9")
    state.idempotency.clear()  # a bridge restarted without its key table
    again, replayed = state.balance_transaction(login, 6, Decimal(10), "key-9", "key-9")
    assert replayed and again is record
    assert state.users[login].balance == Decimal(10)
