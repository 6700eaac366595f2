"""The simulated trade server: users, money, trades and the reads the Web API serves."""

from __future__ import annotations

import bisect
import dataclasses
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from fxcrm.adapters.simulators.market.contract import SimAccountInfo, SimFill
from fxcrm.adapters.simulators.market.instruments import INSTRUMENTS, Rates
from fxcrm.adapters.simulators.mt5.config import (
    Mt5SimConfig,
    Mt5SimGroup,
    Mt5SimManager,
    Mt5SimSymbol,
)
from fxcrm.adapters.simulators.mt5.protocol import (
    ACTION_BUY,
    ACTION_CREDIT,
    ACTION_SELL,
    BALANCE_ACTIONS,
    COMMENT_MAX,
    DEFAULT_USER_RIGHTS,
    ENTRY_IN,
    ENTRY_INOUT,
    ENTRY_OUT,
    ENTRY_OUT_BY,
    PASSWORD_KINDS,
    REASON_CLIENT,
    REASON_SL,
    REASON_SO,
    REASON_TP,
    RIGHT_ENABLED,
    RIGHT_TRADE_DISABLED,
    USER_TEXT_FIELDS,
    Mt5Error,
)
from fxcrm.adapters.simulators.mt5.records import SimDeal, SimPosition, SimUser
from fxcrm.adapters.simulators.mt5.sessions import SessionTable
from fxcrm.adapters.simulators.persistence import ThrottledSave


@lru_cache(maxsize=256)
def _mask_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def group_matches(mask: str, group: str) -> bool:
    """MT5 group mask: comma-separated patterns with `*`; `!p` excludes (`demo*,!demoforex`)."""
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
    """MT5's rule: 8 to 16 characters, with lower and upper case, a digit and a sign."""
    if password is None or not 8 <= len(password) <= 16:
        return False
    return (
        any(c.islower() for c in password)
        and any(c.isupper() for c in password)
        and any(c.isdigit() for c in password)
        and any(not c.isalnum() for c in password)
    )


_ENTRIES = {"in": ENTRY_IN, "out": ENTRY_OUT, "inout": ENTRY_INOUT, "out_by": ENTRY_OUT_BY}
_REASONS = {"client": REASON_CLIENT, "sl": REASON_SL, "tp": REASON_TP, "stop_out": REASON_SO}
_RATES = Rates(INSTRUMENTS)


