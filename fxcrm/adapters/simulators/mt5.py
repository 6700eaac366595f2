"""MT5 Manager Web API simulator: the REST paths, auth, rights, retcodes and units of an access server.

`Mt5SimState` is the trade server (users, deals, positions, in memory, optionally saved to JSON);
`create_mt5_simulator` puts the Web API in front of it as an ASGI app. As on a real server, a manager
session is bound to the TCP connection (the ASGI client address) and to a cookie, every number on the
wire is a JSON string, and all times are unix seconds in trade-server time, which is not UTC.

Run it: `python -m fxcrm.adapters.simulators.mt5` (HTTPS on 127.0.0.1:7101, certificate in var/certs).
"""

from __future__ import annotations

import argparse
import dataclasses
import hmac
import ipaddress
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fxcrm.adapters.platforms.mt5 import challenge_answer, password_hash
from fxcrm.adapters.simulators.tls import ensure_self_signed_cert
from fxcrm.core.config import DEV_MT5_PASSWORD

# --- retcodes --------------------------------------------------------------------------------------

RETCODE_TEXT = {
    0: "Done",
    1: "OK none",
    2: "Common error",
    3: "Invalid parameters",
    4: "Invalid data",
    7: "Network error",
    8: "Not enough permissions",
    9: "Timeout",
    10: "No connection",
    12: "Too frequent requests",
    13: "Not found",
    3002: "No free logins in the range",
    3003: "Wrong server",
    3004: "Login already exists",
    3006: "Invalid or weak password",
    4005: "Money limit reached",
    10019: "Not enough money",
}


class Mt5Error(Exception):
    """A request refused with an MT5 retcode (answered with HTTP 200, like the real server)."""

    def __init__(self, retcode: int, detail: str = "") -> None:
        super().__init__(f"{retcode} {detail or RETCODE_TEXT.get(retcode, 'Error')}")
        self.retcode = retcode


def retcode_string(code: int) -> str:
    return f"{code} {RETCODE_TEXT.get(code, 'Error')}"


# --- rights and enums ------------------------------------------------------------------------------

RIGHT_ENABLED = 0x1
RIGHT_PASSWORD = 0x2
RIGHT_TRADE_DISABLED = 0x4
RIGHT_TRAILING = 0x20
RIGHT_EXPERT = 0x40
RIGHT_REPORTS = 0x100
DEFAULT_USER_RIGHTS = (
    RIGHT_ENABLED | RIGHT_PASSWORD | RIGHT_TRAILING | RIGHT_EXPERT | RIGHT_REPORTS
)

ACTION_BUY, ACTION_SELL = 0, 1
BALANCE_ACTIONS = frozenset({2, 3, 4, 5, 6})  # balance, credit, charge, correction, bonus
ACTION_CREDIT = 3
ENTRY_IN, ENTRY_OUT = 0, 1
COMMENT_MAX = 31
PASSWORD_KINDS = ("main", "investor", "api")

# Text fields of the user record that managers may set freely.
USER_TEXT_FIELDS = (
    "Name",
    "FirstName",
    "LastName",
    "MiddleName",
    "Company",
    "Account",
    "Country",
    "City",
    "State",
    "ZIPCode",
    "Address",
    "Phone",
    "Email",
    "ID",
    "Status",
    "Comment",
    "LeadSource",
    "LeadCampaign",
)


# --- configuration ---------------------------------------------------------------------------------


class Mt5SimManager(BaseModel):
    """A manager account with the permission flags that decide what it may do over the Web API."""

    login: int
    password: str
    webapi: bool = True
    accountant: bool = True  # may post trade/balance
    edit_users: bool = True  # may add and update users and change passwords
    group_masks: str = "*"  # groups it may see and touch, MT5 mask syntax
    allowed_ips: list[str] = Field(default_factory=list)  # addresses or networks; empty: any


class Mt5SimGroup(BaseModel):
    name: str
    currency: str = "USD"
    currency_digits: int = 2
    leverage_min: int = 1
    leverage_max: int = 500
    login_min: int
    login_max: int
    margin_call: Decimal = Decimal(100)
    margin_stop_out: Decimal = Decimal(50)


class Mt5SimSymbol(BaseModel):
    name: str
    digits: int = 5
    contract_size: Decimal = Decimal(100_000)


def default_managers() -> list[Mt5SimManager]:
    return [
        Mt5SimManager(login=1000, password=DEV_MT5_PASSWORD),
        Mt5SimManager(login=1001, password="Viewer#2026", accountant=False, edit_users=False),
        Mt5SimManager(login=1002, password="Retail#2026", group_masks="real\\retail\\*"),
        Mt5SimManager(login=1003, password="NoWebApi#2026", webapi=False),
    ]


def default_groups() -> list[Mt5SimGroup]:
    return [
        Mt5SimGroup(name="real\\retail\\std", leverage_max=500, login_min=500000, login_max=599999),
        Mt5SimGroup(
            name="real\\retail\\eu",
            currency="EUR",
            leverage_max=30,
            login_min=610000,
            login_max=619999,
        ),
        Mt5SimGroup(name="real\\retail\\highrisk", leverage_max=100, login_min=620000, login_max=629999),
        Mt5SimGroup(name="real\\pro\\std", leverage_max=500, login_min=700000, login_max=799999),
        Mt5SimGroup(name="demo\\retail\\std", leverage_max=1000, login_min=2000000, login_max=2999999),
        Mt5SimGroup(name="demo\\contest", leverage_max=100, login_min=3000000, login_max=3000999),
    ]


def default_symbols() -> list[Mt5SimSymbol]:
    return [
        Mt5SimSymbol(name="EURUSD"),
        Mt5SimSymbol(name="GBPUSD"),
        Mt5SimSymbol(name="USDJPY", digits=3),
        Mt5SimSymbol(name="XAUUSD", digits=2, contract_size=Decimal(100)),
        Mt5SimSymbol(name="US500", digits=2, contract_size=Decimal(1)),
    ]


