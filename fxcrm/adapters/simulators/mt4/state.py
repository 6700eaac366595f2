"""The simulated MT4 server behind the bridge: users, trade records, money, manager sessions."""

from __future__ import annotations

import dataclasses
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

from fxcrm.adapters.platforms.mt4 import COMMENT_MAX, OP_BALANCE, OP_BUY, OP_CREDIT, OP_SELL
from fxcrm.adapters.simulators.market.contract import SimAccountInfo, SimFill
from fxcrm.adapters.simulators.mt4.config import Mt4SimConfig, Mt4SimGroup, Mt4SimSymbol
from fxcrm.adapters.simulators.mt4.protocol import BridgeError
from fxcrm.adapters.simulators.mt4.records import (
    USER_FLAG_FIELDS,
    USER_TEXT_FIELDS,
    TradeRec,
    UserRec,
    from_plain,
)
from fxcrm.adapters.simulators.persistence import ThrottledSave

MARGIN_TYPE_PERCENT = 0
LEVEL_OK, LEVEL_MARGIN_CALL, LEVEL_STOP_OUT = 0, 1, 2
_UPDATABLE = {"group", "leverage", "agent_account", *USER_FLAG_FIELDS, *USER_TEXT_FIELDS}


@lru_cache(maxsize=256)
def _mask_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def group_matches(mask: str, group: str) -> bool:
    """Manager API group mask: comma-separated patterns with `*`; `!p` excludes."""
    included = False
    for raw in mask.split(","):
        pattern = raw.strip()
        if not pattern:
            continue
        if _mask_regex(pattern.lstrip("!")).fullmatch(group):
            if pattern.startswith("!"):
                return False
            included = True
    return included


def valid_password(password: object) -> bool:
    """MT4's rule: 6 to 15 characters (char[16]) with at least a letter and a digit."""
    return (
        isinstance(password, str)
        and 6 <= len(password) <= 15
        and any(c.isalpha() for c in password)
        and any(c.isdigit() for c in password)
    )