class Mt5SimState(ThrottledSave):
    """The simulated trade server. Every public method takes the lock, so tests may call it from
    another thread while the app serves requests.

    It is also a `SimulatedPlatform`: the market engine (fxcrm.adapters.simulators.market) trades
    on it through `sim_accounts`, `sim_apply_fill` and `sim_mark_prices`.
    """

    platform = "mt5"

    def __init__(
        self, config: Mt5SimConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or Mt5SimConfig()
        self.clock = clock
        self.lock = threading.RLock()
        self.users: dict[int, SimUser] = {}
        self.deals: dict[int, SimDeal] = {}
        # (time_msc, ticket), sorted: a time window is found by bisection, not by a full scan.
        self._deal_times: list[tuple[int, int]] = []
        self.positions: dict[int, SimPosition] = {}
        self.sessions = SessionTable()
        self._next_deal = 100_001
        self._next_order = 200_001
        self.marks: dict[str, Decimal] = {}  # latest mid prices from the market engine
        if self.config.state_file and self.config.state_file.exists():
            self._load(self.config.state_file)

    # time

    @property
    def _offset_ms(self) -> int:
        return int(self.config.server_utc_offset_hours * 3_600_000)

    def server_now_msc(self) -> int:
        return int(self.clock() * 1000) + self._offset_ms

    def to_server_msc(self, moment: datetime) -> int:
        """An aware datetime as trade-server milliseconds."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) datetime")
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
            return (
                stored is not None
                and password is not None
                and hmac.compare_digest(stored.encode(), password.encode())
            )

    def _check_leverage(self, group: Mt5SimGroup, leverage: int) -> None:
        if not group.leverage_min <= leverage <= group.leverage_max:
            raise Mt5Error(
                3,
                f"invalid leverage {leverage}: group {group.name} allows "
                f"{group.leverage_min}..{group.leverage_max}",
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

        `action` is "buy", "sell" or any EnDealAction number (unknown ones too, for tests).
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
        bisect.insort(self._deal_times, (deal.time_msc, deal.deal))
        return deal

    # the market engine's side (SimulatedPlatform)

    def sim_accounts(self) -> list[SimAccountInfo]:
        """Users that may trade: enabled, trading not disabled, in a known group."""
        with self.lock:
            found = []
            for user in self.users.values():
                if not user.rights & RIGHT_ENABLED or user.rights & RIGHT_TRADE_DISABLED:
                    continue
                group = next(
                    (g for g in self.config.groups if g.name.lower() == user.group.lower()), None
                )
                if group is None:
                    continue
                found.append(
                    SimAccountInfo(
                        login=user.login,
                        currency=group.currency,
                        balance=user.balance,
                        leverage=user.leverage,
                        hedging=group.hedging,
                    )
                )
            return found

    def sim_apply_fill(self, fill: SimFill) -> str:
        """One trade deal (Action 0/1, Entry 0..3, Reason) and its effect on the position and
        the balance (profit + commission + swap); returns the deal ticket."""
        with self.lock:
            user = self.user(fill.login)
            digits = self.group(user.group).currency_digits
            money = [_round(v, digits) for v in (fill.profit, fill.commission, fill.swap)]
            user.balance += money[0] + money[1] + money[2]
            action = ACTION_BUY if fill.side == "buy" else ACTION_SELL
            known = INSTRUMENTS.get(fill.symbol)
            symbol_digits = known.digits if known else self.symbol(fill.symbol).digits
            deal = self._new_deal(
                login=fill.login,
                action=action,
                entry=_ENTRIES[fill.entry],
                reason=_REASONS.get(fill.reason, REASON_CLIENT),
                symbol=fill.symbol,
                volume=int(fill.lots * 10_000),
                volume_ext=int(fill.lots * 100_000_000),
                price=fill.price,
                profit=money[0],
                commission=money[1],
                storage=money[2],
                position_id=fill.position_id,
                time_msc=self.to_server_msc(fill.time),
                digits=symbol_digits,
                currency_digits=digits,
                contract_size=fill.contract_size,
            )
            self._apply_to_position(fill, deal, user, money[1])
            self.save_now_and_then()
            return str(deal.deal)

    def _apply_to_position(
        self, fill: SimFill, deal: SimDeal, user: SimUser, commission: Decimal
    ) -> None:
        position = self.positions.get(fill.position_id)
        volume = deal.volume
        if position is None:
            if deal.entry != ENTRY_IN:
                return  # an exit of a position the server no longer has: the deal alone
            position = SimPosition(
                position=fill.position_id,
                login=fill.login,
                symbol=fill.symbol,
                action=deal.action,
                volume=volume,
                price_open=fill.price,
                price_current=fill.price,
                time_create_msc=deal.time_msc,
                margin=Decimal(0),
                digits=deal.digits,
                contract_size=fill.contract_size,
                commission=commission,
                currency_digits=deal.currency_digits,
            )
            self.positions[position.position] = position
        elif deal.entry == ENTRY_IN:  # netting: more of the same side, at the average price
            total = position.volume + volume
            average = (position.price_open * position.volume + fill.price * volume) / total
            position.price_open = average.quantize(Decimal(1).scaleb(-position.digits - 2))
            position.volume = total
            position.commission += commission
        elif deal.entry == ENTRY_INOUT:  # reversal: the rest opens the other way
            position.action = deal.action
            position.volume = volume - position.volume
            position.price_open = fill.price
            position.time_create_msc = deal.time_msc
            position.storage = Decimal(0)
            position.commission = Decimal(0)
        else:  # out / out_by
            position.storage -= deal.storage
            if volume >= position.volume:
                del self.positions[position.position]
                return
            position.volume -= volume
        position.margin = self._position_margin(position, user)
        self.refresh_position(position)

    def sim_mark_prices(self, prices: dict[str, Decimal]) -> None:
        """Latest mid prices; floating profit, equity and margin follow when they are read."""
        with self.lock:
            self.marks.update(prices)

    def _position_margin(self, position: SimPosition, user: SimUser) -> Decimal:
        lots = Decimal(position.volume) / 10_000
        notional = lots * position.contract_size * position.price_open
        known = INSTRUMENTS.get(position.symbol)
        quote = known.quote if known else "USD"
        rate = max(known.margin_rate if known else Decimal(0), Decimal(1) / max(user.leverage, 1))
        currency = self.group(user.group).currency
        digits = self.group(user.group).currency_digits
        return _round(self._convert(notional * rate, quote, currency), digits)

    def _convert(self, amount: Decimal, source: str, target: str) -> Decimal:
        try:
            return _RATES.convert(amount, source, target, self.marks)
        except (KeyError, ZeroDivisionError):
            return amount  # no price yet: taken at par

    def refresh_position(self, position: SimPosition) -> None:
        """Floating profit from the latest mark (bid-side mid, account currency)."""
        mark = self.marks.get(position.symbol)
        if mark is None:
            return
        position.price_current = mark
        direction = 1 if position.action == ACTION_BUY else -1
        lots = Decimal(position.volume) / 10_000
        raw = (mark - position.price_open) * lots * position.contract_size * direction
        known = INSTRUMENTS.get(position.symbol)
        user = self.users.get(position.login)
        if user is None:
            return
        currency = self.group(user.group).currency
        position.profit = _round(
            self._convert(raw, known.quote if known else currency, currency),
            position.currency_digits,
        )

    def positions_of(self, login: int) -> list[SimPosition]:
        with self.lock:
            found = [p for p in self.positions.values() if p.login == login]
            for position in found:
                self.refresh_position(position)
            return found

    # reads

    def account(self, login: int) -> dict[str, Any]:
        """The trade account record; equity = balance + credit + floating, margin from positions."""
        with self.lock:
            user = self.user(login)
            digits = self.group(user.group).currency_digits
            positions = self.positions_of(login)
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
        """Deals by logins or group mask with `Time` in [start, end] (server seconds), by ticket."""
        with self.lock:
            wanted = set(logins) if logins is not None else None
            found = []
            low = bisect.bisect_left(self._deal_times, ((start or 0) * 1000, -1))
            high = (
                bisect.bisect_right(self._deal_times, ((end + 1) * 1000, -1))
                if end is not None
                else len(self._deal_times)
            )
            for _, ticket in self._deal_times[low:high]:
                deal = self.deals[ticket]
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
        self._deal_times = sorted((d.time_msc, d.deal) for d in self.deals.values())
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