class Mt5SimConfig(BaseModel):
    server_name: str = "fxcrm-MT5-Simulator"
    company: str = "fxcrm Demo Broker Ltd"
    build: int = 4755
    # Brokers run the trade server on their own clock (often EET, UTC+2/+3); the wire carries it.
    server_utc_offset_hours: float = 2.0
    managers: list[Mt5SimManager] = Field(default_factory=default_managers)
    groups: list[Mt5SimGroup] = Field(default_factory=default_groups)
    symbols: list[Mt5SimSymbol] = Field(default_factory=default_symbols)
    max_balance_op: Decimal = Decimal(1_000_000_000)
    state_file: Path | None = None  # JSON, kept across restarts when set
    require_cookie: bool = False  # newer builds: refuse session calls that do not carry the cookie
    session_idle_seconds: float = 600.0
    # Test switch: answer cli_rand wrongly, like a server that does not know the password.
    fake_cli_rand_answer: bool = False


# --- records ---------------------------------------------------------------------------------------


@dataclass
class SimUser:
    login: int
    group: str
    leverage: int
    rights: int
    registration: int  # server time, seconds
    passwords: dict[str, str]
    balance: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    agent: int = 0
    last_pass_change: int = 0
    profile: dict[str, str] = field(default_factory=dict)
    api_data: list[dict[str, str]] = field(default_factory=list)


@dataclass
class SimDeal:
    deal: int
    login: int
    action: int
    entry: int
    time_msc: int  # server time, milliseconds
    profit: Decimal = Decimal(0)
    comment: str = ""
    symbol: str = ""
    volume: int = 0  # 1/10000 lot
    volume_ext: int = 0  # 1/1e8 lot
    price: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    storage: Decimal = Decimal(0)
    position_id: int = 0
    order: int = 0
    dealer: int = 0
    digits: int = 0
    currency_digits: int = 2
    contract_size: Decimal = Decimal(0)


@dataclass
class SimPosition:
    position: int
    login: int
    symbol: str
    action: int  # 0 buy, 1 sell
    volume: int  # 1/10000 lot
    price_open: Decimal
    price_current: Decimal
    time_create_msc: int
    margin: Decimal
    digits: int = 5
    contract_size: Decimal = Decimal(100_000)
    profit: Decimal = Decimal(0)
    storage: Decimal = Decimal(0)


# --- group masks -----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _mask_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def group_matches(mask: str, group: str) -> bool:
    """MT5 group mask: comma-separated patterns with `*`; a `!pattern` excludes (`demo*,!demoforex`)."""
    included = False
    for raw in mask.split(","):
        pattern = raw.strip()
        if not pattern:
            continue
        negative = pattern.startswith("!")
        if _mask_regex(pattern.lstrip("!")).fullmatch(group):
            if negative:
                return False
            included = True
    return included


def strong_password(password: str | None) -> bool:
    """MT5's rule: 8 to 16 characters with a lower-case letter, an upper-case one, a digit and a sign."""
    if password is None or not 8 <= len(password) <= 16:
        return False
    return (
        any(c.islower() for c in password)
        and any(c.isupper() for c in password)
        and any(c.isdigit() for c in password)
        and any(not c.isalnum() for c in password)
    )


# --- state -----------------------------------------------------------------------------------------


