"""The MT5 Web API simulator on the wire, driven by a bare HTTP client (not fxcrm's MT5 client).

The hashing here is written out again on purpose, so a mistake shared with the client cannot hide.
"""

from __future__ import annotations

import hashlib
import ssl
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from fxcrm.adapters.simulators.mt5 import (
    SESSION_COOKIE,
    Mt5SimConfig,
    Mt5SimState,
    Mt5SimulatorThread,
    group_matches,
)
from tests.adapters.conftest import MANAGER, MANAGER_PASSWORD, SERVER_OFFSET_HOURS, TINY_GROUP

GOOD_PASSWORDS = {"PassMain": "Trader#2026a", "PassInvestor": "Invest#2026b"}


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()  # noqa: S324  (the protocol's hash)


def srv_rand_answer(password: str, srv_rand: str, *, hex_intermediates: bool = False) -> str:
    digest = md5(password.encode("utf-16-le"))
    if hex_intermediates:
        digest = digest.hex().encode()
    digest = md5(digest + b"WebAPI")
    if hex_intermediates:
        digest = digest.hex().encode()
    return hashlib.md5(digest + bytes.fromhex(srv_rand)).hexdigest()  # noqa: S324


class Raw:
    """One pinned keep-alive connection, as MT5 clients use."""

    def __init__(self, sim: Mt5SimulatorThread, cafile: Path) -> None:
        self.http = httpx.Client(
            base_url=sim.base_url,
            verify=ssl.create_default_context(cafile=str(cafile)),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=5,
        )
        self.cli_rand = bytes(range(16))

    def login(
        self, login: int = MANAGER, password: str = MANAGER_PASSWORD, **kwargs: bool
    ) -> httpx.Response:
        start = self.http.get(
            "/api/auth/start",
            params={"version": "4000", "agent": "tests", "login": login, "type": "manager"},
        )
        assert start.status_code == 200, start.text
        answer = srv_rand_answer(password, start.json()["srv_rand"], **kwargs)
        return self.http.get(
            "/api/auth/answer", params={"srv_rand_answer": answer, "cli_rand": self.cli_rand.hex()}
        )

    def call(self, command: str, body: Any = None, **params: Any) -> httpx.Response:
        if body is None:
            return self.http.get(f"/api/{command}", params=params)
        return self.http.post(f"/api/{command}", params=params, json=body)

    def ok(self, command: str, body: Any = None, **params: Any) -> Any:
        response = self.call(command, body, **params)
        assert response.status_code == 200, response.text
        assert response.json()["retcode"] == "0 Done", response.text
        return response.json().get("answer")

    def retcode(self, command: str, body: Any = None, **params: Any) -> int:
        response = self.call(command, body, **params)
        assert response.status_code == 200, response.text
        return int(response.json()["retcode"].split()[0])

    def add_user(self, group: str = "real\\retail\\std", leverage: int = 100, **fields: Any) -> Any:
        return self.ok("user/add", {**GOOD_PASSWORDS, **fields}, group=group, leverage=leverage)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def raw(mt5_sim: Mt5SimulatorThread, mt5_tls: tuple[Path, Path]) -> Any:
    session = Raw(mt5_sim, mt5_tls[0])
    assert session.login().status_code == 200
    yield session
    session.close()


def connect(sim: Mt5SimulatorThread, tls: tuple[Path, Path], login: int, password: str) -> Raw:
    session = Raw(sim, tls[0])
    assert session.login(login, password).status_code == 200
    return session


# --- authentication and sessions -------------------------------------------------------------


def test_auth_answers_cli_rand_and_sets_cookie(mt5_sim: Mt5SimulatorThread, mt5_tls: Any) -> None:
    session = Raw(mt5_sim, mt5_tls[0])
    answer = session.login()
    assert answer.status_code == 200
    body = answer.json()
    assert body["retcode"] == "0 Done"
    # The server proves it knows the password: MD5(password_hash || cli_rand).
    pw_hash = md5(md5(MANAGER_PASSWORD.encode("utf-16-le")) + b"WebAPI")
    assert body["cli_rand_answer"] == hashlib.md5(pw_hash + session.cli_rand).hexdigest()  # noqa: S324
    assert session.http.cookies.get(SESSION_COOKIE)
    assert session.ok("test/access") is None
    session.close()