class Mt4SimState(ThrottledSave):
    """The simulated MT4 server. Public methods take the lock: tests may call them from another
    thread while the app serves requests. Also the `SimulatedPlatform` a market engine trades on."""

    platform = "mt4"

    def __init__(
        self, config: Mt4SimConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or Mt4SimConfig()
        self.clock = clock
        self.lock = threading.RLock()
        self.users: dict[int, UserRec] = {}
        self.trades: dict[int, TradeRec] = {}  # every order, open and closed, by ticket
        self.prices: dict[str, Decimal] = {}
        self.idempotency: dict[str, int] = {}  # Idempotency-Key -> ticket
        self._positions: dict[int, int] = {}  # engine position id -> live ticket
        self._sessions: dict[str, float] = {}  # key id -> last request (clock)
        self._next_login = self.config.first_login
        self._next_order = self.config.first_order
        if self.config.state_file and self.config.state_file.exists():
            self._load(self.config.state_file)

    # time

    @property
    def utc_offset_seconds(self) -> int:
        return int(self.config.server_utc_offset_hours * 3600)

    def server_now(self) -> int:
        return int(self.clock()) + self.utc_offset_seconds

    def to_server(self, moment: datetime) -> int:
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) datetime")
        return int(moment.timestamp()) + self.utc_offset_seconds

    # manager sessions (one per API key)

    def open_session(self, key_id: str) -> None:
        with self.lock:
            self._sessions[key_id] = self.clock()

    def touch_session(self, key_id: str) -> bool:
        """True and refreshed when the key's session is live; an idle one is closed here."""
        with self.lock:
            last = self._sessions.get(key_id)
            if last is None:
                return False
            if self.clock() - last > self.config.session_timeout_seconds:
                del self._sessions[key_id]
                return False
            self._sessions[key_id] = self.clock()
            return True

    def end_session(self, key_id: str) -> None:
        with self.lock:
            self._sessions.pop(key_id, None)

    def drop_sessions(self) -> None:
        """Forget every session, as after a restart of the MT4 server."""
        with self.lock:
            self._sessions.clear()

    # lookups

    def group(self, name: str) -> Mt4SimGroup:
        found = next((g for g in self.config.groups if g.name.lower() == name.lower()), None)
        if found is None:
            raise BridgeError("BRIDGE_UNKNOWN_GROUP", f"unknown group {name!r}")
        return found

    def symbol(self, name: str) -> Mt4SimSymbol:
        return next((s for s in self.config.symbols if s.name == name), Mt4SimSymbol(name=name))

    def user(self, login: int) -> UserRec:
        with self.lock:
            found = self.users.get(login)
            if found is None:
                raise BridgeError("BRIDGE_NOT_FOUND", f"user {login} not found")
            return found

    def users_in(self, mask: str = "*", *, id_: str | None = None) -> list[UserRec]:
        with self.lock:
            return [
                u
                for u in sorted(self.users.values(), key=lambda u: u.login)
                if group_matches(mask, u.group) and (id_ is None or u.id == id_)
            ]

    # users

    def create_user(self, fields: Mapping[str, Any]) -> UserRec:
        """UserRecordNew: login 0 takes the next free one; money only moves by transactions."""
        with self.lock:
            group = self.group(_text(fields, "group", required=True))
            leverage = _int(fields.get("leverage") or group.default_leverage, "leverage")
            self._check_leverage(group, leverage)
            if not valid_password(fields.get("password")):
                raise BridgeError(
                    "RET_INVALID_DATA", "password: 6-15 characters, letters and digits"
                )
            investor = fields.get("password_investor")
            if investor not in (None, "") and not valid_password(investor):
                raise BridgeError("RET_INVALID_DATA", "password_investor: 6-15, letters and digits")
            login = _int(fields.get("login") or 0, "login")
            if login and login in self.users:
                raise BridgeError("BRIDGE_CONFLICT", f"login {login} exists")
            if not login:
                login = self._free_login()
            user = UserRec(
                login=login,
                group=group.name,
                leverage=leverage,
                regdate=self.server_now(),
                password=str(fields["password"]),
                password_investor=str(investor or ""),
            )
            self._apply_fields(user, fields, skip={"group", "leverage"})
            self.users[login] = user
            self.save()
            return user

    def update_user(self, login: int, changes: Mapping[str, Any]) -> UserRec:
        """UserRecordUpdate with only the fields sent; a group move re-checks the leverage."""
        with self.lock:
            user = self.user(login)
            refused = set(changes) - _UPDATABLE - {"login"}
            if refused:
                raise BridgeError("BRIDGE_BAD_REQUEST", f"cannot update {sorted(refused)}")
            group = self.group(_text(changes, "group")) if "group" in changes else None
            leverage = _int(changes["leverage"], "leverage") if "leverage" in changes else None
            target = group or self.group(user.group)
            self._check_leverage(target, leverage if leverage is not None else user.leverage)
            self._apply_fields(user, changes, skip={"group", "leverage", "login"})
            user.group = target.name
            if leverage is not None:
                user.leverage = leverage
            self.save()
            return user

    def set_password(self, login: int, password: object, *, investor: bool) -> None:
        with self.lock:
            user = self.user(login)
            if not valid_password(password):
                raise BridgeError(
                    "RET_INVALID_DATA", "password: 6-15 characters, letters and digits"
                )
            if investor:
                user.password_investor = str(password)
            else:
                user.password = str(password)
            self.save()

    def _apply_fields(self, user: UserRec, fields: Mapping[str, Any], skip: set[str]) -> None:
        for name, limit in USER_TEXT_FIELDS.items():
            if name in fields and name not in skip:
                value = fields[name]
                if not isinstance(value, str) or len(value) > limit:
                    raise BridgeError("RET_INVALID_DATA", f"{name}: text of at most {limit}")
                setattr(user, name, value)
        for name in USER_FLAG_FIELDS:
            if name in fields:
                if fields[name] not in (0, 1):
                    raise BridgeError("RET_INVALID_DATA", f"{name}: 0 or 1")
                setattr(user, name, int(fields[name]))
        if "agent_account" in fields:
            user.agent_account = _int(fields["agent_account"], "agent_account")

    @staticmethod
    def _check_leverage(group: Mt4SimGroup, leverage: int) -> None:
        if not 1 <= leverage <= group.max_leverage:
            raise BridgeError(
                "BRIDGE_INVALID_LEVERAGE",
                f"leverage 1:{leverage} outside 1..{group.max_leverage} of {group.name}",
            )

    def _free_login(self) -> int:
        while self._next_login in self.users:
            self._next_login += 1
        login = self._next_login
        self._next_login += 1
        return login

    # money

    def balance_transaction(
        self, login: int, cmd: int, amount: Decimal, comment: str, key: str
    ) -> tuple[TradeRec, bool]:
        """TT_BR_BALANCE: one cmd 6/7 record with the signed amount in `profit`.

        Returns (record, replayed): the same key answers the original record, never a second one.
        """
        with self.lock:
            existing = self._by_key(key)
            if existing is not None:
                if (existing.login, existing.cmd, existing.profit) != (login, cmd, _money(amount)):
                    raise BridgeError(
                        "BRIDGE_IDEMPOTENCY_CONFLICT", "key already used for another transaction"
                    )
                return existing, True
            user = self.user(login)
            if cmd not in (OP_BALANCE, OP_CREDIT):
                raise BridgeError("RET_INVALID_DATA", "cmd must be 6 (balance) or 7 (credit)")
            amount = _money(amount)
            if amount == 0 or abs(amount) > self.config.max_balance_op:
                raise BridgeError("RET_INVALID_DATA", "amount is zero or beyond the limit")
            if amount < 0:
                self._check_funds(user, cmd, -amount)
            if cmd == OP_CREDIT:
                user.credit += amount
            else:
                user.prevbalance = user.balance
                user.balance += amount
            now = self.server_now()
            record = TradeRec(
                order=self._ticket(),
                login=login,
                cmd=cmd,
                open_time=now,
                close_time=now,
                profit=amount,
                comment=(comment or key)[:COMMENT_MAX],
                idempotency_key=key,
            )
            self.trades[record.order] = record
            self.idempotency[key] = record.order
            self.save()
            return record, False

    def _by_key(self, key: str) -> TradeRec | None:
        ticket = self.idempotency.get(key)
        if ticket is not None:
            return self.trades.get(ticket)
        # Keys forgotten (a bridge restarted without its table) are still in the comments.
        return next(
            (
                t
                for t in self.trades.values()
                if t.cmd in (OP_BALANCE, OP_CREDIT) and t.comment == key
            ),
            None,
        )

    def _check_funds(self, user: UserRec, cmd: int, out: Decimal) -> None:
        if cmd == OP_CREDIT:
            if out > user.credit:
                raise BridgeError("RET_TRADE_NO_MONEY", "credit out exceeds the credit")
            return
        if out > user.balance or out > self.margin_level(user.login)["margin_free"]:
            raise BridgeError("RET_TRADE_NO_MONEY", "withdrawal exceeds balance or free margin")

    # trading (the market engine and tests)

    def open_trade(
        self,
        login: int,
        symbol: str,
        cmd: int,
        lots: Decimal | str,
        price: Decimal | str,
        *,
        time: datetime | None = None,
        commission: Decimal | str = "0",
        comment: str = "",
        contract_size: Decimal | None = None,
        position_id: int = 0,
        persist: bool = True,
    ) -> TradeRec:
        with self.lock:
            user = self.user(login)
            if not user.enable:
                raise BridgeError("RET_ACCOUNT_DISABLED", f"user {login} is disabled")
            if user.enable_read_only:
                raise BridgeError("RET_TRADE_DISABLE", f"user {login} is read-only")
            if cmd not in (OP_BUY, OP_SELL):
                raise BridgeError("RET_INVALID_DATA", "only market orders (cmd 0/1)")
            spec = self.symbol(symbol)
            fee = _money(Decimal(commission))
            user.balance += fee
            record = TradeRec(
                order=self._ticket(),
                login=login,
                cmd=cmd,
                symbol=symbol,
                digits=spec.digits,
                volume=_volume(lots),
                open_time=self.to_server(time) if time else self.server_now(),
                open_price=Decimal(price),
                close_price=self.prices.get(symbol, Decimal(price)),
                commission=fee,
                comment=comment[:COMMENT_MAX],
                contract_size=contract_size or spec.contract_size,
                position_id=position_id,
            )
            record.profit = self._floating(record, record.close_price)
            self.trades[record.order] = record
            if position_id:
                self._positions[position_id] = record.order
            if persist:
                self.save()
            return record

    def close_trade(
        self,
        ticket: int,
        price: Decimal | str,
        *,
        lots: Decimal | str | None = None,
        time: datetime | None = None,
        profit: Decimal | str | None = None,
        commission: Decimal | str = "0",
        swap: Decimal | str = "0",
        persist: bool = True,
    ) -> TradeRec:
        """Close all or part of an open trade, as MT4 does: the closed part keeps the ticket and
        becomes a closed record ("to #new"); the rest reopens as a new ticket ("from #old")."""
        with self.lock:
            trade = self.trades.get(ticket)
            if trade is None or not trade.is_open:
                raise BridgeError("BRIDGE_NOT_FOUND", f"no open trade {ticket}")
            user = self.user(trade.login)
            volume = trade.volume if lots is None else _volume(lots)
            if not 0 < volume <= trade.volume:
                raise BridgeError("RET_INVALID_DATA", "volume beyond the open volume")
            close_price = Decimal(price)
            if volume < trade.volume:
                rest = dataclasses.replace(
                    trade,
                    order=self._ticket(),
                    volume=trade.volume - volume,
                    # The open commission is shared in proportion to the volumes.
                    commission=_money(trade.commission * (trade.volume - volume) / trade.volume),
                    comment=f"from #{trade.order}",
                )
                rest.profit = self._floating(rest, rest.close_price)
                trade.commission -= rest.commission
                trade.comment = f"to #{rest.order}"
                self.trades[rest.order] = rest
                if trade.position_id:
                    self._positions[trade.position_id] = rest.order
            elif trade.position_id:
                self._positions.pop(trade.position_id, None)
            trade.volume = volume
            realized = (
                self._floating(trade, close_price) if profit is None else _money(Decimal(profit))
            )
            fee, storage = _money(Decimal(commission)), _money(Decimal(swap))
            trade.close_time = self.to_server(time) if time else self.server_now()
            trade.close_price = close_price
            trade.profit = realized
            trade.commission += fee
            trade.storage += storage
            user.balance += realized + fee + storage
            if persist:
                self.save()
            return trade

    # SimulatedPlatform

    def sim_accounts(self) -> list[SimAccountInfo]:
        with self.lock:
            return [
                SimAccountInfo(
                    login=u.login,
                    currency=self.group(u.group).currency,
                    balance=u.balance,
                    leverage=u.leverage,
                    hedging=True,  # MT4 only hedges: every order is its own position
                )
                for u in sorted(self.users.values(), key=lambda u: u.login)
                if u.enable and not u.enable_read_only
            ]

    def sim_apply_fill(self, fill: SimFill) -> str:
        """An entry opens a trade; an exit closes all or part of the position's live trade."""
        with self.lock:
            if fill.entry == "in":
                record = self.open_trade(
                    fill.login,
                    fill.symbol,
                    OP_BUY if fill.side == "buy" else OP_SELL,
                    fill.lots,
                    fill.price,
                    time=fill.time,
                    commission=fill.commission,
                    contract_size=fill.contract_size,
                    position_id=fill.position_id,
                    persist=False,
                )
                self.save_now_and_then()
                return str(record.order)
            ticket = self._positions.get(fill.position_id)
            if ticket is None:
                raise BridgeError("BRIDGE_NOT_FOUND", f"no open trade for {fill.position_id}")
            live = self.trades[ticket]
            open_lots = Decimal(live.volume) / 100
            closed = self.close_trade(
                ticket,
                fill.price,
                lots=min(fill.lots, open_lots),
                time=fill.time,
                profit=fill.profit,
                commission=fill.commission,
                swap=fill.swap,
                persist=False,
            )
            if fill.entry == "inout" and fill.lots > open_lots:
                # A reversal: MT4 has none, so the excess opens a trade the other way.
                self.open_trade(
                    fill.login,
                    fill.symbol,
                    OP_BUY if fill.side == "buy" else OP_SELL,
                    fill.lots - open_lots,
                    fill.price,
                    time=fill.time,
                    contract_size=fill.contract_size,
                    position_id=fill.position_id,
                    persist=False,
                )
            self.save_now_and_then()
            return str(closed.order)

    def sim_mark_prices(self, prices: dict[str, Decimal]) -> None:
        with self.lock:
            self.prices.update(prices)
            for trade in self.trades.values():
                if trade.is_open and trade.symbol in prices:
                    trade.close_price = prices[trade.symbol]
                    trade.profit = self._floating(trade, trade.close_price)

    def _floating(self, trade: TradeRec, price: Decimal) -> Decimal:
        # Simplified: the quote currency is taken as the account currency.
        direction = 1 if trade.cmd == OP_BUY else -1
        lots = Decimal(trade.volume) / 100
        return _money((price - trade.open_price) * lots * trade.contract_size * direction)

    def _ticket(self) -> int:
        ticket = self._next_order
        self._next_order += 1
        return ticket

    # reads

    def margin_level(self, login: int) -> dict[str, Any]:
        """MarginLevel: equity = balance + credit + floating; margin from the open trades."""
        with self.lock:
            user = self.user(login)
            group = self.group(user.group)
            open_trades = [t for t in self.trades.values() if t.login == login and t.is_open]
            floating = sum((t.profit + t.storage for t in open_trades), Decimal(0))
            margin = sum(
                (
                    Decimal(t.volume) / 100 * t.contract_size * t.open_price / user.leverage
                    for t in open_trades
                ),
                Decimal(0),
            )
            margin = _money(margin)
            equity = user.balance + user.credit + floating
            level = (equity / margin * 100).quantize(Decimal("0.01")) if margin else Decimal(0)
            if margin and level <= group.margin_stopout:
                level_type = LEVEL_STOP_OUT
            elif margin and level <= group.margin_call:
                level_type = LEVEL_MARGIN_CALL
            else:
                level_type = LEVEL_OK
            return {
                "login": login,
                "group": user.group,
                "leverage": user.leverage,
                "updated": 1,
                "balance": user.balance,
                "equity": equity,
                "volume": sum(t.volume for t in open_trades),
                "margin": margin,
                "margin_free": equity - margin,
                "margin_level": level,
                "margin_type": MARGIN_TYPE_PERCENT,
                "level_type": level_type,
            }

    def closed_trades(
        self,
        *,
        logins: Iterable[int] | None = None,
        mask: str | None = None,
        start: int = 0,
        end: int | None = None,
    ) -> list[TradeRec]:
        """Closed trades and balance records with close_time in [start, end] (server seconds)."""
        with self.lock:
            found = [
                t
                for t in self._scoped(logins, mask)
                if not t.is_open and start <= t.close_time and (end is None or t.close_time <= end)
            ]
            return sorted(found, key=lambda t: (t.close_time, t.order))

    def open_trades(
        self, *, logins: Iterable[int] | None = None, mask: str | None = None
    ) -> list[TradeRec]:
        with self.lock:
            return sorted(
                (t for t in self._scoped(logins, mask) if t.is_open), key=lambda t: t.order
            )

    def _scoped(self, logins: Iterable[int] | None, mask: str | None) -> list[TradeRec]:
        wanted = set(logins) if logins is not None else None
        chosen = []
        for trade in self.trades.values():
            if wanted is not None and trade.login not in wanted:
                continue
            if mask is not None:
                owner = self.users.get(trade.login)
                if owner is None or not group_matches(mask, owner.group):
                    continue
            chosen.append(trade)
        return chosen

    # persistence

    def save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        with self.lock:
            snapshot = {
                "users": [dataclasses.asdict(u) for u in self.users.values()],
                "trades": [dataclasses.asdict(t) for t in self.trades.values()],
                "positions": {str(k): v for k, v in self._positions.items()},
                "next_login": self._next_login,
                "next_order": self._next_order,
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(snapshot, default=str, indent=1))
            os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        snapshot = json.loads(path.read_text())
        self.users = {u["login"]: from_plain(UserRec, u) for u in snapshot.get("users", [])}
        self.trades = {t["order"]: from_plain(TradeRec, t) for t in snapshot.get("trades", [])}
        self.idempotency = {
            t.idempotency_key: t.order for t in self.trades.values() if t.idempotency_key
        }
        self._positions = {int(k): v for k, v in snapshot.get("positions", {}).items()}
        self._next_login = snapshot.get("next_login", self._next_login)
        self._next_order = snapshot.get("next_order", self._next_order)


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


def _volume(lots: Decimal | str) -> int:
    """Lots as MT4's volume, 1/100 lot."""
    return int((Decimal(lots) * 100).to_integral_value(ROUND_HALF_UP))


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BridgeError("RET_INVALID_DATA", f"{name}: an integer")
    try:
        return int(value)
    except ValueError:
        raise BridgeError("RET_INVALID_DATA", f"{name}: an integer") from None


def _text(fields: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or (required and not value):
        raise BridgeError("RET_INVALID_DATA", f"{name}: text required")
    return value