class Mt5SimState:
    """The simulated trade server. Every public method takes the lock, so tests may call it from
    another thread while the app serves requests."""

    def __init__(
        self, config: Mt5SimConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or Mt5SimConfig()
        self.clock = clock
        self.lock = threading.RLock()
        self.users: dict[int, SimUser] = {}
        self.deals: dict[int, SimDeal] = {}
        self.positions: dict[int, SimPosition] = {}
        self.sessions = SessionTable()
        self._next_deal = 100_001
        self._next_order = 200_001
        if self.config.state_file and self.config.state_file.exists():
            self._load(self.config.state_file)

    # time

    @property
    def _offset_ms(self) -> int:
        return int(self.config.server_utc_offset_hours * 3_600_000)

    def server_now_msc(self) -> int:
        return int(self.clock() * 1000) + self._offset_ms

    def to_server_msc(self, moment: datetime) -> int:
        """A UTC-aware datetime as trade-server milliseconds."""
        return int(moment.timestamp() * 1000) + self._offset_ms

    # lookups

    def manager(self, login: int) -> Mt5SimManager | None:
        return next((m for m in self.config.managers if m.login == login), None)

    def group(self, name: str) -> Mt5SimGroup:
        found = next((g for g in self.config.groups if g.name.lower() == name.lower()), None)
        if found is None:
            raise Mt5Error(3, f"unknown group {name}")
        return found

    def symbol(self, name: str) -> Mt5SimSymbol:
        found = next((s for s in self.config.symbols if s.name == name), None)
        return found or Mt5SimSymbol(name=name)

    def user(self, login: int) -> SimUser:
        with self.lock:
            found = self.users.get(login)
            if found is None:
                raise Mt5Error(13, f"user {login} not found")
            return found

    # users

    def add_user(
        self,
        *,
        group: str,
        leverage: int,
        password_main: str | None,
        password_investor: str | None,
        login: int = 0,
        rights: int | None = None,
        agent: int = 0,
        profile: Mapping[str, str] | None = None,
        api_data: list[dict[str, str]] | None = None,
        password_api: str | None = None,
    ) -> SimUser:
        with self.lock:
            group_cfg = self.group(group)
            self._check_leverage(group_cfg, leverage)
            for password in (password_main, password_investor):
                if not strong_password(password):
                    raise Mt5Error(3006)
            if password_api is not None and not strong_password(password_api):
                raise Mt5Error(3006)
            if login:
                if login in self.users:
                    raise Mt5Error(3004)
            else:
                login = self._free_login(group_cfg)
            now = self.server_now_msc() // 1000
            passwords = {"main": str(password_main), "investor": str(password_investor)}
            if password_api is not None:
                passwords["api"] = password_api
            user = SimUser(
                login=login,
                group=group_cfg.name,
                leverage=leverage,
                rights=DEFAULT_USER_RIGHTS if rights is None else rights,
                registration=now,
                last_pass_change=now,
                passwords=passwords,
                agent=agent,
                profile=dict(profile or {}),
                api_data=list(api_data or []),
            )
            self.users[login] = user
            self.save()
            return user

    def update_user(
        self,
        login: int,
        *,
        group: str | None = None,
        leverage: int | None = None,
        rights: int | None = None,
        agent: int | None = None,
        profile: Mapping[str, str] | None = None,
        api_data: list[dict[str, str]] | None = None,
    ) -> SimUser:
        with self.lock:
            user = self.user(login)
            target = self.group(group) if group is not None else self.group(user.group)
            # Moving to a group whose range excludes the current leverage is refused too.
            self._check_leverage(target, leverage if leverage is not None else user.leverage)
            user.group = target.name
            if leverage is not None:
                user.leverage = leverage
            if rights is not None:
                user.rights = rights
            if agent is not None:
                user.agent = agent
            user.profile.update(profile or {})
            if api_data is not None:
                user.api_data = list(api_data)
            self.save()
            return user

    def set_password(self, login: int, kind: str, password: str | None) -> None:
        with self.lock:
            user = self.user(login)
            if kind not in PASSWORD_KINDS:
                raise Mt5Error(3, f"password type {kind}")
            if not strong_password(password):
                raise Mt5Error(3006)
            user.passwords[kind] = str(password)
            user.last_pass_change = self.server_now_msc() // 1000
            self.save()

    def check_password(self, login: int, kind: str, password: str | None) -> bool:
        with self.lock:
            stored = self.user(login).passwords.get(kind)
            return stored is not None and password is not None and hmac.compare_digest(
                stored.encode(), password.encode()
            )

    def _check_leverage(self, group: Mt5SimGroup, leverage: int) -> None:
        if not group.leverage_min <= leverage <= group.leverage_max:
            raise Mt5Error(
                3, f"leverage {leverage} outside {group.leverage_min}..{group.leverage_max}"
            )

    def _free_login(self, group: Mt5SimGroup) -> int:
        used = [login for login in self.users if group.login_min <= login <= group.login_max]
        candidate = max(used, default=group.login_min - 1) + 1
        if candidate <= group.login_max:
            return candidate
        taken = set(used)
        for login in range(group.login_min, group.login_max + 1):  # gaps left by deletions
            if login not in taken:
                return login
        raise Mt5Error(3002)

    # money

    def balance_op(
        self,
        login: int,
        action: int,
        amount: Decimal,
        comment: str = "",
        *,
        check_margin: bool = True,
        dealer: int = 0,
    ) -> SimDeal:
        """trade/balance: one deal with Action 2..6; the sign says deposit or withdrawal."""
        with self.lock:
            user = self.user(login)
            if action not in BALANCE_ACTIONS:
                raise Mt5Error(3, f"balance type {action}")
            if abs(amount) > self.config.max_balance_op:
                raise Mt5Error(4005)
            digits = self.group(user.group).currency_digits
            amount = _round(amount, digits)
            if amount == 0:
                raise Mt5Error(3, "zero amount")
            if amount < 0:
                self._check_funds(user, action, -amount, check_margin)
            if action == ACTION_CREDIT:
                user.credit += amount
            else:
                user.balance += amount
            deal = self._new_deal(
                login=login,
                action=action,
                entry=ENTRY_IN,
                profit=amount,
                comment=comment[:COMMENT_MAX],
                dealer=dealer,
                currency_digits=digits,
            )
            self.save()
            return deal

    def _check_funds(self, user: SimUser, action: int, out: Decimal, check_margin: bool) -> None:
        if action == ACTION_CREDIT:
            if out > user.credit:
                raise Mt5Error(10019)
        elif check_margin and out > user.balance:
            raise Mt5Error(10019)
        if check_margin and out > self.account(user.login)["MarginFree"]:
            raise Mt5Error(10019)

    # trading (for tests and the market simulator)

    def add_trade_deal(
        self,
        login: int,
        symbol: str,
        action: int | str,
        entry: int,
        lots: Decimal | str,
        price: Decimal | str,
        *,
        profit: Decimal | str = "0",
        commission: Decimal | str = "0",
        storage: Decimal | str = "0",
        position_id: int | None = None,
        time: datetime | None = None,
        comment: str = "",
    ) -> SimDeal:
        """Record a trade deal as the trade server would: its money lands on the balance.

        `action` is "buy", "sell" or any EnDealAction number (also unknown ones, for robustness tests).
        """
        with self.lock:
            user = self.user(login)
            digits = self.group(user.group).currency_digits
            code = {"buy": ACTION_BUY, "sell": ACTION_SELL}.get(str(action).lower())
            code = int(action) if code is None else code
            money = [_round(Decimal(v), digits) for v in (profit, commission, storage)]
            user.balance += sum(money, Decimal(0))
            lots_dec = Decimal(lots)
            spec = self.symbol(symbol)
            deal = self._new_deal(
                login=login,
                action=code,
                entry=entry,
                symbol=symbol,
                volume=int(lots_dec * 10_000),
                volume_ext=int(lots_dec * 100_000_000),
                price=Decimal(price),
                profit=money[0],
                commission=money[1],
                storage=money[2],
                position_id=position_id if position_id is not None else self._order_ticket(),
                comment=comment[:COMMENT_MAX],
                time_msc=self.to_server_msc(time) if time else None,
                digits=spec.digits,
                currency_digits=digits,
                contract_size=spec.contract_size,
            )
            self.save()
            return deal

    def open_position(
        self,
        login: int,
        symbol: str,
        side: str,
        lots: Decimal | str,
        price: Decimal | str,
        *,
        commission: Decimal | str = "0",
        time: datetime | None = None,
    ) -> SimPosition:
        with self.lock:
            user = self.user(login)
            spec = self.symbol(symbol)
            lots_dec, price_dec = Decimal(lots), Decimal(price)
            deal = self.add_trade_deal(
                login,
                symbol,
                side,
                ENTRY_IN,
                lots_dec,
                price_dec,
                commission=commission,
                time=time,
            )
            digits = self.group(user.group).currency_digits
            position = SimPosition(
                position=deal.position_id,
                login=login,
                symbol=symbol,
                action=deal.action,
                volume=deal.volume,
                price_open=price_dec,
                price_current=price_dec,
                time_create_msc=deal.time_msc,
                # Simplified: quote currency taken as the account currency.
                margin=_round(lots_dec * spec.contract_size * price_dec / user.leverage, digits),
                digits=spec.digits,
                contract_size=spec.contract_size,
            )
            self.positions[position.position] = position
            self.save()
            return position

    def mark_price(self, symbol: str, price: Decimal | str) -> None:
        """Move the market: floating profit of every open position in `symbol`."""
        with self.lock:
            for position in self.positions.values():
                if position.symbol == symbol:
                    position.price_current = Decimal(price)
                    position.profit = self._position_profit(position, Decimal(price))
            self.save()

    def close_position(
        self,
        position_id: int,
        price: Decimal | str,
        *,
        commission: Decimal | str = "0",
        time: datetime | None = None,
    ) -> SimDeal:
        with self.lock:
            position = self.positions.get(position_id)
            if position is None:
                raise Mt5Error(13, f"position {position_id} not found")
            price_dec = Decimal(price)
            deal = self.add_trade_deal(
                position.login,
                position.symbol,
                ACTION_SELL if position.action == ACTION_BUY else ACTION_BUY,
                ENTRY_OUT,
                Decimal(position.volume) / 10_000,
                price_dec,
                profit=self._position_profit(position, price_dec),
                commission=commission,
                storage=position.storage,
                position_id=position.position,
                time=time,
            )
            del self.positions[position_id]
            self.save()
            return deal

    def _position_profit(self, position: SimPosition, price: Decimal) -> Decimal:
        direction = 1 if position.action == ACTION_BUY else -1
        lots = Decimal(position.volume) / 10_000
        raw = (price - position.price_open) * lots * position.contract_size * direction
        return _round(raw, self.group(self.user(position.login).group).currency_digits)

    def _order_ticket(self) -> int:
        ticket = self._next_order
        self._next_order += 1
        return ticket

    def _new_deal(self, *, time_msc: int | None = None, **values: Any) -> SimDeal:
        deal = SimDeal(
            deal=self._next_deal,
            time_msc=time_msc if time_msc is not None else self.server_now_msc(),
            order=self._order_ticket(),
            **values,
        )
        self._next_deal += 1
        self.deals[deal.deal] = deal
        return deal

    # reads

    def account(self, login: int) -> dict[str, Any]:
        """The trade account record; equity = balance + credit + floating, margin from positions."""
        with self.lock:
            user = self.user(login)
            digits = self.group(user.group).currency_digits
            positions = [p for p in self.positions.values() if p.login == login]
            profit = sum((p.profit for p in positions), Decimal(0))
            storage = sum((p.storage for p in positions), Decimal(0))
            margin = sum((p.margin for p in positions), Decimal(0))
            floating = profit + storage
            equity = user.balance + user.credit + floating
            level = _round(equity / margin * 100, 2) if margin else Decimal(0)
            return {
                "Login": login,
                "CurrencyDigits": digits,
                "Balance": _round(user.balance, digits),
                "Credit": _round(user.credit, digits),
                "Margin": _round(margin, digits),
                "MarginFree": _round(equity - margin, digits),
                "MarginLevel": level,
                "MarginLeverage": user.leverage,
                "MarginInitial": Decimal(0),
                "MarginMaintenance": Decimal(0),
                "Profit": _round(profit, digits),
                "Storage": _round(storage, digits),
                "Floating": _round(floating, digits),
                "Equity": _round(equity, digits),
                "SOActivation": 0,
                "SOTime": 0,
                "SOLevel": Decimal(0),
                "SOEquity": Decimal(0),
                "SOMargin": Decimal(0),
                "BlockedCommission": Decimal(0),
                "BlockedProfit": Decimal(0),
                "Assets": Decimal(0),
                "Liabilities": Decimal(0),
            }

    def user_record(self, user: SimUser) -> dict[str, Any]:
        digits = self.group(user.group).currency_digits
        record: dict[str, Any] = {
            "Login": user.login,
            "Group": user.group,
            "CertSerialNumber": 0,
            "Rights": user.rights,
            "MQID": "",
            "Registration": user.registration,
            "LastAccess": user.registration,
            "LastPassChange": user.last_pass_change,
            "LastIP": "",
        }
        record.update({name: user.profile.get(name, "") for name in USER_TEXT_FIELDS})
        record.update(
            {
                "Language": 0,
                "Color": 4278190080,
                "Leverage": user.leverage,
                "Agent": user.agent,
                "Balance": _round(user.balance, digits),
                "Credit": _round(user.credit, digits),
                "InterestRate": Decimal(0),
                "CommissionDaily": Decimal(0),
                "CommissionMonthly": Decimal(0),
                "CommissionAgentDaily": Decimal(0),
                "CommissionAgentMonthly": Decimal(0),
                "BalancePrevDay": Decimal(0),
                "BalancePrevMonth": Decimal(0),
                "EquityPrevDay": Decimal(0),
                "EquityPrevMonth": Decimal(0),
                "TradeAccounts": "",
                "LimitOrders": 0,
                "LimitPositions": Decimal(0),
                "ApiData": user.api_data,
            }
        )
        return record

    def deals_for(
        self,
        *,
        logins: Iterable[int] | None = None,
        mask: str | None = None,
        start: int | None = None,
        end: int | None = None,
        symbol: str | None = None,
    ) -> list[SimDeal]:
        """Deals by login list or group mask, `Time` within [start, end] (server seconds), by ticket."""
        with self.lock:
            wanted = set(logins) if logins is not None else None
            found = []
            for deal in self.deals.values():
                if wanted is not None and deal.login not in wanted:
                    continue
                if mask is not None and not self._in_groups(deal.login, mask):
                    continue
                seconds = deal.time_msc // 1000
                if (start is not None and seconds < start) or (end is not None and seconds > end):
                    continue
                if symbol and deal.symbol != symbol:
                    continue
                found.append(deal)
            return sorted(found, key=lambda d: d.deal)

    def _in_groups(self, login: int, mask: str) -> bool:
        user = self.users.get(login)
        return user is not None and group_matches(mask, user.group)

    # persistence

    def save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        with self.lock:
            snapshot = {
                "users": [dataclasses.asdict(u) for u in self.users.values()],
                "deals": [dataclasses.asdict(d) for d in self.deals.values()],
                "positions": [dataclasses.asdict(p) for p in self.positions.values()],
                "next_deal": self._next_deal,
                "next_order": self._next_order,
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(snapshot, default=str, indent=1))
            os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        snapshot = json.loads(path.read_text())
        self.users = {u["login"]: _from_plain(SimUser, u) for u in snapshot.get("users", [])}
        self.deals = {d["deal"]: _from_plain(SimDeal, d) for d in snapshot.get("deals", [])}
        self.positions = {
            p["position"]: _from_plain(SimPosition, p) for p in snapshot.get("positions", [])
        }
        self._next_deal = snapshot.get("next_deal", self._next_deal)
        self._next_order = snapshot.get("next_order", self._next_order)


def _round(value: Decimal, digits: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)


def _from_plain(cls: type[Any], data: Mapping[str, Any]) -> Any:
    """Rebuild a record dataclass from JSON, turning Decimal fields back from strings."""
    values = {}
    for item in dataclasses.fields(cls):
        if item.name in data:
            value = data[item.name]
            values[item.name] = Decimal(value) if item.type == "Decimal" else value
    return cls(**values)


# --- wire format -----------------------------------------------------------------------------------


def to_wire(value: Any) -> Any:
    """Every number as a JSON string, as the real server sends them."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    return value


def deal_record(deal: SimDeal) -> dict[str, Any]:
    return {
        "Deal": deal.deal,
        "ExternalID": "",
        "Login": deal.login,
        "Dealer": deal.dealer,
        "Order": deal.order,
        "Action": deal.action,
        "Entry": deal.entry,
        "Reason": 0,
        "Digits": deal.digits,
        "DigitsCurrency": deal.currency_digits,
        "ContractSize": deal.contract_size,
        "Time": deal.time_msc // 1000,
        "TimeMsc": deal.time_msc,
        "Symbol": deal.symbol,
        "Price": deal.price,
        "PriceSL": Decimal(0),
        "PriceTP": Decimal(0),
        "PricePosition": Decimal(0),
        "Volume": deal.volume,
        "VolumeExt": deal.volume_ext,
        "VolumeClosed": deal.volume if deal.entry != ENTRY_IN else 0,
        "Profit": deal.profit,
        "Value": Decimal(0),
        "Storage": deal.storage,
        "Commission": deal.commission,
        "RateProfit": Decimal(1),
        "RateMargin": Decimal(1),
        "ExpertID": 0,
        "PositionID": deal.position_id,
        "Comment": deal.comment,
        "Flags": 0,
        "ModificationFlags": 0,
        "Gateway": "",
        "ApiData": [],
    }


def position_record(position: SimPosition) -> dict[str, Any]:
    return {
        "Position": position.position,
        "ExternalID": "",
        "Login": position.login,
        "Dealer": 0,
        "Symbol": position.symbol,
        "Action": position.action,
        "Digits": position.digits,
        "DigitsCurrency": 2,
        "Reason": 0,
        "ContractSize": position.contract_size,
        "TimeCreate": position.time_create_msc // 1000,
        "TimeUpdate": position.time_create_msc // 1000,
        "TimeCreateMsc": position.time_create_msc,
        "TimeUpdateMsc": position.time_create_msc,
        "PriceOpen": position.price_open,
        "PriceCurrent": position.price_current,
        "PriceSL": Decimal(0),
        "PriceTP": Decimal(0),
        "Volume": position.volume,
        "VolumeExt": position.volume * 10_000,
        "Profit": position.profit,
        "Storage": position.storage,
        "RateProfit": Decimal(1),
        "RateMargin": Decimal(1),
        "ExpertID": 0,
        "ExpertPositionID": 0,
        "Comment": "",
        "ApiData": [],
    }


def group_record(group: Mt5SimGroup, company: str) -> dict[str, Any]:
    return {
        "Group": group.name,
        "Server": 0,
        "Company": company,
        "Currency": group.currency,
        "CurrencyDigits": group.currency_digits,
        "MarginCall": group.margin_call,
        "MarginStopOut": group.margin_stop_out,
        # Not MT5 fields: the simulator's leverage policy and login range, shown for debugging.
        "LeverageMin": group.leverage_min,
        "LeverageMax": group.leverage_max,
        "LoginMin": group.login_min,
        "LoginMax": group.login_max,
    }


# --- sessions --------------------------------------------------------------------------------------

SESSION_COOKIE = "MT5WebAPI"
Connection = tuple[str, int]


@dataclass
class Mt5Session:
    cookie: str
    login: int
    srv_rand: bytes
    authenticated: bool = False
    last_seen: float = field(default_factory=time.monotonic)


class SessionTable:
    """Manager sessions keyed by the TCP connection (peer host, port) they were opened on."""

    def __init__(self) -> None:
        self._by_connection: dict[Connection, Mt5Session] = {}
        self._lock = threading.Lock()

    def start(self, connection: Connection, login: int, srv_rand: bytes) -> Mt5Session:
        session = Mt5Session(cookie=secrets.token_hex(16), login=login, srv_rand=srv_rand)
        with self._lock:
            self._by_connection[connection] = session
        return session

    def get(self, connection: Connection) -> Mt5Session | None:
        with self._lock:
            return self._by_connection.get(connection)

    def end(self, connection: Connection) -> None:
        with self._lock:
            self._by_connection.pop(connection, None)

    def expire(self, idle_seconds: float) -> None:
        cutoff = time.monotonic() - idle_seconds
        with self._lock:
            for connection, session in list(self._by_connection.items()):
                if session.last_seen < cutoff:
                    del self._by_connection[connection]

    def drop_all(self) -> None:
        """Forget every session, as a restarted access server would."""
        with self._lock:
            self._by_connection.clear()

    def authenticated(self) -> list[Mt5Session]:
        with self._lock:
            return [s for s in self._by_connection.values() if s.authenticated]


# --- requests --------------------------------------------------------------------------------------


def _norm(key: str) -> str:
    """`pass_main`, `PassMain` and `passmain` name the same parameter."""
    return key.replace("_", "").lower()


class Params:
    """Query parameters merged with a JSON body (the body wins), looked up case-insensitively."""

    def __init__(self, query: Mapping[str, str], body: object) -> None:
        self.body: dict[str, Any] = body if isinstance(body, dict) else {}
        self.body_list: list[Any] | None = body if isinstance(body, list) else None
        self._values: dict[str, Any] = {_norm(k): v for k, v in query.items()}
        self._values.update({_norm(k): v for k, v in self.body.items()})
        self._body_values = {_norm(k): v for k, v in self.body.items()}

    def has(self, name: str) -> bool:
        return _norm(name) in self._values

    def text(self, name: str) -> str | None:
        value = self._values.get(_norm(name))
        return None if value is None else str(value)

    def body_text(self, name: str) -> str | None:
        value = self._body_values.get(_norm(name))
        return None if value is None else str(value)

    def integer(self, name: str) -> int | None:
        value = self._values.get(_norm(name))
        if value is None or value == "":
            return None
        try:
            return int(str(value))
        except ValueError as exc:
            raise Mt5Error(3, f"{name} is not an integer") from exc

    def required_int(self, name: str) -> int:
        value = self.integer(name)
        if value is None:
            raise Mt5Error(3, f"{name} is required")
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self._values.get(_norm(name))
        if value is None or value == "":
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise Mt5Error(3, f"{name} is not a number") from exc

    def int_list(self, name: str) -> list[int] | None:
        """`login=1,2,3` in the query, or an array (of numbers or strings) in a POST body."""
        value = self._values.get(_norm(name))
        if value is None:
            return None
        items = value if isinstance(value, list) else str(value).split(",")
        try:
            return [int(str(item).strip()) for item in items if str(item).strip()]
        except ValueError as exc:
            raise Mt5Error(3, f"{name} is not a list of integers") from exc


async def _read_body(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        pass
    # Some clients send form data; others send JSON labelled as form data (handled above).
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    raise Mt5Error(3, "body is not JSON")


def _reply(code: int, answer: Any = None, **extra: Any) -> Response:
    payload: dict[str, Any] = {"retcode": retcode_string(code), **to_wire(extra)}
    if answer is not None:
        payload["answer"] = to_wire(answer)
    return Response(json.dumps(payload, ensure_ascii=False), media_type="application/json")


def _forbidden(code: int = 8) -> Response:
    return Response(
        json.dumps({"retcode": retcode_string(code)}),
        status_code=403,
        media_type="application/json",
    )


# --- command handlers ------------------------------------------------------------------------------


@dataclass
class Ctx:
    state: Mt5SimState
    manager: Mt5SimManager
    params: Params

    def require(self, *, accountant: bool = False, edit: bool = False) -> None:
        if (accountant and not self.manager.accountant) or (edit and not self.manager.edit_users):
            raise Mt5Error(8)

    def in_scope(self, group: str) -> bool:
        return group_matches(self.manager.group_masks, group)

    def require_scope(self, group: str) -> None:
        if not self.in_scope(group):
            raise Mt5Error(8, f"no permission over group {group}")

    def scoped_user(self, login: int) -> SimUser:
        user = self.state.user(login)
        self.require_scope(user.group)
        return user

    def logins_or_group(self) -> tuple[list[int] | None, str | None]:
        """Exactly one of `login` (list) and `group` (mask), as the real server insists."""
        logins = self.params.int_list("login")
        if logins is None and self.params.body_list is not None:
            logins = [int(str(item)) for item in self.params.body_list]
        group = self.params.text("group")
        if (logins is None) == (group is None):
            raise Mt5Error(3, "give login or group, not both")
        return logins, group

    def scoped_users(self) -> list[SimUser]:
        logins, mask = self.logins_or_group()
        if logins is not None:
            users = [self.state.users[login] for login in logins if login in self.state.users]
        else:
            users = [u for u in self.state.users.values() if group_matches(str(mask), u.group)]
        return sorted((u for u in users if self.in_scope(u.group)), key=lambda u: u.login)

    def deal_range(self) -> tuple[int, int]:
        start, end = self.params.integer("from"), self.params.integer("to")
        if start is None or end is None:
            raise Mt5Error(3, "from and to are required")
        return start, end

    def scoped_deals(self) -> list[SimDeal]:
        logins, mask = self.logins_or_group()
        start, end = self.deal_range()
        deals = self.state.deals_for(
            logins=logins, mask=mask, start=start, end=end, symbol=self.params.text("symbol")
        )
        return [d for d in deals if self.in_scope(self.state.user(d.login).group)]

    def scoped_positions(self) -> list[SimPosition]:
        users = {u.login for u in self.scoped_users()}
        symbol = self.params.text("symbol")
        return sorted(
            (
                p
                for p in self.state.positions.values()
                if p.login in users and (not symbol or p.symbol == symbol)
            ),
            key=lambda p: p.position,
        )

    def page(self, items: list[Any]) -> list[Any]:
        offset = self.params.integer("offset") or 0
        total = self.params.integer("total")
        if offset < 0 or (total is not None and total < 0):
            raise Mt5Error(3, "negative offset or total")
        return items[offset : offset + total] if total is not None else items[offset:]

    def visible_groups(self) -> list[Mt5SimGroup]:
        return [g for g in self.state.config.groups if self.in_scope(g.name)]

    def profile(self) -> dict[str, str]:
        return {
            name: str(self.params.text(name))
            for name in USER_TEXT_FIELDS
            if self.params.has(name)
        }

    def api_data(self) -> list[dict[str, str]] | None:
        cells = self.params.body.get("ApiData")
        if cells is None:
            return None
        if not isinstance(cells, list) or len(cells) > 16:
            raise Mt5Error(3, "ApiData is a list of at most 16 cells")
        return [{str(k): str(v) for k, v in dict(cell).items()} for cell in cells]


def _common_get(ctx: Ctx) -> Any:
    config = ctx.state.config
    return {
        "Name": config.server_name,
        "Owner": config.company,
        "OwnerID": "fxcrm-sim",
        "Product": "MetaTrader 5 Web API simulator",
        "Build": config.build,
        "TimeZone": int(config.server_utc_offset_hours * 60),  # minutes, as in MT5's time config
    }


def _user_add(ctx: Ctx) -> Any:
    ctx.require(edit=True)
    group = ctx.params.text("group")
    if not group:
        raise Mt5Error(3, "group is required")
    group_cfg = ctx.state.group(group)
    ctx.require_scope(group_cfg.name)
    leverage = ctx.params.integer("leverage")
    user = ctx.state.add_user(
        group=group_cfg.name,
        leverage=leverage if leverage is not None else min(100, group_cfg.leverage_max),
        # Passwords are read from the body only: a URL ends up in logs.
        password_main=ctx.params.body_text("PassMain"),
        password_investor=ctx.params.body_text("PassInvestor"),
        password_api=ctx.params.body_text("PassApi"),
        login=ctx.params.integer("login") or 0,
        rights=ctx.params.integer("rights"),
        agent=ctx.params.integer("agent") or 0,
        profile=ctx.profile(),
        api_data=ctx.api_data(),
    )
    return ctx.state.user_record(user)


def _user_update(ctx: Ctx) -> Any:
    ctx.require(edit=True)
    user = ctx.scoped_user(ctx.params.required_int("login"))
    group = ctx.params.text("group")
    if group is not None:
        ctx.require_scope(ctx.state.group(group).name)
    updated = ctx.state.update_user(
        user.login,
        group=group,
        leverage=ctx.params.integer("leverage"),
        rights=ctx.params.integer("rights"),
        agent=ctx.params.integer("agent"),
        profile=ctx.profile(),
        api_data=ctx.api_data(),
    )
    return ctx.state.user_record(updated)


def _user_get(ctx: Ctx) -> Any:
    return ctx.state.user_record(ctx.scoped_user(ctx.params.required_int("login")))


def _user_get_batch(ctx: Ctx) -> Any:
    return [ctx.state.user_record(u) for u in ctx.scoped_users()]


def _password_args(ctx: Ctx) -> tuple[int, str, str | None]:
    login = ctx.params.required_int("login")
    kind = (ctx.params.text("type") or "main").lower()
    return login, kind, ctx.params.text("password")


def _user_change_password(ctx: Ctx) -> Any:
    ctx.require(edit=True)
    login, kind, password = _password_args(ctx)
    ctx.scoped_user(login)
    ctx.state.set_password(login, kind, password)
    return None


def _user_check_password(ctx: Ctx) -> Any:
    login, kind, password = _password_args(ctx)
    ctx.scoped_user(login)
    if not ctx.state.check_password(login, kind, password):
        raise Mt5Error(3006)
    return None


def _account_get(ctx: Ctx) -> Any:
    return ctx.state.account(ctx.scoped_user(ctx.params.required_int("login")).login)


def _account_get_batch(ctx: Ctx) -> Any:
    return [ctx.state.account(u.login) for u in ctx.scoped_users()]


def _trade_balance(ctx: Ctx) -> Any:
    ctx.require(accountant=True)
    user = ctx.scoped_user(ctx.params.required_int("login"))
    amount = ctx.params.decimal("balance")
    if amount is None:
        raise Mt5Error(3, "balance is required")
    check_margin = ctx.params.integer("check_margin")
    deal = ctx.state.balance_op(
        user.login,
        ctx.params.required_int("type"),
        amount,
        ctx.params.text("comment") or "",
        check_margin=check_margin != 0,
        dealer=ctx.manager.login,
    )
    return {"Ticket": deal.deal}


def _deal_get(ctx: Ctx) -> Any:
    deal = ctx.state.deals.get(ctx.params.required_int("ticket"))
    if deal is None:
        raise Mt5Error(13)
    ctx.scoped_user(deal.login)
    return deal_record(deal)


def _deal_get_batch(ctx: Ctx) -> Any:
    tickets = ctx.params.int_list("ticket")
    if tickets is not None:
        if ctx.params.has("login") or ctx.params.has("group"):
            raise Mt5Error(3, "give one of ticket, login and group")
        deals = [ctx.state.deals[t] for t in tickets if t in ctx.state.deals]
        return [deal_record(d) for d in deals if ctx.in_scope(ctx.state.user(d.login).group)]
    return [deal_record(d) for d in ctx.scoped_deals()]


def _deal_get_total(ctx: Ctx) -> Any:
    return {"total": len(ctx.scoped_deals())}


def _deal_get_page(ctx: Ctx) -> Any:
    return [deal_record(d) for d in ctx.page(ctx.scoped_deals())]


def _position_get(ctx: Ctx) -> Any:
    user = ctx.scoped_user(ctx.params.required_int("login"))
    symbol = ctx.params.text("symbol")
    for position in ctx.state.positions.values():
        if position.login == user.login and position.symbol == symbol:
            return position_record(position)
    raise Mt5Error(13)


def _position_get_batch(ctx: Ctx) -> Any:
    return [position_record(p) for p in ctx.scoped_positions()]


def _position_get_total(ctx: Ctx) -> Any:
    return {"total": len(ctx.scoped_positions())}


def _position_get_page(ctx: Ctx) -> Any:
    return [position_record(p) for p in ctx.page(ctx.scoped_positions())]


def _group_get(ctx: Ctx) -> Any:
    name = ctx.params.text("group")
    if not name:
        raise Mt5Error(3, "group is required")
    try:
        group = ctx.state.group(name)
    except Mt5Error:
        raise Mt5Error(13) from None
    ctx.require_scope(group.name)
    return group_record(group, ctx.state.config.company)


def _group_total(ctx: Ctx) -> Any:
    return {"total": len(ctx.visible_groups())}


def _group_next(ctx: Ctx) -> Any:
    index = ctx.params.required_int("index")
    groups = ctx.visible_groups()
    if not 0 <= index < len(groups):
        raise Mt5Error(13)
    return group_record(groups[index], ctx.state.config.company)


HANDLERS: dict[str, Callable[[Ctx], Any]] = {
    "test/access": lambda ctx: None,
    "common/get": _common_get,
    "user/add": _user_add,
    "user/update": _user_update,
    "user/get": _user_get,
    "user/get_batch": _user_get_batch,
    "user/change_password": _user_change_password,
    "user/check_password": _user_check_password,
    "user/account/get": _account_get,
    "user/account/get_batch": _account_get_batch,
    "trade/balance": _trade_balance,
    "deal/get": _deal_get,
    "deal/get_batch": _deal_get_batch,
    "deal/get_total": _deal_get_total,
    "deal/get_page": _deal_get_page,
    "position/get": _position_get,
    "position/get_batch": _position_get_batch,
    "position/get_total": _position_get_total,
    "position/get_page": _position_get_page,
    "group/get": _group_get,
    "group/total": _group_total,
    "group/next": _group_next,
}


# --- the app ---------------------------------------------------------------------------------------


class Mt5WebApi:
    """The access server: sessions, the challenge-response login, then command dispatch."""

    def __init__(self, state: Mt5SimState) -> None:
        self.state = state

    async def endpoint(self, request: Request) -> Response:
        command = request.path_params["command"].strip("/").lower()
        peer = request.client
        connection: Connection = (peer.host, peer.port) if peer else ("", 0)
        try:
            params = Params(request.query_params, await _read_body(request))
        except Mt5Error as exc:
            return _reply(exc.retcode)
        if command == "auth/start":
            return self._auth_start(request, connection, params)
        if command == "auth/answer":
            return self._auth_answer(request, connection, params)

        session = self._live_session(request, connection)
        if session is None:
            return _forbidden()
        if command == "quit":
            self.state.sessions.end(connection)
            return _reply(0)
        handler = HANDLERS.get(command)
        manager = self.state.manager(session.login)
        if handler is None or manager is None:
            return Response(json.dumps({"retcode": retcode_string(3)}), status_code=404)
        try:
            with self.state.lock:
                answer = handler(Ctx(self.state, manager, params))
        except Mt5Error as exc:
            return _reply(exc.retcode)
        return _reply(0, answer)

    def _live_session(self, request: Request, connection: Connection) -> Mt5Session | None:
        """The authenticated session of this very connection, if the cookie (when sent) agrees."""
        sessions = self.state.sessions
        sessions.expire(self.state.config.session_idle_seconds)
        session = sessions.get(connection)
        if session is None or not session.authenticated:
            return None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None and self.state.config.require_cookie:
            return None
        if cookie is not None and not hmac.compare_digest(cookie, session.cookie):
            return None
        session.last_seen = time.monotonic()
        return session

    def _auth_start(self, request: Request, connection: Connection, params: Params) -> Response:
        try:
            login = params.required_int("login")
        except Mt5Error as exc:
            return _reply(exc.retcode)
        if (params.text("type") or "manager").lower() != "manager":
            return _reply(3)
        self.state.sessions.expire(self.state.config.session_idle_seconds)
        # Unknown logins get a challenge too: the answer step refuses them, revealing nothing.
        srv_rand = secrets.token_bytes(16)
        session = self.state.sessions.start(connection, login, srv_rand)
        response = _reply(0, version_access=self.state.config.build, srv_rand=srv_rand.hex())
        response.set_cookie(
            SESSION_COOKIE,
            session.cookie,
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="strict",
        )
        return response

    def _auth_answer(self, request: Request, connection: Connection, params: Params) -> Response:
        sessions = self.state.sessions
        session = sessions.get(connection)
        if session is None or session.authenticated:
            return _forbidden()
        # A challenge is answered once, right or wrong.
        sessions.end(connection)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None and not hmac.compare_digest(cookie, session.cookie):
            return _forbidden()
        try:
            cli_rand = bytes.fromhex(params.text("cli_rand") or "")
        except ValueError:
            return _reply(3)
        if len(cli_rand) != 16:
            return _reply(3)
        manager = self.state.manager(session.login)
        if manager is None:
            return _forbidden(3006)
        pw_hash = password_hash(manager.password)
        expected = challenge_answer(pw_hash, session.srv_rand)
        if not hmac.compare_digest((params.text("srv_rand_answer") or "").lower(), expected):
            return _forbidden(3006)
        if not manager.webapi or not _ip_allowed(manager, connection[0]):
            return _forbidden(8)
        session.authenticated = True
        session.last_seen = time.monotonic()
        sessions.start_from(connection, session)
        if self.state.config.fake_cli_rand_answer:
            cli_answer = secrets.token_hex(16)
        else:
            cli_answer = challenge_answer(pw_hash, cli_rand)
        return _reply(0, cli_rand_answer=cli_answer, version_trade=self.state.config.build)


def _ip_allowed(manager: Mt5SimManager, host: str) -> bool:
    if not manager.allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in manager.allowed_ips)


def create_mt5_simulator(
    config: Mt5SimConfig | None = None, *, state: Mt5SimState | None = None
) -> Starlette:
    """The ASGI app. `app.state.mt5` is the `Mt5SimState` behind it."""
    state = state or Mt5SimState(config)
    api = Mt5WebApi(state)
    app = Starlette(
        routes=[Route("/api/{command:path}", api.endpoint, methods=["GET", "POST"])]
    )
    app.state.mt5 = state
    return app


# --- serving ---------------------------------------------------------------------------------------

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7101
# Keep idle connections long: the session dies with the connection.
KEEPALIVE_SECONDS = 120


def _uvicorn_config(
    app: Starlette, host: str, port: int, certfile: Path | str | None, keyfile: Path | str | None
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        timeout_keep_alive=KEEPALIVE_SECONDS,
        timeout_graceful_shutdown=2,
        lifespan="off",
        log_level="warning",
    )


async def serve_mt5_simulator(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: Mt5SimConfig | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
) -> None:
    """Serve until cancelled; HTTPS when a certificate is given."""
    app = create_mt5_simulator(config)
    await uvicorn.Server(_uvicorn_config(app, host, port, certfile, keyfile)).serve()


class Mt5SimulatorThread:
    """The simulator under uvicorn in a background thread (tests, scripts). Port 0 picks a free one."""

    def __init__(
        self,
        config: Mt5SimConfig | None = None,
        *,
        state: Mt5SimState | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
    ) -> None:
        self.state = state or Mt5SimState(config)
        self.app = create_mt5_simulator(state=self.state)
        self.host = host
        self.port = port
        self._certfile, self._keyfile = certfile, keyfile
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self._certfile else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Mt5SimulatorThread:
        # Bind here, so the port is known (and ours) before the server starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = _uvicorn_config(self.app, self.host, self.port, self._certfile, self._keyfile)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="mt5-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("MT5 simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Mt5SimulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MT5 Manager Web API simulator (HTTPS)")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--cert-dir", default="var/certs", help="self-signed certificate made here")
    parser.add_argument("--state-file", default=None, help="JSON file that keeps accounts")
    parser.add_argument("--utc-offset", type=float, default=None, help="trade-server UTC offset, h")
    parser.add_argument("--plain-http", action="store_true", help="no TLS (debugging only)")
    args = parser.parse_args(argv)

    config = Mt5SimConfig()
    if args.state_file:
        config.state_file = Path(args.state_file)
    if args.utc_offset is not None:
        config.server_utc_offset_hours = args.utc_offset
    certfile = keyfile = None
    if not args.plain_http:
        certfile, keyfile = ensure_self_signed_cert(args.cert_dir)
    app = create_mt5_simulator(config)
    uvicorn.Server(_uvicorn_config(app, args.host, args.port, certfile, keyfile)).run()


if __name__ == "__main__":
    main()