@pytest.mark.parametrize(
    ("login", "password", "hex_intermediates"),
    [
        (MANAGER, "Wrong#Password1", False),
        (MANAGER, MANAGER_PASSWORD, True),  # hex-encoded intermediate digests: a classic bug
        (4242, MANAGER_PASSWORD, False),  # unknown manager
    ],
)
def test_bad_auth_is_403(
    mt5_sim: Mt5SimulatorThread,
    mt5_tls: Any,
    login: int,
    password: str,
    hex_intermediates: bool,
) -> None:
    session = Raw(mt5_sim, mt5_tls[0])
    assert session.login(login, password, hex_intermediates=hex_intermediates).status_code == 403
    assert session.call("test/access").status_code == 403
    session.close()


def test_manager_without_webapi_right_is_403(mt5_sim: Mt5SimulatorThread, mt5_tls: Any) -> None:
    session = Raw(mt5_sim, mt5_tls[0])
    answer = session.login(1003, "NoWebApi#2026")
    assert answer.status_code == 403
    assert answer.json()["retcode"].startswith("8 ")
    session.close()


def test_manager_from_a_disallowed_ip_is_403(mt5_sim: Mt5SimulatorThread, mt5_tls: Any) -> None:
    mt5_sim.state.config.managers[0].allowed_ips = ["10.0.0.0/8"]
    session = Raw(mt5_sim, mt5_tls[0])
    assert session.login().status_code == 403
    session.close()


def test_unauthenticated_calls_are_403(mt5_sim: Mt5SimulatorThread, mt5_tls: Any) -> None:
    session = Raw(mt5_sim, mt5_tls[0])
    for command in ("test/access", "user/get", "trade/balance", "deal/get_batch"):
        assert session.call(command, login=1).status_code == 403
    session.close()


def test_session_is_bound_to_its_connection(
    raw: Raw, mt5_sim: Mt5SimulatorThread, mt5_tls: Any
) -> None:
    other = Raw(mt5_sim, mt5_tls[0])
    # Even with the session's own cookie, a second connection is not logged in.
    other.http.cookies.set(SESSION_COOKIE, raw.http.cookies[SESSION_COOKIE])
    assert other.call("test/access").status_code == 403
    other.close()
    assert raw.ok("test/access") is None


def test_session_checks_the_cookie_when_sent(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    raw.http.cookies.set(SESSION_COOKIE, "not-the-session")
    assert raw.call("test/access").status_code == 403


def test_cookie_can_be_required(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    mt5_sim.state.config.require_cookie = True
    assert raw.ok("test/access") is None
    raw.http.cookies.clear()
    assert raw.call("test/access").status_code == 403


def test_quit_ends_the_session(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    assert len(mt5_sim.state.sessions.authenticated()) == 1
    assert raw.ok("quit") is None
    assert raw.call("test/access").status_code == 403
    assert mt5_sim.state.sessions.authenticated() == []


# --- users ------------------------------------------------------------------------------------


def _numbers_are_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_numbers_are_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(_numbers_are_strings(v) for v in value)
    return isinstance(value, str)


def test_every_number_is_a_json_string(raw: Raw) -> None:
    user = raw.add_user(Email="a@example.com", ApiData=[{"AppID": 1, "ID": 0, "ValueInt": 7}])
    assert user["Login"] == "500000"
    assert user["Balance"] == "0.00"
    assert user["Rights"] == str(0x163)
    for command in ("user/get", "user/account/get"):
        assert _numbers_are_strings(raw.call(command, login=500000).json())
    assert _numbers_are_strings(raw.call("common/get").json())


def test_user_add_takes_logins_from_the_group_range(raw: Raw) -> None:
    assert [raw.add_user()["Login"] for _ in range(2)] == ["500000", "500001"]
    assert raw.add_user("real\\pro\\std")["Login"] == "700000"
    assert raw.add_user(Login=123)["Login"] == "123"  # an explicit login outside the range is fine


def test_user_add_errors(raw: Raw) -> None:
    raw.add_user(Login=555)
    assert raw.retcode("user/add", {**GOOD_PASSWORDS, "Login": 555}, group="real\\retail\\std") == (
        3004
    )
    for _ in range(2):
        raw.add_user(TINY_GROUP)
    assert raw.retcode("user/add", GOOD_PASSWORDS, group=TINY_GROUP, leverage=10) == 3002
    assert raw.retcode("user/add", GOOD_PASSWORDS, group="no\\such", leverage=10) == 3
    # Leverage outside the group's range.
    assert raw.retcode("user/add", GOOD_PASSWORDS, group="real\\retail\\eu", leverage=50) == 3
    assert raw.retcode("user/add", GOOD_PASSWORDS, group="real\\retail\\eu", leverage=0) == 3


@pytest.mark.parametrize(
    ("password", "retcode"),
    [
        ("Ab#45678", 0),  # 8 characters, all four kinds
        ("Ab#4567890123456", 0),  # 16
        ("Ab#4567", 3006),  # 7
        ("Ab#45678901234567", 3006),  # 17
        ("nouppercase#2026", 3006),
        ("NOLOWERCASE#2026", 3006),
        ("NoDigits#here", 3006),
        ("NoSpecial2026x", 3006),
    ],
)
def test_user_add_password_rules(raw: Raw, password: str, retcode: int) -> None:
    body = {"PassMain": password, "PassInvestor": GOOD_PASSWORDS["PassInvestor"]}
    assert raw.retcode("user/add", body, group="real\\retail\\std", leverage=10) == retcode
    body = {"PassMain": GOOD_PASSWORDS["PassMain"], "PassInvestor": password}
    assert raw.retcode("user/add", body, group="real\\retail\\std", leverage=10) == retcode


def test_passwords_in_the_url_are_ignored(raw: Raw) -> None:
    code = raw.retcode(
        "user/add",
        {"Group": "real\\retail\\std"},
        pass_main="Trader#2026a",
        pass_investor="Invest#2026b",
    )
    assert code == 3006


def test_user_update_rights_group_and_leverage(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    login = int(raw.add_user(leverage=200)["Login"])
    user = raw.ok("user/update", login=login, rights=0x163 | 0x4)
    assert int(user["Rights"]) & 0x4
    # The current leverage (200) is outside real\retail\eu's 1..30: refused unless it changes too.
    assert raw.retcode("user/update", login=login, group="real\\retail\\eu") == 3
    user = raw.ok("user/update", login=login, group="real\\retail\\eu", leverage=30)
    assert (user["Group"], user["Leverage"]) == ("real\\retail\\eu", "30")
    user = raw.ok("user/update", {"Email": "new@example.com", "Balance": "1000000"}, login=login)
    assert user["Email"] == "new@example.com"
    assert user["Balance"] == "0.00"  # read-only: only trade/balance moves money
    assert raw.retcode("user/update", login=999999, leverage=10) == 13


def test_passwords_change_and_check(raw: Raw) -> None:
    login = int(raw.add_user()["Login"])
    assert (
        raw.retcode("user/check_password", login=login, type="main", password="Trader#2026a") == 0
    )
    assert raw.retcode("user/check_password", login=login, type="main", password="Wrong#2026a") == (
        3006
    )
    assert raw.retcode("user/change_password", login=login, type="main", password="weak") == 3006
    assert (
        raw.retcode("user/change_password", login=login, type="main", password="New#Pass2026") == 0
    )
    assert (
        raw.retcode("user/check_password", login=login, type="main", password="New#Pass2026") == 0
    )


def test_user_get_batch_by_logins_or_masks(raw: Raw) -> None:
    for group in ("real\\retail\\std", "real\\retail\\highrisk", "real\\pro\\std", "demo\\contest"):
        raw.add_user(group, leverage=10)

    def groups(**params: str) -> list[str]:
        return sorted(u["Group"] for u in raw.ok("user/get_batch", **params))

    assert groups(group="real\\*,!real\\pro\\*") == ["real\\retail\\highrisk", "real\\retail\\std"]
    assert groups(group="*") == sorted(
        ["real\\retail\\std", "real\\retail\\highrisk", "real\\pro\\std", "demo\\contest"]
    )
    assert groups(group="demo*") == ["demo\\contest"]
    assert [u["Login"] for u in raw.ok("user/get_batch", login="500000,700000,1")] == [
        "500000",
        "700000",
    ]
    assert raw.retcode("user/get_batch", login="500000", group="*") == 3
    assert raw.retcode("user/get_batch") == 3


def test_group_masks() -> None:
    assert group_matches("demo*,!demoforex", "demoeur")
    assert not group_matches("demo*,!demoforex", "demoforex")
    assert group_matches("real\\*", "REAL\\retail\\std")  # MT5 group names ignore case
    assert not group_matches("real\\pro\\*", "real\\retail\\std")
    assert not group_matches("!demo*", "real\\x")  # exclusions alone include nothing
    assert group_matches("real[1]*", "real[1]x")  # only * is special


# --- permissions ------------------------------------------------------------------------------


def test_manager_rights_give_retcode_8(raw: Raw, mt5_sim: Mt5SimulatorThread, mt5_tls: Any) -> None:
    retail = int(raw.add_user()["Login"])
    pro = int(raw.add_user("real\\pro\\std")["Login"])

    viewer = connect(mt5_sim, mt5_tls, 1001, "Viewer#2026")
    assert viewer.ok("user/get", login=retail)["Login"] == str(retail)
    assert viewer.retcode("trade/balance", login=retail, type=2, balance="10") == 8  # accountant
    assert viewer.retcode("user/update", login=retail, leverage=10) == 8  # edit
    assert viewer.retcode("user/add", GOOD_PASSWORDS, group="real\\retail\\std") == 8
    viewer.close()

    desk = connect(mt5_sim, mt5_tls, 1002, "Retail#2026")  # real\retail\* only
    assert desk.retcode("user/get", login=pro) == 8
    assert desk.retcode("user/add", GOOD_PASSWORDS, group="real\\pro\\std") == 8
    assert desk.retcode("user/update", login=retail, group="real\\pro\\std") == 8
    assert [u["Login"] for u in desk.ok("user/get_batch", group="*")] == [str(retail)]
    assert desk.ok("group/total")["total"] == "3"
    assert desk.retcode("trade/balance", login=retail, type=2, balance="10") == 0
    desk.close()


# --- money ------------------------------------------------------------------------------------


def test_trade_balance_deposit_withdraw_and_errors(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    login = int(raw.add_user()["Login"])
    long_comment = "deposit-ref-0123456789abcdefghijklmnop"
    ticket = raw.ok("trade/balance", login=login, type=2, balance="1000.50", comment=long_comment)
    deal = raw.ok("deal/get", ticket=ticket["Ticket"])
    assert (deal["Action"], deal["Profit"], deal["Login"]) == ("2", "1000.50", str(login))
    assert deal["Comment"] == long_comment[:31]
    assert deal["Dealer"] == str(MANAGER)

    assert raw.ok("trade/balance", login=login, type=2, balance="-200", comment="wd")
    assert raw.retcode("trade/balance", login=login, type=2, balance="-900") == 10019
    assert raw.retcode("trade/balance", login=login, type=2, balance="1000000001") == 4005
    assert raw.retcode("trade/balance", login=login, type=7, balance="10") == 3
    assert raw.retcode("trade/balance", login=login, type=2, balance="0") == 3
    assert raw.retcode("trade/balance", login=999, type=2, balance="10") == 13

    assert raw.ok("trade/balance", login=login, type=3, balance="50")  # credit
    assert raw.retcode("trade/balance", login=login, type=3, balance="-60") == 10019
    assert raw.ok("trade/balance", login=login, type=6, balance="25")  # bonus: on the balance
    account = raw.ok("user/account/get", login=login)
    assert (account["Balance"], account["Credit"], account["Equity"]) == (
        "825.50",
        "50.00",
        "875.50",
    )
    # check_margin=0 lets a correction take the balance below zero.
    assert raw.ok("trade/balance", login=login, type=2, balance="-900", check_margin=0)
    assert mt5_sim.state.users[login].balance == Decimal("-74.50")


def test_trade_balance_json_body_labelled_as_form(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    """Some clients POST a JSON body with a form content type; the server takes it."""
    login = int(raw.add_user()["Login"])
    response = raw.http.post(
        "/api/trade/balance",
        content=f'{{"login":{login},"type":2,"balance":100,"comment":"form"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["retcode"] == "0 Done"
    assert mt5_sim.state.users[login].balance == Decimal(100)


def test_equity_margin_and_free_margin_checks(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    login = int(raw.add_user(leverage=100)["Login"])
    raw.ok("trade/balance", login=login, type=2, balance="2000")
    state = mt5_sim.state
    position = state.open_position(login, "EURUSD", "buy", "1", "1.10000", commission="-7")
    state.mark_price("EURUSD", "1.10250")
    account = raw.ok("user/account/get", login=login)
    # Margin 1 lot * 100000 * 1.1 / 100; floating +250; commission already on the balance.
    assert account["Margin"] == "1100.00"
    assert account["Floating"] == "250.00"
    assert account["Equity"] == "2243.00"
    assert account["MarginFree"] == "1143.00"
    assert account["MarginLevel"] == "203.91"
    # The balance covers 1500 but the free margin does not.
    assert raw.retcode("trade/balance", login=login, type=2, balance="-1500") == 10019
    positions = raw.ok("position/get_batch", login=str(login))
    assert [p["Position"] for p in positions] == [str(position.position)]
    assert raw.ok("position/get_total", group="real\\*")["total"] == "1"
    assert raw.ok("position/get", login=login, symbol="EURUSD")["Volume"] == "10000"
    assert raw.ok("position/get_page", login=str(login), offset=1, total=10) == []

    close = state.close_position(position.position, "1.10250", commission="-7")
    assert (close.action, close.entry, close.profit) == (1, 1, Decimal("250.00"))
    account = raw.ok("user/account/get", login=login)
    assert (account["Balance"], account["Margin"], account["Equity"]) == (
        "2236.00",
        "0.00",
        "2236.00",
    )


# --- deals ------------------------------------------------------------------------------------


def test_deals_use_server_time(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    login = int(raw.add_user()["Login"])
    moment = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
    deal = mt5_sim.state.add_trade_deal(
        login, "EURUSD", "sell", 1, "0.5", "1.1", profit="12.34", time=moment
    )
    server_seconds = int(moment.timestamp()) + int(SERVER_OFFSET_HOURS * 3600)
    wire = raw.ok("deal/get", ticket=deal.deal)
    assert wire["Time"] == str(server_seconds)
    assert wire["TimeMsc"] == str(server_seconds * 1000)
    assert (wire["Volume"], wire["VolumeExt"]) == ("5000", "50000000")

    def tickets(start: int, end: int, **scope: Any) -> list[str]:
        return [d["Deal"] for d in raw.ok("deal/get_batch", **scope, **{"from": start, "to": end})]

    # A window in UTC seconds misses the deal; the same window in server time finds it.
    utc = int(moment.timestamp())
    assert tickets(utc - 60, utc + 60, login=login) == []
    assert tickets(server_seconds, server_seconds, login=login) == [str(deal.deal)]
    assert tickets(server_seconds - 1, server_seconds + 1, group="real\\retail\\*") == [
        str(deal.deal)
    ]
    assert tickets(server_seconds - 1, server_seconds + 1, group="real\\pro\\*") == []


def test_deal_batch_total_page_and_parameter_rules(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    login = int(raw.add_user()["Login"])
    moment = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    made = [
        mt5_sim.state.add_trade_deal(
            login, "EURUSD", "buy", 0, "0.1", "1.1", time=moment + timedelta(minutes=i)
        )
        for i in range(5)
    ]
    span = {"from": 0, "to": 2_000_000_000}
    assert raw.ok("deal/get_total", login=login, **span)["total"] == "5"
    page = raw.ok("deal/get_page", login=login, offset=2, total=2, **span)
    assert [d["Deal"] for d in page] == [str(d.deal) for d in made[2:4]]
    batch = raw.ok("deal/get_batch", ticket=f"{made[0].deal},{made[4].deal},1")
    assert [d["Deal"] for d in batch] == [str(made[0].deal), str(made[4].deal)]
    # POST may carry arrays.
    assert len(raw.ok("deal/get_batch", {"login": [login], **span})) == 5
    assert raw.retcode("deal/get_batch", login=login) == 3  # from/to required
    assert raw.retcode("deal/get_batch", login=login, group="*", **span) == 3
    assert raw.retcode("deal/get", ticket=1) == 13


# --- groups and server ------------------------------------------------------------------------


def test_groups(raw: Raw, mt5_sim: Mt5SimulatorThread) -> None:
    total = int(raw.ok("group/total")["total"])
    names = [raw.ok("group/next", index=i)["Group"] for i in range(total)]
    assert names == [g.name for g in mt5_sim.state.config.groups]
    group = raw.ok("group/get", group="real\\retail\\eu")
    assert (group["Currency"], group["CurrencyDigits"]) == ("EUR", "2")
    assert raw.retcode("group/get", group="nope") == 13
    assert raw.retcode("group/next", index=total) == 13


def test_common_get(raw: Raw) -> None:
    info = raw.ok("common/get")
    assert info["Name"] == "fxcrm-MT5-Simulator"
    assert info["TimeZone"] == str(int(SERVER_OFFSET_HOURS * 60))


def test_state_survives_a_restart(tmp_path: Path) -> None:
    config = Mt5SimConfig(state_file=tmp_path / "mt5.json")
    state = Mt5SimState(config)
    user = state.add_user(
        group="real\\retail\\std",
        leverage=100,
        password_main="Trader#2026a",
        password_investor="Invest#2026b",
        profile={"ID": "client-1"},
    )
    state.balance_op(user.login, 2, Decimal("99.99"), "ref-1")
    state.open_position(user.login, "XAUUSD", "sell", "0.1", "2000.00")

    again = Mt5SimState(config)
    assert again.users[user.login].balance == Decimal("99.99")
    assert again.users[user.login].profile["ID"] == "client-1"
    assert next(iter(again.deals.values())).comment == "ref-1"
    assert len(again.positions) == 1
    assert (
        again.add_user(
            group="real\\retail\\std",
            leverage=100,
            password_main="Trader#2026a",
            password_investor="Invest#2026b",
        ).login
        == user.login + 1
    )
